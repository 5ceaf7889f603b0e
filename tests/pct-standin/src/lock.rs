//! The config lock: `flock` on `run/lock/lxc/pve-config-<vmid>.lock`, given up after a
//! timeout with pct's message.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Failure;

/// Held while alive; the kernel drops the flock when the file closes.
#[derive(Debug)]
pub struct ConfigLock {
    _file: File,
}

/// Default wait: pct's 10 s, or `$PCT_STANDIN_LOCK_TIMEOUT` seconds so tests can provoke
/// the timeout quickly.
pub fn default_timeout() -> Duration {
    let secs = std::env::var("PCT_STANDIN_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(10.0);
    Duration::from_secs_f64(secs.max(0.0))
}

/// Takes the exclusive lock on `path`, waiting up to `timeout`.
pub fn lock_file(path: &Path, timeout: Duration) -> Result<ConfigLock, Failure> {
    lock_file_checked(path, timeout, || Ok(()))
}

/// [`lock_file`] that gives up early when `check` fails while it waits.
pub fn lock_file_checked(
    path: &Path,
    timeout: Duration,
    check: impl Fn() -> Result<(), Failure>,
) -> Result<ConfigLock, Failure> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(crate::io_fail("create", dir))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Failure::new(format!("can't open file - {e}")))?;
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(ConfigLock { _file: file });
        }
        check()?;
        if Instant::now() >= deadline {
            return Err(Failure::new(format!(
                "can't lock file '{}' - got timeout",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
