//! `/api/v1/docs` in a real headless Chromium (Debian `chromium`, installed by `cargo xtask
//! test`): Swagger UI, served from our origin under its strict CSP, loads the served
//! document; a deep link expands one operation, whose request-body schema and problem+json
//! error responses must be rendered, with the bearer "Authorize" control for "try it".
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApi, dump_dom};

/// The HTML of the operation block with this DOM id (up to the next operation).
fn block<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("operation {id} not rendered"));
    let rest = &dom[start..];
    let end = rest[1..]
        .find("id=\"operations-")
        .map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[tokio::test]
async fn swagger_ui_renders_an_expanded_operation_with_its_schema() {
    let api = TestApi::start().await;
    // Deep link `#/<tag>/<operationId>`: Swagger UI opens that operation on load.
    let dom = dump_dom(&format!("{}/api/v1/docs#/payments/initiate", api.base)).await;
    assert!(
        dom.contains("Advancia Pay Ledger API"),
        "Swagger UI did not render the document (blocked by the CSP?):\n{}",
        &dom[..dom.len().min(4000)]
    );
    let op = block(&dom, "operations-payments-initiate");
    assert!(
        op.contains("aria-expanded=\"true\""),
        "the operation is not expanded:\n{op}"
    );
    // The request body's schema, rendered from the document: every property is shown.
    for property in ["facility_id", "amount", "asset", "escrow"] {
        assert!(
            op.contains(property),
            "`{property}` missing from the expanded operation:\n{op}"
        );
    }
    // Error responses are documented as problem+json.
    for status in ["400", "401", "422", "429"] {
        assert!(
            op.contains(&format!(">{status}<")),
            "response {status} not listed:\n{op}"
        );
    }
    assert!(op.contains("application/problem+json"), "{op}");
    // Try-it-out with a bearer token: the Authorize control of the security schemes.
    assert!(dom.contains("authorize"), "no Authorize button");
    // Another operation stays collapsed.
    let other = block(&dom, "operations-payments-history");
    assert!(other.contains("aria-expanded=\"false\""), "{other}");
}
