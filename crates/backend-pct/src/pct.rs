//! Typed calls of `pct`, `pvesh` and `lxc-info`: argv lists, timeouts, and failures read
//! into [`PctError`] from pct's own words.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use proxcage_process as process;

use crate::error::{classify, PctError};
use crate::parse::{self, CtStatus, ListEntry};
use crate::vmid::Vmid;

/// A pct, pvesh or lxc-info call that failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The tool ran and failed; `status` is how it ended (`exit status 2`, `killed by
    /// SIGKILL`), `error` what it said.
    #[error("{command} failed ({status}): {error}")]
    Pct {
        command: String,
        status: String,
        error: PctError,
    },
    #[error("{command} printed what proxcage cannot read: {detail}")]
    Output { command: String, detail: String },
    #[error(transparent)]
    Run(#[from] proxcage_core::Error),
}

impl CallError {
    /// pct's failure, when pct ran and refused.
    pub fn pct(&self) -> Option<&PctError> {
        match self {
            CallError::Pct { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<CallError> for proxcage_core::Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Run(e) => e,
            CallError::Pct {
                command,
                status,
                error,
            } => proxcage_core::Error::Backend {
                backend: crate::NAME.into(),
                command,
                status,
                code: 1,
                kind: error.kind(),
                message: error.to_string(),
                source: Some(Box::new(error)),
            },
            CallError::Output { command, detail } => proxcage_core::Error::Backend {
                backend: crate::NAME.into(),
                command,
                status: "exit status 0".into(),
                code: 1,
                kind: proxcage_core::ErrorKind::Other,
                message: detail,
                source: None,
            },
        }
    }
}

pub type CallResult<T> = Result<T, CallError>;

/// Where the tools are and how to call them.
#[derive(Clone, Debug)]
pub struct PctTools {
    pub pct: PathBuf,
    pub pvesh: PathBuf,
    pub lxc_info: PathBuf,
    /// `-P` for lxc-info: unset on Proxmox (LXC's default path); a pct stand-in's path.
    pub lxc_path: Option<PathBuf>,
    /// The node name in pvesh paths.
    pub node: String,
    pub timeout: Duration,
    /// Time spent in the tools since [`PctTools::take_spent`] last asked, in nanoseconds.
    pub spent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl PctTools {
    fn run(
        &self,
        program: &PathBuf,
        args: Vec<OsString>,
        vmid: Option<Vmid>,
    ) -> CallResult<String> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        let started = std::time::Instant::now();
        let out = process::run_captured(&mut cmd, self.timeout);
        self.spent.fetch_add(
            started.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let out = out?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        // Task commands print warnings on stdout and the error on stderr; read both.
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Err(CallError::Pct {
            command: process::describe(&cmd),
            status: process::describe_status(out.status),
            error: classify(&text, vmid),
        })
    }

    fn pct(&self, args: &[&str], vmid: Option<Vmid>) -> CallResult<String> {
        self.run(&self.pct, args.iter().map(OsString::from).collect(), vmid)
    }

    fn unreadable(&self, what: &str, detail: String) -> CallError {
        CallError::Output {
            command: what.to_string(),
            detail,
        }
    }

    /// The time spent in pct, pvesh and lxc-info since the last call, and starts anew.
    pub fn take_spent(&self) -> Duration {
        Duration::from_nanos(self.spent.swap(0, std::sync::atomic::Ordering::Relaxed))
    }

    /// `pvesh get /cluster/nextid [--vmid N]`: the lowest free VMID, or `want` if free.
    pub fn next_id(&self, want: Option<Vmid>) -> CallResult<Vmid> {
        let mut args: Vec<OsString> = vec!["get".into(), "/cluster/nextid".into()];
        if let Some(v) = want {
            args.push("--vmid".into());
            args.push(v.to_string().into());
        }
        let out = self.run(&self.pvesh, args, want)?;
        parse::nextid(&out).map_err(|e| self.unreadable("pvesh get /cluster/nextid", e))
    }

    /// `pct create <vmid> <template> --opt value ...`. Options come in pairs.
    pub fn create(
        &self,
        vmid: Vmid,
        template: &str,
        options: &[(String, String)],
    ) -> CallResult<()> {
        let mut args: Vec<OsString> =
            vec!["create".into(), vmid.to_string().into(), template.into()];
        for (k, v) in options {
            args.push(format!("--{k}").into());
            args.push(v.into());
        }
        self.run(&self.pct, args, Some(vmid)).map(drop)
    }

    pub fn start(&self, vmid: Vmid) -> CallResult<()> {
        self.pct(&["start", &vmid.to_string()], Some(vmid))
            .map(drop)
    }

    /// Hard stop (`lxc-stop --kill`).
    pub fn stop(&self, vmid: Vmid) -> CallResult<()> {
        self.pct(&["stop", &vmid.to_string()], Some(vmid)).map(drop)
    }

    /// `pct destroy <vmid> --purge 1` (booleans take a value in pct).
    pub fn destroy(&self, vmid: Vmid) -> CallResult<()> {
        self.pct(&["destroy", &vmid.to_string(), "--purge", "1"], Some(vmid))
            .map(drop)
    }

    /// `pct set <vmid> --opt value ...`: on a running CT, `memory`, `swap`, `cpulimit` and
    /// `cpuunits` apply at once (hotplug).
    pub fn set(&self, vmid: Vmid, options: &[(String, String)]) -> CallResult<()> {
        let mut args: Vec<OsString> = vec!["set".into(), vmid.to_string().into()];
        for (k, v) in options {
            args.push(format!("--{k}").into());
            args.push(v.into());
        }
        self.run(&self.pct, args, Some(vmid)).map(drop)
    }

    /// `pct unlock <vmid>`: clears a lock a killed pct command left.
    pub fn unlock(&self, vmid: Vmid) -> CallResult<()> {
        self.pct(&["unlock", &vmid.to_string()], Some(vmid))
            .map(drop)
    }

    pub fn status(&self, vmid: Vmid) -> CallResult<CtStatus> {
        let out = self.pct(&["status", &vmid.to_string()], Some(vmid))?;
        parse::status(&out).map_err(|e| self.unreadable("pct status", e))
    }

    pub fn list(&self) -> CallResult<Vec<ListEntry>> {
        let out = self.pct(&["list"], None)?;
        parse::list(&out).map_err(|e| self.unreadable("pct list", e))
    }

    pub fn config(&self, vmid: Vmid) -> CallResult<Vec<(String, String)>> {
        self.pct(&["config", &vmid.to_string()], Some(vmid))
            .map(|out| parse::config(&out))
    }

    /// The host pid of the CT's init, `None` when it is not running.
    pub fn init_pid(&self, vmid: Vmid) -> CallResult<Option<i32>> {
        let mut args: Vec<OsString> = vec!["-n".into(), vmid.to_string().into()];
        if let Some(path) = &self.lxc_path {
            args.push("-P".into());
            args.push(path.into());
        }
        args.extend(["-p".into(), "-H".into()]);
        let out = self.run(&self.lxc_info, args, Some(vmid))?;
        parse::init_pid(&out).map_err(|e| self.unreadable("lxc-info -p -H", e))
    }

    /// The `pct exec <vmid> -- argv` command, for the caller to run with its own stdio.
    pub fn exec_command(&self, vmid: Vmid, argv: &[String]) -> Command {
        let mut cmd = Command::new(&self.pct);
        cmd.arg("exec").arg(vmid.to_string()).arg("--").args(argv);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools_with_pct(script: &str) -> (tempfile::TempDir, PctTools) {
        let dir = tempfile::tempdir().unwrap();
        let pct = dir.path().join("pct");
        proxcage_test_support::install_script(&pct, script);
        let tools = PctTools {
            pct,
            pvesh: "/nonexistent/pvesh".into(),
            lxc_info: "/nonexistent/lxc-info".into(),
            lxc_path: None,
            node: "pve".into(),
            timeout: Duration::from_secs(30),
            spent: Default::default(),
        };
        (dir, tools)
    }

    #[test]
    fn a_pct_killed_by_a_signal_is_reported_with_the_signal_and_its_stderr() {
        let (_dir, tools) =
            tools_with_pct("#!/bin/sh\n[ -n \"$FAKE_PROBE\" ] && exit 0\necho 'half way through' >&2\nkill -KILL $$\n");
        let err = tools.start(Vmid::new(100).unwrap()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("killed by SIGKILL"), "{message}");
        assert!(message.contains("half way through"), "{message}");
        let core: proxcage_core::Error = err.into();
        let message = core.to_string();
        assert!(message.contains("killed by SIGKILL"), "{message}");
        assert!(message.contains("half way through"), "{message}");
    }

    #[test]
    fn a_failing_pct_is_reported_with_its_exit_status() {
        let (_dir, tools) =
            tools_with_pct("#!/bin/sh\n[ -n \"$FAKE_PROBE\" ] && exit 0\necho \"CT 100 already running\" >&2\nexit 2\n");
        let message = tools
            .start(Vmid::new(100).unwrap())
            .unwrap_err()
            .to_string();
        assert!(message.contains("(exit status 2)"), "{message}");
        assert!(message.contains("already running"), "{message}");
    }
}
