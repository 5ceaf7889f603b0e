//! The state store: one directory per container under `<root>/containers/`, holding the
//! container's record; backends keep their own state under `<root>/backends/<name>/`.
//!
//! Records are written to a temp file and renamed into place, so a reader sees the old
//! record or the new one, never a torn one. A record that must survive a power loss is
//! fsynced ([`ContainerLock::write`]); the `creating` marker of a create in progress is not
//! ([`ContainerLock::write_provisional`]): it only matters while its creator runs, and a
//! power loss ends that too. On a disk-backed root the fsyncs were most of proxcage's own
//! time in `create`. Every change to a container happens
//! under an exclusive `flock` on its directory; an operation that spans several containers
//! (VMID allocation, repair) takes the store-wide lock.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{openat, renameat, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};
use serde::{Deserialize, Serialize};

use proxcage_core::{ContainerId, Error, Result};

pub(crate) const RECORD: &str = "record.json";
pub(crate) const TMP_PREFIX: &str = "record.json.tmp.";
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for a lock before asking whether its holder is gone.
const STALE_CHECK_AFTER: Duration = Duration::from_millis(500);

/// Where a container is in proxcage's own create: `Creating` until the backend reported
/// success, so a record left in `Creating` by a crashed create can be found and repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Creating,
    Created,
}

/// What proxcage remembers of a container: above all, which backend owns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    id: ContainerId,
    backend: String,
    bundle: PathBuf,
    phase: Phase,
    /// RFC 3339, UTC.
    created: String,
    /// The proxcage process that is creating the container, while `phase` is `Creating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creator_pid: Option<u32>,
    /// Backend-specific data (a VMID, a template reference).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    backend_data: serde_json::Value,
}

impl Record {
    /// A record for a create that is starting now, in this process.
    pub fn creating(
        id: ContainerId,
        backend: impl Into<String>,
        bundle: impl Into<PathBuf>,
    ) -> Self {
        Record {
            id,
            backend: backend.into(),
            bundle: bundle.into(),
            phase: Phase::Creating,
            created: now_rfc3339(),
            creator_pid: Some(std::process::id()),
            backend_data: serde_json::Value::Null,
        }
    }

    /// The record of a container that exists in its backend but lost its record: rebuilt
    /// by `health --repair` from what the backend knows.
    pub fn restored(
        id: ContainerId,
        backend: impl Into<String>,
        bundle: impl Into<PathBuf>,
        created: impl Into<String>,
    ) -> Self {
        Record {
            id,
            backend: backend.into(),
            bundle: bundle.into(),
            phase: Phase::Created,
            created: created.into(),
            creator_pid: None,
            backend_data: serde_json::Value::Null,
        }
    }

    pub fn id(&self) -> &ContainerId {
        &self.id
    }
    pub fn backend(&self) -> &str {
        &self.backend
    }
    pub fn bundle(&self) -> &Path {
        &self.bundle
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn created(&self) -> &str {
        &self.created
    }
    pub fn creator_pid(&self) -> Option<u32> {
        self.creator_pid
    }
    pub fn backend_data(&self) -> &serde_json::Value {
        &self.backend_data
    }
    pub fn set_backend_data(&mut self, data: serde_json::Value) {
        self.backend_data = data;
    }

    /// Marks the create as finished.
    pub fn mark_created(&mut self) {
        self.phase = Phase::Created;
        self.creator_pid = None;
    }
}

/// The current time in RFC 3339 with nanoseconds, UTC, as runc writes `created`.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The store under one root directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
    containers: PathBuf,
}

impl StateStore {
    /// Opens the store at `root`, creating it (mode 0700) if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let containers = root.join("containers");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&containers)
            .map_err(|e| Error::io("cannot create the state directory", &containers, e))?;
        // Records are reached through `containers` by name: a link planted there would
        // send every write elsewhere.
        let meta = fs::symlink_metadata(&containers)
            .map_err(|e| Error::io("cannot inspect the state directory", &containers, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                "refusing to use the state directory",
                &containers,
                io::Error::other(
                    "it is a symbolic link or not a directory; proxcage creates it itself (mode 0700)",
                ),
            ));
        }
        Ok(StateStore { root, containers })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory a backend keeps its own state in (e.g. runc's `--root`).
    pub fn backend_root(&self, backend: &str) -> PathBuf {
        self.root.join("backends").join(backend)
    }

    /// [`StateStore::backend_root`], refused when it or `<root>/backends` is a symbolic
    /// link or not a directory: runc and crun would follow a planted link and write their
    /// state wherever it points. What does not exist yet is left for the backend to make.
    pub fn backend_dir(&self, backend: &str) -> Result<PathBuf> {
        let dir = self.backend_root(backend);
        for path in [self.root.join("backends"), dir.clone()] {
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(Error::io(
                        "refusing the backend state directory",
                        &path,
                        io::Error::other(
                            "it is a symbolic link or not a directory, which proxcage never makes: remove it",
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(Error::io("cannot inspect", &path, e)),
            }
        }
        Ok(dir)
    }

    /// The directory of container `id`'s record and lock.
    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        // A ContainerId is a single safe path component.
        self.containers.join(id.as_str())
    }

    /// Reads a container's record without locking: writes are atomic renames, so this
    /// sees a whole record or none.
    pub fn read(&self, id: &ContainerId) -> Result<Option<Record>> {
        let dir = self.container_dir(id);
        match open_container_dir(&dir)? {
            Some(fd) => read_record_at(&fd, &dir.join(RECORD)),
            None => Ok(None),
        }
    }

    /// Locks the container `id` for a change, creating its directory: for `create`.
    pub fn lock_new(&self, id: &ContainerId) -> Result<ContainerLock> {
        let dir = self.container_dir(id);
        loop {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("cannot create the container directory", &dir, e)),
            }
            match ContainerLock::acquire(id, &dir)? {
                Some(lock) => return Ok(lock),
                // Deleted while we waited: make it again.
                None => continue,
            }
        }
    }

    /// Locks an existing container for a change; `None` when it has no directory.
    pub fn lock_existing(&self, id: &ContainerId) -> Result<Option<ContainerLock>> {
        ContainerLock::acquire(id, &self.container_dir(id))
    }

    /// The ids that have a directory in the store, sorted.
    pub fn ids(&self) -> Result<Vec<ContainerId>> {
        let entries = fs::read_dir(&self.containers)
            .map_err(|e| Error::io("cannot read the state directory", &self.containers, e))?;
        let mut ids: Vec<ContainerId> = entries
            .filter_map(|entry| entry.ok())
            // A symbolic link in the store is not a container of ours.
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(|n| ContainerId::new(n).ok())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Every record, sorted by id. A record that cannot be read is returned as its error,
    /// so one bad file does not hide the others.
    pub fn records(&self) -> Result<Vec<Result<Record>>> {
        Ok(self
            .ids()?
            .iter()
            .filter_map(|id| self.read(id).transpose())
            .collect())
    }

    /// Replaces a container's directory by a fresh copy holding its record: a stale lock
    /// on the old directory (see [`crate::stale_lock`]) then no longer applies.
    /// Nothing is killed; whoever still holds the old directory holds nothing that counts.
    pub fn replace_container_dir(&self, id: &ContainerId) -> Result<String> {
        let dir = self.container_dir(id);
        let pid = std::process::id();
        let fresh = self.containers.join(format!("~new.{pid}"));
        let old = self.containers.join(format!("~old.{pid}"));
        let _ = fs::remove_dir_all(&fresh);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&fresh)
            .map_err(|e| Error::io("cannot create", &fresh, e))?;
        match fs::read(dir.join(RECORD)) {
            Ok(bytes) => {
                let copy = fresh.join(RECORD);
                let write = || -> io::Result<()> {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&copy)?;
                    f.write_all(&bytes)?;
                    f.sync_all()
                };
                write().map_err(|e| Error::io("cannot write", &copy, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot read", dir.join(RECORD), e)),
        }
        fs::rename(&dir, &old).map_err(|e| Error::io("cannot move aside", &dir, e))?;
        fs::rename(&fresh, &dir).map_err(|e| Error::io("cannot move into place", &fresh, e))?;
        fs::remove_dir_all(&old).map_err(|e| Error::io("cannot remove", &old, e))?;
        Ok(format!(
            "replaced the directory of container {id} (the stale lock stays on the old one)"
        ))
    }

    /// Takes the store-wide lock, for work that spans containers.
    pub fn lock_store(&self) -> Result<StoreLock> {
        let path = self.root.join("store.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("cannot open the store lock", &path, e))?;
        let flock = flock_with_timeout(file, &path)?;
        Ok(StoreLock { _flock: flock })
    }
}

/// Holds the store-wide lock until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _flock: Flock<File>,
}

/// Exclusive hold on one container's directory until dropped. Dropping it removes the
/// directory if no record was written (a create that failed leaves nothing behind).
#[derive(Debug)]
pub struct ContainerLock {
    id: ContainerId,
    path: PathBuf,
    dir: Flock<File>,
}

impl ContainerLock {
    /// `None` when the directory does not exist or was removed while we waited.
    fn acquire(id: &ContainerId, path: &Path) -> Result<Option<Self>> {
        let Some(fd) = open_container_dir(path)? else {
            return Ok(None);
        };
        let dir = flock_with_timeout(File::from(fd), path)?;
        // Removed, or removed and made anew, while we waited: the lock is on a directory
        // that is no longer the container's.
        let ours = dir
            .metadata()
            .map_err(|e| Error::io("cannot stat the container directory", path, e))?;
        if ours.nlink() == 0 || !same_inode(&ours, path) {
            return Ok(None);
        }
        Ok(Some(ContainerLock {
            id: id.clone(),
            path: path.to_path_buf(),
            dir,
        }))
    }

    pub fn id(&self) -> &ContainerId {
        &self.id
    }

    /// The container's own directory in the store, for files a backend keeps per container.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn record(&self) -> Result<Option<Record>> {
        read_record_at(&*self.dir, &self.path.join(RECORD))
    }

    /// Replaces the record atomically and durably: temp file, fsync, rename, fsync of the
    /// directory.
    pub fn write(&self, record: &Record) -> Result<()> {
        self.replace(record, true)
    }

    /// Replaces the record atomically, without waiting for the disk: for a record that
    /// only matters while this process runs (the `creating` marker of a create, or of a
    /// foreground `run` whose record goes when it ends). A process crash still leaves
    /// the old record or the new one; a power loss may leave neither, or an empty file,
    /// which `delete --force` removes.
    pub fn write_provisional(&self, record: &Record) -> Result<()> {
        self.replace(record, false)
    }

    fn replace(&self, record: &Record, durable: bool) -> Result<()> {
        let tmp = format!("{TMP_PREFIX}{}", std::process::id());
        let tmp_path = self.path.join(&tmp);
        let fail = |e: io::Error| Error::io("cannot write the record", &tmp_path, e);
        // A file already there (left by a crash, or planted as a hard link to some other
        // file) is removed, never opened: O_TRUNC would write through a hard link.
        match unlinkat(self.dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(fail(e.into())),
        }
        let fd = openat(
            self.dir.as_fd(),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| fail(e.into()))?;
        let mut file = File::from(fd);
        let json = serde_json::to_vec(record).map_err(|e| fail(io::Error::other(e)))?;
        file.write_all(&json).map_err(fail)?;
        if durable {
            file.sync_all().map_err(fail)?;
        }
        renameat(self.dir.as_fd(), tmp.as_str(), self.dir.as_fd(), RECORD)
            .map_err(|e| fail(e.into()))?;
        if durable {
            fsync(self.dir.as_fd()).map_err(|e| fail(e.into()))?;
        }
        Ok(())
    }

    /// Removes the record and the container's directory.
    pub fn remove(self) -> Result<()> {
        self.remove_dir_contents()?;
        // Only the directory this lock holds: never one made anew at the same path.
        let held = self
            .dir
            .metadata()
            .map_err(|e| Error::io("cannot stat the container directory", &self.path, e))?;
        if !same_inode(&held, &self.path) {
            return Ok(());
        }
        match fs::remove_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                "cannot remove the container directory",
                &self.path,
                e,
            )),
        }
    }

    fn remove_dir_contents(&self) -> Result<()> {
        let entries = fs::read_dir(&self.path)
            .map_err(|e| Error::io("cannot read the container directory", &self.path, e))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let flag = if is_dir {
                UnlinkatFlags::RemoveDir
            } else {
                UnlinkatFlags::NoRemoveDir
            };
            match unlinkat(self.dir.as_fd(), name.as_os_str(), flag) {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    return Err(Error::io("cannot remove", entry.path(), e.into()));
                }
            }
        }
        Ok(())
    }
}

impl Drop for ContainerLock {
    fn drop(&mut self) {
        // A directory without a record is one a failed create made: take it away. The
        // flock is still held here, so nobody is writing a record into it right now.
        let has_record = openat(
            self.dir.as_fd(),
            RECORD,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .is_ok();
        // By path, so only while the path is still this lock's directory: after `remove`
        // (or a delete by someone else) it may be a new one that another create holds.
        let held = self.dir.metadata();
        if !has_record
            && held.is_ok_and(|m| m.nlink() > 0 && same_inode(&m, &self.path))
            && self.remove_dir_contents().is_ok()
        {
            let _ = fs::remove_dir(&self.path);
        }
    }
}

/// Opens a container's directory without following a link: `None` when it does not
/// exist. A link or a file in its place is an error (nobody but proxcage puts anything
/// under `containers/`).
fn open_container_dir(path: &Path) -> Result<Option<std::os::fd::OwnedFd>> {
    match nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP) => Err(Error::io(
            "refusing the container directory",
            path,
            io::Error::other(
                "it is a symbolic link or not a directory, which proxcage never makes: remove it",
            ),
        )),
        Err(e) => Err(Error::io(
            "cannot open the container directory",
            path,
            e.into(),
        )),
    }
}

/// Reads `record.json` in the container directory `dir` (an fd opened without following
/// links); `path` is for messages. The record itself must not be a link either.
fn read_record_at(dir: &impl AsFd, path: &Path) -> Result<Option<Record>> {
    let mut file = match openat(
        dir.as_fd(),
        RECORD,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::io("cannot open the record", path, e.into())),
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::io("cannot inspect the record", path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            "cannot read the record",
            path,
            io::Error::other("it is not a regular file"),
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("cannot read the record", path, e))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| Error::CorruptRecord {
            path: path.to_path_buf(),
            source,
        })
}

/// Whether `path` (not followed) is the file `meta` describes.
fn same_inode(meta: &fs::Metadata, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
}

/// Takes an exclusive flock, waiting up to [`LOCK_TIMEOUT`]: a lock held longer than that
/// belongs to a stuck process, and the operator should hear about it.
fn flock_with_timeout(file: File, path: &Path) -> Result<Flock<File>> {
    wait_for_flock(file, path, "the container's lock", LOCK_TIMEOUT)
}

/// Takes an exclusive flock on `file` (opened at `path`; `what` names the lock for the
/// operator), waiting up to `timeout`. A signal noted meanwhile
/// ([`proxcage_process::note_signal`]: SIGINT, SIGTERM or SIGHUP to a command that defers
/// them) ends the wait at once; a lock whose taker is gone while a process it left behind
/// holds it (see [`crate::stale_lock`]) is reported at once rather than after the whole
/// timeout; a timeout names the process that holds the lock.
pub fn wait_for_flock(
    file: File,
    path: &Path,
    what: &str,
    timeout: Duration,
) -> Result<Flock<File>> {
    flock_until(file, path, what, timeout, proxcage_process::noted_signal)
}

fn flock_until(
    file: File,
    path: &Path,
    what: &str,
    timeout: Duration,
    interrupted: impl Fn() -> Option<nix::sys::signal::Signal>,
) -> Result<Flock<File>> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut file = file;
    let mut pause = Duration::from_millis(1);
    let stale_check = started + STALE_CHECK_AFTER;
    let mut checked = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => return Ok(flock),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if interrupted().is_some() => {
                let signal = interrupted().map_or("a signal", |s| s.as_str());
                return Err(Error::io(
                    "gave up waiting for the lock on",
                    path,
                    io::Error::new(
                        io::ErrorKind::Interrupted,
                        format!(
                            "{what}, held by {}: proxcage received {signal}",
                            crate::stale::describe_holder(path)
                        ),
                    ),
                ));
            }
            Err((back, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                if !checked && Instant::now() >= stale_check {
                    // A lock whose taker is gone is never released: say so now rather
                    // than after the whole timeout.
                    checked = true;
                    if let Some(stale) = crate::stale::stale_lock(path) {
                        return Err(Error::StaleLock {
                            path: path.to_path_buf(),
                            detail: crate::stale::describe_stale(&stale),
                        });
                    }
                }
                file = back;
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(Error::io(
                    "timed out waiting for the lock on",
                    path,
                    io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "{what} has been held for {} s by {}, which still runs: find what it waits for ('cat /proc/PID/stack', 'ps -o args PID'), or stop it",
                            started.elapsed().as_secs(),
                            crate::stale::describe_holder(path)
                        ),
                    ),
                ));
            }
            Err((_, e)) => return Err(Error::io("cannot lock", path, e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContainerId {
        ContainerId::new(s).unwrap()
    }

    #[test]
    fn record_round_trip_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path().join("root")).unwrap();
        let lock = store.lock_new(&id("a")).unwrap();
        let mut record = Record::creating(id("a"), "runc", "/b");
        lock.write(&record).unwrap();
        assert_eq!(
            store.read(&id("a")).unwrap().unwrap().phase(),
            Phase::Creating
        );
        record.mark_created();
        // A backend's own data (the pct backend's VMID) comes back as written.
        record.set_backend_data(serde_json::json!({"vmid": 105}));
        lock.write(&record).unwrap();
        let read = store.read(&id("a")).unwrap().unwrap();
        assert_eq!(read, record);
        assert_eq!(read.backend_data()["vmid"], 105);
        assert_eq!(lock.id(), &id("a"));
        assert_eq!(lock.path(), store.container_dir(&id("a")));
        let mode = fs::metadata(store.container_dir(&id("a")).join(RECORD))
            .unwrap()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        lock.remove().unwrap();
        assert!(store.read(&id("a")).unwrap().is_none());
        assert!(store.ids().unwrap().is_empty());
    }

    #[test]
    fn a_noted_signal_ends_the_wait_for_a_held_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("locked");
        fs::create_dir(&path).unwrap();
        let _held = Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusive).unwrap();
        let waits = std::cell::Cell::new(0);
        let started = Instant::now();
        let err = flock_until(
            File::open(&path).unwrap(),
            &path,
            "the test's lock",
            LOCK_TIMEOUT,
            || {
                waits.set(waits.get() + 1);
                (waits.get() > 3).then_some(nix::sys::signal::Signal::SIGTERM)
            },
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("gave up waiting for the lock on")
                && message.contains(&path.display().to_string())
                && message.contains("proxcage received SIGTERM"),
            "{message}"
        );
        // Given up at the signal, not after the 60 s timeout.
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_failed_create_leaves_no_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        drop(store.lock_new(&id("gone")).unwrap());
        assert!(store.ids().unwrap().is_empty());
        assert!(store.lock_existing(&id("gone")).unwrap().is_none());
    }

    #[test]
    fn corrupt_record_names_the_file_and_the_repair() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        fs::create_dir(store.container_dir(&id("bad"))).unwrap();
        fs::write(store.container_dir(&id("bad")).join(RECORD), b"{not json").unwrap();
        let err = store.read(&id("bad")).unwrap_err().to_string();
        assert!(
            err.contains("record.json") && err.contains("delete --force"),
            "{err}"
        );
        assert_eq!(store.records().unwrap().len(), 1);
    }

    /// How many of this process's open files are the directory `path`.
    fn opened(path: &Path) -> usize {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| fs::read_link(e.path()).is_ok_and(|target| target == path))
            .count()
    }

    #[test]
    fn a_lock_waited_for_on_a_directory_moved_aside_and_replaced_is_not_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let held = store.lock_new(&id("moved")).unwrap();
        held.write(&Record::creating(id("moved"), "old", "/b"))
            .unwrap();
        let dir = store.container_dir(&id("moved"));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| store.lock_existing(&id("moved")));
            // The waiter has opened the directory (a second open file names it) and waits
            // for the lock the test holds.
            let deadline = Instant::now() + Duration::from_secs(10);
            while opened(&dir) < 2 {
                assert!(
                    Instant::now() < deadline,
                    "lock_existing never opened {dir:?}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            // As a repair does: the directory moves aside (still linked, so only its
            // inode tells it apart) and a new one with a new record takes its place.
            fs::rename(&dir, tmp.path().join("aside")).unwrap();
            fs::create_dir(&dir).unwrap();
            let new = Record::creating(id("moved"), "new", "/b");
            fs::write(dir.join(RECORD), serde_json::to_vec(&new).unwrap()).unwrap();
            drop(held);
            match waiter.join().unwrap().unwrap() {
                None => {}
                Some(lock) => assert_eq!(
                    lock.record().unwrap().unwrap().backend(),
                    "new",
                    "the lock is on the directory moved aside"
                ),
            }
        });
    }

    #[test]
    fn a_reader_that_opened_the_record_never_sees_a_write_in_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let lock = store.lock_new(&id("r")).unwrap();
        let first = Record::creating(id("r"), "first", "/b");
        lock.write(&first).unwrap();
        let path = store.container_dir(&id("r")).join(RECORD);
        for durable in [true, false] {
            let before = lock.record().unwrap().unwrap();
            let mut reader = File::open(&path).unwrap();
            let mut next = before.clone();
            next.mark_created();
            next.set_backend_data(
                serde_json::json!({ "pad": "x".repeat(200_000), "durable": durable }),
            );
            if durable {
                lock.write(&next).unwrap();
            } else {
                lock.write_provisional(&next).unwrap();
            }
            // The reader still reads the whole record it opened: each write is a new file
            // renamed into place, never a change to the file a reader holds.
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).unwrap();
            let seen: Record = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("a reader saw a torn record ({e})"));
            assert_eq!(seen, before, "a reader saw the record change under it");
            assert_eq!(store.read(&id("r")).unwrap().unwrap(), next);
        }
    }

    #[test]
    fn parallel_writers_never_lose_or_tear_a_record() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..20 {
                        let name = format!("c{}", (t * 20 + i) % 10);
                        let lock = store.lock_new(&id(&name)).unwrap();
                        let record = Record::creating(id(&name), format!("b{t}"), "/x");
                        lock.write(&record).unwrap();
                        assert_eq!(lock.record().unwrap().unwrap().backend(), format!("b{t}"));
                        if i % 3 == 0 {
                            lock.remove().unwrap();
                        }
                    }
                });
            }
        });
        for record in store.records().unwrap() {
            record.unwrap();
        }
    }
}
