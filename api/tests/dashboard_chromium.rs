//! The `/dashboard` page in a real headless Chromium (Debian `chromium`, installed by
//! `cargo xtask test`): the API serves seeded, rolled-up data on a random port, Chromium
//! loads the page with a token in the URL fragment and dumps the rendered DOM, and every
//! figure the page drew (table cells and chart bars, marked with `data-k`) must equal the
//! API's JSON — and every figure in the JSON must be drawn.
#![allow(clippy::unwrap_used)]

mod analytics_seed;
mod common;

use std::collections::BTreeMap;

use advancia_auth::Role;
use common::{TestApi, dump_dom};
use reqwest::Method;
use serde_json::Value;

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_owned())
}

/// Every element with `data-k`: key → shown figure (`data-v` when present, else the
/// element's text).
fn figures(dom: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = dom;
    while let Some(i) = rest.find(" data-k=\"") {
        let open = rest[..i].rfind('<').unwrap();
        let close = i + rest[i..].find('>').unwrap();
        let tag = &rest[open..=close];
        let key = attr(tag, "data-k").unwrap();
        let value = match attr(tag, "data-v") {
            Some(v) => v,
            None => {
                let text = &rest[close + 1..];
                text[..text.find('<').unwrap()].to_owned()
            }
        };
        assert!(
            out.insert(key.clone(), value).is_none(),
            "{key} drawn twice"
        );
        rest = &rest[close..];
    }
    out
}

fn shown_rate(r: &Value) -> String {
    let a = r["attempts"].as_i64().unwrap();
    let s = r["succeeded"].as_i64().unwrap();
    if a > 0 {
        format!("{:.1}%", 100.0 * s as f64 / a as f64)
    } else {
        "–".to_owned()
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn dashboard_renders_the_api_figures() {
    let api = TestApi::start().await;
    analytics_seed::seed(&api.db.pool).await;
    let (_, admin) = api.token_for("admin@example.com", Role::Admin).await;

    // What the page asks for: the last 30 days up to the next midnight UTC.
    let (s, summary) = api
        .call(
            Method::GET,
            "/api/v1/analytics/transactions/summary",
            Some(&admin),
            None,
        )
        .await;
    assert!(s.is_success());
    let (s, trends) = api
        .call(
            Method::GET,
            "/api/v1/analytics/revenue/trends?granularity=day",
            Some(&admin),
            None,
        )
        .await;
    assert!(s.is_success());

    let dom = dump_dom(&format!("{}/dashboard#token={admin}", api.base)).await;
    assert!(
        dom.contains("data-state=\"ready\""),
        "the page did not finish loading:\n{dom}"
    );
    assert!(dom.contains(&format!(
        "data-from=\"{}\"",
        summary["from"].as_str().unwrap()
    )));
    let mut shown = figures(&dom);

    let mut expected = BTreeMap::new();
    let fields = [
        "payments", "releases", "refunds", "volume", "fees", "refunded",
    ];
    for t in summary["totals"].as_array().unwrap() {
        let prefix = format!("total|{}|{}", as_text(&t["chain"]), as_text(&t["mint"]));
        for f in fields {
            expected.insert(format!("{prefix}|{f}"), as_text(&t[f]));
        }
        expected.insert(format!("{prefix}|success_rate"), shown_rate(t));
    }
    for r in summary["facilities"].as_array().unwrap() {
        let prefix = format!(
            "facility|{}|{}|{}",
            as_text(&r["chain"]),
            as_text(&r["facility"]),
            as_text(&r["mint"])
        );
        for f in fields {
            expected.insert(format!("{prefix}|{f}"), as_text(&r[f]));
        }
        expected.insert(format!("{prefix}|success_rate"), shown_rate(r));
    }
    // The forecast table: one row per (chain, mint), from the forecast endpoint.
    let mut smapes = BTreeMap::new();
    for t in summary["totals"].as_array().unwrap() {
        let (chain, mint) = (as_text(&t["chain"]), as_text(&t["mint"]));
        let (s, f) = api
            .call(
                Method::GET,
                &format!(
                    "/api/v1/analytics/revenue/forecast?metric=fees&chain={chain}&mint={mint}"
                ),
                Some(&admin),
                None,
            )
            .await;
        assert!(s.is_success(), "{f}");
        let key = format!("forecast|{chain}|{mint}");
        let next: Vec<String> = f["forecast"]
            .as_array()
            .unwrap()
            .iter()
            .map(as_text)
            .collect();
        assert_eq!(next.len(), 7);
        expected.insert(format!("{key}|next"), next.join(" "));
        for (k, v) in [
            ("mae", &f["holdout"]["mae"]),
            ("naive_mae", &f["baseline"]["mae"]),
        ] {
            expected.insert(
                format!("{key}|{k}"),
                format!("{}", v.as_f64().unwrap().round()),
            );
        }
        smapes.insert(
            format!("{key}|smape"),
            f["holdout"]["smape"].as_f64().unwrap(),
        );
    }
    for p in trends.as_array().unwrap() {
        let day = &p["bucket"].as_str().unwrap()[..10];
        for f in ["volume", "fees", "succeeded"] {
            expected.insert(
                format!(
                    "trend|{}|{}|{day}|{f}",
                    as_text(&p["chain"]),
                    as_text(&p["mint"])
                ),
                as_text(&p[f]),
            );
        }
    }
    // Seeded: 2 assets, 2 facilities, 30 days of facility A and the others.
    assert!(expected.len() > 100, "{} figures", expected.len());
    // sMAPE is shown with one decimal: compare as a number (JS and Rust may round a tie
    // differently), then the rest as text.
    for (key, want) in &smapes {
        let text = shown
            .remove(key)
            .unwrap_or_else(|| panic!("{key} not drawn"));
        let got: f64 = text.trim_end_matches('%').parse().unwrap();
        assert!(
            (got - want).abs() <= 0.05 + 1e-9,
            "{key}: shown {text}, API {want}"
        );
    }
    assert_eq!(
        shown, expected,
        "rendered figures differ from the API's JSON"
    );
    let (_, _, fees) = analytics_seed::expected_a_30d();
    let key = format!(
        "facility|solana|{}|{}|fees",
        analytics_seed::facility_a(),
        analytics_seed::SOL
    );
    assert_eq!(shown[&key], fees.to_string());
    assert_eq!(
        shown[&format!(
            "facility|solana|{}|{}|success_rate",
            analytics_seed::facility_a(),
            analytics_seed::SOL
        )],
        "75.0%"
    );

    // Without a token the page asks for one and shows no figures.
    let dom = dump_dom(&format!("{}/dashboard", api.base)).await;
    assert!(dom.contains("data-state=\"need-token\""), "{dom}");
    assert!(figures(&dom).is_empty());
}
