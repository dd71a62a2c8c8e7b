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
    shown_as(dom, true)
}

/// Every element with `data-k`: key → its text as a person reads it.
fn texts(dom: &str) -> BTreeMap<String, String> {
    shown_as(dom, false)
}

fn shown_as(dom: &str, exact: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = dom;
    while let Some(i) = rest.find(" data-k=\"") {
        let open = rest[..i].rfind('<').unwrap();
        let close = i + rest[i..].find('>').unwrap();
        let tag = &rest[open..=close];
        let key = attr(tag, "data-k").unwrap();
        let value = match attr(tag, "data-v").filter(|_| exact) {
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
    let (_, admin) = api.token_for("admin@example.com", Role::Admin).await;
    // Facility A is a named facility of the facilities service, registered on chain under
    // its UUID; B has no profile (its key is shown, shortened).
    let name = "Mercy General <North> & Co";
    let (s, f) = api
        .call(
            Method::POST,
            "/api/v1/facilities",
            Some(&admin),
            Some(serde_json::json!({
                "name": name, "facility_type": "hospital",
                "address": {"city": "Boston", "country": "US"},
                "location": {"lat": 42.36, "lon": -71.06}, "status": "active"
            })),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let uuid = uuid::Uuid::parse_str(f["id"].as_str().unwrap()).unwrap();
    let facility_a =
        advancia_pay::client::facility_pda(&advancia_facilities::chain::chain_facility_id(uuid));
    analytics_seed::seed_with(&api.db.pool, facility_a).await;
    // The token's decimals and symbol, as the ledger defines the asset.
    api.state
        .ledger
        .create_ledger(&advancia_ledger::LedgerDef {
            id: advancia_ledger::projection::ledger_id("solana", &analytics_seed::usdc()),
            code: "USDC".into(),
            scale: 6,
        })
        .await
        .unwrap();

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
    let words = texts(&dom);
    let symbol = |chain: &str, mint: &str| {
        summary["assets"][format!("{chain}|{mint}")]["symbol"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let decimals = |chain: &str, mint: &str| {
        summary["assets"][format!("{chain}|{mint}")]["decimals"]
            .as_u64()
            .unwrap() as u8
    };
    // People's units: SOL and USDC with their decimals, facility names.
    assert_eq!(symbol("solana", analytics_seed::SOL), "SOL");
    assert_eq!(decimals("solana", analytics_seed::SOL), 9);
    assert_eq!(symbol("solana", &analytics_seed::usdc()), "USDC");
    assert_eq!(decimals("solana", &analytics_seed::usdc()), 6);
    assert_eq!(
        summary["facility_names"][format!("solana|{facility_a}")],
        name,
        "{summary}"
    );
    let mut amounts = 0;

    let mut expected = BTreeMap::new();
    let fields = [
        "payments", "releases", "refunds", "volume", "fees", "refunded",
    ];
    for t in summary["totals"].as_array().unwrap() {
        let (chain, mint) = (as_text(&t["chain"]), as_text(&t["mint"]));
        let prefix = format!("total|{chain}|{mint}");
        for f in fields {
            expected.insert(format!("{prefix}|{f}"), as_text(&t[f]));
        }
        expected.insert(format!("{prefix}|success_rate"), shown_rate(t));
        expected.insert(format!("{prefix}|symbol"), symbol(&chain, &mint));
        for f in ["volume", "fees", "refunded"] {
            let units = format!(
                "{} {}",
                advancia_payments::format_units(
                    as_text(&t[f]).parse().unwrap(),
                    decimals(&chain, &mint)
                ),
                symbol(&chain, &mint)
            );
            assert_eq!(words[&format!("{prefix}|{f}")], units, "{prefix}|{f}");
            amounts += 1;
        }
    }
    for r in summary["facilities"].as_array().unwrap() {
        let (chain, facility, mint) = (
            as_text(&r["chain"]),
            as_text(&r["facility"]),
            as_text(&r["mint"]),
        );
        let prefix = format!("facility|{chain}|{facility}|{mint}");
        for f in fields {
            expected.insert(format!("{prefix}|{f}"), as_text(&r[f]));
        }
        expected.insert(format!("{prefix}|success_rate"), shown_rate(r));
        expected.insert(format!("{prefix}|symbol"), symbol(&chain, &mint));
        let shown_name = if facility == facility_a.to_string() {
            // As the DOM serialises the text node.
            "Mercy General &lt;North&gt; &amp; Co".to_owned()
        } else {
            format!("{}…{}", &facility[..4], &facility[facility.len() - 4..])
        };
        expected.insert(format!("{prefix}|name"), shown_name);
        for f in ["volume", "fees", "refunded"] {
            let units = format!(
                "{} {}",
                advancia_payments::format_units(
                    as_text(&r[f]).parse().unwrap(),
                    decimals(&chain, &mint)
                ),
                symbol(&chain, &mint)
            );
            assert_eq!(words[&format!("{prefix}|{f}")], units, "{prefix}|{f}");
            amounts += 1;
        }
    }
    assert!(amounts >= 12, "{amounts} amounts checked");
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
        facility_a,
        analytics_seed::SOL
    );
    assert_eq!(shown[&key], fees.to_string());
    assert_eq!(
        shown[&format!(
            "facility|solana|{}|{}|success_rate",
            facility_a,
            analytics_seed::SOL
        )],
        "75.0%"
    );
    // The name is text, not markup.
    assert!(
        dom.contains("Mercy General &lt;North&gt; &amp; Co"),
        "{dom}"
    );

    // The date-range picker: a period chosen in the URL (as the form writes it) is the
    // period shown, with the inputs set to it (the end inclusive).
    let today = time::OffsetDateTime::now_utc().date();
    let (from, to) = (today - time::Duration::days(6), today);
    let dom = dump_dom(&format!(
        "{}/dashboard?from={from}&to={to}#token={admin}",
        api.base
    ))
    .await;
    assert!(dom.contains("data-state=\"ready\""), "{dom}");
    assert!(
        dom.contains(&format!("data-from=\"{from}T00:00:00Z\"")),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(
            "data-to=\"{}T00:00:00Z\"",
            to + time::Duration::days(1)
        )),
        "{dom}"
    );
    assert!(dom.contains("id=\"from\""), "{dom}");

    // Without a token the page asks for one and shows no figures.
    let dom = dump_dom(&format!("{}/dashboard", api.base)).await;
    assert!(dom.contains("data-state=\"need-token\""), "{dom}");
    assert!(figures(&dom).is_empty());
}
