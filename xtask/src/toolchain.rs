//! Installing and checking tools. Every function is idempotent: it looks first and
//! installs only what is missing, from the package registries (crates.io, apt, npm).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

use anyhow::{Context, Result, bail};

use crate::step::{Step, run_checked, succeeds};

pub fn ensure_rust_components() -> Result<()> {
    let step = Step::start("rust components (rustfmt, clippy)");
    let out = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .context("rustup not found: install Rust with rustup first")?;
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = ["rustfmt", "clippy"]
        .into_iter()
        .filter(|c| !installed.lines().any(|l| l.starts_with(c)))
        .collect();
    if missing.is_empty() {
        step.done("already installed");
        return Ok(());
    }
    run_checked(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
        &step,
    )?;
    step.done(&format!("installed {}", missing.join(", ")));
    Ok(())
}

pub fn ensure_nextest() -> Result<()> {
    let step = Step::start("cargo-nextest");
    if succeeds("cargo", &["nextest", "--version"]) {
        step.done("already installed");
        return Ok(());
    }
    run_checked(
        Command::new("cargo").args(["install", "cargo-nextest", "--locked"]),
        &step,
    )?;
    step.done("installed from crates.io");
    Ok(())
}

static APT_UPDATE: Once = Once::new();

/// Makes sure `binary` is on PATH, installing Debian `package` if it is not.
pub fn ensure_apt(binary: &str, package: &str) -> Result<()> {
    let step = Step::start(&format!("{binary} (Debian package {package})"));
    if which(binary).is_some() {
        step.done("already installed");
        return Ok(());
    }
    apt_install(package, &step)?;
    step.done("installed");
    Ok(())
}

/// `apt-get install` of one package (after one `apt-get update` per run).
fn apt_install(package: &str, step: &Step) -> Result<()> {
    APT_UPDATE.call_once(|| {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
    });
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        step,
    )
}

/// Node.js and npm: the local node's conformance test drives it with `@solana/web3.js`,
/// which that test installs from the npm registry into the target directory.
pub fn ensure_node() -> Result<()> {
    ensure_apt("node", "nodejs")?;
    ensure_apt("npm", "npm")
}

/// Python for the notification and KYC tests: a virtual environment under `target/py` with
/// the PyPI packages `standardwebhooks` (the reference Standard Webhooks verifier),
/// `aiosmtpd` (a real SMTP server) and `moto[server]` (an S3-compatible server, for the KYC
/// document store; pinned). Returns its interpreter, which the tests get as `ADVANCIA_PYTHON`.
pub fn ensure_python_test_env() -> Result<PathBuf> {
    const PACKAGES: &[&str] = &[
        "standardwebhooks",
        "aiosmtpd",
        "moto[server]==5.2.5",
        // The API contract test (tests/e2e/tests/contract.rs).
        "schemathesis==4.32.5",
    ];
    ensure_apt("python3", "python3")?;
    let step = Step::start(
        "Python test packages (PyPI standardwebhooks, aiosmtpd, moto[server], schemathesis; target/py)",
    );
    let venv = crate::workspace_root().join("target").join("py");
    let python = venv.join("bin").join("python");
    let ready = || {
        Command::new(&python)
            .args([
                "-c",
                "import standardwebhooks, aiosmtpd, moto.server, boto3, schemathesis",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready() {
        step.done("already installed");
        return Ok(python);
    }
    if !python.is_file() {
        // Debian splits venv and ensurepip into python3-venv.
        if !succeeds("python3", &["-c", "import venv, ensurepip"]) {
            apt_install("python3-venv", &step)?;
        }
        run_checked(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            &step,
        )?;
    }
    run_checked(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES),
        &step,
    )?;
    step.done("installed from PyPI");
    Ok(python)
}

/// Headless Chromium for the dashboard test (`api/tests/dashboard_chromium.rs`), which
/// loads the page and reads back the rendered DOM. Debian's `chromium` package.
pub fn ensure_chromium() -> Result<()> {
    ensure_apt("chromium", "chromium")
}

/// C libraries that -sys crates link against (see `.cargo/config.toml`).
pub fn ensure_system_libraries() -> Result<()> {
    ensure_apt("pkg-config", "pkgconf")?;
    let step = Step::start("libssl-dev (system OpenSSL for openssl-sys)");
    if succeeds("pkg-config", &["--exists", "openssl"]) {
        step.done("already installed");
        return Ok(());
    }
    apt_install("libssl-dev", &step)?;
    step.done("installed");
    Ok(())
}

pub fn which(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// Crates whose duplication breaks native program tests silently: `solana-sysvar` holds
/// the process-global syscall stubs that solana-program-test installs, and the others
/// route CPIs, entrypoints and account views through it. Two majors of any of them and
/// a CPI from the program reaches a stub nobody installed and "succeeds" doing nothing.
const RUNTIME_CRITICAL: &[&str] = &[
    "solana-sysvar",
    "solana-program",
    "solana-cpi",
    "solana-invoke",
    "solana-program-entrypoint",
    "solana-account-info",
];

/// Checks `cargo tree -d` for solana-* crates in several majors: a hard error for the
/// runtime-critical ones, a printed note for the rest (solana-program-test 3.1.12 itself
/// mixes majors of leaf interface crates such as solana-define-syscall 3 and 4; see
/// docs/decisions/0003-solana-versions.md).
pub fn check_single_solana_major() -> Result<()> {
    let step = Step::start("one major version per runtime-critical solana-* crate (cargo tree -d)");
    let out = Command::new("cargo")
        .args([
            "tree",
            "--workspace",
            "--duplicates",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-e",
            "normal,build,dev",
        ])
        .output()?;
    if !out.status.success() {
        step.fail("cargo tree failed");
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut majors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !(name.starts_with("solana-") || name.starts_with("agave-")) {
            continue;
        }
        let v = version.trim_start_matches('v');
        let mut nums = v.split('.');
        let major = match (nums.next(), nums.next()) {
            (Some("0"), Some(minor)) => format!("0.{minor}"),
            (Some(m), _) => m.to_owned(),
            _ => continue,
        };
        let list = majors.entry(name.to_owned()).or_default();
        if !list.contains(&major) {
            list.push(major);
        }
    }
    let (critical, other): (Vec<_>, Vec<_>) = majors
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .partition(|(k, _)| RUNTIME_CRITICAL.contains(&k.as_str()));
    let describe = |list: &[(String, Vec<String>)]| {
        list.iter()
            .map(|(k, v)| format!("{k} ({})", v.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !critical.is_empty() {
        step.fail("runtime-critical crate in several majors");
        bail!(
            "solana crates that hold or reach the syscall stubs are in more than one major: {}",
            describe(&critical)
        );
    }
    if other.is_empty() {
        step.done("no solana-* crate in two majors");
    } else {
        step.done(&format!(
            "runtime-critical crates single; leaf interface crates in two majors (known, harmless): {}",
            describe(&other)
        ));
    }
    Ok(())
}

/// Packages under `programs/` (by convention the directory name is the package name).
pub fn program_packages() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("programs")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("Cargo.toml").is_file())
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
