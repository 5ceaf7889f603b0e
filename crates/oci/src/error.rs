//! What can be wrong with a bundle, worded for the operator at the terminal: every message
//! names the file and the field, and says what to do where that is not obvious.

use std::io;
use std::path::PathBuf;

/// A bundle that cannot be loaded, or a spec that cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("bundle directory {} does not exist", dir.display())]
    BundleNotFound { dir: PathBuf },

    #[error("bundle {} is not a directory: the bundle is the directory that holds config.json", dir.display())]
    BundleNotADirectory { dir: PathBuf },

    #[error("cannot resolve the relative bundle path {}: the current directory is unusable: {source}", dir.display())]
    CurrentDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A system call on a bundle file failed for a reason other than the ones above
    /// (permissions, I/O errors).
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} does not exist: a bundle needs a config.json ('proxcage spec' writes runc's default one)", path.display())]
    ConfigNotFound { path: PathBuf },

    #[error("{} is {kind}, not a regular file", path.display())]
    ConfigNotRegular { path: PathBuf, kind: &'static str },

    #[error("{} is {size} bytes, more than the {limit} bytes a config.json may have", path.display())]
    ConfigTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },

    #[error("{}: invalid JSON at line {line}, column {column}: {message}", path.display())]
    InvalidJson {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A field holds a value of the wrong type or an unknown value. `line` is 0 when the
    /// position is not known.
    #[error("{}: {field}: {message}{}", path.display(), location(*line, *column))]
    InvalidField {
        path: PathBuf,
        /// The JSON path of the field, e.g. `process.user.uid`.
        field: String,
        message: String,
        line: usize,
        column: usize,
    },

    #[error("{}: {field} is missing", path.display())]
    MissingField { path: PathBuf, field: String },

    #[error("{}: ociVersion {version:?} is not supported: proxcage runs specs of version 1.x.y", path.display())]
    UnsupportedVersion { path: PathBuf, version: String },

    #[error("{}: root.path {} does not exist (looked for {})", path.display(), root.display(), resolved.display())]
    RootfsNotFound {
        path: PathBuf,
        /// root.path as written in config.json.
        root: PathBuf,
        /// root.path resolved against the bundle directory.
        resolved: PathBuf,
    },

    #[error("{}: root.path {} is not a directory (resolved to {})", path.display(), root.display(), resolved.display())]
    RootfsNotADirectory {
        path: PathBuf,
        root: PathBuf,
        resolved: PathBuf,
    },

    /// runc refuses a rootfs whose path goes through a symbolic link ("not an absolute
    /// path, or a symlink"); so does proxcage, for every backend: the pct backend would
    /// otherwise pack whatever the link points at, `/` included.
    #[error("{}: root.path {} goes through a symbolic link (it resolves to {}): name the real directory, as runc requires", path.display(), root.display(), real.display())]
    RootfsThroughSymlink {
        path: PathBuf,
        root: PathBuf,
        /// The real path of the rootfs.
        real: PathBuf,
    },

    #[error("{}: {field} contains a NUL byte, which no program, path or LXC key can hold", path.display())]
    NulByte { path: PathBuf, field: String },

    #[error("{}: process.args is empty: it must name the program to run", path.display())]
    EmptyArgs { path: PathBuf },

    #[error("{}: mounts[{index}].destination {:?} is not absolute", path.display(), destination.display())]
    MountDestinationNotAbsolute {
        path: PathBuf,
        index: usize,
        destination: PathBuf,
    },

    #[error("file {} exists: remove it first", path.display())]
    ConfigExists { path: PathBuf },
}

fn location(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    }
}

/// So that the CLI and the backends can pass a bundle error on with `?`; it counts as
/// invalid input.
impl From<BundleError> for proxcage_core::Error {
    fn from(e: BundleError) -> Self {
        proxcage_core::Error::Input(Box::new(e))
    }
}
