//! Hostile input against every operation of the served OpenAPI document: NUL characters,
//! overlong strings, bytes that are not UTF-8 (percent-escaped), and boundary numbers, in
//! every path parameter, query parameter and top-level body property. Nothing may answer
//! 5xx, and the server must stay healthy. Runs with an admin token so that requests get
//! past authorization into the handlers; without one the gateway would refuse most early.
#![allow(clippy::unwrap_used)]

use advancia_auth::Role;
use advancia_e2e::Stack;
use reqwest::Method;
use serde_json::{Map, Value, json};

/// Values for path and query parameters, already percent-encoded where needed.
const URL_VALUES: &[&str] = &[
    "%00",
    "a%00b",
    "%FF%FE",
    "%C0%80",
    "-1",
    "0",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e309",
    "%20",
];

fn overlong() -> String {
    "a".repeat(8 * 1024)
}

/// Values for body properties.
fn body_values() -> Vec<Value> {
    vec![
        json!("\u{0}"),
        json!("a\u{0}b"),
        json!("x".repeat(200_000)),
        json!(-1),
        json!(0),
        json!(u64::MAX),
        json!(1e300),
        json!(""),
        json!([]),
        json!({}),
        json!(null),
        json!(["\u{0}"]),
        json!({"k": "\u{0}"}),
    ]
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// The properties of a request body schema (following `$ref` and `allOf`).
fn properties(doc: &Value, schema: &Value) -> Map<String, Value> {
    let schema = resolve(doc, schema);
    let mut out = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            out.extend(properties(doc, s));
        }
    }
    out
}

struct Op {
    method: Method,
    path: String,
    path_params: Vec<String>,
    query_params: Vec<String>,
    body: Option<Map<String, Value>>,
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, method) in [
            ("get", Method::GET),
            ("post", Method::POST),
            ("put", Method::PUT),
            ("delete", Method::DELETE),
            ("patch", Method::PATCH),
        ] {
            let Some(op) = item.get(m) else { continue };
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let names = |loc: &str| -> Vec<String> {
                params
                    .iter()
                    .filter(|p| p["in"] == loc)
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            };
            let body = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|_| {
                    properties(
                        doc,
                        &op["requestBody"]["content"]["application/json"]["schema"],
                    )
                });
            ops.push(Op {
                method: method.clone(),
                path: path.clone(),
                path_params: names("path"),
                query_params: names("query"),
                body,
            });
        }
    }
    ops
}

/// The path with every parameter set to `fill`, and `target` set to `value`.
fn path_with(op: &Op, target: Option<&str>, value: &str) -> String {
    let mut p = op.path.clone();
    for name in &op.path_params {
        let v = if Some(name.as_str()) == target {
            value
        } else {
            "00000000-0000-4000-8000-000000000000"
        };
        p = p.replace(&format!("{{{name}}}"), v);
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_operation_answers_5xx_to_hostile_input() {
    let stack = Stack::start_with(
        advancia_localnet::LocalnetConfig::for_tests(),
        "default=1000000/min,payments=1000000/min,blockchain=1000000/min,facilities=1000000/min,\
         agents=1000000/min,auth=1000000/min,kyc=1000000/min,compliance=1000000/min",
    )
    .await;
    let (_, admin) = stack.user("sweep-admin@example.org", Role::Admin).await;
    let (s, doc) = stack.get("/api/v1/openapi.json", None).await;
    assert_eq!(s, 200);
    let ops = operations(&doc);
    assert!(ops.len() > 100, "{} operations", ops.len());
    let long = overlong();
    let mut url_values: Vec<&str> = URL_VALUES.to_vec();
    url_values.push(&long);

    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let mut sent = 0usize;
    let mut failures = Vec::new();
    let mut send = async |method: Method, url: String, body: Option<Value>| {
        // The event streams never end: only the status line is read, never a body.
        let mut req = http
            .request(method.clone(), format!("{}{url}", stack.base))
            .bearer_auth(&admin);
        if let Some(b) = &body {
            req = req.json(b);
        }
        sent += 1;
        match req.send().await {
            Ok(r) if r.status().is_server_error() => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                failures.push(format!("{method} {} → {status}: {text}", truncate(&url)));
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("{method} {} → no answer: {e}", truncate(&url))),
        }
    };

    for op in &ops {
        for name in &op.path_params {
            for v in &url_values {
                let url = path_with(op, Some(name), v);
                let body = op.body.as_ref().map(|_| json!({}));
                send(op.method.clone(), url, body).await;
            }
        }
        for name in &op.query_params {
            for v in &url_values {
                let url = format!("{}?{name}={v}", path_with(op, None, ""));
                let body = op.body.as_ref().map(|_| json!({}));
                send(op.method.clone(), url, body).await;
            }
        }
        if let Some(props) = &op.body {
            for name in props.keys() {
                for v in body_values() {
                    let mut body = Map::new();
                    body.insert(name.clone(), v);
                    send(
                        op.method.clone(),
                        path_with(op, None, ""),
                        Some(Value::Object(body)),
                    )
                    .await;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let (s, _) = stack.get("/health", None).await;
    assert_eq!(s, 200, "the server is unhealthy after the sweep");
    println!(
        "{sent} hostile requests over {} operations, none answered 5xx",
        ops.len()
    );
}

fn truncate(s: &str) -> String {
    if s.len() > 160 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(160).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s.to_owned()
    }
}
