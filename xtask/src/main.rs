//! The project's own commands. `cargo xtask test` and `cargo xtask demo` are the two
//! commands the README promises work on a fresh machine: each installs what is
//! missing (idempotently, one line per step) before doing its job.

mod contract;
mod demo;
mod deploy;
mod evm;
mod nats;
mod postgres;
mod sbf;
mod step;
mod substreams;
mod toolchain;
mod wasm;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::step::{Step, run_checked};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Advancia Pay Ledger project commands")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing, lint, build on-chain artifacts, ensure Postgres, run every test.
    Test {
        /// Skip `cargo fmt --check` and clippy (for quick local iterations only).
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments passed to `cargo nextest run` (e.g. `-p advancia-ledger`).
        #[arg(last = true)]
        nextest_args: Vec<String>,
    },
    /// Start the local stack and walk the scripted scenario; serves until Ctrl-C.
    Demo {
        /// Walk the scenario, then stop everything instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
        /// Address the API listens on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Also log the local node's runtime warnings (per slot) and the services' debug lines.
        #[arg(long)]
        verbose: bool,
    },
    /// `cargo fmt --check` and `cargo clippy --workspace --all-targets -- -D warnings`.
    Lint,
    /// Regenerate the Anchor IDL of each program (`programs/*/idl/*.json`) with anchor's
    /// `idl-build` feature, as the Anchor CLI does (stable toolchain, no Anchor CLI needed).
    Idl {
        /// Fail if the committed IDL differs instead of rewriting it.
        #[arg(long)]
        check: bool,
    },
    /// Build the CosmWasm contract to a size-optimized wasm the CosmWasm VM accepts
    /// (wasm32 build, binaryen lowering); prints its path and size.
    Wasm,
    /// The Substreams module (indexer/substreams) as a wasm the Substreams runtime loads:
    /// buffa code regenerated from its .proto (Debian protoc), wasm32 build, import check.
    Substreams {
        /// Fail if the checked-in generated code is stale instead of rewriting it.
        #[arg(long)]
        check: bool,
    },
    /// Compile contracts/evm with solc (npm) into the committed contracts/evm/out/*.json and
    /// install anvil (npm) for the bridge tests.
    Evm {
        /// Fail if the committed artifacts differ instead of rewriting them.
        #[arg(long)]
        check: bool,
    },
    /// Check deploy/: lint and render the Helm chart with Helm's engine for every scenario
    /// in deploy/helm/advancia/ci (`*-values.yaml` must pass, `*-must-fail.yaml` must be
    /// refused with the error text of their `# must-fail:` line), validate the manifests
    /// against the Kubernetes schemas, lint the Dockerfile (also part of `test`).
    /// `--template` writes the manifests instead.
    Deploy {
        /// Write the rendered manifests (like `helm template`) instead of checking.
        #[arg(long)]
        template: bool,
        /// Values file for `--template` (merged over the chart's values.yaml).
        #[arg(long, short = 'f', requires = "template")]
        values: Option<PathBuf>,
        /// Where `--template` writes the manifests.
        #[arg(
            long,
            short = 'o',
            default_value = "target/deploy/advancia.yaml",
            requires = "template"
        )]
        output: PathBuf,
        /// Accepted for symmetry with `idl --check` / `evm --check`: checking is the default.
        #[arg(long, conflicts_with = "template")]
        check: bool,
    },
    /// Build the on-chain programs for SBF from registry-only parts (pinned nightly, std
    /// patched for os = "solana", sbpf-linker with the stack-argument fix; ADR 0025) into
    /// target/deploy/<program>.so. Fails naming the function on a stack frame over 4 KB or on
    /// code the route cannot lower.
    Sbf,
    /// Benchmarks that report ratios against a reference measured in the same run.
    Bench {
        /// What to benchmark.
        #[arg(value_enum)]
        target: BenchTarget,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchTarget {
    /// Ledger postings/s vs. raw Postgres COPY of the same rows.
    Ledger,
    /// Indexer sink events/s (batched and per-row) vs. COPY of the same rows.
    Indexer,
    /// API latency percentiles and requests/s per route vs. a hello-world route on the
    /// same server (local chain and Postgres behind it).
    Api,
    /// Compute units per program instruction beside a plain SPL `transfer_checked`, metered on
    /// the SBF build (`cargo xtask sbf`), with each instruction's own units beside its CPIs'.
    Programs,
    /// Payments signed and sent by wallets at 10, 50 and 100/s: P50/P95/P99 from a block's
    /// finality to the intent reading `finalized` and to its signed webhook arriving, beside
    /// the local node's own finality time.
    Lifecycle,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    std::env::set_current_dir(workspace_root())?;
    match cli.command {
        Cmd::Test {
            no_lint,
            nextest_args,
        } => test(no_lint, &nextest_args),
        Cmd::Demo {
            once,
            listen,
            verbose,
        } => demo::run(once, &listen, verbose),
        Cmd::Lint => lint(),
        Cmd::Sbf => sbf::build().map(|_| ()),
        Cmd::Bench { target } => bench(target),
        Cmd::Idl { check } => idl(check),
        Cmd::Wasm => wasm::build().map(|path| println!("{}", path.display())),
        Cmd::Substreams { check } => {
            substreams::build(check).map(|path| println!("{}", path.display()))
        }
        Cmd::Evm { check } => evm::build(check).map(|anvil| println!("{}", anvil.display())),
        Cmd::Deploy {
            template,
            values,
            output,
            ..
        } => {
            let python = toolchain::ensure_python_test_env()?;
            deploy::ensure_tools(&python)?;
            if template {
                deploy::template(&python, values.as_deref(), &output)
            } else {
                deploy::check(&python)
            }
        }
    }
}

pub fn workspace_root() -> PathBuf {
    // xtask's manifest dir is <root>/xtask.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test(no_lint: bool, nextest_args: &[String]) -> Result<()> {
    let total = std::time::Instant::now();
    toolchain::ensure_rust_components()?;
    toolchain::ensure_nextest()?;
    toolchain::ensure_system_libraries()?;
    toolchain::ensure_node()?;
    toolchain::ensure_chromium()?;
    let python = toolchain::ensure_python_test_env()?;
    if !no_lint {
        lint()?;
    }
    // Seconds, no cargo build: before the long stages so a broken chart fails fast.
    deploy::ensure_tools(&python)?;
    deploy::check(&python)?;
    toolchain::check_single_solana_major()?;
    let sbf = sbf::build()?;

    // Before nextest: the CosmWasm VM tests load this file.
    let cosmwasm_wasm = wasm::build()?;
    // The Substreams module's wasm (ADR 0017): builds for wasm32, imports only from the
    // Substreams host; a test in nextest runs it on node against the native build.
    let substreams_wasm = substreams::wasm()?;
    // The bridge tests deploy the committed EVM artifacts on this anvil.
    let anvil = evm::build(true)?;
    // The generated TypeScript client's compiler and generator (partner-flow test).
    let ts_tools = contract::ensure_ts_client_tools()?;
    // The checkout tests' wallet, browser driver, QR decoder and accessibility checker.
    let checkout_tools = contract::ensure_checkout_tools()?;

    let pg = postgres::ensure()?;
    postgres::sweep_test_databases(&pg.url)?;
    // The event bus (and agents) run their suite against JetStream too.
    let nats = nats::ensure()?;

    let step = Step::start("run the test suite (cargo nextest)");
    let mut cmd = cargo();
    // The artifacts of the linted build above (see `linted`).
    linted(&mut cmd)?;
    cmd.args(["nextest", "run", "--no-fail-fast"]);
    // `-p` in the extra arguments narrows the run; otherwise everything runs, the CosmWasm
    // VM crate in a build of its own (see `OWN_BUILD`).
    let narrowed = nextest_args
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package"));
    if !narrowed {
        cmd.args(["--workspace", "--exclude", OWN_BUILD]);
    }
    cmd.args(nextest_args)
        .env("DATABASE_URL", &pg.url)
        .env("NATS_URL", &nats.url)
        .env(wasm::WASM_ENV, &cosmwasm_wasm)
        .env(substreams::WASM_ENV, &substreams_wasm)
        .env(evm::ANVIL_ENV, &anvil)
        .env(contract::TS_TOOLS_ENV, &ts_tools)
        .env(contract::CHECKOUT_TOOLS_ENV, &checkout_tools)
        .env("ADVANCIA_PYTHON", &python);
    let status = cmd.status()?;
    if !status.success() {
        step.fail("tests failed");
        bail!("test suite failed ({status})");
    }
    step.done("all tests passed");
    if !narrowed {
        let step = Step::start(&format!(
            "run the CosmWasm VM tests ({OWN_BUILD}, own build)"
        ));
        run_checked(
            linted(cargo().args(["nextest", "run", "--no-fail-fast", "-p", OWN_BUILD]))?
                .env(wasm::WASM_ENV, &cosmwasm_wasm),
            &step,
        )?;
        step.done("passed in the real CosmWasm VM");
    }

    if let Some(sbf) = sbf {
        // The same program tests again, now loading the SBF build (deployed through the
        // upgradeable loader) instead of the native code. Same build selection as the run
        // above, so nothing is rebuilt; a test that passed natively and fails here fails
        // the run.
        let step = Step::start("program suite in the SBF VM (ADVANCIA_PREFER_SBF=1)");
        let filter = toolchain::program_packages()
            .iter()
            .map(|p| format!("package({p})"))
            .collect::<Vec<_>>()
            .join(" | ");
        run_checked(
            linted(cargo().args([
                "nextest",
                "run",
                "--no-fail-fast",
                "--workspace",
                "--exclude",
            ]))?
            .arg(OWN_BUILD)
            .args(["-E", &filter])
            .env("ADVANCIA_PREFER_SBF", "1")
            .env("SBF_OUT_DIR", &sbf.out_dir)
            .env("DATABASE_URL", &pg.url),
            &step,
        )?;
        step.done("passed in the SBF VM as natively");
    }
    drop(pg);
    drop(nats);
    println!("xtask test: OK in {:.1}s", total.elapsed().as_secs_f64());
    Ok(())
}

fn lint() -> Result<()> {
    let step = Step::start("format check (cargo fmt --check)");
    run_checked(cargo().args(["fmt", "--all", "--check"]), &step)?;
    step.done("formatted");
    // Clippy rides on the test build (clippy-driver as the workspace's rustc): one compile
    // of the tree instead of `cargo clippy`'s check build followed by the test build.
    let step = Step::start(
        "build and lint (cargo test --no-run with clippy-driver, --all-targets -D warnings)",
    );
    run_checked(linted(cargo().args(TEST_BUILD).arg("--quiet"))?, &step)?;
    run_checked(
        linted(cargo().args(["test", "--no-run", "--quiet", "-p", OWN_BUILD]))?,
        &step,
    )?;
    step.done("no warnings");
    Ok(())
}

/// `cmd` with clippy as the workspace's compiler wrapper, lints denied. Every later build
/// of the same selection must use it too (the wrapper is part of cargo's fingerprint), so
/// the test runs and `cargo xtask demo` reuse these artifacts.
pub fn linted(cmd: &mut Command) -> Result<&mut Command> {
    let driver = std::process::Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "clippy-driver".to_owned());
    Ok(cmd
        .env("RUSTC_WORKSPACE_WRAPPER", driver)
        // clippy-driver's own way of taking arguments (what `cargo clippy -- …` sets).
        .env(
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
        ))
}

/// Built in a cargo invocation of its own, never together with the rest of the workspace:
/// the CosmWasm VM (wasmer 7) links libwild, which stops compiling when features unify with
/// the Solana runtime's (solana-message turns on blake3's `traits-preview`, and then
/// `Digest::finalize` shadows `blake3::Hasher::finalize` inside libwild). Its own build also
/// keeps wasmer out of every other crate's rebuilds.
const OWN_BUILD: &str = "advancia-pay-cosmwasm-vm-tests";

/// What `cargo nextest run --workspace --exclude OWN_BUILD` builds (nextest runs this very
/// `cargo test --no-run`); the demo builds its binaries with it to reuse the test build.
pub const TEST_BUILD: &[&str] = &["test", "--no-run", "--workspace", "--exclude", OWN_BUILD];

fn bench(target: BenchTarget) -> Result<()> {
    // Everything but the program table measures against Postgres.
    let pg = match target {
        BenchTarget::Programs => return bench_programs(),
        _ => postgres::ensure()?,
    };
    match target {
        BenchTarget::Programs => {}
        BenchTarget::Ledger => {
            let step = Step::start("ledger benchmark (release build)");
            run_checked(
                cargo()
                    .args([
                        "run",
                        "--release",
                        "--quiet",
                        "-p",
                        "advancia-ledger",
                        "--",
                        "bench",
                    ])
                    .env("DATABASE_URL", &pg.url),
                &step,
            )?;
            step.done("finished");
        }
        BenchTarget::Api => {
            let step = Step::start("API load benchmark (release build)");
            run_checked(
                cargo()
                    .args([
                        "run",
                        "--release",
                        "--quiet",
                        "-p",
                        "advancia-e2e",
                        "--bin",
                        "advancia-api-bench",
                    ])
                    .env("DATABASE_URL", &pg.url),
                &step,
            )?;
            step.done("finished");
        }
        BenchTarget::Lifecycle => {
            let step = Step::start("payment lifecycle benchmark (release build)");
            run_checked(
                cargo()
                    .args([
                        "run",
                        "--release",
                        "--quiet",
                        "-p",
                        "advancia-e2e",
                        "--bin",
                        "advancia-bench-lifecycle",
                    ])
                    .env("DATABASE_URL", &pg.url),
                &step,
            )?;
            step.done("finished");
        }
        BenchTarget::Indexer => {
            let step = Step::start("indexer sink benchmark (release build)");
            run_checked(
                cargo()
                    .args([
                        "run",
                        "--release",
                        "--quiet",
                        "-p",
                        "advancia-indexer",
                        "--",
                        "bench",
                    ])
                    .env("DATABASE_URL", &pg.url),
                &step,
            )?;
            step.done("finished");
        }
    }
    Ok(())
}

/// Runs the program tests' compute-unit table, on the SBF build when it can be made.
fn bench_programs() -> Result<()> {
    let sbf_dir = sbf::build()?.map(|b| b.out_dir);
    for program in toolchain::program_packages() {
        let step = Step::start(&format!("compute units of {program}"));
        let mut cmd = cargo();
        cmd.args([
            "nextest",
            "run",
            "--release",
            "-p",
            &program,
            "--no-capture",
            "-E",
            "test(compute_unit_table)",
        ]);
        if let Some(dir) = &sbf_dir {
            cmd.env("ADVANCIA_PREFER_SBF", "1").env("SBF_OUT_DIR", dir);
        }
        run_checked(&mut cmd, &step)?;
        step.done(if sbf_dir.is_some() {
            "measured on the SBF build"
        } else {
            "native run: only the SPL Token and system CPIs are metered (no SBF build)"
        });
    }
    Ok(())
}

fn idl(check: bool) -> Result<()> {
    for program in toolchain::program_packages() {
        let dir = std::env::current_dir()?.join("programs").join(&program);
        let step = Step::start(&format!("IDL of {program}"));
        let out = cargo()
            .current_dir(&dir)
            .args([
                "test",
                "-p",
                &program,
                "--lib",
                "--features",
                "idl-build",
                "__anchor_private_print_idl",
                "--",
                "--show-output",
                "--quiet",
            ])
            .env("ANCHOR_IDL_BUILD_PROGRAM_PATH", &dir)
            .env("ANCHOR_IDL_BUILD_RESOLUTION", "TRUE")
            .output()?;
        if !out.status.success() {
            step.fail("idl-build test failed");
            bail!("{}", String::from_utf8_lossy(&out.stderr));
        }
        let raw = std::env::temp_dir().join(format!("{program}-idl.out"));
        std::fs::write(&raw, &out.stdout)?;
        let json = Command::new("python3")
            .arg(dir.join("idl/extract.py"))
            .arg(&raw)
            .output()?;
        if !json.status.success() {
            step.fail("extract.py failed");
            bail!("{}", String::from_utf8_lossy(&json.stderr));
        }
        let target = dir
            .join("idl")
            .join(format!("{}.json", program.replace('-', "_")));
        let current = std::fs::read(&target).unwrap_or_default();
        if current == json.stdout {
            step.done("up to date");
        } else if check {
            step.fail("committed IDL is stale");
            bail!("run `cargo xtask idl` and commit {}", target.display());
        } else {
            std::fs::write(&target, &json.stdout)?;
            step.done(&format!("rewrote {}", target.display()));
        }
    }
    Ok(())
}
