//! An exec enters the CT it read from the container's record, not whichever CT has that
//! VMID by the time `pct exec` runs.
//!
//! An exec reads the record, writes its process file into the container's files
//! directory and runs `pct exec VMID`. If a `delete` destroys the CT in between and a
//! `create` is given the freed VMID, `pct exec` enters the new CT, where the process file
//! is not (the init then fails with "cannot read the process file"). So the VMID has an
//! attach lock under the backend's root: an exec holds it shared from its read of the
//! record until its process has opened the process file inside the CT, and `delete`
//! holds it exclusively from before it destroys the CT until the record is gone. An exec
//! that waited for a delete reads the record again: the container no longer exists, or
//! it was created anew and the exec enters its new CT.
//!
//! The locks are byte-range locks on one file, `attach.lock`, the byte at the VMID's
//! offset for each VMID (open file description locks: released when the file is closed,
//! and no file per VMID left behind).

use std::fs::{self, File};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use proxcage_core::{ContainerId, Error, Result};

use crate::vmid::Vmid;

/// How long a delete waits for execs entering the CT (each waits at most the init's
/// timeout, 60 s, for its process to open the process file), and an exec for a delete.
const WAIT: Duration = Duration::from_secs(90);

/// A VMID's attach lock, held until dropped.
#[derive(Debug)]
pub(crate) struct Held {
    _file: File,
}

/// Held by `id`'s exec while it enters the CT: a delete waits for it.
pub(crate) fn entering(root: &Path, vmid: Vmid, id: &ContainerId) -> Result<Held> {
    lock(root, vmid, libc::F_RDLCK, WAIT).map_err(gave_up(
        id,
        format!(
            "a delete of its CT {vmid} has not finished in {} s; the exec gave up",
            WAIT.as_secs()
        ),
    ))
}

/// Held by `id`'s delete while it destroys the CT and forgets it: execs wait for it.
pub(crate) fn destroying(root: &Path, vmid: Vmid, id: &ContainerId) -> Result<Held> {
    lock(root, vmid, libc::F_WRLCK, WAIT).map_err(gave_up(
        id,
        format!(
            "an exec has been entering its CT {vmid} for {} s; the delete gave up: \
             try again once that exec has started or failed",
            WAIT.as_secs()
        ),
    ))
}

/// The error of a [`lock`] that failed, or that others held for too long (`message`).
fn gave_up(id: &ContainerId, message: String) -> impl FnOnce(Option<Error>) -> Error + '_ {
    move |e| {
        e.unwrap_or_else(|| Error::Conflict {
            id: id.clone(),
            message,
        })
    }
}

/// Takes the lock of `kind` on `vmid`'s byte within `timeout`: `Err(None)` when it is
/// still held by others then.
fn lock(
    root: &Path,
    vmid: Vmid,
    kind: libc::c_int,
    timeout: Duration,
) -> std::result::Result<Held, Option<Error>> {
    // The root holds the container's record: it exists.
    let path = root.join("attach.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("cannot open the lock", &path, e))?;
    let range = libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: libc::off_t::from(vmid.get()),
        l_len: 1,
        l_pid: 0,
    };
    let deadline = Instant::now() + timeout;
    loop {
        match fcntl(&file, FcntlArg::F_OFD_SETLK(&range)) {
            Ok(_) => return Ok(Held { _file: file }),
            Err(Errno::EAGAIN | Errno::EACCES) if proxcage_process::noted_signal().is_some() => {
                let signal = proxcage_process::noted_signal().map_or("a signal", |s| s.as_str());
                return Err(Some(Error::io(
                    "gave up waiting for the lock on",
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::Interrupted,
                        format!("the attach lock of VMID {vmid}: proxcage received {signal}"),
                    ),
                )));
            }
            Err(Errno::EAGAIN | Errno::EACCES) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(Errno::EAGAIN | Errno::EACCES) => return Err(None),
            Err(e) => return Err(Some(Error::io("cannot lock", &path, e.into()))),
        }
    }
}

/// A watch for the first open of a process file (inotify sees opens through any mount of
/// the file, the CT's bind mount included).
pub(crate) struct Opened(Option<Inotify>);

impl Opened {
    /// Watches `file`. Without inotify (its limits reached) the watch says nothing and
    /// [`Opened::wait`] returns at once: the exec runs as it would without the lock.
    pub(crate) fn watch(file: &Path) -> Opened {
        let watch =
            Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).and_then(|inotify| {
                inotify.add_watch(file, AddWatchFlags::IN_OPEN)?;
                Ok(inotify)
            });
        match watch {
            Ok(inotify) => Opened(Some(inotify)),
            Err(e) => {
                tracing::warn!("cannot watch {} for its opening: {e}", file.display());
                Opened(None)
            }
        }
    }

    /// Waits until the file has been opened, `gone()` says the process that would open
    /// it has exited, or `timeout` has passed. Whether it was opened.
    pub(crate) fn wait(&self, timeout: Duration, mut gone: impl FnMut() -> bool) -> bool {
        let Some(inotify) = &self.0 else {
            return false;
        };
        let deadline = Instant::now() + timeout;
        loop {
            if inotify.read_events().is_ok_and(|events| !events.is_empty()) {
                return true;
            }
            if gone() || Instant::now() >= deadline {
                return false;
            }
            let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
            // Short rounds: `gone()` has no descriptor to wait on.
            let _ = poll(&mut fds, PollTimeout::from(10u8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_of_the_file_ends_the_wait_and_its_absence_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exec.process");
        std::fs::write(&file, b"x").unwrap();
        let opened = Opened::watch(&file);
        // Nobody opens it: the wait ends when the opener is gone, saying so.
        let mut asked = 0;
        assert!(!opened.wait(Duration::from_secs(30), || {
            asked += 1;
            asked > 3
        }));
        let reader = std::thread::spawn({
            let file = file.clone();
            move || {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::read(&file).unwrap()
            }
        });
        assert!(opened.wait(Duration::from_secs(30), || false));
        assert_eq!(reader.join().unwrap(), b"x");
    }

    #[test]
    fn an_exec_waits_for_a_delete_and_a_delete_for_execs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let vmid = Vmid::new(100).unwrap();
        let short = Duration::from_millis(100);
        let held_up = |r: std::result::Result<Held, Option<Error>>| matches!(r, Err(None));
        let exec = lock(root, vmid, libc::F_RDLCK, short).unwrap();
        // Execs share it; a delete waits for them.
        let other = lock(root, vmid, libc::F_RDLCK, short).unwrap();
        assert!(held_up(lock(root, vmid, libc::F_WRLCK, short)));
        drop((exec, other));
        let delete = lock(root, vmid, libc::F_WRLCK, short).unwrap();
        assert!(held_up(lock(root, vmid, libc::F_RDLCK, short)));
        // Another VMID is not held up.
        lock(root, Vmid::new(101).unwrap(), libc::F_RDLCK, Duration::ZERO).unwrap();
        drop(delete);
        lock(root, vmid, libc::F_RDLCK, Duration::ZERO).unwrap();
        let left: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["attach.lock"]);
    }
}
