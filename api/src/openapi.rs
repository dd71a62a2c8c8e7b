//! OpenAPI 3.1 document generated from the handlers (utoipa), served as JSON, and a
//! self-contained reference page rendered from it (no scripts from elsewhere, so it
//! works offline and behind strict CSPs).

use std::fmt::Write as _;

use axum::response::Html;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;

use crate::routes::{
    agents, analytics, auth, blockchain, facilities, indexer, kyc, ledger, notifications, payments,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Advancia Pay Ledger API",
        description = "Payments, escrow and settlement for healthcare facilities. Errors are RFC 9457 problem details."
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
    components(schemas(crate::problem::Problem, crate::Health)),
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

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn operations(item: &utoipa::openapi::PathItem) -> Vec<(&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("PATCH", &item.patch),
        ("DELETE", &item.delete),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|o| (m, o)))
    .collect()
}

/// The API reference page.
pub fn reference_page(doc: &utoipa::openapi::OpenApi) -> Html<String> {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Advancia Pay Ledger API reference</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         .op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.6rem .9rem}\
         .m{font-weight:700;font-family:monospace;margin-right:.6rem}code{background:#f4f4f4;padding:0 .2rem}\
         </style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"/api/v1/openapi.json\">openapi.json</a></p>",
        escape(&doc.info.title),
        escape(doc.info.description.as_deref().unwrap_or(""))
    );
    for (path, item) in &doc.paths.paths {
        for (method, op) in operations(item) {
            let _ = write!(
                html,
                "<div class=\"op\" id=\"{}\"><span class=\"m\">{method}</span><code>{}</code><p>{}</p>",
                escape(op.operation_id.as_deref().unwrap_or("")),
                escape(path),
                escape(op.summary.as_deref().unwrap_or(""))
            );
            if let Some(d) = &op.description {
                let _ = write!(html, "<p>{}</p>", escape(d));
            }
            html.push_str("<ul>");
            for (status, resp) in &op.responses.responses {
                let desc = match resp {
                    utoipa::openapi::RefOr::T(r) => r.description.clone(),
                    utoipa::openapi::RefOr::Ref(r) => r.ref_location.clone(),
                };
                let _ = write!(
                    html,
                    "<li><code>{}</code> {}</li>",
                    escape(status),
                    escape(&desc)
                );
            }
            html.push_str("</ul></div>");
        }
    }
    html.push_str("</body></html>");
    Html(html)
}
