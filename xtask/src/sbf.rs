//! `cargo xtask sbf`: the on-chain programs built for SBF from registry-only parts (ADR 0025).
//!
//! Solana's platform tools cannot be downloaded here, so the route is: a pinned nightly
//! (upstream LLVM 23's BPF backend) with `rust-src`; a linked copy of it whose std is patched
//! for `os = "solana"`; `sbpf-linker` from its crates.io source with our stack-argument fix;
//! a custom target JSON; `solana-compiler-builtins` linked in through the program's `sbf`
//! feature. Every step looks first and does only what is missing, one line each; everything
//! lives under `target/sbf`, the programs land in `target/deploy`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::step::{Step, succeeds};

/// The nightly whose LLVM 23 passes stack arguments and i128 through the BPF backend.
pub const NIGHTLY: &str = "nightly-2026-10-29";
/// The rustup name of the linked toolchain (the nightly with the patched std sources).
const LINKED: &str = "advancia-sbf";
const SBPF_LINKER_VERSION: &str = "0.2.6";
const TARGET_NAME: &str = "sbpf-solana-solana";
/// Cargo profile of the on-chain build (workspace Cargo.toml).
const PROFILE: &str = "sbf";
/// Solana's stack frame (the BPF backend's default is 512).
const STACK_FRAME: u32 = 4096;

const STD_PATCH: &str = include_str!("../sbf/std-solana.patch");
const LINKER_PATCH: &str = include_str!("../sbf/sbpf-linker-stack-args.patch");
const TARGET_JSON: &str = include_str!("../sbf/sbpf-solana-solana.json");

/// What the build produced: where the programs are (`SBF_OUT_DIR`) and which route made them.
pub struct SbfBuild {
    pub out_dir: PathBuf,
}

fn sbf_dir() -> PathBuf {
    crate::workspace_root().join("target").join("sbf")
}

pub fn deploy_dir() -> PathBuf {
    crate::workspace_root().join("target").join("deploy")
}

/// The whole route for every program under `programs/`; `None` when there is none.
pub fn build() -> Result<Option<SbfBuild>> {
    let programs = crate::toolchain::program_packages();
    if programs.is_empty() {
        Step::start("on-chain programs to SBF").skip("no programs yet");
        return Ok(None);
    }
    let dir = sbf_dir();
    std::fs::create_dir_all(&dir)?;
    ensure_nightly()?;
    let toolchain = ensure_linked_toolchain(&dir)?;
    let linker = ensure_linker(&dir)?;
    let target = ensure_target_json(&dir)?;
    let out_dir = deploy_dir();
    std::fs::create_dir_all(&out_dir)?;
    for program in &programs {
        let so = build_program(program, &toolchain, &linker, &target)?;
        let name = program.replace('-', "_");
        let ours = dir.join(format!("{name}.so"));
        std::fs::copy(&so, &ours)?;
        compare_with_build_sbf(program, &ours, &out_dir)?;
    }
    Ok(Some(SbfBuild { out_dir }))
}

/// Step 1: the pinned nightly with `rust-src` (rustup).
fn ensure_nightly() -> Result<()> {
    let step = Step::start(&format!("{NIGHTLY} with rust-src (rustup)"));
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
        .output()
        .context("rustup not found")?;
    let list = String::from_utf8_lossy(&installed.stdout);
    if installed.status.success() && list.lines().any(|l| l.starts_with("rust-src")) {
        step.done("already installed");
        return Ok(());
    }
    quiet(
        Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]),
        &step,
    )?;
    step.done("installed");
    Ok(())
}

fn nightly_sysroot() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .arg(format!("+{NIGHTLY}"))
        .args(["--print", "sysroot"])
        .output()?;
    if !out.status.success() {
        bail!("rustc +{NIGHTLY} --print sysroot failed");
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Step 2: `target/sbf/toolchain`, the nightly hard-linked (no copy of its 700 MB) except for
/// `lib/rustlib/src/rust/library`, which is a real copy with [`STD_PATCH`] applied, linked into
/// rustup as [`LINKED`]. rustc finds its sysroot (and `-Zbuild-std` its sources) from its own
/// path, which is why the binaries are hard links and not symlinks (those resolve back).
fn ensure_linked_toolchain(dir: &Path) -> Result<PathBuf> {
    let step = Step::start(&format!(
        "toolchain {LINKED}: {NIGHTLY} with std patched for os = \"solana\""
    ));
    let toolchain = dir.join("toolchain");
    let marker = toolchain.join(".advancia-std-patch");
    let stamp = format!("{NIGHTLY}\n{STD_PATCH}");
    let linked = Command::new("rustup")
        .args(["toolchain", "list", "-v"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with(LINKED) && l.contains(&*toolchain.to_string_lossy()))
        })
        .unwrap_or(false);
    if linked && std::fs::read_to_string(&marker).is_ok_and(|s| s == stamp) {
        step.done("up to date");
        return Ok(toolchain);
    }
    let sysroot = nightly_sysroot()?;
    if toolchain.exists() {
        std::fs::remove_dir_all(&toolchain)?;
    }
    quiet(
        Command::new("cp").arg("-al").arg(&sysroot).arg(&toolchain),
        &step,
    )?;
    let library = toolchain.join("lib/rustlib/src/rust/library");
    // Replace the hard-linked sources by a real copy before patching: patching a hard link
    // would change the nightly's own files.
    std::fs::remove_dir_all(&library)?;
    quiet(
        Command::new("cp")
            .arg("-r")
            .arg(sysroot.join("lib/rustlib/src/rust/library"))
            .arg(&library),
        &step,
    )?;
    apply_patch(&library, STD_PATCH, &step)?;
    quiet(
        Command::new("rustup")
            .args(["toolchain", "link", LINKED])
            .arg(&toolchain),
        &step,
    )?;
    std::fs::write(&marker, stamp)?;
    step.done(&format!("linked {}", toolchain.display()));
    Ok(toolchain)
}

/// Step 3: `sbpf-linker` from its crates.io source (cargo downloads it as a dependency of a
/// throw-away manifest), [`LINKER_PATCH`] applied, `cargo install --path` into
/// `target/sbf/sbpf-linker`, `--locked` to the crate's own lockfile.
fn ensure_linker(dir: &Path) -> Result<PathBuf> {
    let step = Step::start(&format!(
        "sbpf-linker {SBPF_LINKER_VERSION} from crates.io with the stack-argument fix"
    ));
    let root = dir.join("sbpf-linker");
    let bin = root.join("bin").join("sbpf-linker");
    let marker = root.join(".advancia-patch");
    let stamp = format!("{SBPF_LINKER_VERSION}\n{NIGHTLY}\n{LINKER_PATCH}");
    if bin.is_file() && std::fs::read_to_string(&marker).is_ok_and(|s| s == stamp) {
        step.done("already installed");
        return Ok(bin);
    }
    let source = crates_io_source("sbpf-linker", SBPF_LINKER_VERSION, dir, &step)?;
    let patched = root.join("src");
    if patched.exists() {
        std::fs::remove_dir_all(&patched)?;
    }
    std::fs::create_dir_all(&root)?;
    quiet(
        Command::new("cp").arg("-r").arg(&source).arg(&patched),
        &step,
    )?;
    apply_patch(&patched, LINKER_PATCH, &step)?;
    // The copy sits inside our workspace's directory tree; an empty [workspace] keeps it a
    // workspace of its own.
    let manifest = patched.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    std::fs::write(&manifest, format!("{text}\n[workspace]\n"))?;
    quiet(
        Command::new("cargo")
            .arg(format!("+{NIGHTLY}"))
            .args(["install", "--locked", "--force", "--path"])
            .arg(&patched)
            .arg("--root")
            .arg(&root)
            .env("CARGO_TARGET_DIR", root.join("build"))
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC"),
        &step,
    )?;
    std::fs::write(&marker, stamp)?;
    step.done(&format!("installed {}", bin.display()));
    Ok(bin)
}

/// The unpacked crates.io source of `name = version`, downloaded by cargo itself.
fn crates_io_source(name: &str, version: &str, dir: &Path, step: &Step) -> Result<PathBuf> {
    let fetch = dir.join("fetch");
    std::fs::create_dir_all(fetch.join("src"))?;
    std::fs::write(
        fetch.join("Cargo.toml"),
        format!(
            "[package]\nname = \"advancia-sbf-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\n{name} = \"={version}\"\n\n[workspace]\n"
        ),
    )?;
    std::fs::write(fetch.join("src/lib.rs"), "")?;
    let out = Command::new("cargo")
        .arg(format!("+{NIGHTLY}"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(fetch.join("Cargo.toml"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        step.fail("cargo metadata failed");
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name && p["version"] == version)
        .and_then(|p| p["manifest_path"].as_str())
        .with_context(|| format!("{name} {version} not in cargo metadata"))?;
    Ok(Path::new(manifest)
        .parent()
        .context("manifest without a directory")?
        .to_path_buf())
}

/// Step 4: the target JSON (see the file for the fields).
fn ensure_target_json(dir: &Path) -> Result<PathBuf> {
    let step = Step::start(&format!("target {TARGET_NAME}.json"));
    let path = dir.join(format!("{TARGET_NAME}.json"));
    if std::fs::read_to_string(&path).is_ok_and(|s| s == TARGET_JSON) {
        step.done("up to date");
    } else {
        std::fs::write(&path, TARGET_JSON)?;
        step.done("written");
    }
    Ok(path)
}

/// Step 5: the program with the linked toolchain, `-Zbuild-std`, the `sbf` profile and
/// feature. The ELF's path. Output is kept unless the build fails; then the lines that
/// name the cause (stack frame, atomics, writable statics) come first.
fn build_program(program: &str, toolchain: &Path, linker: &Path, target: &Path) -> Result<PathBuf> {
    let step = Step::start(&format!("{program} to SBF (profile {PROFILE})"));
    let root = crate::workspace_root();
    let target_dir = sbf_dir().join("cargo");
    let rustflags = [
        &format!("-Clinker={}", linker.display()),
        "-Zunstable-options",
        "-Cpanic=immediate-abort",
        "-Crelocation-model=static",
        "-Clink-arg=--arch=v0",
        "-Clink-arg=--export=__multi3",
        &format!("-Clink-arg=--llvm-args=-bpf-stack-size={STACK_FRAME}"),
        "-Clink-arg=--llvm-args=--bpf-max-stores-per-memfunc=5",
        "-Clink-arg=--llvm-args=--disable-gotox",
        // LLVM 23's pass pipeline has no -Os/-Oz levels any more (sbpf-linker fails with
        // "optimization level Oz is no longer supported"); the last -O wins, and opt-level
        // "z" still reaches LLVM as the `minsize` attribute on every function.
        "-Clink-arg=-O2",
    ]
    .join("\x1f");
    let out = Command::new(toolchain.join("bin").join("cargo"))
        .current_dir(&root)
        .args(["build", "--locked", "--quiet"])
        .args(["--manifest-path", &format!("programs/{program}/Cargo.toml")])
        .args(["--lib", "--features", "sbf", "--profile", PROFILE])
        .arg("--target")
        .arg(target)
        .args(["-Zjson-target-spec", "-Zbuild-std=std,panic_abort"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTC", toolchain.join("bin").join("rustc"))
        .env("RUSTUP_TOOLCHAIN", LINKED)
        // std's build.rs: build for a target it does not know (no restricted-std gate).
        .env("RUSTC_BOOTSTRAP_SYNTHETIC_TARGET", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        // sbpf-linker loads the nightly's LLVM at run time.
        .env("LD_LIBRARY_PATH", toolchain.join("lib"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        let cause = diagnose(&log);
        step.fail(&cause);
        eprintln!("{log}");
        bail!("{program} does not build for SBF: {cause}");
    }
    let name = program.replace('-', "_");
    let so = target_dir
        .join(TARGET_NAME)
        .join(PROFILE)
        .join(format!("{name}.so"));
    let size = std::fs::metadata(&so)
        .with_context(|| format!("{} missing after the build", so.display()))?
        .len();
    let rent = rent_exempt_lamports(size);
    step.done(&format!(
        "{} bytes ({:.0} KB); upgradeable deployment rent {}.{:09} SOL",
        size,
        size as f64 / 1024.0,
        rent / 1_000_000_000,
        rent % 1_000_000_000
    ));
    Ok(so)
}

/// Lamports that make the ProgramData account of an upgradeable deployment of `elf_len`
/// bytes rent-exempt (default rent: 3,480 lamports per byte-year, 2 years, 128 bytes of
/// account overhead; 45 bytes of ProgramData header).
pub fn rent_exempt_lamports(elf_len: u64) -> u64 {
    (128 + 45 + elf_len) * 3_480 * 2
}

/// The first line that says why the build failed, with the function it names.
fn diagnose(log: &str) -> String {
    let known: &[(&str, &str)] = &[
        ("stack limit", "stack frame over 4 KB"),
        ("stack frame", "stack frame over 4 KB"),
        (
            "XADD",
            "atomic read-modify-write the BPF backend cannot lower",
        ),
        ("Cannot select", "code the BPF backend cannot lower"),
        ("relocation target is not rodata or text", "writable static"),
        ("undefined symbol", "unresolved symbol"),
    ];
    for (needle, what) in known {
        if let Some(line) = log.lines().find(|l| l.contains(needle)) {
            return format!("{what}: {}", line.trim());
        }
    }
    log.lines()
        .find(|l| l.contains("error"))
        .map_or_else(|| "cargo build failed".to_owned(), |l| l.trim().to_owned())
}

/// `cargo build-sbf`, where Solana's platform tools are installed, makes the deployed
/// binary; ours is then compared with it. Otherwise ours is the deployed binary.
fn compare_with_build_sbf(program: &str, ours: &Path, out_dir: &Path) -> Result<()> {
    let name = program.replace('-', "_");
    let deployed = out_dir.join(format!("{name}.so"));
    let step = Step::start(&format!("{name}.so in {}", out_dir.display()));
    if !succeeds("cargo", &["build-sbf", "--version"]) {
        if std::fs::read(&deployed).ok() != Some(std::fs::read(ours)?) {
            std::fs::copy(ours, &deployed)?;
        }
        step.done("this route's build (cargo build-sbf is not installed)");
        return Ok(());
    }
    let platform = sbf_dir().join("build-sbf");
    quiet(
        Command::new("cargo")
            .arg("build-sbf")
            .arg("--manifest-path")
            .arg(format!("programs/{program}/Cargo.toml"))
            .arg("--sbf-out-dir")
            .arg(&platform),
        &step,
    )?;
    let theirs = platform.join(format!("{name}.so"));
    std::fs::copy(&theirs, &deployed)?;
    step.done(&format!(
        "cargo build-sbf's build, {} bytes; this route's {} bytes ({})",
        std::fs::metadata(&theirs)?.len(),
        std::fs::metadata(ours)?.len(),
        if std::fs::read(&theirs)? == std::fs::read(ours)? {
            "identical"
        } else {
            "different compilers, different bytes"
        }
    ));
    Ok(())
}

/// `patch -p1` of `dir` with `diff` on stdin.
fn apply_patch(dir: &Path, diff: &str, step: &Step) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("patch")
        .args(["-p1", "--quiet", "--forward", "-d"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("patch (Debian package patch) not found")?;
    child
        .stdin
        .take()
        .context("patch stdin")?
        .write_all(diff.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        step.fail("patch does not apply");
        bail!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `cmd` with its output captured; shown only when it fails.
fn quiet(cmd: &mut Command, step: &Step) -> Result<()> {
    let out = cmd.output()?;
    if !out.status.success() {
        step.fail(&format!("exited with {}", out.status));
        bail!(
            "{:?} failed:\n{}{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
