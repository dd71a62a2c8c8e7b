//! `cargo xtask substreams [--check]`: the Substreams module (`indexer/substreams`, ADR 0017)
//! as a wasm the Substreams runtime can load. Regenerates its buffa code from the `.proto`
//! with Debian's protoc (`--check`: fails if the checked-in code is stale instead), builds
//! `advancia-substreams` for wasm32 and checks the binary: it exports `map_events` and
//! imports only from the runtime's host modules (no wasm-bindgen / JS glue, which would
//! mean a dependency dragged in a browser-only crate and the runtime could not load it).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::step::{Step, run_checked};

const PACKAGE: &str = "advancia-substreams";
const CODEGEN: &str = "advancia-substreams-codegen";
const WASM_NAME: &str = "advancia_substreams.wasm";
const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "release-wasm";
/// The module's wasm test (`indexer/substreams/tests/wasm.rs`) reads the wasm from here.
pub const WASM_ENV: &str = "ADVANCIA_SUBSTREAMS_WASM";
/// Host modules a Substreams wasm module may import from.
const HOST_MODULES: &[&str] = &["env", "logger", "state"];

/// npm package that turns a manifest into a `.spkg` (pinned).
const MANIFEST_PACKAGE: (&str, &str) = ("@substreams/manifest", "0.16.0");

/// Codegen (or its check), the wasm build and its checks, then the `.spkg`; returns the
/// package's path.
pub fn build(check_codegen: bool) -> Result<PathBuf> {
    codegen(check_codegen)?;
    let wasm = wasm()?;
    pack(&wasm)
}

/// `substreams.yaml` + the wasm → `<target>/substreams/advancia_pay_events-v0.1.0.spkg`, with
/// `@substreams/manifest` from npm (the Substreams CLI is a Go binary no registry of ours
/// ships).
fn pack(wasm: &std::path::Path) -> Result<PathBuf> {
    crate::toolchain::ensure_node()?;
    let prefix = crate::wasm::target_dir().join("npm/substreams");
    let (package, version) = MANIFEST_PACKAGE;
    let step = Step::start(&format!("{package}@{version} (npm)"));
    let installed = std::fs::read_to_string(
        prefix
            .join("node_modules")
            .join(package)
            .join("package.json"),
    )
    .is_ok_and(|s| s.contains(&format!("\"version\": \"{version}\"")));
    if installed {
        step.done("already installed");
    } else {
        std::fs::create_dir_all(&prefix)?;
        run_checked(
            std::process::Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&prefix)
                .args(["--no-audit", "--no-fund", "--no-save", "--loglevel=error"])
                .arg(format!("{package}@{version}")),
            &step,
        )?;
        step.done(&format!("installed under {}", prefix.display()));
    }
    let step = Step::start("pack indexer/substreams/substreams.yaml (.spkg)");
    // The script imports from the prefix's node_modules, so it runs from there.
    let script = prefix.join("pack.mjs");
    std::fs::write(&script, include_str!("../../indexer/substreams/pack.mjs"))?;
    let out_dir = crate::wasm::target_dir().join("substreams");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("advancia_pay_events-v0.1.0.spkg");
    run_checked(
        std::process::Command::new("node")
            .arg(&script)
            .arg(crate::workspace_root().join("indexer/substreams/substreams.yaml"))
            .arg(wasm)
            .arg(&out),
        &step,
    )?;
    step.done(&format!(
        "{} bytes in {}",
        std::fs::metadata(&out)?.len(),
        out.display()
    ));
    Ok(out)
}

fn codegen(check: bool) -> Result<()> {
    crate::toolchain::ensure_apt("protoc", "protobuf-compiler")?;
    let step = Step::start(if check {
        "buffa code of indexer/substreams/proto is current"
    } else {
        "regenerate indexer/substreams/src/pb (buffa)"
    });
    let mut cmd = crate::cargo();
    cmd.args(["run", "--quiet", "-p", CODEGEN]);
    if check {
        cmd.args(["--", "--check"]);
    }
    run_checked(&mut cmd, &step)?;
    step.done(if check { "up to date" } else { "written" });
    Ok(())
}

/// The module's wasm (no codegen): `cargo xtask test` builds it this way.
pub fn wasm() -> Result<PathBuf> {
    crate::wasm::ensure_wasm_target()?;
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
    let path = crate::wasm::target_dir()
        .join(TARGET)
        .join(PROFILE)
        .join(WASM_NAME);
    let bytes = std::fs::read(&path).with_context(|| format!("{} not produced", path.display()))?;
    let (imports, exports) = imports_exports(&bytes)?;
    if let Some(bad) = imports.iter().find(|m| !HOST_MODULES.contains(&m.as_str())) {
        step.fail("imports from a non-Substreams host module");
        bail!(
            "{} imports from module {bad:?} (allowed: {HOST_MODULES:?})",
            path.display()
        );
    }
    if !exports.iter().any(|e| e == "map_events") {
        step.fail("no map_events export");
        bail!("{} does not export map_events", path.display());
    }
    step.done(&format!("{} bytes, imports from {imports:?}", bytes.len()));
    Ok(path)
}

fn leb_u32(b: &[u8], pos: &mut usize) -> Result<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *b.get(*pos).context("truncated LEB128")?;
        *pos += 1;
        v |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("LEB128 too long")
}

fn name(b: &[u8], pos: &mut usize) -> Result<String> {
    let len = leb_u32(b, pos)? as usize;
    let s = b.get(*pos..*pos + len).context("truncated name")?;
    *pos += len;
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// The module names of a wasm binary's imports (distinct) and its export names.
fn imports_exports(b: &[u8]) -> Result<(Vec<String>, Vec<String>)> {
    if b.get(..4) != Some(b"\0asm") {
        bail!("not a wasm binary");
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut pos = 8;
    while pos < b.len() {
        let id = b[pos];
        pos += 1;
        let size = leb_u32(b, &mut pos)? as usize;
        let end = pos + size;
        let mut p = pos;
        match id {
            2 => {
                for _ in 0..leb_u32(b, &mut p)? {
                    let module = name(b, &mut p)?;
                    name(b, &mut p)?;
                    let kind = *b.get(p).context("truncated import")?;
                    p += 1;
                    match kind {
                        0 => {
                            leb_u32(b, &mut p)?;
                        }
                        1 => {
                            p += 1;
                            limits(b, &mut p)?;
                        }
                        2 => limits(b, &mut p)?,
                        3 => p += 2,
                        k => bail!("unknown import kind {k}"),
                    }
                    if !imports.contains(&module) {
                        imports.push(module);
                    }
                }
            }
            7 => {
                for _ in 0..leb_u32(b, &mut p)? {
                    exports.push(name(b, &mut p)?);
                    p += 1;
                    leb_u32(b, &mut p)?;
                }
            }
            _ => {}
        }
        pos = end;
    }
    Ok((imports, exports))
}

fn limits(b: &[u8], p: &mut usize) -> Result<()> {
    let flags = *b.get(*p).context("truncated limits")?;
    *p += 1;
    leb_u32(b, p)?;
    if flags & 1 != 0 {
        leb_u32(b, p)?;
    }
    Ok(())
}
