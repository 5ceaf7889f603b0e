//! proxcage-backend-jail: FreeBSD jails, made and run by ocijail under proxcage's root.
//!
//! ocijail is the OCI runtime podman and buildah use on FreeBSD: runc's command line over
//! jails. This backend is [`Delegate`] configured for it, with what ocijail does
//! differently from runc handled here:
//!
//! - Global flags: ocijail has `--root`, `--log`, `--log-format` and `--log-level`. The
//!   caller's `--debug` is left out: ocijail writes every log line, debug and warnings
//!   too, as `"level":"error"`, where it would be taken for the error of a command.
//!   `--systemd-cgroup` is left out too (FreeBSD has no cgroups); `--rootless=true` is
//!   refused (ocijail makes jails as root). A command that exits 0 succeeded, whatever
//!   ocijail logged (an ignored `org.freebsd.jail.allow.*` annotation is such a line).
//! - What ocijail lacks is refused with an error that names the backend ([`JailError`]):
//!   `pause`, `resume`, `ps`, `update`, `events`, `checkpoint`, `restore`, a `run` in the foreground (`run --detach` is `create` then
//!   `start`), `exec` without `--process`, and the flags of `create` and `exec` that it
//!   has not. `--no-pivot` and `--no-new-keyring` need nothing: a jail has neither a
//!   pivot_root nor a keyring.
//! - `kill --all` is passed on; ocijail signals the container's process with it, as
//!   without. `delete` removes the jail, which ends every process in it.
//! - `state` and `list` get what ocijail leaves out: `created` (when ocijail made the
//!   container's directory), and `pid` 0 for a stopped container.
//! - The `org.freebsd.*` annotations of config.json ([`ANNOTATION_PREFIX`]: jail
//!   parameters such as `org.freebsd.jail.vnet`, `org.freebsd.jail.allow.mlock`, and
//!   `org.freebsd.parentJail`) reach ocijail as written: it reads config.json itself.
//!   Which of them a bundle may carry is the engine's `[security] jail_annotations`.
//!
//! ```no_run
//! use proxcage_backend_jail::{jail, JailSettings};
//! use proxcage_delegate::CallerFlags;
//! use std::path::Path;
//!
//! let backend = jail(
//!     &JailSettings::default(),
//!     "/var/run/proxcage/backends/jail".into(),
//!     &CallerFlags::default(),
//!     Path::new("/usr/local/etc/proxcage/config.toml"),
//! )?;
//! # Ok::<(), proxcage_core::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use proxcage_core::{
    CheckpointRequest, ContainerId, CreateRequest, DeleteRequest, Error, Event, EventsRequest,
    ExecRequest, Flow, KillRequest, RestoreRequest, Result, RunRequest, Runtime, State,
    UpdateRequest,
};
use proxcage_delegate::{CallerFlags, Delegate, DEFAULT_TIMEOUT};
use proxcage_process as process;
use serde::Deserialize;

mod refuse;

pub use refuse::JailError;

/// The backend's name in routes, records and the config file.
pub const NAME: &str = "jail";

/// The annotations ocijail turns into jail parameters: `org.freebsd.jail.*` and
/// `org.freebsd.parentJail`.
pub const ANNOTATION_PREFIX: &str = "org.freebsd.";

/// The oldest ocijail with everything this backend passes on: the `features` command and
/// the `org.freebsd.jail.allow.*` annotations came in 0.5.0. `proxcage health` warns
/// below it.
const OLDEST: (u32, u32, u32) = (0, 5, 0);

/// `[backends.jail]` in the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JailSettings {
    /// The ocijail binary: a name looked up in `PATH` (default `ocijail`) or a path.
    pub binary: Option<PathBuf>,
    /// Seconds a non-interactive ocijail command may take (default 120).
    pub timeout_secs: Option<u64>,
}

/// The jail backend.
#[derive(Debug)]
pub struct Jail {
    delegate: Delegate,
}

/// The jail backend with its state under `root`; `origin` is the config file its settings
/// come from, for messages.
pub fn jail(
    settings: &JailSettings,
    root: PathBuf,
    flags: &CallerFlags,
    origin: &Path,
) -> Result<Jail> {
    let program = settings.binary.as_deref().unwrap_or(Path::new("ocijail"));
    let binary = process::find_program(program, "ocijail", "[backends.jail] binary").map_err(
        |e| match e {
            Error::ToolNotFound { searched, .. } => JailError::NotInstalled {
                program: program.to_path_buf(),
                searched,
                origin: origin.to_path_buf(),
            }
            .into(),
            other => other,
        },
    )?;
    if flags.rootless.as_deref() == Some("true") {
        return Err(JailError::Rootless.into());
    }
    let delegate = Delegate::new(NAME, binary, root)
        .timeout(
            settings
                .timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TIMEOUT),
        )
        .oldest_version(
            OLDEST,
            "upgrade ocijail (pkg upgrade ocijail): older ones lack the features command and the org.freebsd.jail.allow.* annotations",
        )
        .logs_warnings_as_errors();
    Ok(Jail { delegate })
}

impl Jail {
    /// `state` as runc gives it, from ocijail's: `pid` 0 once stopped (ocijail gives -1 or
    /// none), and `created`, which ocijail does not report: when it made the container's
    /// directory under the backend's root.
    fn completed(&self, mut state: State) -> State {
        if state.pid < 0 {
            state.pid = 0;
        }
        if state.created.is_empty() {
            state.created = self.created_at(&state.id).unwrap_or_default();
        }
        state
    }

    fn created_at(&self, id: &str) -> Option<String> {
        let id = ContainerId::new(id).ok()?;
        let meta = std::fs::metadata(self.delegate.root().join(id.as_str())).ok()?;
        let at = meta.created().or_else(|_| meta.modified()).ok()?;
        time::OffsetDateTime::from(at)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    }
}

impl Runtime for Jail {
    fn name(&self) -> &str {
        NAME
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        refuse::create(req)?;
        // A jail has neither a pivot_root to skip nor a keyring to leave alone.
        let req = CreateRequest {
            no_pivot: false,
            no_new_keyring: false,
            ..req.clone()
        };
        self.delegate.create(&req)
    }

    fn start(&self, id: &ContainerId) -> Result<()> {
        self.delegate.start(id)
    }

    fn state(&self, id: &ContainerId) -> Result<State> {
        self.delegate.state(id).map(|state| self.completed(state))
    }

    fn kill(&self, req: KillRequest<'_>) -> Result<()> {
        self.delegate.kill(req)
    }

    fn delete(&self, req: DeleteRequest<'_>) -> Result<()> {
        self.delegate.delete(req)
    }

    fn run(&self, req: &RunRequest) -> Result<i32> {
        refuse::run(req)?;
        self.create(&req.create)?;
        self.start(req.create.id())?;
        Ok(0)
    }

    fn list(&self) -> Result<Vec<State>> {
        let states = self.delegate.list()?;
        Ok(states.into_iter().map(|s| self.completed(s)).collect())
    }

    fn exec(&self, req: &ExecRequest) -> Result<i32> {
        refuse::exec(req)?;
        self.delegate.exec(req)
    }

    fn ps(&self, id: &ContainerId) -> Result<Vec<i32>> {
        Err(refuse::ps(id))
    }

    fn pause(&self, id: &ContainerId) -> Result<()> {
        Err(refuse::freeze(id, "pause"))
    }

    fn resume(&self, id: &ContainerId) -> Result<()> {
        Err(refuse::freeze(id, "resume"))
    }

    fn features(&self) -> Result<serde_json::Value> {
        self.delegate.features()
    }

    fn update(&self, req: &UpdateRequest) -> Result<()> {
        Err(refuse::resources(&req.id, "update"))
    }

    fn events(
        &self,
        req: &EventsRequest,
        _receiver: &mut dyn FnMut(Event) -> Result<Flow>,
    ) -> Result<()> {
        Err(refuse::resources(&req.id, "events"))
    }

    fn checkpoint(&self, req: &CheckpointRequest) -> Result<()> {
        Err(refuse::checkpoint(&req.id, "checkpoint"))
    }

    fn restore(&self, req: &RestoreRequest) -> Result<i32> {
        Err(refuse::checkpoint(&req.id, "restore"))
    }
}

impl proxcage_store::Backend for Jail {
    fn held(&self) -> Result<Vec<proxcage_store::Held>> {
        self.delegate.held()
    }

    fn holds(&self, id: &ContainerId) -> Result<Option<proxcage_store::Held>> {
        self.delegate.holds(id)
    }

    fn left_by(&self, record: &proxcage_store::Record) -> Result<proxcage_store::Leftovers> {
        self.delegate.left_by(record)
    }

    fn health(
        &self,
        store: &proxcage_store::StateStore,
        held: &[proxcage_store::Held],
    ) -> Result<Vec<proxcage_core::Finding>> {
        self.delegate.health(store, held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_unknown_keys() {
        let s: JailSettings =
            toml::from_str("binary = \"/usr/local/bin/ocijail\"\ntimeout_secs = 30").unwrap();
        assert_eq!(s.timeout_secs, Some(30));
        let err = toml::from_str::<JailSettings>("cgroup_manager = \"disabled\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `cgroup_manager`"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_ocijail_says_how_to_install_it() {
        let settings = JailSettings {
            binary: Some("/nonexistent/ocijail".into()),
            ..Default::default()
        };
        let origin = Path::new("/usr/local/etc/proxcage/config.toml");
        let err = jail(&settings, "/tmp/r".into(), &CallerFlags::default(), origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "jail backend: /nonexistent/ocijail was not found (looked in /nonexistent/ocijail): the jail backend runs FreeBSD jails through ocijail; install it on the FreeBSD host (pkg install ocijail) or set binary under [backends.jail] in /usr/local/etc/proxcage/config.toml"
        );
    }
}
