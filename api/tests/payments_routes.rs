#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Payment and blockchain routes without a chain node (its URL refuses connections): roles,
//! validation, not-found rules, watch-only wallets, and 502 when the node is unreachable.
//! The flows against a real local chain are in tests/e2e.

use advancia_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

mod common;
use common::{TestApi as Api, kind};

const FACILITY: &str = "4242424242424242424242424242424242424242424242424242424242424242";

#[tokio::test]
async fn roles_and_authentication_on_every_payment_and_blockchain_route() {
    let api = Api::start().await;
    let (_, partner) = api.token_for("partner@example.org", Role::Partner).await;
    let (_, patient) = api.token_for("patient@example.org", Role::Patient).await;
    let id = "0193a4f0-0000-7000-8000-000000000001";
    let initiate = json!({"facility_id": FACILITY, "amount": "1", "asset": "SOL"});
    let account = json!({"account": "11111111111111111111111111111111"});

    // Without credentials: 401 on every guarded route.
    let guarded: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/v1/payments/initiate".into(),
            Some(initiate.clone()),
        ),
        (Method::GET, format!("/api/v1/payments/{id}/status"), None),
        (
            Method::POST,
            format!("/api/v1/payments/{id}/confirm"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/payments/{id}/refund"),
            Some(account.clone()),
        ),
        (
            Method::POST,
            format!("/api/v1/payments/{id}/release"),
            Some(account.clone()),
        ),
        (Method::GET, "/api/v1/payments/history".into(), None),
        (
            Method::POST,
            "/api/v1/blockchain/wallets/create".into(),
            Some(json!({"chain": "solana", "address": "11111111111111111111111111111111"})),
        ),
        (Method::GET, "/api/v1/blockchain/wallets".into(), None),
        (
            Method::GET,
            "/api/v1/blockchain/wallets/11111111111111111111111111111111/balance".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/blockchain/transactions/send".into(),
            Some(json!({"transaction": "AA=="})),
        ),
        (
            Method::GET,
            "/api/v1/blockchain/transactions/1111/status".into(),
            None,
        ),
        (Method::GET, "/api/v1/blockchain/gas-prices".into(), None),
        (
            Method::POST,
            "/api/v1/blockchain/contracts/interact".into(),
            Some(json!({"fee_payer": "x", "instructions": []})),
        ),
    ];
    for (method, path, body) in &guarded {
        let (s, p) = api.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(
            (s.as_u16(), kind(&p)),
            (401, "invalid-token"),
            "{method} {path}: {p}"
        );
    }

    // Wrong role: 403 with the same problem type everywhere.
    let forbidden: Vec<(&str, Method, String, Option<Value>)> = vec![
        (
            &partner,
            Method::POST,
            "/api/v1/payments/initiate".into(),
            Some(initiate),
        ),
        (
            &patient,
            Method::POST,
            format!("/api/v1/payments/{id}/refund"),
            Some(account),
        ),
        (
            &patient,
            Method::GET,
            "/api/v1/payments/history?all=true".into(),
            None,
        ),
    ];
    for (token, method, path, body) in forbidden {
        let (s, p) = api.call(method.clone(), &path, Some(token), body).await;
        assert_eq!(
            (s.as_u16(), kind(&p)),
            (403, "forbidden"),
            "{method} {path}: {p}"
        );
    }

    // Unknown and malformed payment ids are 404 alike; so are the wallet-facing routes.
    for path in [
        format!("/api/v1/payments/{id}/status"),
        "/api/v1/payments/not-a-uuid/status".into(),
        format!("/api/v1/payments/{id}/transaction-request"),
    ] {
        let (s, p) = api.call(Method::GET, &path, Some(&patient), None).await;
        assert_eq!((s.as_u16(), kind(&p)), (404, "not-found"), "{path}: {p}");
    }
}

#[tokio::test]
async fn validation_and_unreachable_chain() {
    let api = Api::start().await;
    let (_, patient) = api.token_for("p@example.org", Role::Patient).await;
    let post = |path: &'static str, body: Value| {
        let token = patient.clone();
        let api = &api;
        async move { api.call(Method::POST, path, Some(&token), Some(body)).await }
    };
    for (body, expect) in [
        (
            json!({"facility_id": "xyz", "amount": "1", "asset": "SOL"}),
            "facility_id",
        ),
        (
            json!({"facility_id": FACILITY, "amount": "0", "asset": "SOL"}),
            "greater than zero",
        ),
        (
            json!({"facility_id": FACILITY, "amount": "1", "asset": "DOGE"}),
            "asset",
        ),
        (
            json!({"facility_id": FACILITY, "amount": "1", "asset": "SOL",
                   "escrow": {"arbiter": "nope", "expires_at": 4_000_000_000i64}}),
            "arbiter",
        ),
    ] {
        let (s, p) = post("/api/v1/payments/initiate", body).await;
        assert_eq!((s.as_u16(), kind(&p)), (400, "invalid-input"), "{p}");
        assert!(p["detail"].as_str().unwrap().contains(expect), "{p}");
    }
    let (s, p) = post(
        "/api/v1/payments/initiate",
        json!({"facility_id": FACILITY, "amount": "-5", "asset": "SOL"}),
    )
    .await;
    assert_eq!(s, 422, "a negative amount does not deserialize: {p}");

    // A well-formed request needs the chain: 502 with a problem saying so.
    let (s, p) = post(
        "/api/v1/payments/initiate",
        json!({"facility_id": FACILITY, "amount": "1", "asset": "SOL"}),
    )
    .await;
    assert_eq!((s.as_u16(), kind(&p)), (502, "chain-unavailable"), "{p}");
    let (s, p) = api
        .call(
            Method::GET,
            "/api/v1/blockchain/wallets/11111111111111111111111111111111/balance",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (502, "chain-unavailable"), "{p}");
    let (s, p) = api
        .call(
            Method::GET,
            "/api/v1/blockchain/gas-prices",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (502, "chain-unavailable"), "{p}");

    // Relay and simulate inputs are checked before the chain is asked.
    for (body, expect) in [
        (json!({"transaction": "***"}), "base64"),
        (json!({"transaction": "AAAA"}), "decode"),
    ] {
        let (s, p) = post("/api/v1/blockchain/transactions/send", body).await;
        // Any string is the documented form; one that is no transaction is refused.
        assert_eq!((s.as_u16(), kind(&p)), (422, "transaction-rejected"), "{p}");
        assert!(p["detail"].as_str().unwrap().contains(expect), "{p}");
    }
    for (body, expect, status) in [
        (
            json!({"fee_payer": "11111111111111111111111111111111", "instructions": []}),
            "instructions",
            (400, "invalid-input"),
        ),
        (
            json!({"fee_payer": "11111111111111111111111111111111", "instructions": [
                {"program_id": "11111111111111111111111111111111", "accounts": [], "data": "@@"}]}),
            "base64",
            // Any string is the documented form of `data`; one that is not base64 is refused.
            (422, "input-refused"),
        ),
        (
            json!({"fee_payer": "11111111111111111111111111111111", "mode": "execute", "instructions": [
                {"program_id": "11111111111111111111111111111111", "accounts": [], "data": ""}]}),
            "mode",
            (400, "invalid-input"),
        ),
    ] {
        let (s, p) = post("/api/v1/blockchain/contracts/interact", body).await;
        assert_eq!((s.as_u16(), kind(&p)), status, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(expect), "{p}");
    }
    let (s, p) = api
        .call(
            Method::GET,
            "/api/v1/blockchain/gas-prices?accounts=zz",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (422, "invalid-address"), "{p}");
    let (s, p) = api
        .call(
            Method::GET,
            "/api/v1/payments/history?status=lost",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (400, "invalid-input"), "{p}");
    let (s, p) = api
        .call(
            Method::GET,
            "/api/v1/payments/history?from=yesterday",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (400, "invalid-input"), "{p}");
    let (s, p) = api
        .call(
            Method::GET,
            "/api/v1/payments/history",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["items"], json!([]));
}

#[tokio::test]
async fn watch_only_wallets() {
    let api = Api::start().await;
    let (_, alice) = api.token_for("alice@example.org", Role::Patient).await;
    let (_, bob) = api.token_for("bob@example.org", Role::Provider).await;
    let create = |token: String, body: Value| {
        let api = &api;
        async move {
            api.call(
                Method::POST,
                "/api/v1/blockchain/wallets/create",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let sol = "FKE26Z8kY9E3bPUoDyV3wGWz7cNxtGFU3Zk3HgxaeC88";
    let (s, w) = create(
        alice.clone(),
        json!({"chain": "solana", "address": sol, "label": "main"}),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["address"], sol);
    // Idempotent: the same address again is 200 with the same row.
    let (s, again) = create(
        alice.clone(),
        json!({"chain": "Solana", "address": format!(" {sol} ")}),
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["id"], w["id"]);
    assert_eq!(again["label"], "main");
    // EVM addresses are stored checksummed; a wrong checksum is refused.
    let (s, e) = create(
        alice.clone(),
        json!({"chain": "ethereum", "address": "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"}),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["address"], "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
    // No address of the chain: refused (422); a chain outside the enum: malformed (400).
    for (body, expect) in [
        (
            json!({"chain": "ethereum", "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"}),
            (422, "invalid-address"),
        ),
        (
            json!({"chain": "solana", "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}),
            (422, "invalid-address"),
        ),
        (
            json!({"chain": "dogecoin", "address": sol}),
            (400, "invalid-input"),
        ),
    ] {
        let (s, p) = create(alice.clone(), body.clone()).await;
        assert_eq!((s.as_u16(), kind(&p)), expect, "{body}: {p}");
    }
    // Lists are per user, paginated.
    let (s, page) = api
        .call(
            Method::GET,
            "/api/v1/blockchain/wallets?limit=1",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = api
        .call(
            Method::GET,
            &format!("/api/v1/blockchain/wallets?limit=1&cursor={cursor}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_ne!(page2["items"][0]["id"], page["items"][0]["id"]);
    assert!(page2["next_cursor"].is_null());
    let (_, theirs) = api
        .call(Method::GET, "/api/v1/blockchain/wallets", Some(&bob), None)
        .await;
    assert_eq!(theirs["items"], json!([]));
    // Balances of EVM addresses need an EVM node this deployment does not have.
    let (s, p) = api
        .call(
            Method::GET,
            "/api/v1/blockchain/wallets/0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed/balance?chain=ethereum",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (422, "chain-not-connected"), "{p}");
}

#[tokio::test]
async fn openapi_documents_payment_and_blockchain_routes() {
    let api = Api::start().await;
    let (s, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/payments/initiate",
        "/api/v1/payments/{id}/transaction-request",
        "/api/v1/payments/{id}/status",
        "/api/v1/payments/{id}/confirm",
        "/api/v1/payments/{id}/refund",
        "/api/v1/payments/{id}/release",
        "/api/v1/payments/history",
        "/api/v1/blockchain/wallets/create",
        "/api/v1/blockchain/wallets/{address}/balance",
        "/api/v1/blockchain/transactions/send",
        "/api/v1/blockchain/transactions/{txHash}/status",
        "/api/v1/blockchain/gas-prices",
        "/api/v1/blockchain/contracts/interact",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
}
