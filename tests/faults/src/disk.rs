//! A size-limited filesystem (tmpfs) a fault test fills up: a full disk without filling the
//! machine's. Mounting needs the right to mount (root in the sandbox the tests run in);
//! [`SmallDisk::mount`] says so plainly when it is not granted. Unmounted on drop.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `megabytes` on a fresh directory.
    pub fn mount(megabytes: u32) -> io::Result<SmallDisk> {
        let dir = std::env::temp_dir().join(format!(
            "advancia-faults-disk-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .output()?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "cannot mount a size-limited tmpfs here: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(SmallDisk { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}
