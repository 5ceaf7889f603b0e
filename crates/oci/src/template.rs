//! Root filesystem -> Proxmox container template: a `.tar.zst` that `pct create`
//! extracts as it would any template, named after the content so the same rootfs is
//! packed once.
//!
//! The archive keeps what a container needs: modes (setuid, setgid, sticky), numeric
//! owners (no user or group names), symlinks, hardlinks, character and block devices,
//! FIFOs, xattrs (`security.capability` among them, as pax `SCHILY.xattr.*` records that
//! GNU tar's `--xattrs` restores) and mtimes (whole seconds). Sockets are left out, as
//! GNU tar does. Entries are named `./bin/sh` (GNU tar's `-C rootfs .` form, which
//! Proxmox's `--exclude './dev/*'` expects) and written in byte order of their names,
//! depth first, so the same tree always gives the same archive.
//!
//! The **digest** of a tree is the SHA-256 of that uncompressed archive: it covers every
//! name, type, mode, owner, mtime, xattr, link target and byte of content, and nothing
//! else (not the compression level). [`pack_rootfs`] reuses `<dest>/proxcage-<hex>.tar.zst`
//! when it exists, and otherwise packs into a temporary file in `dest` that is renamed into
//! place only when complete, so a failed pack leaves nothing behind and a concurrent reader
//! never sees half a template. It reads the tree's content once when no template in `dest`
//! has an archive of the same length (zstd's frame header holds it), hashing the archive as
//! it compresses it, and otherwise twice: the digest first, to look for the template.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
pub use crate::oci_archive::pack_oci_archive;
use crate::untrusted::{Links, UntrustedFile};
use crate::ustar::{self, Header, Kind, Xattrs};

/// zstd's own default, and what `tar --zstd` uses.
pub const DEFAULT_LEVEL: i32 = 3;

/// The size of the reads of the tree's files and of the pieces of archive handed to zstd
/// (zstd's own block is 128 KiB).
pub(crate) const CHUNK: usize = 128 << 10;

/// How [`pack_rootfs`] compresses and reports.
#[derive(Clone, Debug)]
pub struct PackOptions {
    pub(crate) level: i32,
    pub(crate) workers: u32,
    pub(crate) progress: bool,
}

impl Default for PackOptions {
    /// Level [`DEFAULT_LEVEL`], no zstd workers (see [`PackOptions::workers`]), a progress
    /// bar when stderr is a terminal.
    fn default() -> Self {
        PackOptions {
            level: DEFAULT_LEVEL,
            workers: 0,
            progress: io::stderr().is_terminal(),
        }
    }
}

impl PackOptions {
    /// The zstd level, 1 (fastest) to 22 (smallest); negative levels are zstd's fast
    /// modes. Checked by [`pack_rootfs`].
    pub fn level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// zstd worker threads.
    ///
    /// With 0 (the default), one thread compresses while the calling thread reads the
    /// tree, as `tar --zstd` does with its two processes, and the memory it takes is
    /// zstd's window and tables whatever the size of the tree: at level 3, a `create` of
    /// the pct backend peaks under 8 MB of RSS.
    ///
    /// With N above 0, zstd cuts the archive into jobs of several MB that N threads
    /// compress side by side, each holding its job's input and output in memory: faster
    /// on many cores, but at level 3 a 424 MB tree took a peak of 46 MB with 1 worker and
    /// 65 MB with 2. The archive is the same for any number of workers above 0, and
    /// another one (unpacking to the same tree, with the same digest) with 0.
    pub fn workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }

    /// Whether to draw a progress bar on stderr. The default draws one only when stderr
    /// is a terminal; turning it on when stderr is not a terminal draws nothing either.
    pub fn progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }
}

/// A packed template: where it is, its content digest, and whether an existing file was
/// reused instead of packing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub(crate) path: PathBuf,
    pub(crate) digest: Digest,
    pub(crate) reused: bool,
}

impl Template {
    /// `<dest>/proxcage-<hex>.tar.zst`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file name, what follows `<storage>:vztmpl/` in a Proxmox volume id.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The tree's digest (see the module documentation); for an oci-archive, the image
    /// config's digest (the image id), which covers the tree and the process.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// True when the template already existed and nothing was written.
    pub fn reused(&self) -> bool {
        self.reused
    }
}

/// `proxcage-<hex>.tar.zst`, the name of the template of a tree with this digest.
pub fn template_file_name(digest: &Digest) -> String {
    format!("proxcage-{}.tar.zst", digest.hex())
}

/// Why a template could not be packed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("rootfs {} is not a directory", path.display())]
    RootfsNotADirectory { path: PathBuf },

    #[error("template directory {} is not a directory", path.display())]
    DestNotADirectory { path: PathBuf },

    #[error("zstd level {level} is out of range: use {min} to {max}")]
    InvalidLevel { level: i32, min: i32, max: i32 },

    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file the archive format cannot carry.
    #[error("{}: {what}", path.display())]
    Unrepresentable { path: PathBuf, what: String },

    /// The tree changed between computing its digest and packing it, or while a file was
    /// read: the archive would not match its name.
    #[error("rootfs {} changed while it was packed ({what}): pack it again when nothing writes to it", path.display())]
    RootfsChanged { path: PathBuf, what: String },
}

/// So that the CLI and the pct backend can pass a template error on with `?`; its
/// message is kept as is.
impl From<TemplateError> for proxcage_core::Error {
    fn from(e: TemplateError) -> Self {
        proxcage_core::Error::Input(Box::new(e))
    }
}

/// The packing begins: the progress bar switches to packing `tar_len` bytes, and the
/// archive goes to a temp file in `dest_dir` (removed on drop, that is on every error
/// path; renamed into place on success). Returns the temp file, its path and a second
/// handle to write through.
pub(crate) fn begin_pack(
    bar: Option<&ProgressBar>,
    tar_len: u64,
    dest_dir: &Path,
    suffix: &str,
) -> Result<(tempfile::NamedTempFile, PathBuf, File), TemplateError> {
    if let Some(bar) = bar {
        bar.set_message("pack");
        bar.set_length(tar_len);
        bar.set_position(0);
    }
    let tmp = tempfile::Builder::new()
        .prefix(".proxcage-")
        .suffix(suffix)
        .tempfile_in(dest_dir)
        .map_err(io_error("create a temporary file in", dest_dir))?;
    let path = tmp.path().to_path_buf();
    // Held while the file is written (by this open file description, so it goes with the
    // process): a temp file someone can lock is one whose packer died.
    // SAFETY: flock on a descriptor this function owns.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(tmp.as_file()),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Err(io_error("lock", &path)(std::io::Error::last_os_error()));
    }
    let file = tmp.as_file().try_clone().map_err(io_error("open", &path))?;
    Ok((tmp, path, file))
}

/// How long after its last change a temp file with no lock counts as a dead pack's: a
/// pack locks its temp file right after making it, and one seen in between is not yet
/// locked (nor may a check's own try of the lock then stand in the packer's way).
pub const PACK_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `name` in a template directory is the temp file of a pack whose process
/// died: proxcage's packs hold a lock on their temp file while they write it, from right
/// after they make it (see [`PACK_LOCK_GRACE`]).
pub fn is_abandoned_pack(dir: &Path, name: &str) -> bool {
    if !(name.starts_with(".proxcage-") && name.ends_with(".tar.zst.tmp")) {
        return false;
    }
    let path = dir.join(name);
    let settled = fs::symlink_metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= PACK_LOCK_GRACE);
    if !settled {
        return false;
    }
    let Ok(file) = File::open(&path) else {
        return false;
    };
    // SAFETY: flock on a descriptor this function owns; the lock goes with `file`.
    unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        ) == 0
    }
}

pub(crate) fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> TemplateError + 'a {
    move |source| TemplateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the tree at `rootfs` to `out` as the uncompressed tar stream that templates
/// hold; `dest` names `out` in write errors.
#[cfg(feature = "images")]
pub(crate) fn write_tree(
    rootfs: &Path,
    out: &mut impl Write,
    dest: &Path,
) -> Result<(), TemplateError> {
    Walker::new(rootfs, dest, None).archive(out)
}

/// The digest of the tree at `rootfs` (see the module documentation), without packing.
pub fn tree_digest(rootfs: &Path) -> Result<Digest, TemplateError> {
    check_rootfs(rootfs)?;
    let mut sink = Hashing::new(io::sink());
    let mut walker = Walker::new(rootfs, Path::new("/dev/null"), None);
    walker.archive(&mut sink)?;
    Ok(Digest::from_hasher(sink.sha))
}

/// What the archive [`pack_rootfs`] makes of a tree will be, known from the tree's
/// metadata alone (no file is read): the same for two trees of the same content, and
/// different for most trees of different content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outline {
    /// The archive's length.
    pub len: u64,
    /// The digest of the archive without the files' contents: every name, type, mode,
    /// owner, mtime, xattr, link target and size.
    pub headers: Digest,
}

/// The [`Outline`] of the archive of the tree at `rootfs`.
pub fn archive_outline(rootfs: &Path) -> Result<Outline, TemplateError> {
    check_rootfs(rootfs)?;
    Walker::new(rootfs, Path::new("/dev/null"), None).outline()
}

/// Packs the tree at `rootfs` into `<dest_dir>/proxcage-<hex>.tar.zst`, or returns the
/// existing file of that name (`reused`).
///
/// ```no_run
/// use proxcage_oci::template::{pack_rootfs, PackOptions};
/// use std::path::Path;
///
/// let t = pack_rootfs(
///     Path::new("/var/lib/bundles/web/rootfs"),
///     Path::new("/var/lib/vz/template/cache"),
///     &PackOptions::default().level(6),
/// )?;
/// println!("local:vztmpl/{} (reused: {})", t.file_name(), t.reused());
/// # Ok::<(), proxcage_oci::template::TemplateError>(())
/// ```
pub fn pack_rootfs(
    rootfs: &Path,
    dest_dir: &Path,
    opts: &PackOptions,
) -> Result<Template, TemplateError> {
    check_rootfs(rootfs)?;
    check_level(opts)?;
    check_dest(dest_dir)?;

    let bar = opts.progress.then(new_bar).flatten();
    let len = archive_outline(rootfs)?.len;
    if !template_of_len_may_exist(dest_dir, len) {
        return pack_once(rootfs, dest_dir, opts, bar, len);
    }
    let (digest, stamps, tar_len) =
        digest_pass(Walker::new(rootfs, Path::new("/dev/null"), bar.as_ref()))?;
    let path = dest_dir.join(template_file_name(&digest));
    if let Some(template) = reuse(&path, digest, bar.as_ref()) {
        return Ok(template);
    }

    let (tmp, tmp_path, file) = begin_pack(bar.as_ref(), tar_len, dest_dir, ".tar.zst.tmp")?;
    let writer = compress(
        BufWriter::with_capacity(CHUNK, file),
        opts,
        tar_len,
        &tmp_path,
        |sink| Walker::new(rootfs, &tmp_path, bar.as_ref()).archive_again(sink, stamps, tar_len),
    )?;
    put_in_place(writer, tmp, &path, digest, tar_len, bar.as_ref())
}

/// Packs the tree in one pass, hashing the archive of `len` bytes as it is compressed,
/// into the template named after that digest.
fn pack_once(
    rootfs: &Path,
    dest_dir: &Path,
    opts: &PackOptions,
    bar: Option<ProgressBar>,
    len: u64,
) -> Result<Template, TemplateError> {
    let (tmp, tmp_path, file) = begin_pack(bar.as_ref(), len, dest_dir, ".tar.zst.tmp")?;
    let changed = |what: &str| TemplateError::RootfsChanged {
        path: rootfs.into(),
        what: format!("{what} after the length of its archive was computed"),
    };
    let mut digest = None;
    let writer = compress(
        BufWriter::with_capacity(CHUNK, file),
        opts,
        len,
        &tmp_path,
        |sink| {
            let mut sink = Hashing::new(Bounded {
                inner: sink,
                left: len,
                grew: false,
            });
            let walked = Walker::new(rootfs, &tmp_path, bar.as_ref()).archive(&mut sink);
            if sink.inner.grew {
                return Err(changed("entries grew"));
            }
            walked?;
            if sink.len != len {
                return Err(changed("entries shrank"));
            }
            digest = Some(Digest::from_hasher(sink.sha));
            Ok(())
        },
    )?;
    let digest = digest.expect("compress succeeds only when the archive was written");
    let path = dest_dir.join(template_file_name(&digest));
    put_in_place(writer, tmp, &path, digest, len, bar.as_ref())
}

/// The first pass over a tree: the digest of the archive `walker` writes, the stamps of
/// its entries (to check a second pass against) and the archive's length.
pub(crate) fn digest_pass(mut walker: Walker<'_>) -> Result<(Digest, Digest, u64), TemplateError> {
    if let Some(bar) = walker.bar {
        bar.set_message("digest");
    }
    let mut sink = Hashing::new(io::sink());
    walker.archive(&mut sink)?;
    let stamps = Digest::from_hasher(walker.stamps);
    Ok((Digest::from_hasher(sink.sha), stamps, sink.len))
}

/// The template at `path`, when a file of that name exists: packed before, from content
/// with this digest.
pub(crate) fn reuse(path: &Path, digest: Digest, bar: Option<&ProgressBar>) -> Option<Template> {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    tracing::debug!(template = %path.display(), "template reused");
    Some(Template {
        path: path.to_path_buf(),
        digest,
        reused: true,
    })
}

/// Makes the packed temporary file the template `path` of `digest`: mode 0644, synced,
/// renamed.
pub(crate) fn put_in_place(
    writer: BufWriter<File>,
    tmp: tempfile::NamedTempFile,
    path: &Path,
    digest: Digest,
    len: u64,
    bar: Option<&ProgressBar>,
) -> Result<Template, TemplateError> {
    let tmp_path = tmp.path().to_path_buf();
    let file = writer
        .into_inner()
        .map_err(|e| io_error("write", &tmp_path)(e.into_error()))?;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_error("set the mode of", &tmp_path))?;
    file.sync_all().map_err(io_error("sync", &tmp_path))?;
    tmp.persist(path)
        .map_err(|e| io_error("rename a temporary file to", path)(e.error))?;
    if let Some(dir) = path.parent().and_then(|dir| File::open(dir).ok()) {
        // The rename is durable once the directory is; a failure here loses nothing
        // that a crash would not.
        let _ = dir.sync_all();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    tracing::debug!(template = %path.display(), bytes = len, "template packed");
    Ok(Template {
        path: path.to_path_buf(),
        digest,
        reused: false,
    })
}

/// Whether `dir` may hold a template (a `proxcage-*.tar.zst`) whose archive is `len`
/// bytes long: its zstd frame header says so, or cannot be read.
fn template_of_len_may_exist(dir: &Path, len: u64) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return true;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !(name.as_bytes().starts_with(b"proxcage-") && name.as_bytes().ends_with(b".tar.zst")) {
            return false;
        }
        // A frame header is 18 bytes at most (zstd's ZSTD_FRAMEHEADERSIZE_MAX).
        let mut head = Vec::with_capacity(18);
        let read = UntrustedFile::open(&entry.path(), Links::Follow)
            .map_err(drop)
            .and_then(|f| f.into_file().take(18).read_to_end(&mut head).map_err(drop));
        match (read, zstd::zstd_safe::get_frame_content_size(&head)) {
            (Ok(_), Ok(Some(size))) => size == len,
            _ => true,
        }
    })
}

/// A writer that takes `left` bytes more at most: what a tree that grew since its archive's
/// length was computed would add does not reach zstd, which was promised that length.
struct Bounded<W> {
    inner: W,
    left: u64,
    grew: bool,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            self.grew = true;
            return Err(io::Error::other("more than the archive's length"));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn check_level(opts: &PackOptions) -> Result<(), TemplateError> {
    let range = zstd::compression_level_range();
    if range.contains(&opts.level) {
        Ok(())
    } else {
        Err(TemplateError::InvalidLevel {
            level: opts.level,
            min: *range.start(),
            max: *range.end(),
        })
    }
}

pub(crate) fn check_dest(dest_dir: &Path) -> Result<(), TemplateError> {
    match fs::metadata(dest_dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(TemplateError::DestNotADirectory {
            path: dest_dir.into(),
        }),
        Err(e) => Err(io_error("inspect", dest_dir)(e)),
    }
}

/// Compresses the archive that `produce` writes into `out` as `opts` says (see
/// [`PackOptions::workers`]) and returns `out`. `input_len` is the archive's length, and
/// `path` the file that errors are about.
///
/// The archive's headers are 512-byte writes: gathered into chunks of [`CHUNK`] bytes, the
/// encoder (or the compressing thread) is entered once per chunk, not once per header.
/// Without workers, the chunks go to the compressing thread through a channel that holds
/// one; emptied ones come back, so at most a few exist at any time.
pub(crate) fn compress<W: Write + Send>(
    out: W,
    opts: &PackOptions,
    input_len: u64,
    path: &Path,
    produce: impl FnOnce(&mut dyn Write) -> Result<(), TemplateError>,
) -> Result<W, TemplateError> {
    if opts.workers > 0 {
        let mut sink = BufWriter::with_capacity(CHUNK, zstd_encoder(out, opts, input_len, path)?);
        produce(&mut sink)?;
        let encoder = sink
            .into_inner()
            .map_err(|e| io_error("write", path)(e.into_error()))?;
        return encoder.finish().map_err(io_error("write", path));
    }
    let (full, full_rx) = mpsc::sync_channel::<Vec<u8>>(1);
    let (empty_tx, empty) = mpsc::channel::<Vec<u8>>();
    thread::scope(|scope| {
        let compressor = thread::Builder::new()
            .name("zstd".into())
            .spawn_scoped(scope, move || {
                let mut encoder = zstd_encoder(out, opts, input_len, path)?;
                for chunk in full_rx {
                    encoder.write_all(&chunk).map_err(io_error("write", path))?;
                    // Once the reading side is gone, nothing takes chunks back.
                    let _ = empty_tx.send(chunk);
                }
                encoder.finish().map_err(io_error("write", path))
            })
            .map_err(io_error("start a thread to compress", path))?;
        let mut sink = Chunks {
            chunk: Vec::with_capacity(CHUNK),
            full,
            empty,
            hung_up: false,
        };
        let produced =
            produce(&mut sink).and_then(|()| sink.hand_over().map_err(io_error("write", path)));
        let hung_up = sink.hung_up;
        drop(sink); // the end of the archive: the compressing thread finishes the frame
        let compressed = compressor
            .join()
            .expect("the compressing thread does not panic");
        match (produced, compressed) {
            // The compressing thread stopped first: its error is the cause.
            (_, Err(e)) if hung_up => Err(e),
            (Err(e), _) => Err(e),
            (Ok(()), compressed) => compressed,
        }
    })
}

/// The reading side of [`compress`] without workers: fills a chunk and hands it to the
/// compressing thread when full, taking back an emptied one (or a new one while the
/// others are in flight).
struct Chunks {
    chunk: Vec<u8>,
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
    /// Whether the compressing thread was gone when a chunk was handed over.
    hung_up: bool,
}

impl Chunks {
    fn hand_over(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let mut next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        let chunk = std::mem::replace(&mut self.chunk, next);
        self.full.send(chunk).map_err(|_| {
            self.hung_up = true;
            io::Error::new(io::ErrorKind::BrokenPipe, "the compressing thread stopped")
        })
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.chunk.len() == CHUNK {
            self.hand_over()?;
        }
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

/// A zstd encoder as `opts` says, with a checksum and the input size in the frame header.
fn zstd_encoder<W: Write>(
    w: W,
    opts: &PackOptions,
    input_len: u64,
    path: &Path,
) -> Result<zstd::stream::write::Encoder<'static, W>, TemplateError> {
    let mut encoder = zstd::stream::write::Encoder::new(w, opts.level)
        .map_err(io_error("start compressing into", path))?;
    encoder
        .include_checksum(true)
        .map_err(io_error("configure zstd for", path))?;
    encoder
        .set_pledged_src_size(Some(input_len))
        .map_err(io_error("configure zstd for", path))?;
    if opts.workers > 0 {
        encoder
            .multithread(opts.workers)
            .map_err(io_error("start zstd workers for", path))?;
    }
    Ok(encoder)
}

pub(crate) fn check_rootfs(rootfs: &Path) -> Result<(), TemplateError> {
    match fs::metadata(rootfs) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(TemplateError::RootfsNotADirectory {
            path: rootfs.into(),
        }),
        Err(e) => Err(io_error("inspect", rootfs)(e)),
    }
}

/// A bar over the uncompressed archive's bytes, or `None` when stderr is not a terminal.
pub(crate) fn new_bar() -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>6} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct Hashing<W> {
    pub(crate) inner: W,
    pub(crate) sha: Sha256,
    pub(crate) len: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            sha: Sha256::new(),
            len: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that counts what passes through it.
pub(crate) struct Counting<W> {
    pub(crate) inner: W,
    pub(crate) len: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Walks a tree in name order and writes it as a tar stream.
pub(crate) struct Walker<'a> {
    /// Whether device nodes and FIFOs are archived.
    pub(crate) special: bool,
    /// Whether xattr values may hold newlines (the `tar` crate, and so Proxmox's OCI
    /// importer, cannot read them).
    pub(crate) newlines: bool,
    /// Hash of every entry's name, inode and change time: any write to a file or its
    /// metadata moves its ctime, so two walks with equal stamps read the same tree.
    pub(crate) stamps: Sha256,
    root: &'a Path,
    /// What write errors are about (the temporary file).
    dest: &'a Path,
    bar: Option<&'a ProgressBar>,
    /// First archive name of each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    /// Whether file contents are left out, only counted in `skipped` (with their padding).
    dry: bool,
    skipped: u64,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(root: &'a Path, dest: &'a Path, bar: Option<&'a ProgressBar>) -> Self {
        Walker {
            special: true,
            newlines: true,
            stamps: Sha256::new(),
            root,
            dest,
            bar,
            links: HashMap::new(),
            buf: vec![0; CHUNK],
            dry: false,
            skipped: 0,
        }
    }

    pub(crate) fn archive(&mut self, out: &mut impl Write) -> Result<(), TemplateError> {
        let meta = fs::symlink_metadata(self.root).map_err(io_error("inspect", self.root))?;
        let root = self.root.to_path_buf();
        self.entry(out, &root, b"./".to_vec(), &meta)?;
        self.dir(out, &root, b".")?;
        ustar::write_end(out).map_err(io_error("write", self.dest))
    }

    /// The tree's [`Outline`], from the tree's metadata: no file is read.
    pub(crate) fn outline(mut self) -> Result<Outline, TemplateError> {
        self.dry = true;
        let mut out = Hashing::new(io::sink());
        self.archive(&mut out)?;
        Ok(Outline {
            len: out.len + self.skipped,
            headers: Digest::from_hasher(out.sha),
        })
    }

    /// Writes the archive a second time, after a first pass over the tree gave `stamps`
    /// and `len`, and fails if the tree changed in between. The content is not hashed
    /// again: the change times of every entry, compared with the first pass's, show
    /// whether anything changed.
    pub(crate) fn archive_again(
        mut self,
        out: &mut dyn Write,
        stamps: Digest,
        len: u64,
    ) -> Result<(), TemplateError> {
        let mut out = Counting { inner: out, len: 0 };
        self.archive(&mut out)?;
        if Digest::from_hasher(self.stamps) != stamps || out.len != len {
            return Err(TemplateError::RootfsChanged {
                path: self.root.into(),
                what: "entries changed after its digest was computed".into(),
            });
        }
        Ok(())
    }

    /// Writes the children of directory `path` (archive name `name`), recursively.
    fn dir(&mut self, out: &mut impl Write, path: &Path, name: &[u8]) -> Result<(), TemplateError> {
        let mut children: Vec<OsString> = fs::read_dir(path)
            .map_err(io_error("read directory", path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_error("read directory", path))?;
        children.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for child in children {
            let child_path = path.join(&child);
            let mut child_name = Vec::with_capacity(name.len() + 1 + child.len() + 1);
            child_name.extend_from_slice(name);
            child_name.push(b'/');
            child_name.extend_from_slice(child.as_bytes());
            let meta = match fs::symlink_metadata(&child_path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(TemplateError::RootfsChanged {
                        path: self.root.into(),
                        what: format!("{} disappeared", child_path.display()),
                    })
                }
                Err(e) => return Err(io_error("inspect", &child_path)(e)),
            };
            if meta.is_dir() {
                let mut dir_name = child_name.clone();
                dir_name.push(b'/');
                self.entry(out, &child_path, dir_name, &meta)?;
                self.dir(out, &child_path, &child_name)?;
            } else {
                self.entry(out, &child_path, child_name, &meta)?;
            }
        }
        Ok(())
    }

    /// Writes one entry (header and, for a regular file, its content).
    fn entry(
        &mut self,
        out: &mut impl Write,
        path: &Path,
        name: Vec<u8>,
        meta: &Metadata,
    ) -> Result<(), TemplateError> {
        let Some((kind, link)) = self.kind(path, &name, meta)? else {
            return Ok(());
        };
        let size = if kind == Kind::Regular { meta.len() } else { 0 };
        self.stamps.update(&name);
        for n in [
            meta.dev(),
            meta.ino(),
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ] {
            self.stamps.update(n.to_le_bytes());
        }
        let xattrs = self.xattrs(path)?;
        let rdev = meta.rdev();
        let header = Header {
            path: &name,
            kind,
            mode: meta.mode(),
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size,
            mtime: meta.mtime(),
            link: &link,
            device: (
                u64::from(nix::sys::stat::major(rdev) as u32),
                u64::from(nix::sys::stat::minor(rdev) as u32),
            ),
            xattrs: &xattrs,
        };
        ustar::write_header(out, &header).map_err(io_error("write", self.dest))?;
        if kind == Kind::Regular && self.dry {
            self.skipped += size + ustar::padding(size) as u64;
        } else if kind == Kind::Regular {
            self.content(out, path, meta, size)?;
        }
        Ok(())
    }

    /// How the file at `path` (archive name `name`) is archived, with its link target;
    /// `None` when it is left out. The first name of a multiply-linked inode is noted, and
    /// its later names become hardlinks to it.
    fn kind(
        &mut self,
        path: &Path,
        name: &[u8],
        meta: &Metadata,
    ) -> Result<Option<(Kind, Vec<u8>)>, TemplateError> {
        let ft = meta.file_type();
        let inode = (meta.dev(), meta.ino());
        if ft.is_dir() {
            return Ok(Some((Kind::Directory, Vec::new())));
        }
        if ft.is_symlink() {
            let link = fs::read_link(path)
                .map_err(io_error("read link", path))?
                .into_os_string()
                .into_vec();
            return Ok(Some((Kind::Symlink, link)));
        }
        if ft.is_socket() {
            tracing::warn!(path = %path.display(), "socket left out of the template");
            return Ok(None);
        }
        if !self.special && (ft.is_char_device() || ft.is_block_device() || ft.is_fifo()) {
            tracing::warn!(path = %path.display(), "device node or FIFO left out of the archive");
            return Ok(None);
        }
        if meta.nlink() > 1 {
            if let Some(first) = self.links.get(&inode) {
                return Ok(Some((Kind::HardLink, first.clone())));
            }
            self.links.insert(inode, name.to_vec());
        }
        let kind = if ft.is_file() {
            Kind::Regular
        } else if ft.is_char_device() {
            Kind::CharDevice
        } else if ft.is_block_device() {
            Kind::BlockDevice
        } else {
            Kind::Fifo
        };
        Ok(Some((kind, Vec::new())))
    }

    /// The xattrs of `path`; for Proxmox's OCI importer, none may hold a newline.
    fn xattrs(&self, path: &Path) -> Result<Xattrs, TemplateError> {
        let xattrs = read_xattrs(path)?;
        if !self.newlines {
            if let Some((name, _)) = xattrs.iter().find(|(_, v)| v.contains(&b'\n')) {
                return Err(TemplateError::Unrepresentable {
                    path: path.into(),
                    what: format!(
                        "its xattr {} holds a newline byte, which Proxmox's OCI importer cannot read: use the tar.zst format",
                        String::from_utf8_lossy(name)
                    ),
                });
            }
        }
        Ok(xattrs)
    }

    /// Copies exactly `size` bytes of the file and the padding after them.
    fn content(
        &mut self,
        out: &mut impl Write,
        path: &Path,
        meta: &Metadata,
        size: u64,
    ) -> Result<(), TemplateError> {
        let Some(file) = UntrustedFile::open_walked(path, meta).map_err(io_error("open", path))?
        else {
            return Err(TemplateError::RootfsChanged {
                path: self.root.into(),
                what: format!("{} was replaced", path.display()),
            });
        };
        let mut file = file.into_file();
        let mut left = size;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(TemplateError::RootfsChanged {
                        path: self.root.into(),
                        what: format!("{} shrank", path.display()),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error("read", path)(e)),
            };
            out.write_all(&self.buf[..n])
                .map_err(io_error("write", self.dest))?;
            left -= n as u64;
            if let Some(bar) = self.bar {
                bar.inc(n as u64);
            }
        }
        out.write_all(&[0; ustar::BLOCK][..ustar::padding(size)])
            .map_err(io_error("write", self.dest))
    }
}

/// The extended attributes of `path` (not of a symlink's target), sorted by name. A file
/// system without xattr support has none.
pub(crate) fn read_xattrs(path: &Path) -> Result<Xattrs, TemplateError> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list the xattrs of", path)(e)),
    };
    let mut out = Vec::new();
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push((name.into_vec(), value)),
            Ok(None) => {}
            Err(e) if is_unsupported(&e) => {}
            Err(e) => return Err(io_error("read the xattrs of", path)(e)),
        }
    }
    out.sort();
    Ok(out)
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_file_is_a_dead_packs_once_unlocked_and_settled() {
        let dir = tempfile::tempdir().unwrap();
        let name = ".proxcage-x.tar.zst.tmp";
        let file = File::create(dir.path().join(name)).unwrap();
        // Just made: its packer may not have locked it yet.
        assert!(!is_abandoned_pack(dir.path(), name));
        let old = std::time::SystemTime::now() - PACK_LOCK_GRACE * 2;
        file.set_modified(old).unwrap();
        assert!(is_abandoned_pack(dir.path(), name));
        // SAFETY: flock on a descriptor the test owns.
        let locked = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        assert_eq!(locked, 0);
        assert!(!is_abandoned_pack(dir.path(), name), "a live pack's");
        assert!(!is_abandoned_pack(dir.path(), "x.tar.zst"));
    }
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(root.join("bin/tool"), root.join("bin/tool2")).unwrap();
        symlink("tool", root.join("bin/link")).unwrap();
        fs::write(root.join(format!("{}.txt", "n".repeat(120))), b"long").unwrap();
        dir
    }

    #[test]
    fn digest_is_stable_and_sees_modes_and_content() {
        let dir = tree();
        let a = tree_digest(dir.path()).unwrap();
        assert_eq!(tree_digest(dir.path()).unwrap(), a);
        fs::set_permissions(
            dir.path().join("bin/tool"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let b = tree_digest(dir.path()).unwrap();
        assert_ne!(a, b);
        fs::write(dir.path().join("bin/tool"), b"#!/bin/sh\necho ho\n").unwrap();
        fs::set_permissions(
            dir.path().join("bin/tool"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_ne!(tree_digest(dir.path()).unwrap(), b);
    }

    #[test]
    fn pack_reuses_and_names_by_digest() {
        let dir = tree();
        let dest = tempfile::tempdir().unwrap();
        let opts = PackOptions::default().progress(false);
        let first = pack_rootfs(dir.path(), dest.path(), &opts).unwrap();
        assert!(!first.reused());
        assert_eq!(first.digest(), tree_digest(dir.path()).unwrap());
        assert_eq!(
            first.path(),
            dest.path()
                .join(format!("proxcage-{}.tar.zst", first.digest().hex()))
        );
        let second = pack_rootfs(dir.path(), dest.path(), &opts).unwrap();
        assert!(second.reused());
        assert_eq!(second.path(), first.path());
        assert_eq!(fs::read_dir(dest.path()).unwrap().count(), 1);
    }

    #[test]
    fn archive_is_the_same_for_any_worker_count() {
        let dir = tree();
        let mut bytes = Vec::new();
        for workers in [0, 1, 2, 3] {
            let dest = tempfile::tempdir().unwrap();
            let opts = PackOptions::default().progress(false).workers(workers);
            let t = pack_rootfs(dir.path(), dest.path(), &opts).unwrap();
            bytes.push((workers, fs::read(t.path()).unwrap()));
        }
        for (workers, b) in &bytes[2..] {
            assert!(
                b == &bytes[1].1,
                "{workers} workers gave other bytes than 1"
            );
        }
    }

    /// A tree of several chunks, so that chunks are handed over and come back emptied.
    fn big_tree() -> tempfile::TempDir {
        let dir = tree();
        let noise: Vec<u8> = (0..5 * CHUNK as u32 + 1234)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(dir.path().join("noise"), &noise).unwrap();
        dir
    }

    #[test]
    fn without_workers_the_archive_holds_the_same_tar() {
        let dir = big_tree();
        let tars: Vec<Vec<u8>> = [0, 1]
            .into_iter()
            .map(|workers| {
                let dest = tempfile::tempdir().unwrap();
                let opts = PackOptions::default().progress(false).workers(workers);
                let t = pack_rootfs(dir.path(), dest.path(), &opts).unwrap();
                let tar = zstd::decode_all(File::open(t.path()).unwrap()).unwrap();
                assert_eq!(Digest::of(&tar), t.digest(), "{workers} workers");
                tar
            })
            .collect();
        assert!(tars[0] == tars[1], "0 and 1 workers packed other tars");
        assert!(tars[0].len() > 5 * CHUNK);
    }

    #[test]
    fn the_length_from_metadata_is_the_archives_and_the_outline_sees_metadata() {
        for dir in [tree(), big_tree()] {
            let outline = archive_outline(dir.path()).unwrap();
            assert_eq!(outline.len, written_len(dir.path()));
            assert_eq!(archive_outline(dir.path()).unwrap(), outline);
        }
        let dir = tree();
        let before = archive_outline(dir.path()).unwrap();
        let file = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_file())
            .unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(archive_outline(dir.path()).unwrap(), before);
    }

    #[test]
    fn one_pass_and_two_give_the_same_template() {
        let dir = big_tree();
        let opts = PackOptions::default().progress(false);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let once = pack_rootfs(dir.path(), a.path(), &opts).unwrap();
        // A template of the same length in b: the digest must be computed first there.
        fs::copy(once.path(), b.path().join("proxcage-0.tar.zst")).unwrap();
        let len = archive_outline(dir.path()).unwrap().len;
        assert!(template_of_len_may_exist(b.path(), len));
        let twice = pack_rootfs(dir.path(), b.path(), &opts).unwrap();
        assert!(!twice.reused());
        assert_eq!(twice.digest(), once.digest());
        assert!(fs::read(twice.path()).unwrap() == fs::read(once.path()).unwrap());
    }

    #[test]
    fn only_a_proxcage_template_of_that_length_may_be_the_one() {
        let dir = tree();
        let dest = tempfile::tempdir().unwrap();
        let opts = PackOptions::default().progress(false);
        let t = pack_rootfs(dir.path(), dest.path(), &opts).unwrap();
        let len = written_len(dir.path());
        assert!(template_of_len_may_exist(dest.path(), len));
        assert!(!template_of_len_may_exist(dest.path(), len + 512));
        let other = tempfile::tempdir().unwrap();
        assert!(!template_of_len_may_exist(other.path(), len));
        // Not proxcage's: another name, even with the same content.
        fs::copy(t.path(), other.path().join("debian-12-standard.tar.zst")).unwrap();
        assert!(!template_of_len_may_exist(other.path(), len));
        // A header that cannot be read may be anything.
        fs::write(other.path().join("proxcage-1.tar.zst"), b"not zstd").unwrap();
        assert!(template_of_len_may_exist(other.path(), len + 512));
    }

    /// The length of the tree's archive, written out.
    fn written_len(rootfs: &Path) -> u64 {
        let mut sink = Hashing::new(io::sink());
        Walker::new(rootfs, Path::new("/dev/null"), None)
            .archive(&mut sink)
            .unwrap();
        sink.len
    }

    #[test]
    fn a_tree_that_changed_length_during_one_pass_is_refused_and_leaves_nothing() {
        let dir = big_tree();
        let len = written_len(dir.path());
        let opts = PackOptions::default().progress(false);
        for (promised, what) in [(len - 512, "grew"), (len + 512, "shrank")] {
            let dest = tempfile::tempdir().unwrap();
            let err = pack_once(dir.path(), dest.path(), &opts, None, promised).unwrap_err();
            match &err {
                TemplateError::RootfsChanged { path, what: w } => {
                    assert_eq!(path, dir.path());
                    assert!(w.contains(what), "{err}");
                }
                other => panic!("{other}"),
            }
            assert_eq!(fs::read_dir(dest.path()).unwrap().count(), 0, "{err}");
        }
    }

    /// A file that takes `ok` bytes, then fails as a full disk does.
    #[derive(Debug)]
    struct Filling {
        ok: usize,
    }

    impl Write for Filling {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.ok);
            self.ok -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_of_the_compressing_thread_is_the_error() {
        let path = Path::new("/srv/t.tar.zst");
        let opts = PackOptions::default().progress(false);
        let noise: Vec<u8> = (0..40 * CHUNK as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let err = compress(
            Filling { ok: 1000 },
            &opts,
            noise.len() as u64,
            path,
            |sink| {
                sink.write_all(&noise)
                    .map_err(io_error("read", Path::new("/rootfs")))
            },
        )
        .unwrap_err();
        match err {
            TemplateError::Io {
                op: "write",
                path: p,
                source,
            } => {
                assert_eq!(p, path);
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{source}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn an_error_of_the_reading_side_is_the_error() {
        let opts = PackOptions::default().progress(false);
        let err = compress(Vec::new(), &opts, 1 << 20, Path::new("/srv/t"), |sink| {
            sink.write_all(&[7; CHUNK + 1]).unwrap();
            Err(TemplateError::RootfsChanged {
                path: "/rootfs".into(),
                what: "a test".into(),
            })
        })
        .unwrap_err();
        assert!(matches!(err, TemplateError::RootfsChanged { .. }), "{err}");
    }

    #[test]
    fn bad_level_and_missing_rootfs_are_errors() {
        let dir = tree();
        let dest = tempfile::tempdir().unwrap();
        let err =
            pack_rootfs(dir.path(), dest.path(), &PackOptions::default().level(99)).unwrap_err();
        assert!(
            matches!(err, TemplateError::InvalidLevel { level: 99, .. }),
            "{err}"
        );
        let err = pack_rootfs(
            &dir.path().join("nope"),
            dest.path(),
            &PackOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert_eq!(fs::read_dir(dest.path()).unwrap().count(), 0);
    }
}
