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

/// Where the checkout tests find their npm tools (tests/e2e/tests/checkout.rs).
pub const CHECKOUT_TOOLS_ENV: &str = "ADVANCIA_CHECKOUT_TOOLS";

/// The wallet-side tools of the checkout tests (issue #22), pinned, under
/// `target/npm/checkout`: `@solana/actions` (its types under `tsc --strict`, its helpers),
/// `@solana/pay` and `@solana/web3.js` (the wallet), `puppeteer-core` (drives the installed
/// Chromium; it downloads no browser), `axe-core` (accessibility), `jsqr` and `pngjs` (the
/// QR code read back from a screenshot).
pub fn ensure_checkout_tools() -> Result<PathBuf> {
    let prefix = crate::wasm::target_dir().join("npm/checkout");
    crate::evm::npm_install(
        &prefix,
        &[
            ("typescript", "5.9.3"),
            ("@types/node", "20.19.43"),
            ("@solana/actions", "1.6.6"),
            ("@solana/pay", "0.2.6"),
            ("@solana/web3.js", "1.98.4"),
            ("puppeteer-core", "24.43.1"),
            ("axe-core", "4.14.1"),
            ("jsqr", "1.4.0"),
            ("pngjs", "7.0.0"),
        ],
    )?;
    Ok(prefix)
}
