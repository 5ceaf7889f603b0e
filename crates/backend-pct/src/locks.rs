//! The pct backend's waits for locks, and its own lock files.
//!
//! Every wait goes through [`proxcage_store::wait_for_flock`]: it ends at SIGTERM (and
//! SIGINT, SIGHUP) noted by the command, reports a lock whose taker is gone while a child
//! it left behind holds the file, and a timeout names the lock and its holder.
//!
//! proxcage's own lock files ([`take`]) also say who took them and since when (one line,
//! `pid <pid> since <unix seconds>: <what>`), so that `health` can report a lock held
//! longer than [`HELD_TOO_LONG`]; they may be removed by their last user while others
//! wait, and a waiter that gets the lock of a removed file takes the new one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::Flock;
use proxcage_core::{Error, Result};

/// A lock held longer than this is reported by `health` (`lock-held-long`).
pub(crate) const HELD_TOO_LONG: Duration = Duration::from_secs(600);

/// Waits up to `timeout` for an exclusive flock on `path` (created if needed), a lock
/// another program also takes (Proxmox's config lock): nothing is written into it.
pub(crate) fn wait(path: &Path, what: &str, timeout: Duration) -> Result<Flock<File>> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("cannot open the lock", path, e))?;
    proxcage_store::wait_for_flock(file, path, what, timeout)
}

/// Takes proxcage's own lock `path` ([`wait`]) and writes the taker into it.
pub(crate) fn take(path: &Path, what: &str, timeout: Duration) -> Result<Flock<File>> {
    loop {
        let mut held = wait(path, what, timeout)?;
        let meta = held
            .metadata()
            .map_err(|e| Error::io("cannot inspect the lock", path, e))?;
        let current = fs::metadata(path).ok();
        let same = current.is_some_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
        if meta.nlink() == 0 || !same {
            // Removed by its last user while we waited: the lock is the new file's.
            continue;
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let line = format!("pid {} since {since}: {what}\n", std::process::id());
        held.set_len(0)
            .and_then(|()| held.write_all(line.as_bytes()))
            .map_err(|e| Error::io("cannot write the taker into the lock", path, e))?;
        return Ok(held);
    }
}

/// Removes the lock file `path` while its lock is held: waiters take the next file.
pub(crate) fn remove_held(path: &Path, _held: &Flock<File>) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove the lock {}: {e}", path.display()),
    }
}

/// Who holds proxcage's lock `path` now, and for how long: `None` while it is free.
pub(crate) fn held_for(path: &Path) -> Option<(u32, Duration, String)> {
    let holder = proxcage_store::lock_holder(path)?;
    let text = fs::read_to_string(path).ok()?;
    let rest = text.trim().strip_prefix("pid ")?;
    let (pid, rest) = rest.split_once(" since ")?;
    let (since, what) = rest.split_once(": ")?;
    let since = UNIX_EPOCH + Duration::from_secs(since.parse().ok()?);
    let age = SystemTime::now().duration_since(since).unwrap_or_default();
    // The holder /proc/locks shows is the taker, or a process it left the file to.
    let taker: u32 = pid.parse().unwrap_or(holder);
    Some((taker, age, what.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_says_who_took_it_and_a_removed_one_is_taken_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let held = take(&path, "the test's lock", Duration::from_secs(5)).unwrap();
        let (pid, age, what) = held_for(&path).unwrap();
        assert_eq!(pid, std::process::id());
        assert!(age < Duration::from_secs(60));
        assert_eq!(what, "the test's lock");
        // A waiter on the old file gets the new one once the holder removes it.
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || take(&path, "the waiter", Duration::from_secs(5)).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(100));
        remove_held(&path, &held);
        drop(held);
        waiter.join().unwrap().unwrap();
        assert!(held_for(&path).is_none(), "free again");
    }
}
