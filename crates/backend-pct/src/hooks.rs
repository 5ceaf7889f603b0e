//! OCI hooks for Proxmox containers, run by proxcage with the container's state on their
//! stdin (runtime-spec's "Lifecycle"): `prestart` and `createRuntime` on the host once the
//! CT runs and its init waits; `createContainer` right after them (also on the host:
//! Proxmox gives no point inside the CT before its root is pivoted where a hook could get
//! the state); `startContainer` inside the CT at `start`, through `pct exec`, before the
//! process is released; `poststart` on the host before `start` returns; `poststop` on the
//! host when the container is deleted.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use proxcage_core::{ContainerId, State};
use proxcage_lxc_config::oci_spec::runtime::Hook;
use proxcage_lxc_config::ProcessFile;
use proxcage_process as process;
use serde::{Deserialize, Serialize};

/// The hooks that run after `create`: kept in the backend's record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct LaterHooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

impl LaterHooks {
    pub fn is_empty(&self) -> bool {
        self.start_container.is_empty() && self.poststart.is_empty() && self.poststop.is_empty()
    }
}

/// How long a hook without its own `timeout` may run.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

fn timeout(hook: &Hook) -> Duration {
    hook.timeout()
        .and_then(|t| u64::try_from(t).ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
}

/// Runs `hooks` on the host one after another with `state` on stdin; stops at the first
/// that fails, with what it said (runtime-spec: a failing `prestart`, `createRuntime` or
/// `createContainer` hook is an error). `kind` names the hook list in errors.
pub(crate) fn run_on_host(kind: &str, hooks: &[Hook], state: &State) -> Result<(), String> {
    let input = state_json(state);
    hooks
        .iter()
        .try_for_each(|hook| run_one_on_host(kind, hook, &input))
}

/// Runs every one of `hooks` on the host, as [`run_on_host`], but on past a failure, which
/// is logged as a warning naming the container `id` (runtime-spec: a failing `poststart`
/// or `poststop` hook is logged and the remaining hooks still run).
pub(crate) fn run_each_on_host(id: &ContainerId, kind: &str, hooks: &[Hook], state: &State) {
    let input = state_json(state);
    for hook in hooks {
        if let Err(message) = run_one_on_host(kind, hook, &input) {
            tracing::warn!("container {id}: {message}");
        }
    }
}

fn run_one_on_host(kind: &str, hook: &Hook, input: &[u8]) -> Result<(), String> {
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1)).env_clear();
    for var in hook.env().iter().flatten() {
        let (name, value) = var.split_once('=').unwrap_or((var, ""));
        cmd.env(name, value);
    }
    let out = process::run_with_input(&mut cmd, input, timeout(hook))
        .map_err(|e| format!("{kind} hook {}: {e}", hook.path().display()))?;
    check(kind, hook, &out)
}

/// Runs one hook inside the CT: `pct_exec` runs the init with the process file it is given
/// (written by the caller from [`inside_process`]).
pub(crate) fn run_inside(
    kind: &str,
    hook: &Hook,
    state: &State,
    mut pct_exec: Command,
) -> Result<(), String> {
    let out = process::run_with_input(&mut pct_exec, &state_json(state), timeout(hook))
        .map_err(|e| format!("{kind} hook {}: {e}", hook.path().display()))?;
    check(kind, hook, &out)
}

/// The process file that runs `hook` inside the CT: its path (argv[0] is the path: the
/// init cannot set it apart), its arguments and exactly its environment.
pub(crate) fn inside_process(hook: &Hook) -> ProcessFile {
    let path = hook.path().to_string_lossy().into_owned();
    let args = hook.args().clone().unwrap_or_default();
    ProcessFile {
        args: std::iter::once(path)
            .chain(args.into_iter().skip(1))
            .collect(),
        env: hook.env().clone().unwrap_or_default(),
        cwd: "/".into(),
        umask: None,
        no_new_privileges: false,
        monitored: false,
        terminal: false,
        user: None,
        capabilities: None,
    }
}

fn check(kind: &str, hook: &Hook, out: &process::Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.trim();
    Err(format!(
        "{kind} hook {} failed ({}){}{said}",
        hook.path().display(),
        out.status,
        if said.is_empty() { "" } else { ": " },
    ))
}

fn state_json(state: &State) -> Vec<u8> {
    serde_json::to_vec(state).expect("a State always serializes")
}
