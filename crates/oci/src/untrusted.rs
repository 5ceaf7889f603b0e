//! Opening and reading files that someone else wrote (a bundle's config.json, an image's
//! index.json and blobs, a rootfs tarball, a `--process` file) so that no such file can make
//! proxcage block, touch a device, or read without end.
//!
//! The path is opened with `O_PATH`, which neither blocks on a FIFO nor opens a device
//! (opening some devices has effects of its own: a watchdog starts counting), and the
//! descriptor's type is checked: only a regular file is then opened for reading, through
//! `/proc/self/fd`, so the file read is the one that was checked, and non-blocking. Reads are
//! bounded by the bytes actually read (`limit + 1` at most), not by the size the metadata
//! reports: a file that grows while it is read is refused like one that was too large.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Why an untrusted file was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UntrustedFileError {
    /// A FIFO, a device, a socket or a directory where a file was expected. Nothing was
    /// read, and nothing waited.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },

    /// A symbolic link where the caller does not follow links.
    #[error("{} is a symbolic link, which is not followed here", path.display())]
    SymbolicLink { path: PathBuf },

    /// Larger than the caller's limit. `size` is the file's length when that was already
    /// too large (nothing was read), or the bytes read when it grew while it was read.
    #[error("{} is {size} bytes, more than the {limit} bytes proxcage reads from it", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },

    /// A system call failed: the file does not exist, permissions, I/O errors.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl UntrustedFileError {
    /// True when the file, or a directory on its path, does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            UntrustedFileError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ),
            _ => false,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            UntrustedFileError::NotRegular { path, .. }
            | UntrustedFileError::SymbolicLink { path }
            | UntrustedFileError::TooLarge { path, .. }
            | UntrustedFileError::Io { path, .. } => path,
        }
    }
}

/// Reads the regular file at `path`, at most `limit` bytes of it. Symbolic links are
/// followed, as runc follows them for config.json and `--process`; what they lead to must
/// be a regular file too. A FIFO, device, socket or directory is refused at once, without
/// blocking and without opening it; a file of more than `limit` bytes is refused, by its
/// length when that says so and otherwise after `limit + 1` bytes were read.
///
/// ```
/// use proxcage_oci::{read_untrusted, UntrustedFileError};
///
/// let dir = tempfile::tempdir()?;
/// let process = dir.path().join("process.json");
/// std::fs::write(&process, br#"{"args":["true"],"cwd":"/"}"#)?;
/// assert_eq!(read_untrusted(&process, 1 << 20)?.len(), 27);
///
/// let err = read_untrusted("/dev/zero", 1 << 20).unwrap_err();
/// assert_eq!(err.to_string(), "/dev/zero is a character device, not a regular file");
/// assert!(matches!(read_untrusted(&process, 10), Err(UntrustedFileError::TooLarge { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_untrusted(path: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>, UntrustedFileError> {
    UntrustedFile::open(path.as_ref(), Links::Follow)?.read_to_end(limit)
}

/// Whether the last component of a path may be a symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Links {
    Follow,
    Refuse,
}

/// A regular file opened for reading, non-blocking, after its type was checked.
#[derive(Debug)]
pub(crate) struct UntrustedFile {
    file: File,
    meta: Metadata,
    path: PathBuf,
}

impl UntrustedFile {
    /// Opens `path`; see the module documentation.
    pub(crate) fn open(path: &Path, links: Links) -> Result<UntrustedFile, UntrustedFileError> {
        let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        if links == Links::Refuse {
            // With O_PATH, a link is opened itself rather than refused; its type is
            // checked below.
            flags |= OFlag::O_NOFOLLOW;
        }
        let fd = nix::fcntl::open(path, flags, Mode::empty())
            .map_err(|e| io_error("open", path, e.into()))?;
        UntrustedFile::from_path_fd(fd, path)
    }

    /// Opens for reading the file that `fd`, an `O_PATH` descriptor (from `openat2` inside
    /// a root, say), refers to, once it is known to be a regular file. `path` names it in
    /// errors.
    pub(crate) fn from_path_fd(
        fd: OwnedFd,
        path: &Path,
    ) -> Result<UntrustedFile, UntrustedFileError> {
        let st = nix::sys::stat::fstat(&fd).map_err(|e| io_error("inspect", path, e.into()))?;
        check_type(path, st.st_mode)?;
        // The magic link reopens the inode that was checked, whatever the path leads to now.
        let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let reopened = nix::fcntl::open(
            proc.as_str(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_error("open", path, e.into()))?;
        let file = File::from(reopened);
        let meta = file.metadata().map_err(|e| io_error("inspect", path, e))?;
        Ok(UntrustedFile {
            file,
            meta,
            path: path.to_path_buf(),
        })
    }

    /// Opens `path`, which a directory walk found to be the regular file `walked`
    /// describes; `None` when it no longer is (replaced by a link, a FIFO, another file).
    ///
    /// Opened directly rather than through `O_PATH`: the walk already saw a regular file,
    /// the identity check catches a swap, and a tree of many small files is walked at the
    /// cost of one `open` per file rather than two.
    #[cfg(feature = "templates")]
    pub(crate) fn open_walked(path: &Path, walked: &Metadata) -> io::Result<Option<UntrustedFile>> {
        use std::os::unix::fs::MetadataExt;
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            // A symbolic link now, or a FIFO or socket that cannot be opened so.
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENXIO) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let file = File::from(fd);
        let meta = file.metadata()?;
        if !meta.is_file() || meta.ino() != walked.ino() || meta.dev() != walked.dev() {
            return Ok(None);
        }
        Ok(Some(UntrustedFile {
            file,
            meta,
            path: path.to_path_buf(),
        }))
    }

    /// The file's length when it was opened.
    pub(crate) fn len(&self) -> u64 {
        self.meta.len()
    }

    /// The whole file, if it is `limit` bytes or less; see [`read_untrusted`].
    pub(crate) fn read_to_end(self, limit: u64) -> Result<Vec<u8>, UntrustedFileError> {
        let too_large = |size| UntrustedFileError::TooLarge {
            path: self.path.clone(),
            size,
            limit,
        };
        if self.len() > limit {
            return Err(too_large(self.len()));
        }
        // The length was checked against the limit: the capacity is what the caller allows.
        let mut bytes =
            Vec::with_capacity(usize::try_from(self.len()).unwrap_or(0).saturating_add(1));
        (&self.file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("read", &self.path, e))?;
        if bytes.len() as u64 > limit {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// The open file, to read as a stream; the caller bounds what it reads.
    #[cfg(feature = "templates")]
    pub(crate) fn into_file(self) -> File {
        self.file
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> UntrustedFileError {
    UntrustedFileError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Ok for a regular file; otherwise the error naming what it is.
fn check_type(path: &Path, mode: libc::mode_t) -> Result<(), UntrustedFileError> {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFREG => return Ok(()),
        libc::S_IFLNK => {
            return Err(UntrustedFileError::SymbolicLink { path: path.into() });
        }
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "a special file",
    };
    Err(UntrustedFileError::NotRegular {
        path: path.into(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn regular_files_are_read_whole_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_untrusted(&path, 10).unwrap(), b"0123456789");
        let err = read_untrusted(&path, 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is 10 bytes, more than the 9 bytes proxcage reads from it",
                path.display()
            )
        );
    }

    #[test]
    fn fifos_devices_sockets_and_directories_are_refused_unopened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (socket.as_path(), "a socket"),
            (dir.path(), "a directory"),
            (Path::new("/dev/null"), "a character device"),
        ] {
            let err = read_untrusted(path, 1 << 20).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{} is {kind}, not a regular file", path.display())
            );
        }
    }

    #[test]
    fn links_are_followed_or_refused_as_the_caller_says() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("target"), b"x").unwrap();
        let link = dir.path().join("link");
        symlink("target", &link).unwrap();
        assert_eq!(read_untrusted(&link, 1).unwrap(), b"x");
        let err = UntrustedFile::open(&link, Links::Refuse).unwrap_err();
        assert!(
            matches!(err, UntrustedFileError::SymbolicLink { .. }),
            "{err}"
        );

        let zero = dir.path().join("zero");
        symlink("/dev/zero", &zero).unwrap();
        assert_eq!(
            read_untrusted(&zero, 1 << 20).unwrap_err().to_string(),
            format!(
                "{} is a character device, not a regular file",
                zero.display()
            )
        );
    }

    #[test]
    fn a_missing_file_is_reported_as_such() {
        let err = read_untrusted("/nonexistent/file", 1).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.path(), Path::new("/nonexistent/file"));
    }

    #[test]
    fn a_walked_file_is_opened_only_while_it_is_the_file_the_walk_saw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let walked = std::fs::symlink_metadata(&path).unwrap();
        assert!(UntrustedFile::open_walked(&path, &walked)
            .unwrap()
            .is_some());

        // Kept, so that no new file gets its inode number.
        std::fs::rename(&path, dir.path().join("walked")).unwrap();
        nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).unwrap();
        assert!(UntrustedFile::open_walked(&path, &walked)
            .unwrap()
            .is_none());
        std::fs::remove_file(&path).unwrap();
        symlink("/etc/hostname", &path).unwrap();
        assert!(UntrustedFile::open_walked(&path, &walked)
            .unwrap()
            .is_none());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("other"), b"y").unwrap();
        std::fs::rename(dir.path().join("other"), &path).unwrap();
        assert!(UntrustedFile::open_walked(&path, &walked)
            .unwrap()
            .is_none());
    }
}
