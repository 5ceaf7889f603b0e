//! The errors of this crate: one enum per job (config text, OCI translation, Proxmox config).

use std::path::PathBuf;

/// A config entry or config text that LXC could not read as meant.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid LXC config key {key:?}: a key is `lxc.` followed by letters, digits, `.`, `_` and `-`")]
    InvalidKey { key: String },
    #[error("cannot write {key} = {value:?}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("line {line}: {reason}: {text:?}")]
    Syntax {
        line: usize,
        text: String,
        reason: String,
    },
}

/// A bundle's spec that cannot become an LXC configuration. Each variant names the field
/// of `config.json` at fault.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The field asks for something LXC has no way to express.
    #[error("{field}: {reason}")]
    Unsupported { field: String, reason: String },
    /// The field's value is wrong or unusable as given.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A value the field produced cannot be written into an LXC config.
    #[error("{field}: {source}")]
    Config {
        field: String,
        #[source]
        source: ConfigError,
    },
    /// Reading the rootfs (to resolve a mount destination) failed.
    #[error("{field}: cannot read {path}: {source}")]
    Rootfs {
        field: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TranslateError {
    /// The `config.json` field the error is about, e.g. `mounts[3].destination`.
    pub fn field(&self) -> &str {
        match self {
            TranslateError::Unsupported { field, .. }
            | TranslateError::Invalid { field, .. }
            | TranslateError::Config { field, .. }
            | TranslateError::Rootfs { field, .. } => field,
        }
    }
}

/// A Proxmox `<vmid>.conf` that cannot be read, or an LXC config Proxmox would not apply.
#[derive(Debug, thiserror::Error)]
pub enum PveError {
    #[error("line {line}: {reason}: {text:?}")]
    Syntax {
        line: usize,
        text: String,
        reason: String,
    },
    #[error("{key}: Proxmox does not pass this key through to LXC ({reason}); list it in [backends.pct] allow_dropped to run without it, route the container to runc or crun, or change the bundle")]
    Dropped { key: String, reason: String },
    /// Running without the namespace is never what the caller meant, so no
    /// `allow_dropped` can accept it.
    #[error("{key}: Proxmox drops every lxc.namespace.* key, so a CT cannot join or share the namespace {value}; a CT always has its own mount, pid, ipc and uts namespaces: route the container to runc or crun")]
    Namespace { key: String, value: String },
    #[error("cannot write {key}: {value:?}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
}
