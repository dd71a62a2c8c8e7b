//! A real SMTP server for tests: Python's `aiosmtpd` (PyPI, in the test virtualenv named by
//! `ADVANCIA_PYTHON`, which `cargo xtask test` sets) storing what it receives in a maildir.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The test virtualenv's interpreter, else `python3`.
pub fn python() -> String {
    std::env::var("ADVANCIA_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// An aiosmtpd server on a free loopback port; killed, and its maildir removed, on drop.
pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    child: tokio::process::Child,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("bound").port()
        };
        let dir = std::env::temp_dir().join(format!(
            "advancia-smtp-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let child = tokio::process::Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 is needed for the SMTP tests (cargo xtask test installs it)");
        let mut sink = SmtpSink { port, dir, child };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return sink;
            }
            if let Ok(Some(status)) = sink.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = sink.child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut err).await;
                }
                panic!(
                    "aiosmtpd exited ({status}); is the PyPI package `aiosmtpd` installed? `cargo xtask test` installs it: {err}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not listen on port {port} within 10 s");
    }

    /// Where received messages land (`new/` holds one file per message).
    pub fn maildir(&self) -> PathBuf {
        self.dir.join("maildir")
    }

    /// The raw messages received so far (RFC 5322 text).
    pub fn raw_messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir().join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }
}
