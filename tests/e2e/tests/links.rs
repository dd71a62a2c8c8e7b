//! Links handed to wallets come from the configured public URL, never from the request: a
//! client sending `Host: evil.example` gets our links, not its own.
#![allow(clippy::unwrap_used)]

use advancia_auth::Role;
use advancia_e2e::{FACILITY_ID, SOL, Stack};
use serde_json::{Value, json};

#[tokio::test]
async fn payment_links_ignore_the_host_header() {
    let stack = Stack::start().await;
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    let resp = stack
        .http
        .post(format!("{}/api/v1/payments/initiate", stack.base))
        .header(reqwest::header::HOST, "evil.example")
        .header("x-forwarded-host", "evil.example")
        .bearer_auth(&patient)
        .json(&json!({"facility_id": hex::encode(FACILITY_ID), "amount": SOL.to_string(), "asset": "SOL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let link = created["transaction_request_url"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}/api/v1/payments/", stack.base)),
        "{link}"
    );
    assert!(!created.to_string().contains("evil.example"), "{created}");
    // The wallet's GET: the icon link too.
    let meta: Value = stack
        .http
        .get(link)
        .header(reqwest::header::HOST, "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["icon"],
        format!("{}/api/v1/payments/icon.svg", stack.base),
        "{meta}"
    );
}
