//! Tools of the API contract tests: the TypeScript client is generated and compiled with
//! npm's `openapi-typescript`, `openapi-fetch`, `typescript` and `@types/node` (pinned), installed under
//! `target/npm/openapi-client`; the test (tests/e2e/tests/partner_client.rs) finds them
//! through [`TS_TOOLS_ENV`]. Schemathesis comes with the Python test packages.

use std::path::PathBuf;

use anyhow::Result;

pub const TS_TOOLS_ENV: &str = "ADVANCIA_TS_CLIENT_TOOLS";

pub fn ensure_ts_client_tools() -> Result<PathBuf> {
    let prefix = crate::wasm::target_dir().join("npm/openapi-client");
    crate::evm::npm_install(
        &prefix,
        &[
            ("typescript", "5.9.3"),
            ("openapi-typescript", "7.13.0"),
            ("openapi-fetch", "0.17.0"),
            // `process.env` in the partner flow, under `tsc --strict`; the major of the
            // Node.js that runs it (Debian's nodejs 20).
            ("@types/node", "20.19.43"),
        ],
    )?;
    Ok(prefix)
}
