//! A private Postgres cluster a fault test owns: `initdb` in a directory of its own, a
//! server on a free port, crashed (`pg_ctl stop -m immediate`) and restarted on the same
//! port at will. The shared server on 5432 is never touched. Dropped: stopped and deleted.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct PgCluster {
    /// A fresh directory under the system's temporary directory: the socket,
    /// `server.log`, and the data unless it lives elsewhere. Removed on drop.
    root: PathBuf,
    data: PathBuf,
    port: u16,
}

impl PgCluster {
    /// `initdb` + start, everything in a fresh temporary directory.
    pub fn start() -> io::Result<PgCluster> {
        let root = fresh_root()?;
        let data = root.join("data");
        PgCluster::init_and_start(root, data, false)
    }

    /// `initdb` + start with the data directory at `data` (an empty directory, e.g. a
    /// size-limited mount: a full disk) and the write-ahead log on a volume of its own, in
    /// the temporary directory. A full WAL volume is a server crash (PANIC), which
    /// [`PgCluster::crash`] already covers; a full data volume is what clients must ride out.
    pub fn start_with_data_on(data: &Path) -> io::Result<PgCluster> {
        PgCluster::init_and_start(fresh_root()?, data.to_owned(), true)
    }

    fn init_and_start(root: PathBuf, data: PathBuf, wal_apart: bool) -> io::Result<PgCluster> {
        std::fs::create_dir_all(&data)?;
        give_to_cluster_owner(&root)?;
        give_to_cluster_owner(&data)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let cluster = PgCluster { root, data, port };
        let mut initdb = as_cluster_owner("initdb")?;
        initdb.arg("-D").arg(&cluster.data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        if wal_apart {
            initdb.arg("--waldir").arg(cluster.root.join("wal"));
        }
        checked(&mut initdb)?;
        cluster.start_again()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log (crash recovery, errors), for a failure report.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// Starts the server on its port and waits until it accepts connections (after crash
    /// recovery, if it crashed).
    pub fn start_again(&self) -> io::Result<()> {
        // fsync off: a process crash (what `stop -m immediate` is) loses nothing the kernel
        // holds, so recovery is exercised as in production; only a machine crash would
        // need it, and it slows a shared disk.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.root.display()
        );
        checked(
            as_cluster_owner("pg_ctl")?
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.root.join("server.log"))
                .args(["-o", &options, "-w", "-t", "120", "-s", "start"]),
        )
        .map(drop)
    }

    /// The server crashes: every process ends at once, nothing is flushed or checkpointed,
    /// clients' connections break (`pg_ctl stop -m immediate`).
    pub fn crash(&self) -> io::Result<()> {
        self.stop("immediate")
    }

    fn stop(&self, mode: &str) -> io::Result<()> {
        checked(
            as_cluster_owner("pg_ctl")?
                .arg("-D")
                .arg(&self.data)
                .args(["-m", mode, "-w", "-s", "stop"]),
        )
        .map(drop)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn fresh_root() -> io::Result<PathBuf> {
    let root = std::env::temp_dir().join(format!(
        "advancia-faults-pg-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&root)?;
    Ok(root)
}

/// Debian keeps the server binaries in a versioned directory, off PATH.
fn bin(name: &str) -> io::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name} not found")))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// initdb and postgres refuse to run as root: as root, they run as `postgres`.
fn as_cluster_owner(name: &str) -> io::Result<Command> {
    let program = bin(name)?;
    Ok(if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    })
}

fn give_to_cluster_owner(dir: &Path) -> io::Result<()> {
    if is_root() {
        checked(Command::new("chown").args(["postgres:"]).arg(dir))?;
    }
    Ok(())
}

fn checked(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
