//! The patient's checkout (issue #22, ADR 0026) against the whole stack, judged by the
//! ecosystem's own clients:
//! - the page in headless Chromium (puppeteer-core on Debian's `chromium`): facility and
//!   amount as shown, the QR code decoded from a screenshot (jsQR) and accepted by
//!   `@solana/pay`'s `parseURL` with an https public URL, a local keypair paying through the
//!   page's own transaction request, the page going to "paid" without a reload, axe-core
//!   in the page, no CSP violation, 320 px wide; screenshots under `target/checkout/`;
//! - the Solana Actions with `@solana/actions` (types under `tsc --strict`, its header,
//!   URL and transaction helpers);
//! - the live status stream and the end-state views (KYC required, escaped labels).
//!
//! The npm tools come from `cargo xtask test` (ADVANCIA_CHECKOUT_TOOLS); Chromium too.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use advancia_auth::Role;
use advancia_e2e::{FACILITY_ID, SOL, Stack, funded, send};
use advancia_pay::client as pay;
use serde_json::{Value, json};
use solana_signer::Signer;

/// The public URL of the https deployment the page is served as.
const PUBLIC: &str = "https://pay.example.test";

fn tools() -> PathBuf {
    let dir = std::env::var_os("ADVANCIA_CHECKOUT_TOOLS")
        .map(PathBuf::from)
        .expect(
            "ADVANCIA_CHECKOUT_TOOLS is not set: run through `cargo xtask test`, which installs \
             @solana/actions, @solana/pay, puppeteer-core, axe-core, jsqr and pngjs from npm",
        );
    assert!(
        dir.join("node_modules/@solana/actions").is_dir(),
        "{} lacks @solana/actions",
        dir.display()
    );
    dir
}

/// Debian's `chromium` (installed by `cargo xtask test`), or `ADVANCIA_CHROMIUM`.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("ADVANCIA_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
        .expect("chromium not found on PATH: `cargo xtask test` installs Debian's `chromium`")
}

/// Where screenshots are kept for a person to look at: `target/checkout/`.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("checkout")
}

/// A scratch directory with the tools' `node_modules` and our scripts.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("advancia-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(tools().join("node_modules"), dir.join("node_modules")).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"type": "module", "private": true}"#,
    )
    .unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/checkout");
    for file in ["browser.mjs", "actions.ts"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    dir
}

async fn node(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(args).current_dir(dir).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(400), cmd.output())
        .await
        .expect("node did not finish within 400 s")
        .unwrap();
    assert!(
        out.status.success(),
        "node {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The same API (state, database, followers) served as the https deployment `PUBLIC`:
/// every link it hands out starts with `PUBLIC`. Returns where the test reaches it.
async fn https_deployment(stack: &Stack) -> String {
    let mut state = stack.state.clone();
    state.public_url = PUBLIC.into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = advancia_api::app(state, advancia_api::ApiConfig::default())
        .await
        .unwrap();
    tokio::spawn(advancia_api::serve(listener, app, std::future::pending()));
    base
}

/// A facility profile named `name` (facilities service), registered on chain under its
/// UUID; returns the UUID.
async fn named_facility(stack: &Stack, name: &str) -> String {
    let (_, admin) = stack.user("facilities@example.org", Role::Admin).await;
    let (s, f) = stack
        .post(
            "/api/v1/facilities",
            Some(&admin),
            json!({
                "name": name, "facility_type": "clinic", "services": ["cardiology"],
                "address": {"street": "1 Main St", "city": "Boston", "country": "US"},
                "location": {"lat": 42.36, "lon": -71.06},
                "payout_wallets": [{"chain": "solana", "address": stack.payout.to_string()}],
                "status": "active"
            }),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let id = f["id"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let mut chain_id = [0u8; 32];
    chain_id[..16].copy_from_slice(uuid.as_bytes());
    send(
        &stack.rpc,
        &stack.admin,
        &[pay::register_facility(
            stack.admin.pubkey(),
            chain_id,
            stack.facility_authority.pubkey(),
            stack.payout,
        )],
    )
    .await;
    id
}

fn serious(axe: &Value) -> Vec<Value> {
    axe.as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_page_in_chromium_is_paid_by_a_wallet_and_goes_live() {
    let tools_dir = tools();
    let stack = Stack::start().await;
    let public = https_deployment(&stack).await;
    let name = "St. Mary's <Heart> & Lung Clinic";
    let facility = named_facility(&stack, name).await;
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    let (s, created) = stack
        .post(
            &format!("{public}/api/v1/payments/initiate"),
            Some(&patient),
            json!({"facility_id": facility, "amount": (3 * SOL / 2).to_string(), "asset": "SOL",
                   "memo": "Consultation 7 Dec"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["checkout_url"], format!("{PUBLIC}/pay/{id}"));
    // The Solana Pay URL form: a link without a query is not percent-encoded.
    let solana_pay = format!("solana:{PUBLIC}/api/v1/payments/{id}/transaction-request");
    assert_eq!(created["solana_pay_url"], solana_pay.as_str(), "{created}");
    assert_eq!(
        created["solana_action_url"],
        format!("solana-action:{PUBLIC}/api/v1/actions/pay/{id}")
    );

    let wallet = funded(&stack.rpc, 5 * SOL).await;
    let dir = workdir("checkout-browser");
    let shots = screenshots();
    let out = node(
        &dir,
        &["browser.mjs"],
        &[
            ("CHECKOUT_PAGE", format!("{public}/pay/{id}")),
            ("CHECKOUT_REACH", format!("{PUBLIC} {public}")),
            (
                "CHECKOUT_WALLET",
                serde_json::to_string(&wallet.to_bytes().to_vec()).unwrap(),
            ),
            ("CHECKOUT_SCREENSHOTS", shots.display().to_string()),
            ("CHROMIUM", chromium().display().to_string()),
            ("RPC_URL", stack.node.rpc_url()),
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = tools_dir;
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Kept beside the screenshots: what the browser saw, axe's findings included.
    std::fs::write(
        shots.join("result.json"),
        serde_json::to_vec_pretty(&r).unwrap(),
    )
    .unwrap();
    eprintln!(
        "checkout page: states {}, axe {}, screenshots in {}",
        r["states"],
        r["axe"],
        shots.display()
    );

    // What the patient reads.
    assert_eq!(r["facility"], name, "{r}");
    assert_eq!(r["amount"], "1.5 SOL", "{r}");
    // The QR code is exactly the Solana Pay URL, and the wallet link is the same.
    assert_eq!(r["qr"], solana_pay.as_str(), "{r}");
    assert_eq!(r["qrNarrow"], solana_pay.as_str(), "read at 320 px: {r}");
    assert_eq!(r["walletHref"], solana_pay.as_str());
    assert_eq!(
        r["link"],
        format!("{PUBLIC}/api/v1/payments/{id}/transaction-request")
    );
    assert_eq!(
        r["actionHref"],
        format!("solana-action:{PUBLIC}/api/v1/actions/pay/{id}")
    );
    // Our own script ran under the CSP, and nothing was blocked.
    let csp = r["csp"].as_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(r["cspViolations"], json!([]), "{r}");
    // Nothing the page loads is missing or failing (its console stays clean).
    assert_eq!(r["log"], json!([]), "{r}");
    assert!(
        r["countdown"]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 13,
        "{r}"
    );
    // The live update: the page went to "paid" in the same document, never reloaded.
    let states: Vec<&str> = r["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(states.first(), Some(&"waiting"), "{r}");
    assert_eq!(states.last(), Some(&"paid"), "{r}");
    assert_eq!(r["marker"], "same document");
    assert_eq!(r["navigations"], 1, "{r}");
    assert_eq!(r["paidTitle"], "Paid");
    assert_eq!(r["payHidden"], true);
    // 320 px: nothing wider than the screen.
    assert!(r["narrow"]["scrollWidth"].as_f64().unwrap() <= 320.0, "{r}");
    // Accessibility: no serious or critical violation, in every state looked at.
    for (when, axe) in r["axe"].as_object().unwrap() {
        assert_eq!(serious(axe), Vec::<Value>::new(), "axe ({when}): {axe}");
    }
    for shot in [
        "checkout-waiting.png",
        "checkout-320px.png",
        "checkout-paid.png",
    ] {
        assert!(shots.join(shot).is_file(), "{shot} not kept");
    }
    // The API agrees.
    let status = stack
        .wait_status(&id, &patient, |v| v["status"] == "finalized")
        .await;
    assert_eq!(status["payer"], wallet.pubkey().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn solana_actions_conform_to_the_official_package() {
    let stack = Stack::start().await;
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    let initiate = |label: &str| {
        json!({"facility_id": hex::encode(FACILITY_ID), "amount": SOL.to_string(), "asset": "SOL",
               "label": label})
    };
    let (s, created) = stack
        .post(
            "/api/v1/payments/initiate",
            Some(&patient),
            initiate("Radiology"),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["action_url"],
        format!("{}/api/v1/actions/pay/{id}", stack.base)
    );
    let (s, hostile) = stack
        .post(
            "/api/v1/payments/initiate",
            Some(&patient),
            initiate("<img src=x onerror=alert(1)><b>Clinic</b>"),
        )
        .await;
    assert_eq!(s, 201, "{hostile}");
    let genesis = stack.rpc.get_genesis_hash().await.unwrap().to_string();
    let chain_id = format!("solana:{}", &genesis[..32]);

    let wallet = funded(&stack.rpc, 5 * SOL).await;
    let dir = workdir("checkout-actions");
    let tsc = tools()
        .join("node_modules/typescript/bin/tsc")
        .display()
        .to_string();
    node(
        &dir,
        &[
            &tsc,
            "--strict",
            "--noUncheckedIndexedAccess",
            "--skipLibCheck",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--types",
            "node",
            "--outDir",
            "out",
            "actions.ts",
        ],
        &[],
    )
    .await;
    let out = node(
        &dir,
        &["out/actions.js"],
        &[
            ("ACTIONS_BASE", stack.base.clone()),
            (
                "ACTIONS_HTTPS_URL",
                format!("{PUBLIC}/api/v1/actions/pay/{id}"),
            ),
            ("ACTIONS_PAYMENT", id.clone()),
            (
                "ACTIONS_HOSTILE",
                hostile["id"].as_str().unwrap().to_owned(),
            ),
            ("ACTIONS_CHAIN_ID", chain_id),
            (
                "ACTIONS_WALLET",
                serde_json::to_string(&wallet.to_bytes().to_vec()).unwrap(),
            ),
            ("RPC_URL", stack.node.rpc_url()),
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["label"], "Pay 1 SOL", "{r}");
    assert_eq!(
        r["icon"],
        format!("{}/api/v1/payments/icon.svg", stack.base)
    );
    // The transaction the action handed out pays the intent.
    let status = stack
        .wait_status(&id, &patient, |v| v["status"] == "finalized")
        .await;
    assert_eq!(status["payer"], wallet.pubkey().to_string());
    assert_eq!(status["signature"], r["signature"]);
    // Once paid, the action says so and offers nothing to sign.
    let (s, meta) = stack.get(&format!("/api/v1/actions/pay/{id}"), None).await;
    assert_eq!(s, 200, "{meta}");
    assert_eq!(meta["disabled"], true, "{meta}");
    assert_eq!(meta["label"], "Paid", "{meta}");
    assert!(meta.get("links").is_none(), "{meta}");
    let (s, again) = stack
        .post(
            &format!("/api/v1/actions/pay/{id}"),
            None,
            json!({"account": wallet.pubkey().to_string()}),
        )
        .await;
    assert_eq!(s, 409, "{again}");
    assert!(again["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// Reads server-sent events from `resp` until one named `state` arrives (20 s at most).
async fn next_state(resp: &mut reqwest::Response, buf: &mut String) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = "";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if event == "state" {
                return serde_json::from_str(&data).unwrap();
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("no state event within 20 s")
            .unwrap()
            .expect("the stream ended");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn live_status_is_pushed_and_each_end_state_has_its_view() {
    let stack = Stack::start().await;
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    // Above the KYC threshold: an unattested wallet is refused.
    let (s, created) = stack
        .post(
            "/api/v1/payments/initiate",
            Some(&patient),
            json!({"facility_id": hex::encode(FACILITY_ID), "amount": (60 * SOL).to_string(),
                   "asset": "SOL", "label": "<script>alert(1)</script>Surgery"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let mut stream = stack
        .http
        .get(format!("{}/pay/{id}/events", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buf = String::new();
    let first = next_state(&mut stream, &mut buf).await;
    assert_eq!(first["state"], "waiting", "{first}");
    assert_eq!(first["payable"], true);

    // The wallet asks; the refusal carries `message` (plain text) for the wallet, and the
    // page hears about it with no client asking.
    let wallet = funded(&stack.rpc, SOL).await;
    let (s, refused) = stack
        .post(
            &format!("/api/v1/payments/{id}/transaction-request"),
            None,
            json!({"account": wallet.pubkey().to_string()}),
        )
        .await;
    assert_eq!(s, 422, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("KYC"), "{refused}");
    let pushed = next_state(&mut stream, &mut buf).await;
    assert_eq!(pushed["state"], "kyc_required", "{pushed}");
    assert!(
        pushed["detail"].as_str().unwrap().contains("50 SOL"),
        "{pushed}"
    );

    // The page itself, without JavaScript: the same view, escaped, under the CSP.
    let resp = stack
        .http
        .get(format!("{}/pay/{id}", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self';"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(r#"<body data-state="kyc_required">"#),
        "{html}"
    );
    assert!(html.contains("Identity verification needed"));
    assert!(html.contains("60 SOL"));
    assert!(!html.contains("<script>alert"), "{html}");
    // Its one script is a file of ours; no inline script, no inline style.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains(r#"<script src="/assets/checkout.js" defer></script>"#));
    assert!(!html.contains("style="), "{html}");
    assert!(html.contains("<svg role=\"img\""));
    // Wallet metadata is plain text too.
    let (s, meta) = stack
        .get(&format!("/api/v1/payments/{id}/transaction-request"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(meta["label"], "alert(1)Surgery", "{meta}");

    // Refusals before any handler (wrong media type) carry `message` too.
    let resp = stack
        .http
        .post(format!(
            "{}/api/v1/payments/{id}/transaction-request",
            stack.base
        ))
        .body("account=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    // Unknown or malformed ids: 404 problems, for the page and its stream alike.
    for path in [
        "/pay/00000000-0000-4000-8000-000000000000".to_owned(),
        "/pay/not-an-id".to_owned(),
        "/pay/00000000-0000-4000-8000-000000000000/events".to_owned(),
    ] {
        let (s, p) = stack.get(&path, None).await;
        assert_eq!(s, 404, "{path}: {p}");
        assert_eq!(advancia_e2e::kind(&p), "not-found", "{path}: {p}");
    }
}
