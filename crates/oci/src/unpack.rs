//! Applying tar streams (image layers, rootfs tarballs) to a root filesystem directory
//! without ever touching anything outside it.
//!
//! Every path is resolved from a file descriptor of the root with `openat2`'s
//! `RESOLVE_IN_ROOT`: a symlink in the tree, absolute or full of `..`, resolves as if the
//! root were `/`, the way it will inside the container, and never leads out. Entry names
//! with a `..` component are refused outright: no legitimate layer has them. The last
//! component of a path is never followed: entries replace what is there.
//!
//! Layers follow the OCI image spec's changeset rules: `.wh.<name>` deletes `<name>` from
//! the layers below, `.wh..wh..opq` empties its directory of what the layers below put
//! there, and an entry replaces an existing non-directory or a directory of a different
//! type. Owners are numeric; modes (setuid and all), xattrs (`SCHILY.xattr.*`), device
//! numbers, hardlinks and mtimes are kept. Without root, owners and device nodes cannot
//! be made: they are skipped, as rootless unpackers do.

use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::tar_read::{self, Next, TarReader};
use crate::untrusted::UntrustedFile;
use crate::ustar::Kind;

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What went wrong applying one entry of a stream.
#[derive(Debug)]
pub(crate) enum UnpackError {
    /// The stream itself: truncated, corrupt, not a tar.
    Stream(io::Error),
    /// An entry name with `..`, or a hardlink target with one.
    Escape { entry: String },
    /// A system call on an entry failed.
    Entry { entry: String, source: io::Error },
    /// An entry of a type a root filesystem cannot hold.
    Unsupported { entry: String, kind: String },
    /// A regular file whose data would take what the streams wrote past the limit.
    TooLarge { entry: String, limit: u64 },
}

fn escape(entry: &[u8]) -> UnpackError {
    UnpackError::Escape {
        entry: String::from_utf8_lossy(entry).into_owned(),
    }
}

fn entry_error(entry: &[u8]) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Entry {
        entry: String::from_utf8_lossy(entry).into_owned(),
        source,
    }
}

/// A root filesystem directory being written.
pub(crate) struct Rootfs {
    root: OwnedFd,
    path: PathBuf,
    privileged: bool,
    /// Directory mtimes to set once a stream is done (creating entries moves them): those
    /// of directory entries, and the earlier ones of directories an entry changed.
    dir_times: HashMap<Vec<u8>, libc::timespec>,
    /// Paths written by the current stream and the directories above them, which an
    /// opaque whiteout keeps.
    written: HashSet<Vec<u8>>,
    /// The last parent directory resolved, by path.
    cached: Option<(Vec<u8>, OwnedFd)>,
    /// The most file data the streams may write, and what they wrote so far.
    data_limit: u64,
    data_written: u64,
}

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The components of an entry name, without `.`, empty ones and a leading `/`; `None`
/// when one of them is `..`.
pub(crate) fn components(name: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Metadata of one entry, from its header and pax records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where an entry goes: its parent directory (resolved inside the root) and its name.
struct Target<'a> {
    parent: OwnedFd,
    name: &'a [u8],
    cname: CString,
    /// The entry's name as the stream has it, for errors.
    raw: &'a [u8],
}

impl Rootfs {
    /// Opens the existing directory `path` as the root. File data is not limited until
    /// [`Rootfs::data_limit`] says so.
    pub(crate) fn open(path: &Path) -> io::Result<Rootfs> {
        let root = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Rootfs {
            root,
            path: path.to_path_buf(),
            privileged: nix::unistd::geteuid().is_root(),
            dir_times: HashMap::new(),
            written: HashSet::new(),
            cached: None,
            data_limit: u64::MAX,
            data_written: 0,
        })
    }

    /// Limits the file data written by all the streams applied to `limit` bytes: an entry
    /// that would take the total past it is refused before it is written.
    pub(crate) fn data_limit(mut self, limit: u64) -> Rootfs {
        self.data_limit = limit;
        self
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` (components joined by `/`) inside the root, symlinks resolved in it.
    fn resolve(&self, rel: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root.as_fd(), OsStr::from_bytes(rel), how).map_err(errno)
    }

    /// The directory `comps` as an `O_PATH` descriptor, created (0755, root) where missing.
    fn parent(&mut self, comps: &[&[u8]]) -> io::Result<BorrowedFd<'_>> {
        let key = comps.join(&b'/');
        if self.cached.as_ref().is_none_or(|(k, _)| *k != key) {
            let fd = match self.resolve(&key, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.create_dirs(comps)?,
                Err(e) => return Err(e),
            };
            self.cached = Some((key, fd));
        }
        // Just set above when it was not already there.
        Ok(self
            .cached
            .as_ref()
            .map(|(_, fd)| fd.as_fd())
            .expect("cached parent"))
    }

    fn create_dirs(&self, comps: &[&[u8]]) -> io::Result<OwnedFd> {
        let mut fd = self.resolve(b"", OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        for i in 0..comps.len() {
            let prefix = comps[..=i].join(&b'/');
            fd = match self.resolve(&prefix, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = cstr(comps[i])?;
                    // SAFETY: name is NUL-terminated, fd is a valid directory descriptor.
                    check(unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o755) })?;
                    self.resolve(&prefix, OFlag::O_PATH | OFlag::O_DIRECTORY)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(fd)
    }

    /// Creates the directory `path` and its parents where missing.
    pub(crate) fn mkdir_all(&mut self, path: &[u8]) -> io::Result<()> {
        let comps = components(path).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "path has a .. component")
        })?;
        self.cached = None;
        self.create_dirs(&comps).map(drop)
    }

    /// A text file of at most 1 MiB inside the root (symlinks resolved in it), or `None`
    /// when there is none, or it is larger, or not a regular file (a FIFO would block).
    pub(crate) fn read_small(&self, path: &[u8]) -> Option<String> {
        let fd = self.resolve(path, OFlag::O_PATH).ok()?;
        let name = self.path.join(OsStr::from_bytes(path));
        let bytes = UntrustedFile::from_path_fd(fd, &name)
            .and_then(|file| file.read_to_end(1 << 20))
            .ok()?;
        String::from_utf8(bytes).ok()
    }

    /// Applies the tar stream `input`. `on_read` is told how many bytes of entry data were
    /// consumed, for progress.
    pub(crate) fn apply(
        &mut self,
        input: impl Read,
        mut on_read: impl FnMut(u64),
    ) -> Result<(), UnpackError> {
        self.written.clear();
        self.dir_times.clear();
        let mut reader = TarReader::new(Trailer::new(input));
        let mut data_end = 0;
        loop {
            match reader.next().map_err(UnpackError::Stream)? {
                Next::End => break,
                Next::Unsupported(u) => {
                    return Err(UnpackError::Unsupported {
                        entry: String::from_utf8_lossy(&u.path).into_owned(),
                        kind: format!("{:?}", char::from(u.flag)),
                    })
                }
                Next::Entry(entry) => {
                    let size = entry.size;
                    data_end = entry.data_at + size;
                    self.entry(&mut reader, entry)?;
                    on_read(size);
                }
            }
        }
        if let Some(eof) = reader.get_mut().eof_at.filter(|&eof| eof < data_end) {
            return Err(UnpackError::Stream(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the stream ends at byte {eof}, inside the data of its last entry"),
            )));
        }
        self.cached = None;
        self.restore_dir_times()
    }

    /// Sets the directory mtimes noted while the stream was applied.
    fn restore_dir_times(&mut self) -> Result<(), UnpackError> {
        // Deepest first, so setting a child's time does not move its parent's.
        let mut times: Vec<_> = std::mem::take(&mut self.dir_times).into_iter().collect();
        times.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, mtime) in times {
            let fd = match self.resolve(
                &path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            ) {
                Ok(fd) => fd,
                // Replaced or deleted by a later entry of the same stream.
                Err(_) => continue,
            };
            let ts = [mtime, mtime];
            // SAFETY: fd is valid, ts holds two timespecs.
            check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })
                .map_err(entry_error(&path))?;
        }
        Ok(())
    }

    /// Applies one entry: a whiteout, or an entry to create or replace.
    fn entry<R: Read>(
        &mut self,
        reader: &mut TarReader<R>,
        entry: tar_read::Entry,
    ) -> Result<(), UnpackError> {
        let tar_read::Entry {
            path,
            link,
            kind,
            mode,
            uid,
            gid,
            mtime,
            size,
            device,
            xattrs,
            ..
        } = entry;
        let raw = &path[..];
        let Some(comps) = components(raw) else {
            return Err(escape(raw));
        };
        let meta = Meta {
            mode,
            uid: uid as u32,
            gid: gid as u32,
            mtime,
            xattrs,
        };
        let Some((name, parent_comps)) = comps.split_last() else {
            // The root itself ("./"): only its metadata.
            return self.root_entry(raw, kind, &meta);
        };
        let parent_key = parent_comps.join(&b'/');
        let existing_parent = self
            .note_parent_time(&parent_key)
            .map_err(entry_error(raw))?;
        if let Some(target) = name.strip_prefix(WHITEOUT) {
            return self.whiteout(raw, name, target, &parent_key, existing_parent);
        }

        let full = comps.join(&b'/');
        self.mark_written(&full);
        let parent = self
            .parent(parent_comps)
            .and_then(|p| p.try_clone_to_owned())
            .map_err(entry_error(raw))?;
        let at = Target {
            parent,
            name,
            cname: cstr(name).map_err(entry_error(raw))?,
            raw,
        };
        match kind {
            Kind::Directory => self.directory(&at, &meta, full),
            Kind::Regular => self.regular(&at, &meta, reader, size),
            Kind::Symlink => self.symlink(&at, &meta, &link),
            Kind::HardLink => self.hardlink(&at, &comps, &link),
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo => {
                self.special(&at, &meta, kind, device)
            }
        }
    }

    /// The entry `./`: the root's own metadata, for a directory entry.
    fn root_entry(&mut self, raw: &[u8], kind: Kind, meta: &Meta) -> Result<(), UnpackError> {
        if kind == Kind::Directory {
            let fd = self
                .resolve(b"", OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .map_err(entry_error(raw))?;
            self.set_meta_fd(&fd, meta).map_err(entry_error(raw))?;
            self.dir_times.insert(Vec::new(), timespec(meta.mtime));
        }
        Ok(())
    }

    /// The directory `parent_key` as an `O_PATH` descriptor, `None` when it does not exist
    /// yet. Entries change their directory's mtime; unless the stream sets it, it is put
    /// back at the end, as umoci does: noted here, the first time.
    fn note_parent_time(&mut self, parent_key: &[u8]) -> io::Result<Option<OwnedFd>> {
        let parent = match self.resolve(parent_key, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !self.dir_times.contains_key(parent_key) {
            let st = nix::sys::stat::fstat(&parent).map_err(errno)?;
            let mtime = libc::timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec,
            };
            self.dir_times.insert(parent_key.to_vec(), mtime);
        }
        Ok(Some(parent))
    }

    /// Notes that this stream wrote `path`, and so the directories that lead to it: an
    /// opaque whiteout keeps them.
    fn mark_written(&mut self, path: &[u8]) {
        let mut path = path;
        // The ancestors of a path already noted are noted too.
        while !self.written.contains(path) {
            self.written.insert(path.to_vec());
            match path.iter().rposition(|&b| b == b'/') {
                Some(slash) => path = &path[..slash],
                None => break,
            }
        }
    }

    /// `.wh.<name>` removes `<name>` of the layers below; `.wh..wh..opq` empties its
    /// directory of what they put there.
    fn whiteout(
        &mut self,
        raw: &[u8],
        name: &[u8],
        target: &[u8],
        parent_key: &[u8],
        parent: Option<OwnedFd>,
    ) -> Result<(), UnpackError> {
        if matches!(target, b"." | b"..") {
            return Err(escape(raw));
        }
        // A whiteout in a directory the layers below do not have: nothing to hide.
        let Some(parent) = parent else {
            return Ok(());
        };
        if name == OPAQUE {
            self.hide_lower(&parent, parent_key)
                .map_err(entry_error(raw))?;
        } else {
            remove_at(&parent, target).map_err(entry_error(raw))?;
        }
        self.cached = None;
        Ok(())
    }

    /// Removes everything under the directory `dir` (path `key`) that this stream did not
    /// write, wherever the opaque whiteout came in the stream: this stream's entries
    /// stay, and so do the directories that lead to them, emptied of the rest.
    fn hide_lower(&self, dir: &OwnedFd, key: &[u8]) -> io::Result<()> {
        for child in list_dir(dir)? {
            let mut path = key.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&child);
            if !self.written.contains(&path) {
                remove_at(dir, &child)?;
            } else if let Some(sub) = open_dir_at(dir, &cstr(&child)?)? {
                self.hide_lower(&sub, &path)?;
            }
        }
        Ok(())
    }

    fn directory(
        &mut self,
        at: &Target<'_>,
        meta: &Meta,
        full: Vec<u8>,
    ) -> Result<(), UnpackError> {
        let existing = lstat_at(&at.parent, &at.cname).map_err(entry_error(at.raw))?;
        let is_dir = |st: &libc::stat| st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if existing.as_ref().is_some_and(|st| !is_dir(st)) {
            remove_at(&at.parent, at.name).map_err(entry_error(at.raw))?;
            self.cached = None;
        }
        if existing.as_ref().is_none_or(|st| !is_dir(st)) {
            // SAFETY: valid fd and NUL-terminated name.
            check(unsafe { libc::mkdirat(at.parent.as_raw_fd(), at.cname.as_ptr(), 0o700) })
                .map_err(entry_error(at.raw))?;
        }
        let fd = nix::fcntl::openat(
            &at.parent,
            at.cname.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)
        .map_err(entry_error(at.raw))?;
        self.set_meta_fd(&fd, meta).map_err(entry_error(at.raw))?;
        self.dir_times.insert(full, timespec(meta.mtime));
        Ok(())
    }

    /// A regular file and its `size` bytes of data, which count towards the data limit.
    fn regular<R: Read>(
        &mut self,
        at: &Target<'_>,
        meta: &Meta,
        reader: &mut TarReader<R>,
        size: u64,
    ) -> Result<(), UnpackError> {
        let total = self.data_written.saturating_add(size);
        if total > self.data_limit {
            return Err(UnpackError::TooLarge {
                entry: String::from_utf8_lossy(at.raw).into_owned(),
                limit: self.data_limit,
            });
        }
        self.data_written = total;
        replace(&at.parent, &at.cname, at.name).map_err(entry_error(at.raw))?;
        let fd = nix::fcntl::openat(
            &at.parent,
            at.cname.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(errno)
        .map_err(entry_error(at.raw))?;
        let mut out = WriteSide {
            inner: File::from(fd),
            failed: false,
        };
        match reader.copy_data(size, &mut out) {
            Ok(()) => {}
            // The file system, not the stream: a full disk, say.
            Err(e) if out.failed => return Err(entry_error(at.raw)(e)),
            // A short or corrupt stream, not a problem with the file.
            Err(e) => return Err(UnpackError::Stream(e)),
        }
        let fd = OwnedFd::from(out.inner);
        self.set_meta_fd(&fd, meta).map_err(entry_error(at.raw))?;
        set_times_fd(&fd, meta.mtime).map_err(entry_error(at.raw))
    }

    fn symlink(&mut self, at: &Target<'_>, meta: &Meta, link: &[u8]) -> Result<(), UnpackError> {
        let target = cstr(link).map_err(entry_error(at.raw))?;
        replace(&at.parent, &at.cname, at.name).map_err(entry_error(at.raw))?;
        // SAFETY: valid fd and NUL-terminated strings.
        check(unsafe {
            libc::symlinkat(target.as_ptr(), at.parent.as_raw_fd(), at.cname.as_ptr())
        })
        .map_err(entry_error(at.raw))?;
        self.cached = None;
        self.set_meta_at(&at.parent, &at.cname, meta, false)
            .map_err(entry_error(at.raw))
    }

    /// A hardlink to `link`, an earlier entry, resolved inside the root.
    fn hardlink(&self, at: &Target<'_>, comps: &[&[u8]], link: &[u8]) -> Result<(), UnpackError> {
        let Some(tcomps) = components(link).filter(|c| !c.is_empty()) else {
            return Err(UnpackError::Escape {
                entry: format!(
                    "{} (hardlink to {})",
                    String::from_utf8_lossy(at.raw),
                    String::from_utf8_lossy(link)
                ),
            });
        };
        if tcomps == comps {
            return Ok(());
        }
        let (tname, tparent) = tcomps.split_last().expect("not empty");
        let tparent = self
            .resolve(&tparent.join(&b'/'), OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(entry_error(at.raw))?;
        let tname = cstr(tname).map_err(entry_error(at.raw))?;
        replace(&at.parent, &at.cname, at.name).map_err(entry_error(at.raw))?;
        // SAFETY: valid fds and NUL-terminated names; flags 0: a symlink target is
        // linked itself, not followed.
        check(unsafe {
            libc::linkat(
                tparent.as_raw_fd(),
                tname.as_ptr(),
                at.parent.as_raw_fd(),
                at.cname.as_ptr(),
                0,
            )
        })
        .map_err(entry_error(at.raw))
    }

    /// A device node or a FIFO; device nodes need root, and are skipped without it.
    fn special(
        &mut self,
        at: &Target<'_>,
        meta: &Meta,
        kind: Kind,
        device: (u32, u32),
    ) -> Result<(), UnpackError> {
        let fmt = match kind {
            Kind::CharDevice => libc::S_IFCHR,
            Kind::BlockDevice => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        if fmt != libc::S_IFIFO && !self.privileged {
            tracing::warn!(entry = %String::from_utf8_lossy(at.raw), "device node skipped: creating one needs root");
            return Ok(());
        }
        replace(&at.parent, &at.cname, at.name).map_err(entry_error(at.raw))?;
        let dev = libc::makedev(device.0, device.1);
        // SAFETY: valid fd and NUL-terminated name.
        check(unsafe { libc::mknodat(at.parent.as_raw_fd(), at.cname.as_ptr(), fmt | 0o600, dev) })
            .map_err(entry_error(at.raw))?;
        self.set_meta_at(&at.parent, &at.cname, meta, true)
            .map_err(entry_error(at.raw))
    }

    /// Owner, mode and xattrs through an open descriptor (files and directories).
    fn set_meta_fd(&self, fd: &OwnedFd, meta: &Meta) -> io::Result<()> {
        if self.privileged {
            // SAFETY: valid fd.
            check(unsafe { libc::fchown(fd.as_raw_fd(), meta.uid, meta.gid) })?;
        }
        // After chown, which clears setuid and setgid.
        // SAFETY: valid fd.
        check(unsafe { libc::fchmod(fd.as_raw_fd(), meta.mode & 0o7777) })?;
        for (name, value) in &meta.xattrs {
            let n = cstr(name)?;
            // SAFETY: valid fd, NUL-terminated name, value valid for its length.
            let rc = unsafe {
                libc::fsetxattr(
                    fd.as_raw_fd(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            self.xattr_result(rc, name)?;
        }
        Ok(())
    }

    /// Owner, mode (not for symlinks), xattrs and mtime of `name` in `parent`, not
    /// following it.
    fn set_meta_at(
        &self,
        parent: &OwnedFd,
        name: &CString,
        meta: &Meta,
        chmod: bool,
    ) -> io::Result<()> {
        if self.privileged {
            // SAFETY: valid fd and NUL-terminated name.
            check(unsafe {
                libc::fchownat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    meta.uid,
                    meta.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
        }
        if chmod {
            // SAFETY: as above; device nodes and FIFOs are not symlinks, so following is moot.
            check(unsafe {
                libc::fchmodat(parent.as_raw_fd(), name.as_ptr(), meta.mode & 0o7777, 0)
            })?;
        }
        if !meta.xattrs.is_empty() {
            let mut path = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
            path.extend_from_slice(name.as_bytes());
            let path = cstr(&path)?;
            for (n, value) in &meta.xattrs {
                let n2 = cstr(n)?;
                // SAFETY: NUL-terminated path and name, value valid for its length.
                let rc = unsafe {
                    libc::lsetxattr(
                        path.as_ptr(),
                        n2.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    )
                };
                self.xattr_result(rc, n)?;
            }
        }
        let ts = [timespec(meta.mtime), timespec(meta.mtime)];
        // SAFETY: valid fd, NUL-terminated name, two timespecs.
        check(unsafe {
            libc::utimensat(
                parent.as_raw_fd(),
                name.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// xattrs the file system or the caller cannot set (`trusted.*` without root, none at
    /// all on some file systems) are skipped with a warning, as GNU tar does.
    fn xattr_result(&self, rc: libc::c_int, name: &[u8]) -> io::Result<()> {
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOTSUP) | Some(libc::EPERM)
                if !self.privileged || e.raw_os_error() == Some(libc::ENOTSUP) =>
            {
                tracing::warn!(xattr = %String::from_utf8_lossy(name), error = %e, "xattr not restored");
                Ok(())
            }
            _ => Err(e),
        }
    }
}

/// Some writers (umoci 0.4's `insert` among them) end a tar stream right after the last
/// entry's data, without its padding and the two zero blocks. Like Go's `archive/tar`,
/// which reads such streams, this supplies the missing zeros at the end of the input;
/// [`Rootfs::apply`] then checks that no entry's data came from them.
struct Trailer<R> {
    inner: R,
    pos: u64,
    eof_at: Option<u64>,
    zeros_left: u64,
}

impl<R: Read> Trailer<R> {
    fn new(inner: R) -> Self {
        Trailer {
            inner,
            pos: 0,
            eof_at: None,
            zeros_left: 0,
        }
    }
}

impl<R: Read> Read for Trailer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.eof_at.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.pos += n as u64;
                return Ok(n);
            }
            self.eof_at = Some(self.pos);
            self.zeros_left = if self.pos % 512 == 0 {
                0
            } else {
                512 - self.pos % 512 + 1024
            };
        }
        let n = buf
            .len()
            .min(usize::try_from(self.zeros_left).unwrap_or(usize::MAX));
        buf[..n].fill(0);
        self.zeros_left -= n as u64;
        Ok(n)
    }
}

fn timespec(secs: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    }
}

fn set_times_fd(fd: &OwnedFd, mtime: i64) -> io::Result<()> {
    let ts = [timespec(mtime), timespec(mtime)];
    // SAFETY: valid fd, two timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })
}

fn lstat_at(dir: &OwnedFd, name: &CString) -> io::Result<Option<libc::stat>> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd, NUL-terminated name, st is written on success.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        // SAFETY: fstatat succeeded and filled st.
        Ok(Some(unsafe { st.assume_init() }))
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

/// Makes room for a new non-directory `name`: removes whatever is there.
fn replace(parent: &OwnedFd, cname: &CString, name: &[u8]) -> io::Result<()> {
    if lstat_at(parent, cname)?.is_some() {
        remove_at(parent, name)?;
    }
    Ok(())
}

/// `name` in `dir` opened as a directory, without following a symbolic link; `None` when
/// it is something else.
fn open_dir_at(dir: &OwnedFd, name: &CString) -> io::Result<Option<OwnedFd>> {
    match nix::fcntl::openat(
        dir,
        name.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOTDIR | Errno::ELOOP) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

/// A writer that remembers whether it failed, to tell the file system's errors (a full
/// disk) from the stream's when copying between them.
struct WriteSide<W> {
    inner: W,
    failed: bool,
}

impl<W: Write> Write for WriteSide<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

/// The names in the directory `dir`.
fn list_dir(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    // Through /proc: the descriptor was opened without following symlinks, so this
    // reads that directory and no other.
    let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
    std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
        .collect()
}

/// Removes `name` in `parent`, a directory with everything in it; nothing when absent.
pub(crate) fn remove_at(parent: &OwnedFd, name: &[u8]) -> io::Result<()> {
    let cname = cstr(name)?;
    let Some(st) = lstat_at(parent, &cname)? else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        // SAFETY: valid fd and NUL-terminated name.
        let raw = unsafe {
            libc::openat(
                parent.as_raw_fd(),
                cname.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        check(raw)?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        let dir = unsafe { OwnedFd::from_raw_fd(raw) };
        for child in list_dir(&dir)? {
            remove_at(&dir, &child)?;
        }
        // SAFETY: valid fd and NUL-terminated name.
        check(unsafe { libc::unlinkat(parent.as_raw_fd(), cname.as_ptr(), libc::AT_REMOVEDIR) })
    } else {
        // SAFETY: valid fd and NUL-terminated name.
        check(unsafe { libc::unlinkat(parent.as_raw_fd(), cname.as_ptr(), 0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_dotdot_and_drop_dots() {
        assert_eq!(
            components(b"./a//b/./c/").unwrap(),
            vec![&b"a"[..], b"b", b"c"]
        );
        assert_eq!(
            components(b"/etc/passwd").unwrap(),
            vec![&b"etc"[..], b"passwd"]
        );
        assert!(components(b"a/../../etc").is_none());
        assert!(components(b"./").unwrap().is_empty());
    }

    /// A tar stream of `entries`: a name ending in `/` is a directory, any other a file
    /// holding its own name.
    fn layer(entries: &[&str]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for name in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o755);
            if name.ends_with('/') {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, name, io::empty()).unwrap();
            } else {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(name.len() as u64);
                builder
                    .append_data(&mut header, name, name.as_bytes())
                    .unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    /// The tree at `dir`: every path under it, directories with a trailing `/`, sorted.
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                if entry.file_type().unwrap().is_dir() {
                    out.push(format!("{name}/"));
                    walk(&entry.path(), &format!("{name}/"), out);
                } else {
                    out.push(name);
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, "", &mut out);
        out.sort();
        out
    }

    /// The tree after applying `layers` in order to an empty root.
    fn unpacked(layers: &[&[&str]]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let mut root = Rootfs::open(dir.path()).unwrap();
        for entries in layers {
            root.apply(&layer(entries)[..], |_| {}).unwrap();
        }
        tree(dir.path())
    }

    #[test]
    fn an_opaque_whiteout_after_entries_of_its_own_layer_keeps_them() {
        let lower: &[&str] = &["a/", "a/lower", "a/sub/", "a/sub/deep"];
        // The marker comes last: what this layer put in a/ before it stays.
        let upper: &[&str] = &["a/", "a/new", "a/dir/", "a/dir/x", "a/.wh..wh..opq"];
        assert_eq!(
            unpacked(&[lower, upper]),
            ["a/", "a/dir/", "a/dir/x", "a/new"]
        );
        // The same layer with the marker first, as most writers order it.
        let upper: &[&str] = &["a/", "a/.wh..wh..opq", "a/new", "a/dir/", "a/dir/x"];
        assert_eq!(
            unpacked(&[lower, upper]),
            ["a/", "a/dir/", "a/dir/x", "a/new"]
        );
    }

    #[test]
    fn an_opaque_whiteout_hides_the_lower_layers_inside_directories_its_layer_rewrote() {
        // The image spec's example: a/b is deleted and made again with a/b/c/foo, the
        // marker after it; a/b/c/bar of the layer below is hidden.
        let lower: &[&str] = &["a/", "a/b/", "a/b/c/", "a/b/c/bar"];
        let upper: &[&str] = &["a/", "a/b/", "a/b/c/", "a/b/c/foo", "a/.wh..wh..opq"];
        assert_eq!(
            unpacked(&[lower, upper]),
            ["a/", "a/b/", "a/b/c/", "a/b/c/foo"]
        );
        // A directory the layer makes only as the parent of its entry, with no entry of
        // its own, stays too, and is emptied of what was below.
        let lower: &[&str] = &["a/", "a/n/", "a/n/old", "a/gone"];
        let upper: &[&str] = &["a/n/x", "a/.wh..wh..opq"];
        assert_eq!(unpacked(&[lower, upper]), ["a/", "a/n/", "a/n/x"]);
    }
}
