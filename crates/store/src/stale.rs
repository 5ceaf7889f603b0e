//! Stale locks: a flock whose taker is gone while another process (a child it left
//! behind) still holds the open file description, so every proxcage command waiting for
//! the lock would wait forever.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use proxcage_process::pid_alive;

/// A flock on a file or directory that the process which took it no longer holds: the
/// open file description lives on in another process (a child it left behind), so every
/// proxcage command waiting for the lock would wait forever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleLock {
    /// The process that took the lock, now gone.
    pub taken_by: u32,
    /// The processes that still hold it open (may be empty if /proc hides them).
    pub held_by: Vec<u32>,
}

/// The stale lock on `path`, if there is one. `None` also when the lock is free or held by
/// the live process that took it.
///
/// /proc/locks is read before its taker is looked for, so a taker that released the lock
/// and exited in between would look dead with its lock held: the lock counts as stale
/// only if it still cannot be taken afterwards and /proc/locks still names the same dead
/// taker.
pub fn stale_lock(path: &Path) -> Option<StaleLock> {
    let meta = fs::metadata(path).ok()?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let taken_by = lock_taker(dev, ino)?;
    if pid_alive(taken_by) || lock_is_free(path) {
        return None;
    }
    if lock_taker(dev, ino) != Some(taken_by) || pid_alive(taken_by) {
        return None;
    }
    Some(StaleLock {
        taken_by,
        held_by: processes_with_open(dev, ino),
    })
}

/// The pid /proc/locks gives for the flock on the file (dev, ino): the process that took it.
fn lock_taker(dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 15938 fe:00:10019137 0 EOF"
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (pid, file) = if fields.get(1) == Some(&"->") {
            (fields.get(5)?, fields.get(6)?)
        } else {
            (fields.get(4)?, fields.get(5)?)
        };
        let mut parts = file.split(':');
        let maj = u32::from_str_radix(parts.next()?, 16).ok()?;
        let min = u32::from_str_radix(parts.next()?, 16).ok()?;
        let file_ino: u64 = parts.next()?.parse().ok()?;
        // major() and minor() give u32 on Linux, i32 elsewhere.
        let same_device = i64::from(maj) == i64::from(major) && i64::from(min) == i64::from(minor);
        (same_device && file_ino == ino)
            .then(|| pid.parse::<u32>().ok())
            .flatten()
    })
}

/// Whether an exclusive flock on `path` can be taken right now (it is released at once).
fn lock_is_free(path: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    fs::File::open(path)
        .ok()
        .is_some_and(|file| Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok())
}

/// Pids of processes with an open fd on the file (dev, ino), as far as /proc shows them.
fn processes_with_open(dev: u64, ino: u64) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in procs.filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .filter_map(|e| e.ok())
            .any(|fd| fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino));
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// Describes a stale lock for messages.
pub fn describe_stale(lock: &StaleLock) -> String {
    let holders = if lock.held_by.is_empty() {
        "a process /proc does not show".to_string()
    } else {
        lock.held_by
            .iter()
            .map(|pid| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("{pid} ({})", comm.trim())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "it was taken by process {}, which is gone, and is still held by {holders}",
        lock.taken_by
    )
}

/// The process that took the flock on `path`, as /proc/locks gives it; `None` when the
/// lock is free (or /proc/locks does not show it).
pub fn lock_holder(path: &Path) -> Option<u32> {
    let meta = fs::metadata(path).ok()?;
    lock_taker(meta.dev(), meta.ino())
}

/// The holder of the flock on `path` in words, for messages: `process 1234 (proxcage)`.
pub fn describe_holder(path: &Path) -> String {
    match lock_holder(path) {
        Some(pid) => {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let args = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    b.split(|&c| c == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let mut args: String = args.chars().take(120).collect();
            if args.is_empty() {
                args = comm.trim().to_string();
            }
            format!("process {pid} ({args})")
        }
        None => "a process /proc/locks does not show".into(),
    }
}

/// Whether some process holds the flock on `path` right now.
pub(crate) fn locked(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(_) => false,
        Err((_, e)) => e == nix::errno::Errno::EWOULDBLOCK,
    }
}
