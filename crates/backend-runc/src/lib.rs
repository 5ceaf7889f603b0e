//! proxcage-backend-runc: containers run by runc, under proxcage's root.
//!
//! ```no_run
//! use proxcage_backend_runc::{runc, RuncSettings};
//! use proxcage_delegate::CallerFlags;
//!
//! let backend = runc(&RuncSettings::default(), "/run/proxcage/backends/runc".into(), &CallerFlags::default())?;
//! # Ok::<(), proxcage_core::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use proxcage_core::Result;
use proxcage_delegate::{CallerFlags, Delegate, DEFAULT_TIMEOUT};
use proxcage_process as process;
use serde::Deserialize;

/// The backend's name in routes, records and the config file.
pub const NAME: &str = "runc";

/// `[backends.runc]` in the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuncSettings {
    /// The runc binary: a name looked up in `PATH` (default `runc`) or a path.
    pub binary: Option<PathBuf>,
    /// Seconds a non-interactive runc command may take (default 120).
    pub timeout_secs: Option<u64>,
}

/// The runc backend with its state under `root`.
pub fn runc(settings: &RuncSettings, root: PathBuf, flags: &CallerFlags) -> Result<Delegate> {
    let binary = process::find_program(
        settings.binary.as_deref().unwrap_or(Path::new("runc")),
        "runc",
        "[backends.runc] binary",
    )?;
    Ok(Delegate::new(NAME, binary, root)
        .timeout(
            settings
                .timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TIMEOUT),
        )
        .global_args(flags.args()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_unknown_keys() {
        let err =
            toml::from_str::<RuncSettings>("binary = \"/x\"\ncgroup_manager = \"y\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `cgroup_manager`"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_binary_names_the_package() {
        let settings = RuncSettings {
            binary: Some("/nonexistent/runc".into()),
            ..Default::default()
        };
        let err = runc(&settings, "/tmp/r".into(), &CallerFlags::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("install the Debian package 'runc'"),
            "{err}"
        );
    }
}
