#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Partner indexer routes through the full gateway against real Postgres, with rows written
//! by the indexer's own sink (the code path the running indexer uses).

use std::time::Duration;

use advancia_auth::Role;
use advancia_indexer::source::{ChainTransaction, DecodedEvent};
use advancia_indexer::{SOLANA, bench, sink};
use reqwest::StatusCode;
use serde_json::Value;

mod common;
use common::TestApi as Api;

async fn get(api: &Api, path: &str, token: &str) -> (StatusCode, Value) {
    let r = api
        .http
        .get(format!("{}{path}", api.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Transactions with every event kind (one per transaction), written through the sink.
async fn index_every_kind(api: &Api, seed: u64) -> Vec<ChainTransaction> {
    let mut txs = bench::synthetic_transactions(seed, 16);
    for (t, event) in txs.iter_mut().zip(bench::every_event_kind(seed)) {
        t.events = vec![DecodedEvent {
            ix_index: 0,
            inner_index: 1,
            event,
        }];
    }
    sink::write_batch(&api.db.pool, SOLANA, "test", &txs)
        .await
        .unwrap();
    txs
}

#[tokio::test]
async fn partner_lists_every_indexed_table_with_filters_and_cursors() {
    let api = Api::start().await;
    let (partner_id, partner) = api.token_for("partner@example.org", Role::Partner).await;
    let txs = index_every_kind(&api, 1).await;
    // Three more payments at one facility, for paging.
    let mut more = bench::synthetic_transactions(2, 40);
    more.retain(|t| {
        matches!(
            t.events[0].event,
            advancia_pay::client::AdvanciaEvent::PaymentMade(_)
        )
    });
    more.truncate(3);
    let facility_key = anchor_lang::prelude::Pubkey::new_from_array([5; 32]);
    let facility = facility_key.to_string();
    for t in &mut more {
        t.events.truncate(1);
        if let advancia_pay::client::AdvanciaEvent::PaymentMade(p) = &mut t.events[0].event {
            p.facility = facility_key;
        }
    }
    sink::write_batch(&api.db.pool, SOLANA, "test", &more)
        .await
        .unwrap();

    for (path, n) in [
        ("payments", 4),
        ("refunds", 1),
        ("escrows", 4),
        ("attestations", 2),
        ("facilities", 3),
        ("settlements", 1),
    ] {
        let (s, v) = get(&api, &format!("/api/v1/indexer/{path}?limit=200"), &partner).await;
        assert_eq!(s, 200, "{path}: {v}");
        assert_eq!(v["items"].as_array().unwrap().len(), n, "{path}: {v}");
        assert!(v["next_cursor"].is_null());
    }
    // The settlement row carries its u128 totals as strings.
    let (_, v) = get(&api, "/api/v1/indexer/settlements", &partner).await;
    assert_eq!(v["items"][0]["totals"][0]["amount"], u128::MAX.to_string());
    assert_eq!(v["items"][0]["signature"], txs[15].signature);

    // Facility filter + pages of 2: three payments, in chain order, no repeats.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/indexer/payments?facility={facility}&limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, v) = get(&api, &path, &partner).await;
        assert_eq!(s, 200, "{v}");
        for item in v["items"].as_array().unwrap() {
            assert_eq!(item["facility"], facility);
            seen.push(item["signature"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = more.iter().map(|t| t.signature.clone()).collect();
    assert_eq!(seen, expected);

    // Slot range and finality filters.
    let slot = more[1].slot;
    let (_, v) = get(
        &api,
        &format!("/api/v1/indexer/payments?slot_from={slot}&slot_to={slot}"),
        &partner,
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (_, v) = get(&api, "/api/v1/indexer/payments?finalized=true", &partner).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "all at confirmed");

    // A cursor that is not ours: problem+json 422 (any string is a cursor's form).
    let (s, v) = get(&api, "/api/v1/indexer/payments?cursor=nope", &partner).await;
    assert_eq!(s, 422);
    assert_eq!(v["status"], 422);

    // Roles: patients and providers are refused; admins, compliance and keys with
    // indexer:read read.
    for role in [Role::Patient, Role::Provider, Role::FacilityAdmin] {
        let (_, token) = api
            .token_for(&format!("{}@example.org", role.as_str()), role)
            .await;
        for path in ["payments", "escrows", "stream"] {
            let (s, _) = get(&api, &format!("/api/v1/indexer/{path}"), &token).await;
            assert_eq!(s, 403, "{role:?} {path}");
        }
    }
    for role in [Role::Admin, Role::ComplianceOfficer] {
        let (_, token) = api
            .token_for(&format!("{}@example.org", role.as_str()), role)
            .await;
        let (s, _) = get(&api, "/api/v1/indexer/refunds", &token).await;
        assert_eq!(s, 200, "{role:?}");
    }
    let key_for = |scope: &'static str| {
        let api = &api;
        let partner_id = partner_id.clone();
        async move {
            let (_, key) = api
                .state
                .auth
                .create_api_key(partner_id.parse().unwrap(), "indexer", vec![scope.into()])
                .await
                .unwrap();
            key.expose().to_owned()
        }
    };
    let good = key_for("indexer:read").await;
    let other = key_for("ledger:read").await;
    for (key, status) in [(good, 200), (other, 403)] {
        let r = api
            .http
            .get(format!("{}/api/v1/indexer/attestations", api.base))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
    }

    // Documented in the OpenAPI document.
    let doc: Value = api
        .http
        .get(format!("{}/api/v1/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["payments", "escrows", "settlements", "stream"] {
        assert!(
            doc["paths"][format!("/api/v1/indexer/{path}")]["get"].is_object(),
            "{path}"
        );
    }
}

/// Reads server-sent events from `resp` until `n` events arrived: (id, event, data).
async fn read_events(resp: &mut reqwest::Response, n: usize) -> Vec<(i64, String, Value)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
            .await
            .expect("event in time")
            .unwrap()
            .expect("stream still open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            // Keep-alive comments carry no id.
            if let Some(id) = id {
                out.push((id, event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn stream_sends_live_rows_and_resumes_from_last_event_id() {
    let api = Api::start().await;
    let (_, partner) = api.token_for("partner@example.org", Role::Partner).await;
    let first = index_every_kind(&api, 3).await;

    // From the beginning: every stored row, in order, ids rising.
    let mut resp = api
        .http
        .get(format!("{}/api/v1/indexer/stream?after=0", api.base))
        .bearer_auth(&partner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let got = read_events(&mut resp, 16).await;
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    let kinds: Vec<&str> = got.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds[0], "config_updated");
    assert_eq!(kinds[7], "payment_made");
    assert_eq!(kinds[15], "batch_committed");
    assert_eq!(got[7].2["signature"], first[7].signature);
    assert_eq!(got[7].2["data"]["amount"], (u64::MAX - 1).to_string());

    // Rows committed while connected arrive live.
    let later = index_every_kind(&api, 4).await;
    let live = read_events(&mut resp, 16).await;
    assert_eq!(live[0].2["signature"], later[0].signature);
    assert!(live[0].0 > got[15].0);
    drop(resp);

    // Reconnecting with Last-Event-ID: exactly the rows after it.
    let resume_after = live[9].0;
    let mut resp = api
        .http
        .get(format!("{}/api/v1/indexer/stream", api.base))
        .bearer_auth(&partner)
        .header("last-event-id", resume_after.to_string())
        .send()
        .await
        .unwrap();
    let rest = read_events(&mut resp, 6).await;
    let ids: Vec<i64> = rest.iter().map(|e| e.0).collect();
    let expected: Vec<i64> = live[10..].iter().map(|e| e.0).collect();
    assert_eq!(ids, expected);
    drop(resp);

    // Without a position: only rows from now on.
    let mut resp = api
        .http
        .get(format!(
            "{}/api/v1/indexer/stream?facility=nobody",
            api.base
        ))
        .bearer_auth(&partner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A facility nobody uses: nothing matches but rollbacks; undo one transaction.
    let undone = &later[3].signature;
    sink::undo_transaction(&api.db.pool, SOLANA, "test", undone)
        .await
        .unwrap();
    let ev = read_events(&mut resp, 1).await;
    assert_eq!(ev[0].1, "rollback");
    assert_eq!(ev[0].2["signature"], *undone);

    // A malformed Last-Event-ID is refused.
    let r = api
        .http
        .get(format!("{}/api/v1/indexer/stream", api.base))
        .bearer_auth(&partner)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
