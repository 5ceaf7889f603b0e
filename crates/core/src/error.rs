//! Errors of the core crate and of the backends built on it.
//!
//! Every variant carries what the operator needs to act: the id, the file, the command and
//! what it printed. [`Error::kind`] sorts them into the classes containerd and podman match
//! on, and [`Error::exit_code`] gives the code `proxcage` exits with.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::id::ContainerId;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The classes of failure that callers tell apart by the error text, as runc words them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// "does not exist": containerd treats it as an unknown container.
    NotFound,
    /// "container not running": a kill of a stopped container.
    NotRunning,
    AlreadyExists,
    /// The request itself is wrong: bad id, signal, bundle or flag.
    InvalidInput,
    Other,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error("invalid signal {input:?}: {reason}")]
    InvalidSignal { input: String, reason: &'static str },

    #[error("container {id} does not exist")]
    NotFound { id: ContainerId },

    #[error("container with id {id} already exists")]
    AlreadyExists { id: ContainerId },

    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("state record {} is unreadable: {source}; 'proxcage delete --force <id>' removes it", path.display())]
    CorruptRecord {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("the lock on {} is stale: {detail}; 'proxcage health --repair' (with the same --root) releases it", path.display())]
    StaleLock { path: PathBuf, detail: String },

    #[error("{program} was not found (looked in {searched}): install the Debian package '{package}' or set {setting} in the config file")]
    ToolNotFound {
        program: String,
        package: &'static str,
        /// The config key that names the program, as `[backends.pct] pct`.
        setting: String,
        searched: String,
    },

    #[error("could not start {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    #[error("{command} did not finish within {}s and was killed", timeout.as_secs_f64())]
    Timeout { command: String, timeout: Duration },

    /// A backend's tool ran and failed. `message` is its own error text, verbatim; the
    /// backend, which knows its tool, says which class the failure is (`kind`), and keeps
    /// its own typed error as the source where it has one.
    #[error("{backend}: {command} failed ({status}): {message}")]
    Backend {
        backend: String,
        command: String,
        status: String,
        /// The tool's exit code, passed on as proxcage's own (runc's `exec` uses 255).
        code: i32,
        kind: ErrorKind,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    #[error("config file {}: {message}", path.display())]
    Config { path: PathBuf, message: String },

    #[error("backend {name:?} {context}; configured backends: {}", available.join(", "))]
    UnknownBackend {
        name: String,
        context: String,
        available: Vec<String>,
    },

    #[error("container {id}: {message}")]
    Conflict { id: ContainerId, message: String },

    /// The config file's `[security]` policy refuses what a bundle asks for: `what` (the
    /// annotation or mount, in which file) `why` (the policy, in which file): `fix`.
    #[error("container {id}: {what} {why}: {fix}")]
    Policy {
        id: ContainerId,
        what: String,
        why: String,
        fix: String,
    },

    /// Invalid input found outside the core crate (a bundle, a flag), with its own source.
    #[error(transparent)]
    Input(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::InvalidId { .. }
            | Error::InvalidSignal { .. }
            | Error::Config { .. }
            | Error::UnknownBackend { .. }
            | Error::Policy { .. }
            | Error::Input(_) => ErrorKind::InvalidInput,
            Error::Backend { kind, .. } => *kind,
            _ => ErrorKind::Other,
        }
    }

    /// The exit code for a CLI invocation that failed with this error: 1, as runc, unless
    /// a backend tool chose another.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Backend { code, .. } if *code > 0 && *code < 256 => *code,
            _ => 1,
        }
    }
}

/// `items` as a list for messages: `"a", "b"`, or `none`.
pub fn quoted_list<T: std::fmt::Debug>(items: &[T]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(message: &str, code: i32, kind: ErrorKind) -> Error {
        Error::Backend {
            backend: "runc".into(),
            command: "runc kill t1 9".into(),
            status: format!("exit status {code}"),
            code,
            kind,
            message: message.into(),
            source: None,
        }
    }

    #[test]
    fn messages_keep_the_words_containerd_matches() {
        let id = ContainerId::new("t1").unwrap();
        assert!(Error::NotFound { id }
            .to_string()
            .contains("does not exist"));
        let e = backend("container not running", 1, ErrorKind::NotRunning);
        assert_eq!(e.kind(), ErrorKind::NotRunning);
        assert_eq!(
            e.to_string(),
            "runc: runc kill t1 9 failed (exit status 1): container not running"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(backend("x", 255, ErrorKind::Other).exit_code(), 255);
        assert_eq!(backend("x", 0, ErrorKind::Other).exit_code(), 1);
        let id = ContainerId::new("t1").unwrap();
        assert_eq!(Error::NotFound { id }.exit_code(), 1);
    }
}
