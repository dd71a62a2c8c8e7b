//! `cargo xtask wasm`: the CosmWasm contract as a size-optimized wasm that the CosmWasm VM
//! accepts. rustc's wasm32 output uses bulk-memory and sign-extension instructions, which the
//! VM rejects; binaryen's `wasm-opt` (from npm, installed under target/) lowers them to MVP
//! instructions. The VM's own static checks (what `cosmwasm-check` runs) are a test of
//! `advancia-pay-cosmwasm-vm-tests`, through the VM crate it builds anyway.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::step::{Step, run_checked};

pub const PACKAGE: &str = "advancia-pay-cosmwasm";
const WASM_NAME: &str = "advancia_pay_cosmwasm.wasm";
const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "release-wasm";
/// binaryen from the npm registry (wasm-opt compiled to wasm/JS, runs on node).
const BINARYEN_VERSION: &str = "132.0.0";
/// Same version as the `cosmwasm-vm` the VM tests run (=3.0.10, wasmer 7).
/// The VM tests read the optimized wasm from here.
pub const WASM_ENV: &str = "ADVANCIA_COSMWASM_WASM";

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

/// Builds, lowers and checks the contract; returns the optimized wasm's path.
pub fn build() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let wasm_opt = ensure_binaryen()?;

    let step = Step::start(&format!("{PACKAGE} to {TARGET} (profile {PROFILE})"));
    run_checked(
        crate::cargo().args([
            "build",
            "--quiet",
            "-p",
            PACKAGE,
            "--lib",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ]),
        &step,
    )?;
    let raw = target_dir().join(TARGET).join(PROFILE).join(WASM_NAME);
    let raw_size = size(&raw)?;
    step.done(&format!("{raw_size} bytes"));

    let step = Step::start("lower bulk-memory and sign-ext for the CosmWasm VM (wasm-opt -Os)");
    let out_dir = target_dir().join("wasm");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(WASM_NAME);
    // wasm-opt (binaryen compiled to JS) takes ~20 s; skip it when its output is current.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(o), Some(r)) = (modified(&out), modified(&raw))
        && o >= r
    {
        step.done(&format!("up to date, {} bytes", size(&out)?));
    } else {
        lower(&wasm_opt, &raw, &out, &step)?;
        step.done(&format!(
            "{} bytes (from {raw_size}) in {}",
            size(&out)?,
            out.display()
        ));
    }

    Ok(out)
}

fn lower(wasm_opt: &Path, raw: &Path, out: &Path, step: &Step) -> Result<()> {
    run_checked(
        Command::new(wasm_opt)
            .args([
                "-Os",
                "--enable-bulk-memory",
                "--enable-sign-ext",
                "--llvm-memory-copy-fill-lowering",
                "--signext-lowering",
            ])
            .arg(raw)
            .arg("-o")
            .arg(out),
        step,
    )
}

fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{} was not produced", path.display()))?
        .len())
}

pub fn ensure_wasm_target() -> Result<()> {
    let step = Step::start(&format!("rust target {TARGET}"));
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup not found")?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        step.done("already installed");
        return Ok(());
    }
    run_checked(
        Command::new("rustup").args(["target", "add", TARGET]),
        &step,
    )?;
    step.done("installed");
    Ok(())
}

/// `wasm-opt` from the npm `binaryen` package, installed under `target/npm`.
fn ensure_binaryen() -> Result<PathBuf> {
    let step = Step::start(&format!("binaryen {BINARYEN_VERSION} (npm, wasm-opt)"));
    let prefix = target_dir().join("npm");
    let bin = prefix.join("node_modules/.bin/wasm-opt");
    let manifest = prefix.join("node_modules/binaryen/package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.trim_start().starts_with("\"version\""))
                .map(|l| l.contains(&format!("\"{BINARYEN_VERSION}\"")))
        })
        .unwrap_or(false);
    if installed && bin.is_file() {
        step.done("already installed");
        return Ok(bin);
    }
    crate::toolchain::ensure_node()?;
    std::fs::create_dir_all(&prefix)?;
    run_checked(
        Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&prefix)
            .args(["--no-audit", "--no-fund", "--no-save", "--loglevel=error"])
            .arg(format!("binaryen@{BINARYEN_VERSION}")),
        &step,
    )?;
    if !bin.is_file() {
        step.fail("no wasm-opt after install");
        bail!("npm installed binaryen but {} is missing", bin.display());
    }
    step.done(&format!("installed under {}", prefix.display()));
    Ok(bin)
}
