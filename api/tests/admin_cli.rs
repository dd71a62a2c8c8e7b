#![allow(clippy::unwrap_used)]
//! Operator bootstrap through the real binary: `advancia admin create` makes the first
//! admin (password on standard input), `advancia admin grant-role` adds roles; both are
//! audited in `auth.events` with the OS user who ran them, and the account signs in.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use advancia_test_support::TestDb;
use reqwest::StatusCode;
use serde_json::json;

mod common;

fn admin(db: &TestDb, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_advancia"))
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("AUTH_TOTP_ENCRYPTION_KEY", "22".repeat(32))
        .env("USER", "ops-alice")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn admin_create_and_grant_role_are_audited_and_the_admin_signs_in() {
    let db = TestDb::new(&advancia_api::all_migrations()).await;
    let out = admin(
        &db,
        &[
            "create",
            "--email",
            "Ops@Example.org",
            "--display-name",
            "Ops",
        ],
        "a long operator passphrase\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ops@example.org roles=admin"),
        "{}",
        text(&out)
    );

    // Audited, with who ran it.
    let (kind, detail): (String, serde_json::Value) = sqlx::query_as(
        "SELECT e.kind, e.detail FROM auth.events e JOIN auth.users u ON u.id = e.user_id
          WHERE u.email = 'ops@example.org' AND e.kind = 'operator_created'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kind, "operator_created");
    assert_eq!(detail["operator"], "ops-alice (advancia admin)");
    assert_eq!(detail["roles"], json!(["admin"]));

    // A second create of the same address is refused; the password is never echoed.
    let out = admin(
        &db,
        &["create", "--email", "ops@example.org"],
        "another passphrase here\n",
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("already registered"), "{}", text(&out));
    assert!(!text(&out).contains("another passphrase"));
    // No password, no account.
    let out = admin(&db, &["create", "--email", "x@example.org"], "");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no password on standard input"),
        "{}",
        text(&out)
    );

    let out = admin(
        &db,
        &[
            "grant-role",
            "--email",
            "ops@example.org",
            "--role",
            "compliance_officer",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let granted = text(&out);
    assert!(
        granted.contains("admin") && granted.contains("compliance_officer"),
        "{granted}"
    );
    let (detail,): (serde_json::Value,) = sqlx::query_as(
        "SELECT e.detail FROM auth.events e JOIN auth.users u ON u.id = e.user_id
          WHERE u.email = 'ops@example.org' AND e.kind = 'roles_assigned'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(detail["before"], json!(["admin"]));
    assert_eq!(detail["operator"], "ops-alice (advancia admin)");

    let out = admin(
        &db,
        &[
            "grant-role",
            "--email",
            "nobody@example.org",
            "--role",
            "admin",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no account has the address"),
        "{}",
        text(&out)
    );
    let out = admin(
        &db,
        &["grant-role", "--email", "ops@example.org", "--role", "root"],
        "",
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown role `root`"), "{}", text(&out));

    // The bootstrapped admin signs in through the API and uses admin routes. (The API under
    // test hashes passwords cheaply; the CLI used production parameters: both verify.)
    let state = common::state(db.pool.clone());
    let base = common::spawn(
        advancia_api::app(state, advancia_api::ApiConfig::default())
            .await
            .unwrap(),
    )
    .await;
    let http = reqwest::Client::new();
    let tokens: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "ops@example.org", "password": "a long operator passphrase"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let r = http
        .get(format!("{base}/api/v1/ledger/audit-trail"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
