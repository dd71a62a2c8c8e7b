//! The OpenAPI 3.1 document, generated from the handlers (utoipa) and completed with what
//! every operation can answer because of the layers it passes through (ADR 0024): 400 from
//! the edge's input checks, 401 where credentials are required, 404 on paths with
//! parameters, 413/415/422 where a JSON body is read, 429 with `Retry-After` and
//! `RateLimit-*` under `/api/v1`, 500 and 503 (timeouts) everywhere. Every error is
//! `application/problem+json` with the one `Problem` schema.
//!
//! The interactive reference at `/api/v1/docs` is Swagger UI from npm's `swagger-ui-dist`,
//! compiled into the binary (see `build.rs`) and served from our origin under a CSP that
//! admits only these files.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::routes::{
    agents, analytics, auth, blockchain, checkout, facilities, indexer, kyc, ledger, notifications,
    payments,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Advancia Pay Ledger API",
        description = "Payments, escrow and settlement for healthcare facilities. Errors are RFC 9457 problem details (`application/problem+json`). No text — path, query or JSON string — may contain NUL (U+0000) or, once percent-decoded, bytes that are not UTF-8: such requests are refused with 400. Amounts are base units as decimal strings: digits only, no sign, spaces or leading zeros."
    ),
    paths(
        crate::health, crate::ops::ready,
        auth::register, auth::login, auth::verify_2fa, auth::refresh, auth::logout,
        auth::enroll_2fa, auth::confirm_2fa, auth::disable_2fa,
        auth::siws_challenge, auth::siws_verify,
        auth::get_user, auth::update_user, auth::assign_roles,
        auth::create_api_key, auth::list_api_keys, auth::revoke_api_key, auth::jwks,
        ledger::define_asset, ledger::list_assets, ledger::create_accounts, ledger::create_entries,
        ledger::account_balance, ledger::account_transactions, ledger::transaction,
        ledger::reconciliation, ledger::financial_report, ledger::audit_trail,
        payments::initiate, payments::transaction_request_meta, payments::transaction_request,
        payments::status, payments::confirm, payments::refund, payments::release, payments::history,
        checkout::page, checkout::events, checkout::actions_json, checkout::action_get, checkout::action_post,
        blockchain::create_wallet, blockchain::list_wallets, blockchain::balance, blockchain::send,
        blockchain::transaction_status, blockchain::gas_prices, blockchain::interact,
        indexer::payments, indexer::refunds, indexer::escrows, indexer::attestations, indexer::facilities, indexer::settlements, indexer::live,
        facilities::create, facilities::get_facility, facilities::update, facilities::search,
        facilities::list_staff, facilities::add_staff, facilities::list_resources, facilities::add_resource,
        facilities::set_maintenance, facilities::list_appointments, facilities::book, facilities::cancel,
        facilities::expiring, facilities::expiring_events, facilities::chain_transaction,
        notifications::send, notifications::list, notifications::mark_read, notifications::get_preferences, notifications::put_preferences,
        notifications::list_templates, notifications::create_template, notifications::get_template, notifications::update_template, notifications::delete_template,
        notifications::create_webhook, notifications::list_webhooks, notifications::delete_webhook, notifications::stream, notifications::dead_letters, notifications::replay,
        analytics::summary, analytics::trends, analytics::forecast, analytics::reconciliation, analytics::users, analytics::generate_report, analytics::create_dashboard, analytics::get_dashboard,
        agents::list, agents::register, agents::enable, agents::disable, agents::update_params, agents::versions,
        agents::execute, agents::status, agents::train, agents::metrics, agents::orchestrate,
        kyc::upload, kyc::verify, kyc::status, kyc::risk, kyc::queue, kyc::get_verification,
        kyc::approve, kyc::reject, kyc::revoke, kyc::retry_attestation,
        kyc::sanctions_check, kyc::reports,
    ),
    components(schemas(crate::Health)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// Bearer JWTs for users, `X-Api-Key` for partners.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// The served document.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    complete(&mut doc);
    doc
}

const PROBLEM_REF: &str = "#/components/schemas/Problem";

/// RFC 9457 problem details, as every error is served.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details. `type` is stable per kind of problem (under https://advancia.dev/problems/); extension members carry structured detail (e.g. `results` of a batch, `checks` of readiness, `current_etag`, Solana Pay's `message`).",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri", "examples": ["https://advancia.dev/problems/invalid-input"]},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string"}
        },
        "additionalProperties": true
    })
}

fn problem_content() -> Value {
    json!({"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}})
}

fn header(description: &str, required: bool) -> Value {
    json!({"description": description, "required": required, "schema": {"type": "integer", "minimum": 0}})
}

/// The shared error responses, referenced from the operations.
fn shared_responses() -> Map<String, Value> {
    let problem =
        |description: &str| json!({"description": description, "content": problem_content()});
    let mut rate_limited = problem(
        "Rate limited: the route group's quota for this caller is spent (or, on sign-in, the account is locked for a while)",
    );
    rate_limited["headers"] = json!({
        "Retry-After": header("Seconds to wait before retrying", true),
        "RateLimit-Limit": header("Requests allowed per window", false),
        "RateLimit-Remaining": header("Requests left in this window", false),
        "RateLimit-Reset": header("Seconds until the window resets", false),
        "RateLimit-Policy": {"description": "`limit;w=window-seconds`", "required": false, "schema": {"type": "string"}}
    });
    let mut unauthorized = problem("Missing, invalid or expired credentials");
    unauthorized["headers"] = json!({
        "WWW-Authenticate": {"description": "`Bearer`", "required": true, "schema": {"type": "string"}}
    });
    [
        (
            "BadRequest",
            problem("Malformed input: a parameter outside its schema, NUL or non-UTF-8 text"),
        ),
        (
            "InvalidCursor",
            problem("`cursor` is not a `next_cursor` this API returned"),
        ),
        ("Unauthorized", unauthorized),
        (
            "Forbidden",
            problem("The caller's roles or API key scopes do not allow this"),
        ),
        (
            "NotFound",
            problem("No such resource (or not one the caller may see)"),
        ),
        (
            "PayloadTooLarge",
            problem("The body is larger than the limit"),
        ),
        (
            "UnsupportedMediaType",
            problem("The body is not `application/json`"),
        ),
        (
            "UnprocessableBody",
            problem("The body does not fit the request schema, or is refused as it stands"),
        ),
        ("RateLimited", rate_limited),
        (
            "Internal",
            problem("Internal error (details are logged, not returned)"),
        ),
        (
            "Unavailable",
            problem("A dependency is down, or the request timed out"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// Adds the statuses every operation can answer through the layers, and makes every error
/// response `application/problem+json` with the `Problem` schema.
fn complete(doc: &mut Value) {
    let components = &mut doc["components"];
    components["schemas"]["Problem"] = problem_schema();
    components["responses"] = Value::Object(shared_responses());
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(*method).and_then(Value::as_object_mut) else {
                continue;
            };
            complete_operation(path, op);
        }
    }
}

fn complete_operation(path: &str, op: &mut Map<String, Value>) {
    let secured = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|reqs| {
            !reqs.is_empty()
                && reqs
                    .iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        });
    let has_body = op.get("requestBody").is_some();
    let json_body = op
        .get("requestBody")
        .and_then(|b| b["content"].as_object())
        .is_some_and(|c| c.contains_key("application/json"));
    let has_path_params = path.contains('{');
    // Rate-limited: the API and the checkout pages (see `gateway::route_group`).
    let api = path.starts_with("/api/v1/") || path.starts_with("/pay/");
    let mut shared: Vec<(&str, &str)> = vec![("400", "BadRequest"), ("503", "Unavailable")];
    if path != "/health" {
        shared.push(("500", "Internal"));
    }
    if secured {
        shared.push(("401", "Unauthorized"));
    }
    if has_path_params {
        shared.push(("404", "NotFound"));
    }
    if has_body {
        shared.push(("413", "PayloadTooLarge"));
        shared.push(("415", "UnsupportedMediaType"));
    }
    if json_body {
        shared.push(("422", "UnprocessableBody"));
    }
    let has_cursor = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| {
            ps.iter()
                .any(|p| p["in"] == "query" && p["name"] == "cursor")
        });
    if has_cursor {
        shared.push(("422", "InvalidCursor"));
    }
    if api {
        shared.push(("429", "RateLimited"));
    }
    let responses = op
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    for (status, name) in shared {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
    for (status, resp) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && resp.get("$ref").is_none() {
            resp["content"] = problem_content();
            if status == "429" && resp.get("headers").is_none() {
                resp["headers"] =
                    json!({"Retry-After": header("Seconds to wait before retrying", true)});
            }
        }
    }
}

// ---------------------------------------------------------------- the interactive reference

/// Swagger UI's files from npm `swagger-ui-dist` (version pinned in build.rs).
const SWAGGER_BUNDLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui-bundle.js"));
const SWAGGER_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui.css"));
const DOCS_INIT: &str = include_str!("docs/init.js");

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Advancia Pay Ledger API reference</title>
<link rel="stylesheet" href="/api/v1/docs/swagger-ui.css">
</head>
<body>
<noscript>The reference needs JavaScript; the document itself is at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="/api/v1/docs/swagger-ui-bundle.js"></script>
<script src="/api/v1/docs/init.js"></script>
</body>
</html>
"#;

/// Only our own files; "try it" may call this origin only. Swagger UI sets inline styles,
/// hence `'unsafe-inline'` for styles (never for scripts).
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

fn docs_response(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

pub async fn docs_page() -> Response {
    docs_response("text/html; charset=utf-8", DOCS_PAGE.as_bytes())
}

pub async fn docs_bundle() -> Response {
    docs_response("text/javascript; charset=utf-8", SWAGGER_BUNDLE)
}

pub async fn docs_css() -> Response {
    docs_response("text/css; charset=utf-8", SWAGGER_CSS)
}

pub async fn docs_init() -> Response {
    docs_response("text/javascript; charset=utf-8", DOCS_INIT.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_a_problem_and_every_operation_has_the_layer_statuses() {
        let doc = document();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                operations += 1;
                let responses = op["responses"].as_object().expect("responses");
                for status in ["400", "503"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
                if path.starts_with("/api/v1/") || path.starts_with("/pay/") {
                    assert!(responses.contains_key("429"), "{method} {path}: no 429");
                }
                for (status, r) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let schema = match r.get("$ref").and_then(Value::as_str) {
                            Some(name) => {
                                let name = name.rsplit('/').next().unwrap_or_default();
                                doc["components"]["responses"][name]["content"]["application/problem+json"]["schema"]["$ref"].clone()
                            }
                            None => {
                                r["content"]["application/problem+json"]["schema"]["$ref"].clone()
                            }
                        };
                        assert_eq!(schema, PROBLEM_REF, "{method} {path} {status}");
                        assert!(
                            r.get("content")
                                .is_none_or(|c| c.get("application/json").is_none()),
                            "{method} {path} {status}: documented as application/json"
                        );
                    }
                }
            }
        }
        assert!(operations > 100, "{operations} operations");
    }

    /// Generated clients name their methods after `operationId`: a duplicate (utoipa takes
    /// the handler's function name, and `list` or `status` exist in several modules) makes
    /// one operation unreachable or the client fail to compile.
    #[test]
    fn operation_ids_are_present_and_unique() {
        let doc = document();
        let mut seen: std::collections::BTreeMap<String, String> = Default::default();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
                assert!(
                    id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{method} {path}: operationId `{id}` is not an identifier"
                );
                if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                    panic!("operationId `{id}` names both {other} and {method} {path}");
                }
            }
        }
    }

    /// Path parameters are exactly the path template's `{…}` segments (utoipa documents an
    /// `IntoParams` struct as path parameters unless told `parameter_in = Query`).
    #[test]
    fn path_parameters_are_the_template_s() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let mut template: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            template.sort_unstable();
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                let mut documented: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                documented.sort_unstable();
                assert_eq!(documented, template, "{method} {path}");
            }
        }
    }

    /// The analytics report body documents its dates like the query parameters do.
    #[test]
    fn report_body_dates_are_dates() {
        let doc = document();
        let mut schema = &doc["paths"]["/api/v1/analytics/reports/generate"]["post"]["requestBody"]
            ["content"]["application/json"]["schema"];
        let resolve = |s: &Value| -> Value {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    doc["components"]["schemas"][r.rsplit('/').next().unwrap_or_default()].clone()
                }
                None => s.clone(),
            }
        };
        let resolved = resolve(schema);
        schema = &resolved;
        let mut found = Vec::new();
        let mut stack = vec![schema.clone()];
        while let Some(s) = stack.pop() {
            let s = resolve(&s);
            if let Some(f) = s["properties"].get("from") {
                found.push(f.clone());
            }
            for part in s["allOf"].as_array().into_iter().flatten() {
                stack.push(part.clone());
            }
        }
        assert!(!found.is_empty(), "no `from` in {schema}");
        assert!(found.iter().all(|f| f["format"] == "date"), "{found:?}");
    }

    #[test]
    fn rate_limited_responses_document_retry_after() {
        let doc = document();
        let r = &doc["components"]["responses"]["RateLimited"];
        assert_eq!(r["headers"]["Retry-After"]["required"], true);
        assert!(r["headers"]["RateLimit-Remaining"].is_object());
    }
}
