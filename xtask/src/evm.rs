//! `cargo xtask evm [--check]`: compiles contracts/evm with solcjs (npm `solc`, pinned; the
//! compiler ships inside the package, so it works offline) into the committed artifacts
//! contracts/evm/out/<Contract>.json, and installs anvil (npm, pinned) for the bridge tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::step::{Step, run_checked};

const SOLC_VERSION: &str = "0.8.28";
const ANVIL_PACKAGE: &str = "@foundry-rs/anvil-linux-amd64";
const ANVIL_VERSION: &str = "1.5.1";
/// The relayer tests start anvil from this path.
pub const ANVIL_ENV: &str = "ADVANCIA_ANVIL";

fn npm_prefix() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
        // Own prefix: `npm install --no-save` prunes packages it did not install in the same
        // call, so sharing binaryen's prefix would reinstall one or the other on every run.
        .join("npm/evm")
}

/// Compiles and compares with (or rewrites) the committed artifacts; returns anvil's path.
pub fn build(check: bool) -> Result<PathBuf> {
    crate::toolchain::ensure_node()?;
    npm_ensure(&[("solc", SOLC_VERSION), (ANVIL_PACKAGE, ANVIL_VERSION)])?;
    let anvil = npm_prefix()
        .join("node_modules")
        .join(ANVIL_PACKAGE)
        .join("bin/anvil");
    if !anvil.is_file() {
        bail!(
            "{ANVIL_PACKAGE} installed but {} is missing",
            anvil.display()
        );
    }

    let step = Step::start(&format!("compile contracts/evm (solc {SOLC_VERSION})"));
    let root = crate::workspace_root().join("contracts/evm");
    let fresh = npm_prefix().join("evm-out");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)?;
    }
    run_checked(
        Command::new("node")
            .arg(root.join("compile.js"))
            .arg(&root)
            .arg(&fresh)
            .env("NODE_PATH", npm_prefix().join("node_modules"))
            .stdout(std::process::Stdio::null()),
        &step,
    )?;
    let committed = root.join("out");
    let stale = stale_artifacts(&fresh, &committed)?;
    if stale.is_empty() {
        step.done("committed artifacts up to date");
    } else if check {
        step.fail(&format!("stale: {}", stale.join(", ")));
        bail!("run `cargo xtask evm` and commit contracts/evm/out");
    } else {
        if committed.exists() {
            std::fs::remove_dir_all(&committed)?;
        }
        std::fs::create_dir_all(&committed)?;
        for entry in std::fs::read_dir(&fresh)? {
            let entry = entry?;
            std::fs::copy(entry.path(), committed.join(entry.file_name()))?;
        }
        step.done(&format!("rewrote {}", stale.join(", ")));
    }
    Ok(anvil)
}

/// Names of artifacts that differ, are missing, or no longer exist in the fresh build.
fn stale_artifacts(fresh: &Path, committed: &Path) -> Result<Vec<String>> {
    let names = |dir: &Path| -> Result<Vec<String>> {
        let mut names = Vec::new();
        if dir.exists() {
            for entry in std::fs::read_dir(dir)? {
                names.push(entry?.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    };
    let (new, old) = (names(fresh)?, names(committed)?);
    let mut stale: Vec<String> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
    for name in &new {
        let a = std::fs::read(fresh.join(name))?;
        if std::fs::read(committed.join(name)).ok().as_deref() != Some(a.as_slice()) {
            stale.push(name.clone());
        }
    }
    Ok(stale)
}

/// `npm install` of the pinned packages (all in one call) under target/npm/evm unless every
/// one is there at its version already.
fn npm_ensure(packages: &[(&str, &str)]) -> Result<()> {
    npm_install(&npm_prefix(), packages)
}

/// `npm install` of the pinned packages (all in one call) under `prefix` unless every one is
/// there at its version already. Each user keeps its own prefix: `npm install --no-save`
/// prunes packages it did not install in the same call.
pub fn npm_install(prefix: &std::path::Path, packages: &[(&str, &str)]) -> Result<()> {
    let specs: Vec<String> = packages.iter().map(|(p, v)| format!("{p}@{v}")).collect();
    let step = Step::start(&format!("{} (npm)", specs.join(", ")));
    let prefix = prefix.to_path_buf();
    let installed = packages.iter().all(|(package, version)| {
        std::fs::read_to_string(
            prefix
                .join("node_modules")
                .join(package)
                .join("package.json"),
        )
        .is_ok_and(|s| s.contains(&format!("\"version\": \"{version}\"")))
    });
    if installed {
        step.done("already installed");
        return Ok(());
    }
    std::fs::create_dir_all(&prefix)?;
    run_checked(
        Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&prefix)
            .args(["--no-audit", "--no-fund", "--no-save", "--loglevel=error"])
            .args(&specs),
        &step,
    )
    .context("npm install")?;
    step.done(&format!("installed under {}", prefix.display()));
    Ok(())
}
