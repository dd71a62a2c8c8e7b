//! A partner's integration, done the way partners do it: a TypeScript client generated
//! from the served `/api/v1/openapi.json` with npm's `openapi-typescript` + `openapi-fetch`,
//! compiled by `tsc --strict`, runs the partner flow against the whole stack — an API key,
//! indexer queries paged with cursors, the payments list, a webhook registration. Tools
//! come from `cargo xtask test` (ADVANCIA_TS_CLIENT_TOOLS).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use advancia_auth::Role;
use advancia_e2e::{Stack, funded, send};
use advancia_pay::client as pay;
use serde_json::Value;
use solana_signer::Signer;

const FLOW: &str = r#"
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};

async function main(): Promise<void> {
  const baseUrl = env("ADVANCIA_BASE");
  const user = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${env("ADVANCIA_TOKEN")}` } });

  // 1. An API key for the partner's servers.
  const created = await user.POST("/api/v1/users/{id}/api-keys", {
    params: { path: { id: env("ADVANCIA_USER") } },
    body: { name: "ts-partner", scopes: ["indexer:read"] },
  });
  if (created.error !== undefined || created.data === undefined) {
    throw new Error(`api key: ${created.response.status} ${JSON.stringify(created.error)}`);
  }
  const keyId: string = created.data.id;
  const partner = createClient<paths>({ baseUrl, headers: { "X-Api-Key": created.data.key } });

  // 2. Indexed facilities, one per page, following next_cursor to the end. (A function
  // of its own: inline in the loop, `tsc` cannot type the call, whose argument depends on
  // the previous call's result — TS7022.)
  const facilities = (cursor: string | undefined) =>
    partner.GET("/api/v1/indexer/facilities", { params: { query: { limit: 1, cursor } } });
  const seen: string[] = [];
  let cursor: string | undefined = undefined;
  for (let page = 0; page < 100; page++) {
    const r = await facilities(cursor);
    if (r.error !== undefined || r.data === undefined) {
      throw new Error(`indexer: ${r.response.status} ${JSON.stringify(r.error)}`);
    }
    for (const row of r.data.items) seen.push(JSON.stringify(row));
    cursor = r.data.next_cursor ?? undefined;
    if (cursor === undefined) break;
  }
  // A cursor that is not ours is a problem+json 400, typed as such.
  const bad = await partner.GET("/api/v1/indexer/facilities", { params: { query: { cursor: "not-a-cursor" } } });
  const badType: string | undefined = bad.error?.type;

  // 3. The payments list.
  const history = await user.GET("/api/v1/payments/history", { params: { query: { limit: 10 } } });
  if (history.error !== undefined || history.data === undefined) {
    throw new Error(`history: ${history.response.status} ${JSON.stringify(history.error)}`);
  }
  const payments: number = history.data.items.length;

  // 4. A webhook endpoint; its secret is shown once.
  const hook = await user.POST("/api/v1/notifications/webhooks", {
    body: { url: env("ADVANCIA_HOOK_URL"), event_types: ["partner.test"] },
  });
  if (hook.error !== undefined || hook.data === undefined) {
    throw new Error(`webhook: ${hook.response.status} ${JSON.stringify(hook.error)}`);
  }
  const secret: string = hook.data.secret ?? "";

  console.log(JSON.stringify({ keyId, rows: seen, badType, payments, hookId: hook.data.id, secretPrefix: secret.slice(0, 6) }));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
"#;

fn tools() -> PathBuf {
    let dir = std::env::var_os("ADVANCIA_TS_CLIENT_TOOLS")
        .map(PathBuf::from)
        .expect(
            "ADVANCIA_TS_CLIENT_TOOLS is not set: run through `cargo xtask test`, which installs \
         typescript, openapi-typescript and openapi-fetch from npm",
        );
    assert!(
        dir.join("node_modules/openapi-fetch").is_dir(),
        "{} lacks openapi-fetch",
        dir.display()
    );
    dir
}

async fn node(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(args).current_dir(dir).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), cmd.output())
        .await
        .expect("node did not finish within 5 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "node {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_typescript_client_runs_the_partner_flow() {
    let tools = tools();
    let stack = Stack::start().await;
    let (partner_id, partner_token) = stack.user("partner@example.org", Role::Partner).await;

    // Two more facilities on chain, so the indexer has three rows to page through.
    for id in [[0x43u8; 32], [0x44u8; 32]] {
        let authority = funded(&stack.rpc, 1_000_000_000).await;
        send(
            &stack.rpc,
            &stack.admin,
            &[pay::register_facility(
                stack.admin.pubkey(),
                id,
                authority.pubkey(),
                stack.payout,
            )],
        )
        .await;
    }
    let (_, admin) = stack.user("ops@example.org", Role::Admin).await;
    for _ in 0..600 {
        let (s, v) = stack
            .get("/api/v1/indexer/facilities?limit=200", Some(&admin))
            .await;
        assert_eq!(s, 200, "{v}");
        if v["items"].as_array().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A loopback receiver address, admitted by the harness's egress allow-list.
    let hook_url = "http://127.0.0.1:9/hooks/advancia".to_owned();

    // The served document → types → a strict compile → a run.
    let dir = std::env::temp_dir().join(format!("advancia-ts-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let doc = reqwest::get(format!("{}/api/v1/openapi.json", stack.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(dir.join("openapi.json"), &doc).unwrap();
    std::fs::write(dir.join("flow.ts"), FLOW).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"type": "module", "private": true}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(tools.join("node_modules"), dir.join("node_modules")).unwrap();
    let bin = |p: &str| tools.join("node_modules").join(p).display().to_string();
    node(
        &dir,
        &[
            &bin("openapi-typescript/bin/cli.js"),
            "openapi.json",
            "-o",
            "schema.d.ts",
        ],
        &[],
    )
    .await;
    node(
        &dir,
        &[
            &bin("typescript/bin/tsc"),
            "--strict",
            "--noUncheckedIndexedAccess",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--outDir",
            "out",
            "flow.ts",
        ],
        &[],
    )
    .await;
    let out = node(
        &dir,
        &["out/flow.js"],
        &[
            ("ADVANCIA_BASE", stack.base.clone()),
            ("ADVANCIA_TOKEN", partner_token.clone()),
            ("ADVANCIA_USER", partner_id),
            ("ADVANCIA_HOOK_URL", hook_url.clone()),
        ],
    )
    .await;
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    assert!(
        result["keyId"].as_str().is_some_and(|s| !s.is_empty()),
        "{result}"
    );
    let rows = result["rows"].as_array().unwrap();
    assert!(
        rows.len() >= 3,
        "paged through {} rows: {result}",
        rows.len()
    );
    let unique: std::collections::HashSet<&str> =
        rows.iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(unique.len(), rows.len(), "a row came twice across pages");
    assert_eq!(
        result["badType"],
        "https://advancia.dev/problems/invalid-cursor"
    );
    assert_eq!(result["payments"], 0);
    assert_eq!(result["secretPrefix"], "whsec_");
    // The endpoint is stored as registered, for the partner.
    let (s, hooks) = stack
        .get("/api/v1/notifications/webhooks", Some(&partner_token))
        .await;
    assert_eq!(s, 200, "{hooks}");
    assert_eq!(hooks[0]["url"], hook_url.as_str(), "{hooks}");
    assert_eq!(hooks[0]["id"], result["hookId"], "{hooks}");
    assert!(
        hooks[0].get("secret").is_none(),
        "secrets are shown once: {hooks}"
    );
}
