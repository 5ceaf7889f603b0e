//! Bundles from what operators have: an OCI image layout (a directory or an
//! `oci-archive` tar) with `:tag` or `@sha256:...`, a root filesystem directory (copied
//! or referenced), or a root filesystem tarball (`.tar`, `.tar.gz`, `.tar.zst`).
//!
//! For an image, the index leads to the manifest for this platform and the manifest to
//! the config and the layers; every blob's size and digest are checked as it is read, and
//! a wrong one is an error that names the blob. Layers are applied in order (gzip, zstd
//! or uncompressed) with whiteouts and opaque whiteouts; see `unpack` for how paths stay
//! inside the rootfs. The image config becomes the process: `Entrypoint` + `Cmd` as args,
//! `Env`, `WorkingDir`, `User` (names resolved in the image's `/etc/passwd` and
//! `/etc/group`), and annotations: the labels, `org.opencontainers.image.stopSignal`,
//! `org.opencontainers.image.exposedPorts`, and `io.proxcage.image.volumes` (the volume
//! directories are created in the rootfs).
//!
//! Everything is built in a temporary directory next to `OUT` and renamed to `OUT` at
//! the end: on any error, nothing is left.
//!
//! ```no_run
//! use proxcage_oci::build::{create_bundle, BundleOptions, Source};
//! use std::path::Path;
//!
//! let source = Source::parse("/srv/images/web:1.4")?;
//! let opts = BundleOptions::default().env(["MODE=prod"]).hostname("web");
//! let built = create_bundle(Path::new("/var/lib/bundles/web"), &source, &opts)?;
//! println!("bundle {}", built.dir().display());
//! # Ok::<(), proxcage_oci::build::BuildError>(())
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal, Read};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::digest::{Digest, DigestParseError};
pub use crate::layout::Reference;
use crate::layout::{self, ContainerConfig, Descriptor, ImageConfig, Layout};
use crate::template::TemplateError;
use crate::unpack::{Rootfs, UnpackError};
use crate::untrusted::{Links, UntrustedFile, UntrustedFileError};

/// Where a bundle's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCI image layout directory or `oci-archive` tar, and which image in it.
    Image {
        layout: PathBuf,
        reference: Option<Reference>,
    },
    /// A root filesystem directory: copied into the bundle (`copy`), or used in place
    /// (config.json's `root.path` is then its absolute path).
    RootfsDir { path: PathBuf, copy: bool },
    /// A root filesystem tarball: `.tar`, `.tar.gz`/`.tgz`, `.tar.zst` (by content).
    RootfsTarball { path: PathBuf },
}

impl Source {
    /// Reads a `--from` argument: an existing path (a directory with `oci-layout` is an
    /// image layout, another directory a rootfs to copy; a `.tar` with `oci-layout` is an
    /// oci-archive, other files rootfs tarballs), or a layout path followed by `:tag` or
    /// `@sha256:<hex>`.
    pub fn parse(arg: &str) -> Result<Source, BuildError> {
        let path = Path::new(arg);
        if path.exists() {
            return Source::at(path, None);
        }
        if let Some((base, digest)) = arg.rsplit_once('@') {
            if Path::new(base).exists() {
                let digest: Digest = digest.parse().map_err(|source| BuildError::BadReference {
                    arg: arg.to_owned(),
                    source,
                })?;
                return Source::at(Path::new(base), Some(Reference::Digest(digest)));
            }
        }
        if let Some((base, tag)) = arg.rsplit_once(':') {
            if Path::new(base).exists() && !tag.is_empty() && !tag.contains('/') {
                return Source::at(Path::new(base), Some(Reference::Tag(tag.to_owned())));
            }
        }
        Err(BuildError::SourceNotFound {
            arg: arg.to_owned(),
        })
    }

    fn at(path: &Path, reference: Option<Reference>) -> Result<Source, BuildError> {
        let image = if path.is_dir() {
            layout::is_layout_dir(path)
        } else {
            match archive_kind(path) {
                ArchiveKind::Oci => true,
                ArchiveKind::Docker => {
                    return Err(BuildError::NotAnImageLayout {
                        path: path.to_path_buf(),
                        reason: format!(
                            "it is a docker-archive; convert it with `skopeo copy docker-archive:{0} oci-archive:{0}.oci`",
                            path.display()
                        ),
                    })
                }
                ArchiveKind::Other => false,
            }
        };
        match (image, reference) {
            (true, reference) => Ok(Source::Image {
                layout: path.to_path_buf(),
                reference,
            }),
            (false, Some(r)) => Err(BuildError::NotAnImageLayout {
                path: path.to_path_buf(),
                reason: format!("{r} names an image, and this has no oci-layout file"),
            }),
            (false, None) if path.is_dir() => Ok(Source::RootfsDir {
                path: path.to_path_buf(),
                copy: true,
            }),
            (false, None) => Ok(Source::RootfsTarball {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// What an uncompressed tar holds, judged by its first 64 member names (and at most
/// 64 MiB read).
#[derive(Debug, PartialEq, Eq)]
enum ArchiveKind {
    /// An OCI image layout (`oci-layout`): an oci-archive.
    Oci,
    /// `docker save`'s older format: `manifest.json` and no `oci-layout`.
    Docker,
    Other,
}

fn archive_kind(path: &Path) -> ArchiveKind {
    use crate::tar_read::{Next, TarReader};
    // What cannot be opened safely is not an archive; unpacking it as a tarball says why.
    let Ok(file) = UntrustedFile::open(path, Links::Follow) else {
        return ArchiveKind::Other;
    };
    let file = file.into_file();
    let mut reader = TarReader::new(io::BufReader::new(file).take(64 << 20));
    let mut names = Vec::new();
    for _ in 0..64 {
        match reader.next() {
            Ok(Next::Entry(e)) => {
                let name = e.path.strip_prefix(b"./").unwrap_or(&e.path).to_vec();
                names.push(name);
            }
            Ok(Next::Unsupported(_)) => {}
            Ok(Next::End) | Err(_) => break,
        }
    }
    if names.iter().any(|n| n == b"oci-layout") {
        ArchiveKind::Oci
    } else if names.iter().any(|n| n == b"manifest.json") {
        ArchiveKind::Docker
    } else {
        ArchiveKind::Other
    }
}

/// A bind mount `src:dst[:ro]` for the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

impl std::str::FromStr for MountSpec {
    type Err = BuildError;

    /// `src:dst` or `src:dst:ro` (`:rw` is accepted too); `dst` must be absolute.
    fn from_str(s: &str) -> Result<MountSpec, BuildError> {
        let bad = |reason: &str| BuildError::InvalidOption {
            option: "mount",
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, read_only) = match parts.as_slice() {
            [src, dst] => (*src, *dst, false),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            [_, _, other] => {
                return Err(bad(&format!(
                    "unknown mount option {other:?}: use ro or rw"
                )))
            }
            _ => return Err(bad("expected src:dst[:ro]")),
        };
        if src.is_empty() || !dst.starts_with('/') {
            return Err(bad(
                "the source must not be empty and the destination must be absolute",
            ));
        }
        Ok(MountSpec {
            source: PathBuf::from(src),
            destination: dst.to_owned(),
            read_only,
        })
    }
}

/// What to change in the generated config.json.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    args: Option<Vec<String>>,
    env: Vec<String>,
    cwd: Option<String>,
    user: Option<String>,
    hostname: Option<String>,
    memory: Option<u64>,
    mounts: Vec<MountSpec>,
    progress: bool,
    max_blob_size: u64,
    max_unpacked_size: u64,
}

/// The default of [`BundleOptions::max_blob_size`]: 64 GiB.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 64 << 30;

/// The default of [`BundleOptions::max_unpacked_size`]: 64 GiB.
pub const DEFAULT_MAX_UNPACKED_SIZE: u64 = 64 << 30;

impl Default for BundleOptions {
    /// Nothing changed; a progress bar when stderr is a terminal; the limits
    /// [`DEFAULT_MAX_BLOB_SIZE`] and [`DEFAULT_MAX_UNPACKED_SIZE`].
    fn default() -> Self {
        BundleOptions {
            args: None,
            env: Vec::new(),
            cwd: None,
            user: None,
            hostname: None,
            memory: None,
            mounts: Vec::new(),
            progress: io::stderr().is_terminal(),
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            max_unpacked_size: DEFAULT_MAX_UNPACKED_SIZE,
        }
    }
}

impl BundleOptions {
    /// Replaces the image's `Cmd` (the `Entrypoint` stays in front, as with `docker run
    /// IMAGE ARGS`). For a rootfs source, the whole argv.
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// `KEY=VALUE` entries that set or override the image's.
    pub fn env<S: Into<String>>(mut self, env: impl IntoIterator<Item = S>) -> Self {
        self.env.extend(env.into_iter().map(Into::into));
        self
    }

    /// The working directory (absolute).
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// `user[:group]`, names or numbers; names are looked up in the rootfs.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// The memory limit in bytes (see [`parse_memory`]).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }

    pub fn mount(mut self, mount: MountSpec) -> Self {
        self.mounts.push(mount);
        self
    }

    pub fn progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The largest size an image's descriptor may declare for a blob (a layer, the
    /// config, a manifest). A larger one is refused before anything of it is read: an
    /// image cannot make proxcage read for hours. Published images have layers of a few
    /// GB at most; the default, [`DEFAULT_MAX_BLOB_SIZE`], leaves room for any real one.
    pub fn max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }

    /// The most file data unpacking may write into the rootfs, all layers together (or
    /// the whole tarball, or the copied directory): the sum of the sizes of the regular
    /// files written, counted before each is written, so that a small compressed layer
    /// cannot fill the disk. The default, [`DEFAULT_MAX_UNPACKED_SIZE`], is above any
    /// real root filesystem; a fixed bound rather than a share of the free space, so that
    /// the same image gives the same answer on every host. A disk that fills up before the
    /// limit is reached is reported as such ([`BuildError::NoSpace`]).
    pub fn max_unpacked_size(mut self, bytes: u64) -> Self {
        self.max_unpacked_size = bytes;
        self
    }
}

/// `512M`, `2G`, `1048576`, `64k` (binary units; `MiB`/`GiB` spellings too) in bytes.
pub fn parse_memory(s: &str) -> Result<u64, BuildError> {
    let bad = || BuildError::InvalidOption {
        option: "memory",
        value: s.to_owned(),
        reason: "expected a number of bytes with an optional unit k, M, G or T".into(),
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    num.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(bad)
}

/// A bundle that was created.
#[derive(Debug, Clone)]
pub struct BuiltBundle {
    dir: PathBuf,
    rootfs: PathBuf,
    manifest: Option<Digest>,
}

impl BuiltBundle {
    /// The bundle directory (`OUT`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root filesystem: `OUT/rootfs`, or the referenced directory.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The digest of the image manifest the bundle was made from.
    pub fn manifest(&self) -> Option<Digest> {
        self.manifest
    }
}

/// Why a bundle could not be created. Messages name the file, blob or option.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("{arg}: no such file or directory (a source is an image layout or oci-archive with :tag or @sha256:..., a rootfs directory or a rootfs tarball)")]
    SourceNotFound { arg: String },

    #[error("{arg}: {source}")]
    BadReference {
        arg: String,
        #[source]
        source: DigestParseError,
    },

    #[error("{} exists and is not an empty directory: choose another OUT or remove it", path.display())]
    OutputExists { path: PathBuf },

    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} is not an OCI image layout: {reason}", path.display())]
    NotAnImageLayout { path: PathBuf, reason: String },

    #[error("{}: invalid image: {reason}", layout.display())]
    InvalidImage { layout: PathBuf, reason: String },

    #[error("{}: {source}", layout.display())]
    BadDigest {
        layout: PathBuf,
        #[source]
        source: DigestParseError,
    },

    #[error("{}: no manifest for {reference} in index.json (tags: {})", layout.display(), if tags.is_empty() { "none".to_owned() } else { tags.join(", ") })]
    ManifestNotFound {
        layout: PathBuf,
        reference: String,
        tags: Vec<String>,
    },

    #[error("{}: index.json lists several images: name one with :tag or @sha256:... (tags: {})", layout.display(), tags.join(", "))]
    AmbiguousImage { layout: PathBuf, tags: Vec<String> },

    #[error("{}: the image has no manifest for {platform}", layout.display())]
    NoPlatform { layout: PathBuf, platform: String },

    #[error("blob {digest} is missing: {location} does not exist")]
    BlobMissing { digest: Digest, location: String },

    #[error("blob {digest} ({location}) declares {size} bytes, more than the {limit} bytes proxcage reads of one blob: refused before reading it")]
    BlobTooLarge {
        digest: Digest,
        location: String,
        size: u64,
        limit: u64,
    },

    #[error("blob {digest} ({location}) is corrupt or truncated: {reason}")]
    BlobCorrupt {
        digest: Digest,
        location: String,
        reason: String,
    },

    #[error("layer {digest} has media type {media_type:?}, which proxcage cannot unpack (tar, tar+gzip, tar+zstd)")]
    UnsupportedMediaType { digest: String, media_type: String },

    #[error("{source_name}: entry {entry:?} would be written outside the rootfs: refused")]
    PathEscape { source_name: String, entry: String },

    #[error("{source_name}: entry {entry:?} would take the unpacked file data past {limit} bytes: refused (the image is larger than the unpacked-size limit, or a compressed layer expands without end)")]
    UnpackedTooLarge {
        source_name: String,
        entry: String,
        limit: u64,
    },

    /// The file system of the bundle being built is full.
    #[error("no space left on device while writing {entry:?} of {source_name}: free space on the file system of {} or build the bundle elsewhere", dir.display())]
    NoSpace {
        source_name: String,
        entry: String,
        /// The directory the bundle is built in.
        dir: PathBuf,
    },

    /// A file of the source (an image's index.json or blob, a tarball, an oci-archive)
    /// that is not a regular file, or is too large.
    #[error(transparent)]
    File(#[from] UntrustedFileError),

    #[error("{source_name}: entry {entry:?}: {source}")]
    Entry {
        source_name: String,
        entry: String,
        #[source]
        source: io::Error,
    },

    #[error("invalid {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("invalid --{option} {value:?}: {reason}")]
    InvalidOption {
        option: &'static str,
        value: String,
        reason: String,
    },

    #[error("user {user:?}: {reason}")]
    User { user: String, reason: String },

    #[error("copying the rootfs failed: {0}")]
    Copy(#[source] TemplateError),
}

/// So that the CLI can pass a build error on with `?`; its message is kept as is.
impl From<BuildError> for proxcage_core::Error {
    fn from(e: BuildError) -> Self {
        proxcage_core::Error::Input(Box::new(e))
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the bundle `out` (which must not exist, or be an empty directory) from
/// `source`. See the module documentation.
pub fn create_bundle(
    out: &Path,
    source: &Source,
    opts: &BundleOptions,
) -> Result<BuiltBundle, BuildError> {
    check_options(opts)?;
    let out = absolute(out).map_err(io_error("resolve", out))?;
    check_output(&out)?;
    let parent = out.parent().unwrap_or(Path::new("/"));
    // Removed with everything in it on drop: on every error path.
    let tmp = tempfile::Builder::new()
        .prefix(".proxcage-bundle-")
        .tempdir_in(parent)
        .map_err(io_error("create a temporary directory in", parent))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .map_err(io_error("set the mode of", tmp.path()))?;

    let staged_rootfs = tmp.path().join("rootfs");
    let staging = Staging {
        rootfs: &staged_rootfs,
        dir: parent,
        opts,
    };
    let (rootfs_for_config, image, manifest) = fill_rootfs(source, &staging, &out, tmp.path())?;
    let root_path = if rootfs_for_config == staged_rootfs {
        "rootfs".to_owned()
    } else {
        rootfs_for_config.display().to_string()
    };
    let image = image.as_ref().and_then(|c| c.config.as_ref());
    write_config(tmp.path(), &rootfs_for_config, &root_path, image, opts)?;

    let staged = tmp.keep();
    if let Err(e) = fs::rename(&staged, &out) {
        let _ = fs::remove_dir_all(&staged);
        return Err(io_error("rename the finished bundle to", &out)(e));
    }
    let rootfs_path = if root_path == "rootfs" {
        out.join("rootfs")
    } else {
        rootfs_for_config
    };
    tracing::debug!(bundle = %out.display(), "bundle created");
    Ok(BuiltBundle {
        dir: out,
        rootfs: rootfs_path,
        manifest,
    })
}

/// Refuses an `out` that exists and is not an empty directory.
fn check_output(out: &Path) -> Result<(), BuildError> {
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Ok(m)
            if m.is_dir()
                && fs::read_dir(out)
                    .map_err(io_error("read", out))?
                    .next()
                    .is_none() =>
        {
            Ok(())
        }
        Ok(_) => Err(BuildError::OutputExists { path: out.into() }),
        Err(e) => Err(io_error("inspect", out)(e)),
    }
}

/// Where a source is unpacked, and within which limits.
struct Staging<'a> {
    /// The rootfs directory to fill, inside the bundle's temporary directory.
    rootfs: &'a Path,
    /// The directory the bundle is built in, named when its file system is full.
    dir: &'a Path,
    opts: &'a BundleOptions,
}

impl Staging<'_> {
    /// Creates the rootfs directory and opens it for unpacking.
    fn create_rootfs(&self) -> Result<Rootfs, BuildError> {
        fs::create_dir(self.rootfs).map_err(io_error("create", self.rootfs))?;
        let rootfs = Rootfs::open(self.rootfs).map_err(io_error("open", self.rootfs))?;
        Ok(rootfs.data_limit(self.opts.max_unpacked_size))
    }

    /// The error of unpacking `source_name`; `stream` turns an error of reading the source
    /// (a corrupt or truncated stream) into the error to report.
    fn unpack_error(
        &self,
        source_name: &str,
        e: UnpackError,
        stream: impl FnOnce(io::Error) -> BuildError,
    ) -> BuildError {
        let source_name = source_name.to_owned();
        match e {
            UnpackError::Stream(e) => stream(e),
            UnpackError::Escape { entry } => BuildError::PathEscape { source_name, entry },
            UnpackError::Entry { entry, source } if source.raw_os_error() == Some(libc::ENOSPC) => {
                BuildError::NoSpace {
                    source_name,
                    entry,
                    dir: self.dir.into(),
                }
            }
            UnpackError::Entry { entry, source } => BuildError::Entry {
                source_name,
                entry,
                source,
            },
            UnpackError::Unsupported { entry, kind } => BuildError::Entry {
                source_name,
                entry,
                source: io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("entries of type {kind} are not supported"),
                ),
            },
            UnpackError::TooLarge { entry, limit } => BuildError::UnpackedTooLarge {
                source_name,
                entry,
                limit,
            },
        }
    }
}

/// Puts the source's root filesystem in place: the rootfs directory for config.json's
/// `root.path`, with the image config and the manifest digest of an image.
fn fill_rootfs(
    source: &Source,
    staging: &Staging<'_>,
    out: &Path,
    tmp: &Path,
) -> Result<(PathBuf, Option<ImageConfig>, Option<Digest>), BuildError> {
    let staged = staging.rootfs.to_path_buf();
    match source {
        Source::RootfsDir { path, copy: false } => {
            if !path.is_dir() {
                return Err(BuildError::SourceNotFound {
                    arg: path.display().to_string(),
                });
            }
            // The real path: a root.path through a symbolic link is refused when the
            // bundle is loaded, as runc refuses it.
            let abs = fs::canonicalize(path).map_err(io_error("resolve", path))?;
            Ok((abs, None, None))
        }
        Source::RootfsDir { path, copy: true } => {
            let from = fs::canonicalize(path).map_err(io_error("resolve", path))?;
            let staging_dir = fs::canonicalize(tmp).map_err(io_error("resolve", tmp))?;
            if staging_dir.starts_with(&from) {
                return Err(BuildError::InvalidOption {
                    option: "from",
                    value: path.display().to_string(),
                    reason: format!(
                        "the bundle {} would be inside the rootfs it copies",
                        out.display()
                    ),
                });
            }
            copy_tree(path, staging)?;
            Ok((staged, None, None))
        }
        Source::RootfsTarball { path } => {
            unpack_tarball(path, staging)?;
            Ok((staged, None, None))
        }
        Source::Image { layout, reference } => {
            let (config, manifest) = unpack_image(layout, reference.as_ref(), staging)?;
            Ok((staged, Some(config), Some(manifest)))
        }
    }
}

/// Writes `<dir>/config.json` for the rootfs at `rootfs`, `root_path` in the config.
fn write_config(
    dir: &Path,
    rootfs: &Path,
    root_path: &str,
    image: Option<&ContainerConfig>,
    opts: &BundleOptions,
) -> Result<(), BuildError> {
    let rootfs = Rootfs::open(rootfs).map_err(io_error("open", rootfs))?;
    let config = generate_config(&rootfs, root_path, image, opts)?;
    let config_path = dir.join("config.json");
    let mut text = serde_json::to_vec_pretty(&config).map_err(|source| BuildError::Json {
        what: "generated config.json".into(),
        source,
    })?;
    text.push(b'\n');
    fs::write(&config_path, text).map_err(io_error("write", &config_path))
}

fn absolute(path: &Path) -> io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

fn check_options(opts: &BundleOptions) -> Result<(), BuildError> {
    for e in &opts.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(BuildError::InvalidOption {
                option: "env",
                value: e.clone(),
                reason: "expected KEY=VALUE".into(),
            });
        }
    }
    if let Some(cwd) = &opts.cwd {
        if !cwd.starts_with('/') {
            return Err(BuildError::InvalidOption {
                option: "cwd",
                value: cwd.clone(),
                reason: "it must be absolute".into(),
            });
        }
    }
    if opts.args.as_ref().is_some_and(Vec::is_empty) {
        return Err(BuildError::InvalidOption {
            option: "arg",
            value: String::new(),
            reason: "the argument list is empty".into(),
        });
    }
    Ok(())
}

fn bar(progress: bool, len: u64, message: &str) -> Option<ProgressBar> {
    if !progress || !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    Some(bar)
}

/// Applies the image's layers to the staged rootfs; returns its config and manifest
/// digest.
fn unpack_image(
    layout_path: &Path,
    reference: Option<&Reference>,
    staging: &Staging<'_>,
) -> Result<(ImageConfig, Digest), BuildError> {
    let layout = Layout::open(layout_path, staging.opts.max_blob_size)?;
    let (desc, manifest) = layout.manifest(reference)?;
    let manifest_digest: Digest = desc
        .digest
        .parse()
        .map_err(|source| BuildError::BadDigest {
            layout: layout_path.into(),
            source,
        })?;
    let config: ImageConfig = layout.json_blob(&manifest.config, "image config")?;
    let mut target = staging.create_rootfs()?;
    // Saturating: the sizes are the image's word, checked as each blob is opened.
    let total = manifest
        .layers
        .iter()
        .fold(0u64, |sum, l| sum.saturating_add(l.size));
    let bar = bar(staging.opts.progress, total, "layers");
    for layer in &manifest.layers {
        apply_layer(&layout, layer, &mut target, staging)?;
        if let Some(bar) = &bar {
            bar.inc(layer.size);
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    // Volumes exist in the rootfs, as engines create them.
    if let Some(volumes) = config.config.as_ref().and_then(|c| c.volumes.as_ref()) {
        for v in volumes.keys() {
            target
                .mkdir_all(v.as_bytes())
                .map_err(|source| BuildError::Entry {
                    source_name: format!("volume {v}"),
                    entry: v.clone(),
                    source,
                })?;
        }
    }
    Ok((config, manifest_digest))
}

/// Applies one layer, decompressed as its media type says, and verifies its blob.
fn apply_layer(
    layout: &Layout,
    layer: &Descriptor,
    target: &mut Rootfs,
    staging: &Staging<'_>,
) -> Result<(), BuildError> {
    let mut blob = layout.blob(layer)?;
    let name = format!("layer {}", blob.digest);
    let location = blob.location.clone();
    let digest = blob.digest;
    let corrupt = |e: io::Error| BuildError::BlobCorrupt {
        digest,
        location: location.clone(),
        reason: e.to_string(),
    };
    let mt = layer.media_type.as_str();
    {
        let mut input: Box<dyn Read + '_> = if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(&mut blob))
        } else if mt.ends_with("+zstd") || mt.ends_with(".tar.zstd") {
            Box::new(zstd::stream::read::Decoder::new(&mut blob).map_err(corrupt)?)
        } else if mt.ends_with(".tar") || mt.ends_with("layer.v1.tar") {
            Box::new(&mut blob)
        } else {
            return Err(BuildError::UnsupportedMediaType {
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
            });
        };
        target
            .apply(&mut input, |_| {})
            .map_err(|e| staging.unpack_error(&name, e, corrupt))?;
        // The rest of the stream: the compressed format's own checks (gzip's CRC).
        io::copy(&mut input, &mut io::sink()).map_err(corrupt)?;
    }
    blob.verify()
}

/// Unpacks the rootfs tarball at `path` (plain, gzip or zstd, by its first bytes).
fn unpack_tarball(path: &Path, staging: &Staging<'_>) -> Result<(), BuildError> {
    let file = UntrustedFile::open(path, Links::Follow)?;
    let len = file.len();
    let file = file.into_file();
    let mut magic = [0u8; 4];
    let n = file
        .read_at(&mut magic, 0)
        .map_err(io_error("read", path))?;
    let file = io::BufReader::with_capacity(1 << 20, file);
    let corrupt = |e: io::Error| BuildError::Io {
        op: "read the tarball",
        path: path.to_path_buf(),
        source: e,
    };
    let mut input: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(corrupt)?)
        }
        _ => Box::new(file),
    };
    let bar = bar(staging.opts.progress, len, "rootfs");
    let mut target = staging.create_rootfs()?;
    let name = path.display().to_string();
    target
        .apply(&mut input, |n| {
            if let Some(bar) = &bar {
                bar.inc(n);
            }
        })
        .map_err(|e| staging.unpack_error(&name, e, corrupt))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// Copies the tree at `from` into the staged rootfs with everything a template keeps:
/// the template's tar stream, written by one thread and applied by this one.
fn copy_tree(from: &Path, staging: &Staging<'_>) -> Result<(), BuildError> {
    let meta = fs::metadata(from).map_err(io_error("inspect", from))?;
    if !meta.is_dir() {
        return Err(BuildError::SourceNotFound {
            arg: from.display().to_string(),
        });
    }
    let mut target = staging.create_rootfs()?;
    let (reader, writer) =
        nix::unistd::pipe().map_err(|e| io_error("create a pipe for", from)(io::Error::from(e)))?;
    let (mut reader, writer) = (fs::File::from(reader), fs::File::from(writer));
    let from_owned = from.to_path_buf();
    let producer = std::thread::spawn(move || {
        let mut w = io::BufWriter::with_capacity(1 << 20, writer);
        let r = crate::template::write_tree(&from_owned, &mut w, Path::new("the copy pipe"));
        r.and_then(|()| {
            io::Write::flush(&mut w).map_err(|source| TemplateError::Io {
                op: "write",
                path: "the copy pipe".into(),
                source,
            })
        })
    });
    let name = from.display().to_string();
    let applied = target.apply(&mut reader, |_| {});
    drop(reader);
    let produced = producer.join().unwrap_or_else(|_| {
        Err(TemplateError::Io {
            op: "copy",
            path: from.to_path_buf(),
            source: io::Error::other("the copying thread panicked"),
        })
    });
    produced.map_err(BuildError::Copy)?;
    applied.map_err(|e| staging.unpack_error(&name, e, |e| io_error("copy", from)(e)))
}

/// config.json for the bundle: runc's default spec with the image's and the options'
/// process, hostname, memory, mounts and annotations.
fn generate_config(
    rootfs: &Rootfs,
    root_path: &str,
    image: Option<&ContainerConfig>,
    opts: &BundleOptions,
) -> Result<Value, BuildError> {
    let mut spec = serde_json::to_value(crate::spec::default_spec(false)).map_err(|source| {
        BuildError::Json {
            what: "default spec".into(),
            source,
        }
    })?;
    spec["root"] = json!({ "path": root_path, "readonly": false });
    let empty = ContainerConfig::default();
    let image = image.unwrap_or(&empty);
    let process = &mut spec["process"];
    process["terminal"] = json!(false);
    process["args"] = json!(process_args(image, opts));
    process["env"] = json!(process_env(image, opts, &process["env"]));
    let cwd = opts
        .cwd
        .clone()
        .or_else(|| image.working_dir.clone().filter(|c| !c.is_empty()))
        .unwrap_or_else(|| "/".to_owned());
    process["cwd"] = json!(cwd);
    process["user"] = process_user(rootfs, image, opts)?;

    if let Some(h) = &opts.hostname {
        spec["hostname"] = json!(h);
    }
    if let Some(bytes) = opts.memory {
        spec["linux"]["resources"]["memory"] = json!({ "limit": bytes });
    }
    if !opts.mounts.is_empty() {
        let mounts = spec["mounts"]
            .as_array_mut()
            .expect("runc's default spec has mounts");
        for m in &opts.mounts {
            let mut options = vec!["rbind", "rprivate"];
            if m.read_only {
                options.push("ro");
            }
            mounts.push(json!({ "destination": m.destination, "type": "bind", "source": m.source, "options": options }));
        }
    }
    let annotations = image_annotations(image);
    if !annotations.is_empty() {
        spec["annotations"] = json!(annotations);
    }
    Ok(spec)
}

/// `Entrypoint` + `Cmd`, `--arg` in place of `Cmd`; `sh` when there is neither.
fn process_args(image: &ContainerConfig, opts: &BundleOptions) -> Vec<String> {
    let entrypoint = image.entrypoint.clone().unwrap_or_default();
    let cmd = opts
        .args
        .clone()
        .or_else(|| image.cmd.clone())
        .unwrap_or_default();
    let args: Vec<String> = if opts.args.is_some() && image.entrypoint.is_none() {
        cmd
    } else {
        entrypoint.into_iter().chain(cmd).collect()
    };
    if args.is_empty() {
        // No Entrypoint, no Cmd, no --arg: runc's and umoci's default.
        tracing::warn!("no command in the image or the options: the bundle runs sh");
        return vec!["sh".to_owned()];
    }
    args
}

/// The image's `Env` (or `default`, the default spec's), with a `PATH`, and `--env`
/// setting or overriding variables.
fn process_env(image: &ContainerConfig, opts: &BundleOptions, default: &Value) -> Vec<String> {
    let mut env: Vec<String> = match &image.env {
        Some(env) => env.clone(),
        None => default
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    };
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        );
    }
    for e in &opts.env {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    env
}

/// `process.user` for `--user` or the image's `User`, names resolved in the rootfs; root
/// when neither says.
fn process_user(
    rootfs: &Rootfs,
    image: &ContainerConfig,
    opts: &BundleOptions,
) -> Result<Value, BuildError> {
    let user = opts
        .user
        .clone()
        .or_else(|| image.user.clone())
        .filter(|u| !u.is_empty());
    let (uid, gid, extra) = match &user {
        Some(u) => resolve_user(rootfs, u)?,
        None => (0, 0, Vec::new()),
    };
    let mut user_json = json!({ "uid": uid, "gid": gid });
    if !extra.is_empty() {
        user_json["additionalGids"] = json!(extra);
    }
    Ok(user_json)
}

/// The image's labels, with its stop signal, exposed ports and volumes as annotations.
fn image_annotations(image: &ContainerConfig) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = image.labels.clone().unwrap_or_default();
    if let Some(sig) = &image.stop_signal {
        annotations.insert("org.opencontainers.image.stopSignal".into(), sig.clone());
    }
    if let Some(ports) = &image.exposed_ports {
        annotations.insert(
            "org.opencontainers.image.exposedPorts".into(),
            ports.keys().cloned().collect::<Vec<_>>().join(","),
        );
    }
    if let Some(volumes) = &image.volumes {
        annotations.insert(
            "io.proxcage.image.volumes".into(),
            volumes.keys().cloned().collect::<Vec<_>>().join(","),
        );
    }
    annotations
}

/// `user[:group]` to (uid, gid, additional gids), names looked up in the rootfs's
/// `/etc/passwd` and `/etc/group` as runc and umoci do.
fn resolve_user(rootfs: &Rootfs, spec: &str) -> Result<(u32, u32, Vec<u32>), BuildError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let err = |reason: String| BuildError::User {
        user: spec.to_owned(),
        reason,
    };
    let passwd = rootfs.read_small(b"etc/passwd").unwrap_or_default();
    let groups = rootfs.read_small(b"etc/group").unwrap_or_default();
    let passwd: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let groups: Vec<Vec<&str>> = groups
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();

    let entry = passwd
        .iter()
        .find(|f| f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user));
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => match entry {
            Some(f) => f[2].parse().map_err(|_| {
                err(format!(
                    "{}/etc/passwd has an invalid uid for it",
                    rootfs.path().display()
                ))
            })?,
            None => {
                return Err(err(format!(
                    "no such user in {}/etc/passwd",
                    rootfs.path().display()
                )))
            }
        },
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match groups.iter().find(|f| f[0] == g) {
                Some(f) => f[2].parse().map_err(|_| {
                    err(format!(
                        "{}/etc/group has an invalid gid for {g}",
                        rootfs.path().display()
                    ))
                })?,
                None => {
                    return Err(err(format!(
                        "no group {g:?} in {}/etc/group",
                        rootfs.path().display()
                    )))
                }
            },
        },
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let mut extra = Vec::new();
    if group.is_none() {
        if let Some(name) = entry.map(|f| f[0]) {
            for g in &groups {
                if g.get(3).is_some_and(|m| m.split(',').any(|m| m == name)) {
                    if let Ok(n) = g[2].parse::<u32>() {
                        if n != gid && !extra.contains(&n) {
                            extra.push(n);
                        }
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        let m: MountSpec = "/srv/data:/data:ro".parse().unwrap();
        assert_eq!(
            m,
            MountSpec {
                source: "/srv/data".into(),
                destination: "/data".into(),
                read_only: true
            }
        );
        assert!(!"/a:/b".parse::<MountSpec>().unwrap().read_only);
        for bad in ["/a", "/a:b", "/a:/b:rx", ":/b"] {
            assert!(bad.parse::<MountSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512M").unwrap(), 512 << 20);
        assert_eq!(parse_memory("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_memory("4096").unwrap(), 4096);
        for bad in ["", "M", "12X", "0", "99999999999T"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().display().to_string();
        assert_eq!(
            Source::parse(&p).unwrap(),
            Source::RootfsDir {
                path: dir.path().into(),
                copy: true
            }
        );
        fs::write(dir.path().join("oci-layout"), "{}").unwrap();
        assert_eq!(
            Source::parse(&format!("{p}:v1")).unwrap(),
            Source::Image {
                layout: dir.path().into(),
                reference: Some(Reference::Tag("v1".into()))
            }
        );
        assert!(matches!(
            Source::parse(&format!("{p}@sha256:12")),
            Err(BuildError::BadReference { .. })
        ));
        let docker = dir.path().join("saved.tar");
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-cf")
            .arg(&docker)
            .arg("oci-layout")
            .status()
            .unwrap();
        assert!(st.success());
        assert!(matches!(
            Source::parse(docker.to_str().unwrap()).unwrap(),
            Source::Image { .. }
        ));
        fs::remove_file(dir.path().join("oci-layout")).unwrap();
        fs::write(dir.path().join("manifest.json"), "[]").unwrap();
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-cf")
            .arg(&docker)
            .arg("manifest.json")
            .status()
            .unwrap();
        assert!(st.success());
        let err = Source::parse(docker.to_str().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("skopeo copy docker-archive:"),
            "{err}"
        );
        assert!(matches!(
            Source::parse("/no/such/thing"),
            Err(BuildError::SourceNotFound { .. })
        ));
    }
}
