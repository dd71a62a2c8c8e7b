//! One line of output per step, with its duration: what was done or found.

use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

pub struct Step {
    name: String,
    started: Instant,
}

impl Step {
    pub fn start(name: &str) -> Step {
        println!("==> {name}");
        Step {
            name: name.to_owned(),
            started: Instant::now(),
        }
    }

    pub fn done(&self, outcome: &str) {
        println!(
            "    ok   {} — {outcome} ({:.1}s)",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }

    pub fn skip(&self, why: &str) {
        println!("    skip {} — {why}", self.name);
    }

    pub fn fail(&self, why: &str) {
        println!(
            "    FAIL {} — {why} ({:.1}s)",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Runs `cmd` with inherited output; a non-zero exit fails the step.
pub fn run_checked(cmd: &mut Command, step: &Step) -> Result<()> {
    let status = cmd.status()?;
    if !status.success() {
        step.fail(&format!("exited with {status}"));
        bail!("{} failed", step.name);
    }
    Ok(())
}

/// `true` when `program` runs with `args` and exits 0 (output discarded).
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
