#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Ledger routes through the full gateway against real Postgres.

use advancia_auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::TestApi as Api;

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = req.send().await.unwrap();
        let s = r.status();
        let t = r.text().await.unwrap();
        (s, serde_json::from_str(&t).unwrap_or(Value::Null))
    }

    fn req(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }
}

fn account(id: u64, kind: &str, owner: &str, flags: u32) -> Value {
    json!({"id": id.to_string(), "ledger": 1, "kind": kind,
           "owner": {"kind": "facility", "id": owner}, "flags": flags,
           "jurisdiction": if kind == "revenue" { Some("US-NY") } else { None::<&str> },
           "user_data": "0"})
}

fn transfer(id: u64, debit: u64, credit: u64, amount: u64, flags: u32, sig: &str) -> Value {
    json!({"id": id.to_string(), "debit_account_id": debit.to_string(),
           "credit_account_id": credit.to_string(), "amount": amount.to_string(),
           "pending_id": "0", "ledger": 1, "code": 1, "flags": flags, "timeout": 0,
           "user_data": "0",
           "external_ref": {"chain": "solana", "signature": sig, "ix_index": 0}})
}

/// USDC ledger with payer clearing (asset), facility payable (liability, may not go
/// negative) and fee revenue.
async fn books(api: &Api, admin: &str) {
    let (s, v) = api
        .send(
            api.req(Method::POST, "/api/v1/ledger/assets", admin)
                .json(&json!({"id": 1, "code": "USDC", "scale": 6})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = api
        .send(
            api.req(Method::POST, "/api/v1/ledger/accounts", admin)
                .json(&json!({"accounts": [
                    account(10, "asset", "payer-clearing", 0),
                    account(20, "liability", "clinic-1", 2),
                    account(30, "revenue", "treasury", 0),
                ]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test]
async fn entries_balances_transactions_reports_and_audit() {
    let api = Api::start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    books(&api, &admin).await;

    // A payment of 100 USDC with a 3 USDC fee, as one linked (all-or-nothing) pair.
    let (s, v) = api
        .send(
            api.req(Method::POST, "/api/v1/ledger/entries", &admin)
                .header("idempotency-key", "pay-1")
                .json(&json!({"transfers": [
                    transfer(1001, 10, 20, 97_000_000, 1, "sigA"),
                    transfer(1002, 10, 30, 3_000_000, 0, "sigB"),
                ]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["results"][0]["ok"]["amount"], "97000000");

    // The retry with the same key replays instead of posting again.
    let resp = api
        .req(Method::POST, "/api/v1/ledger/entries", &admin)
        .header("idempotency-key", "pay-1")
        .json(&json!({"transfers": [
            transfer(1001, 10, 20, 97_000_000, 1, "sigA"),
            transfer(1002, 10, 30, 3_000_000, 0, "sigB"),
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["idempotent-replayed"], "true");

    let (s, acct) = api
        .send(api.req(Method::GET, "/api/v1/ledger/accounts/20/balance", &admin))
        .await;
    assert_eq!(s, 200);
    assert_eq!(acct["balance"]["credits_posted"], "97000000");
    assert_eq!(acct["balance"]["debits_posted"], "0");

    let (s, t) = api
        .send(api.req(Method::GET, "/api/v1/ledger/transactions/1002", &admin))
        .await;
    assert_eq!(s, 200);
    assert_eq!(t["credit_account_id"], "30");
    let (s, _) = api
        .send(api.req(Method::GET, "/api/v1/ledger/transactions/999", &admin))
        .await;
    assert_eq!(s, 404);
    let (s, p) = api
        .send(api.req(Method::GET, "/api/v1/ledger/transactions/xyz", &admin))
        .await;
    // Not an id: nothing is found under it.
    assert_eq!(s, 404, "{p}");

    // Paginated statement of the payer account: two transfers, one per page.
    let (s, page1) = api
        .send(api.req(
            Method::GET,
            "/api/v1/ledger/accounts/10/transactions?limit=1",
            &admin,
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(page1["items"].as_array().unwrap().len(), 1);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = api
        .send(api.req(
            Method::GET,
            &format!("/api/v1/ledger/accounts/10/transactions?limit=1&cursor={cursor}"),
            &admin,
        ))
        .await;
    assert_eq!(page2["items"][0]["id"], "1002");
    assert!(page2["next_cursor"].is_null());

    // Reports: debits equal credits; fee revenue is income.
    let (s, tb) = api
        .send(api.req(
            Method::GET,
            "/api/v1/ledger/reports/financial?report=trial_balance&ledger=1",
            &admin,
        ))
        .await;
    assert_eq!(s, 200, "{tb}");
    assert_eq!(tb["total_debits"], tb["total_credits"]);
    let (_, is) = api
        .send(api.req(
            Method::GET,
            "/api/v1/ledger/reports/financial?report=income_statement&ledger=1",
            &admin,
        ))
        .await;
    assert_eq!(is["total_revenue"], "3000000", "{is}");
    let (s, _) = api
        .send(api.req(
            Method::GET,
            "/api/v1/ledger/reports/financial?report=nope&ledger=1",
            &admin,
        ))
        .await;
    assert_eq!(s, 400);

    // Reconciliation against chain facts: one matches, one is missing from the books.
    let fact = |sig: &str, account: u64, amount: u64| {
        json!({"external_ref": {"chain": "solana", "signature": sig, "ix_index": 0},
               "account": account.to_string(), "ledger": 1, "amount": amount.to_string()})
    };
    let (s, rec) = api
        .send(
            api.req(Method::POST, "/api/v1/ledger/reconciliation", &admin)
                .json(
                    &json!({"facts": [fact("sigA", 20, 97_000_000), fact("sigB", 30, 3_000_000),
                                        fact("sigC", 20, 5)],
                              "scope": {"chains": ["solana"]}}),
                ),
        )
        .await;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(rec["clean"], false);
    assert_eq!(rec["report"]["matched"], 2);
    assert_eq!(
        rec["report"]["missing"][0]["external_ref"]["signature"],
        "sigC"
    );

    // Audit trail: intact, until a row is altered behind the ledger's back.
    let (_, audit) = api
        .send(api.req(Method::GET, "/api/v1/ledger/audit-trail", &admin))
        .await;
    assert_eq!(audit["intact"], true, "{audit}");
    let mut conn = api.db.pool.acquire().await.unwrap();
    advancia_db::sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    advancia_db::sqlx::query(
        "UPDATE ledger.transfers SET amount = amount + 1 WHERE ext_signature = 'sigB'",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    let (_, audit) = api
        .send(api.req(Method::GET, "/api/v1/ledger/audit-trail", &admin))
        .await;
    assert_eq!(audit["intact"], false, "{audit}");
    assert_eq!(audit["report"]["first_break"]["kind"], "altered");
}

#[tokio::test]
async fn rejected_entries_name_each_error_and_linked_chains_fail_together() {
    let api = Api::start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    books(&api, &admin).await;
    // The payable (flag: debits must not exceed credits) cannot be debited first; its
    // linked partner fails with it.
    let (s, p) = api
        .send(
            api.req(Method::POST, "/api/v1/ledger/entries", &admin)
                .json(&json!({"transfers": [
                    transfer(2001, 10, 30, 5, 1, "s1"),
                    transfer(2002, 20, 10, 5, 0, "s2"),
                    transfer(2003, 10, 99, 5, 0, "s3"),
                ]})),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["type"], "https://advancia.dev/problems/batch-rejected");
    assert_eq!(p["results"][0]["error"], "linked_event_failed");
    assert_eq!(p["results"][1]["error"], "exceeds_credits");
    assert_eq!(p["results"][2]["error"], "credit_account_not_found");
    let (s, _) = api
        .send(api.req(Method::GET, "/api/v1/ledger/transactions/2001", &admin))
        .await;
    assert_eq!(s, 404, "nothing of the failed chain was applied");
}

#[tokio::test]
async fn ledger_routes_refuse_wrong_roles_and_honour_api_key_scopes() {
    let api = Api::start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    books(&api, &admin).await;
    let (partner, _) = api.token_for("partner@example.org", Role::Partner).await;
    let (_, key) = api
        .state
        .auth
        .create_api_key(
            partner.parse().unwrap(),
            "books",
            vec!["ledger:read".into()],
        )
        .await
        .unwrap();
    let key = key.expose().to_owned();

    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/v1/ledger/assets",
            Some(json!({"id": 2, "code": "SOL", "scale": 9})),
        ),
        (Method::GET, "/api/v1/ledger/assets", None),
        (
            Method::POST,
            "/api/v1/ledger/accounts",
            Some(json!({"accounts": []})),
        ),
        (
            Method::POST,
            "/api/v1/ledger/entries",
            Some(json!({"transfers": [transfer(1, 10, 20, 1, 0, "x")]})),
        ),
        (Method::GET, "/api/v1/ledger/accounts/10/balance", None),
        (Method::GET, "/api/v1/ledger/accounts/10/transactions", None),
        (Method::GET, "/api/v1/ledger/transactions/1", None),
        (
            Method::POST,
            "/api/v1/ledger/reconciliation",
            Some(json!({"facts": []})),
        ),
        (
            Method::GET,
            "/api/v1/ledger/reports/financial?report=tax&ledger=1",
            None,
        ),
        (Method::GET, "/api/v1/ledger/audit-trail", None),
    ];
    for role in [Role::Patient, Role::Provider, Role::FacilityAdmin] {
        let (_, token) = api
            .token_for(&format!("{}@example.org", role.as_str()), role)
            .await;
        for (method, path, body) in &routes {
            let mut req = api.req(method.clone(), path, &token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let (s, p) = api.send(req).await;
            assert_eq!(s, 403, "{role:?} {method} {path}: {p}");
        }
    }
    // A partner key with ledger:read reads balances but cannot write.
    let (s, _) = api
        .send(
            api.http
                .get(format!("{}/api/v1/ledger/accounts/10/balance", api.base))
                .header("x-api-key", &key),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = api
        .send(
            api.http
                .post(format!("{}/api/v1/ledger/entries", api.base))
                .header("x-api-key", &key)
                .json(&json!({"transfers": [transfer(1, 10, 20, 1, 0, "x")]})),
        )
        .await;
    assert_eq!(s, 403);
}
