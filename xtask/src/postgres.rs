//! Making sure a Postgres server answers: `DATABASE_URL`, else the machine's server on
//! 127.0.0.1:5432, else a private cluster (initdb + pg_ctl) under `target/pg`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::step::{Step, run_checked};
use crate::toolchain::{ensure_apt, which};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A reachable server. A private cluster started here is stopped on drop.
pub struct Postgres {
    pub url: String,
    private: Option<PathBuf>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(data) = &self.private {
            let _ = as_cluster_owner(pg_bin("pg_ctl").as_deref().unwrap_or(Path::new("pg_ctl")))
                .arg("-D")
                .arg(data)
                .args(["-m", "fast", "-s", "stop"])
                .status();
            println!("    private Postgres cluster stopped");
        }
    }
}

/// `true` when `SELECT 1` succeeds at `url` within a few seconds.
pub fn answers(url: &str) -> bool {
    Command::new("psql")
        .args([url, "-tAqc", "SELECT 1"])
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "1")
        .unwrap_or(false)
}

pub fn ensure() -> Result<Postgres> {
    ensure_apt("psql", "postgresql-client")?;
    let step = Step::start("Postgres answers");
    if std::env::var_os("ADVANCIA_PRIVATE_PG").is_some() {
        // Forces the fresh-machine path (no server anywhere) so it can be exercised here.
        step.skip("ADVANCIA_PRIVATE_PG set; starting a private cluster");
        return start_private_cluster();
    }
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if answers(&url) {
            step.done("DATABASE_URL");
            return Ok(Postgres { url, private: None });
        }
        step.fail("DATABASE_URL is set but the server does not answer");
        bail!("DATABASE_URL is set but no Postgres answers there; fix it or unset it");
    }
    if answers(DEFAULT_URL) {
        step.done("local server on 127.0.0.1:5432");
        return Ok(Postgres {
            url: DEFAULT_URL.into(),
            private: None,
        });
    }
    step.skip("nothing on 127.0.0.1:5432; starting a private cluster");
    start_private_cluster()
}

/// Postgres server binaries: on PATH, else Debian's versioned directory.
fn pg_bin(name: &str) -> Option<PathBuf> {
    which(name).or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// initdb and postgres refuse to run as root: run them as `postgres` in that case.
fn as_cluster_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn start_private_cluster() -> Result<Postgres> {
    if pg_bin("initdb").is_none() {
        ensure_apt("initdb", "postgresql")?;
    }
    let step = Step::start("private Postgres cluster under target/pg");
    let initdb = pg_bin("initdb").context("initdb not found after installing postgresql")?;
    let pg_ctl = pg_bin("pg_ctl").context("pg_ctl not found after installing postgresql")?;
    let root = std::env::current_dir()?.join("target/pg");
    let data = root.join("data");
    std::fs::create_dir_all(&root)?;
    if is_root() {
        run_checked(
            Command::new("chown").args(["-R", "postgres:"]).arg(&root),
            &step,
        )?;
    }
    if !data.join("PG_VERSION").is_file() {
        run_checked(
            as_cluster_owner(&initdb).arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            &step,
        )?;
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off",
        root.display()
    );
    run_checked(
        as_cluster_owner(&pg_ctl)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-o", &options, "-w", "-s", "start"]),
        &step,
    )?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    if !answers(&url) {
        step.fail("started but does not answer");
        bail!("private cluster does not answer; see target/pg/server.log");
    }
    step.done(&format!("listening on 127.0.0.1:{port}"));
    Ok(Postgres {
        url,
        private: Some(data),
    })
}

/// Drops databases left by test processes that no longer exist (killed runs). Names
/// end in `_<pid>_<counter>_<random>` (see `advancia-test-support`), so databases of
/// test processes still running are left alone.
pub fn sweep_test_databases(url: &str) -> Result<()> {
    let step = Step::start("sweep test databases of dead test processes");
    let out = Command::new("psql")
        .args([
            url,
            "-tAqc",
            "SELECT datname FROM pg_database WHERE datname LIKE 'advtest\\_%'",
        ])
        .output()?;
    let names = String::from_utf8_lossy(&out.stdout).to_string();
    let mut dropped = 0;
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let pid = name.rsplit('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if alive {
            continue;
        }
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if Command::new("psql")
            .args([url, "-tAqc", &sql])
            .status()
            .is_ok_and(|s| s.success())
        {
            dropped += 1;
        }
    }
    step.done(&format!("{dropped} dropped"));
    Ok(())
}

/// Creates database `name` on the server at `url` if it does not exist; returns its URL.
pub fn ensure_database(url: &str, name: &str) -> Result<String> {
    let exists = Command::new("psql")
        .args([
            url,
            "-tAqc",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        ])
        .output()?;
    if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
        let status = Command::new("psql")
            .args([url, "-tAqc", &format!("CREATE DATABASE \"{name}\"")])
            .status()?;
        if !status.success() {
            bail!("could not create database {name}");
        }
    }
    Ok(with_database(url, name))
}

/// Same as `advancia_db::with_database`; repeated here because xtask stays free of sqlx
/// so the first command on a fresh machine starts quickly.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let start = base.find("://").map_or(0, |i| i + 3);
    let path = base[start..].find('/').map_or(base.len(), |i| start + i);
    match query {
        Some(q) => format!("{}/{db}?{q}", &base[..path]),
        None => format!("{}/{db}", &base[..path]),
    }
}
