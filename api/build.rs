//! Vendors Swagger UI into the binary: the files of npm's `swagger-ui-dist` (pinned) are
//! copied into OUT_DIR and `include_bytes!`-ed by `src/openapi.rs`, so `/api/v1/docs` serves
//! them from our own origin with no CDN.
//!
//! The package comes from the npm registry into `<target>/npm/swagger-ui-<version>` once
//! (`cargo xtask test` installs Node.js and npm first), or from a directory named by
//! `ADVANCIA_SWAGGER_UI_DIST` (offline and container builds).

use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "swagger-ui-dist";
const VERSION: &str = "5.32.0";
const FILES: &[&str] = &["swagger-ui-bundle.js", "swagger-ui.css"];

fn main() {
    println!("cargo:rerun-if-env-changed=ADVANCIA_SWAGGER_UI_DIST");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = match std::env::var_os("ADVANCIA_SWAGGER_UI_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => npm_dist(&out),
    };
    for file in FILES {
        let from = dist.join(file);
        println!("cargo:rerun-if-changed={}", from.display());
        if let Err(e) = std::fs::copy(&from, out.join(file)) {
            panic!(
                "swagger-ui-dist: cannot copy {}: {e} (set ADVANCIA_SWAGGER_UI_DIST to a \
                 directory holding {PACKAGE} {VERSION}'s files, or install Node.js and npm)",
                from.display()
            );
        }
    }
}

/// `<target>/npm/swagger-ui-<version>/node_modules/swagger-ui-dist`, installed from the
/// npm registry when missing.
fn npm_dist(out: &Path) -> PathBuf {
    // OUT_DIR is <target>[/<triple>]/<profile>/build/<pkg>-<hash>/out.
    let target = out
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.to_path_buf());
    let prefix = target.join("npm").join(format!("swagger-ui-{VERSION}"));
    let dist = prefix.join("node_modules").join(PACKAGE);
    if FILES.iter().all(|f| dist.join(f).is_file()) {
        return dist;
    }
    let status = Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&prefix)
        .arg(format!("{PACKAGE}@{VERSION}"))
        .status();
    match status {
        Ok(s) if s.success() => dist,
        Ok(s) => panic!("npm install {PACKAGE}@{VERSION} failed ({s})"),
        Err(e) => panic!(
            "npm not found ({e}): Swagger UI is vendored from the npm registry at build time; \
             install Node.js and npm (`cargo xtask test` does), or set ADVANCIA_SWAGGER_UI_DIST"
        ),
    }
}
