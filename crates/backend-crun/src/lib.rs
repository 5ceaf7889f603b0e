//! proxcage-backend-crun: containers run by crun, under proxcage's root.
//!
//! Two settings fit crun to the host: `cgroup_manager` (crun's `--cgroup-manager`) and
//! `private_cgroup2`, which runs crun in a private mount namespace with a fresh cgroup2
//! mount at `/sys/fs/cgroup`, for hosts with a hybrid cgroup layout that crun refuses.
//! With `cgroup_manager = "disabled"` the container has no cgroup: `ps` and `kill --all`
//! then find its processes by the container's pid namespace, and `pause` (which needs a
//! cgroup freezer) fails with an error that says so.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxcage_core::{
    CheckpointRequest, ContainerId, CreateRequest, DeleteRequest, Error, Event, EventsRequest,
    ExecRequest, Flow, KillRequest, RestoreRequest, Result, RunRequest, Runtime, State, Status,
    UpdateRequest,
};
use proxcage_delegate::{in_runc_words, with_hint, CallerFlags, Delegate, DEFAULT_TIMEOUT};
use proxcage_process as process;
use proxcage_process::cgroup::{self, Cgroups};
use serde::Deserialize;

/// The backend's name in routes, records and the config file.
pub const NAME: &str = "crun";

/// How often a `start` that has not returned looks whether the container's process died.
const START_LOOK_EVERY: Duration = Duration::from_millis(100);

/// crun's `--cgroup-manager`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupManager {
    Systemd,
    Cgroupfs,
    Disabled,
}

impl CgroupManager {
    fn as_str(self) -> &'static str {
        match self {
            CgroupManager::Systemd => "systemd",
            CgroupManager::Cgroupfs => "cgroupfs",
            CgroupManager::Disabled => "disabled",
        }
    }
}

/// `[backends.crun]` in the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CrunSettings {
    /// The crun binary: a name looked up in `PATH` (default `crun`) or a path.
    pub binary: Option<PathBuf>,
    /// Seconds a non-interactive crun command may take (default 120).
    pub timeout_secs: Option<u64>,
    /// crun's cgroup manager. Unset: crun's default, or systemd with `--systemd-cgroup`.
    pub cgroup_manager: Option<CgroupManager>,
    /// Run crun in a private mount namespace with a fresh cgroup2 mount at /sys/fs/cgroup.
    #[serde(default)]
    pub private_cgroup2: bool,
}

/// The crun backend.
#[derive(Debug)]
pub struct Crun {
    delegate: Delegate,
    cgroups: bool,
    private_cgroup2: bool,
}

/// The crun backend with its state under `root`.
pub fn crun(settings: &CrunSettings, root: PathBuf, flags: &CallerFlags) -> Result<Crun> {
    let binary = process::find_program(
        settings.binary.as_deref().unwrap_or(Path::new("crun")),
        "crun",
        "[backends.crun] binary",
    )?;
    let mut flags = flags.clone();
    let mut delegate = Delegate::new(NAME, binary, root).timeout(
        settings
            .timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT),
    );
    if let Some(manager) = settings.cgroup_manager {
        // The operator's choice for this host wins over a caller's --systemd-cgroup.
        flags.systemd_cgroup = false;
        delegate = delegate.global_arg(format!("--cgroup-manager={}", manager.as_str()));
    }
    delegate = delegate.global_args(flags.args());
    if settings.private_cgroup2 {
        delegate = delegate.pre_exec(private_cgroup2);
    }
    Ok(Crun {
        delegate,
        cgroups: settings.cgroup_manager != Some(CgroupManager::Disabled),
        private_cgroup2: settings.private_cgroup2,
    })
}

/// In the forked child, before crun runs: a private mount namespace whose
/// /sys/fs/cgroup is a fresh cgroup2 mount. Only raw syscalls: no allocation after fork.
fn private_cgroup2() -> io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: plain syscalls with static, NUL-terminated strings.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::umount2(c"/sys/fs/cgroup".as_ptr(), libc::MNT_DETACH))?;
        check(libc::mount(
            c"none".as_ptr(),
            c"/sys/fs/cgroup".as_ptr(),
            c"cgroup2".as_ptr(),
            0,
            std::ptr::null(),
        ))
    }
}

/// What to do on a host whose cgroup layout crun refuses.
const HYBRID_FIX: &str = "set [backends.crun] private_cgroup2 = true and cgroup_manager = \"disabled\" in the config file, or route containers to runc";

/// crun's refusal of a hybrid cgroup layout ("cgroups in hybrid mode not supported, drop
/// all controllers from cgroupv2"), followed by what to do.
fn hybrid_says_what_to_do(e: Error) -> Error {
    with_hint(e, &["hybrid mode not supported"], HYBRID_FIX)
}

/// Whether /sys/fs/cgroup is a cgroup2 mount (the unified layout).
// f_type is an i64 here and narrower on other architectures: the cast is needed there.
#[allow(clippy::unnecessary_cast)]
fn unified_cgroups() -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: a NUL-terminated path and a buffer of the right type for statfs to fill.
    let rc = unsafe { libc::statfs(c"/sys/fs/cgroup".as_ptr(), buf.as_mut_ptr()) };
    // SAFETY: statfs filled the buffer when it returned 0.
    rc == 0 && unsafe { buf.assume_init() }.f_type as i64 == CGROUP2_SUPER_MAGIC
}

impl Crun {
    fn no_cgroup(&self, id: &ContainerId, what: &str) -> Error {
        Error::Conflict {
            id: id.clone(),
            message: format!(
                "{what} needs the container's cgroup, and the crun backend runs with cgroup_manager = \"disabled\" (set [backends.crun] cgroup_manager in the config file on a host where crun can manage cgroups)"
            ),
        }
    }

    /// A refused start in runc's words: crun finds no exec.fifo for a container that was
    /// started already, and says only that (runc: "cannot start an already running
    /// container", "cannot start a container that has stopped").
    fn start_refused_in_runc_words(&self, id: &ContainerId, e: Error) -> Error {
        let no_fifo = matches!(&e, Error::Backend { message, .. } if message.contains("exec.fifo"));
        if !no_fifo {
            return e;
        }
        match self.delegate.state(id).map(|state| state.status) {
            Ok(Status::Running) => in_runc_words(e, "cannot start an already running container"),
            Ok(Status::Stopped) => in_runc_words(e, "cannot start a container that has stopped"),
            _ => e,
        }
    }

    /// crun 1.8.1 has no `features` command (1.8.6 added it): report what crun tells of
    /// itself in `--version` (its spec version) and the hooks every crun runs.
    fn own_features(&self) -> Result<serde_json::Value> {
        let version = self.delegate.version()?;
        let spec = version
            .lines()
            .find_map(|l| l.strip_prefix("spec: "))
            .unwrap_or("1.0.0")
            .trim()
            .to_string();
        Ok(serde_json::json!({
            "ociVersionMin": "1.0.0",
            "ociVersionMax": spec,
            "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        }))
    }
}

impl Runtime for Crun {
    fn name(&self) -> &str {
        NAME
    }
    fn create(&self, req: &CreateRequest) -> Result<()> {
        self.delegate.create(req).map_err(hybrid_says_what_to_do)
    }
    fn start(&self, id: &ContainerId) -> Result<()> {
        // crun's start opens the container's exec.fifo for writing, which waits until the
        // container's process has it open for reading. A process that died before the
        // start (killed, and perhaps not yet reaped, which crun takes for running) never
        // will: crun would wait forever, and hold the container's lock all that time.
        // While it waits, look at that process, as runc does in its own start.
        let mut pid = None;
        let mut died = || {
            if pid.is_none() {
                // Only a start that takes this long pays for the lookup.
                pid = self.delegate.state(id).ok().map(|state| state.pid);
            }
            let pid = pid?;
            (pid <= 0 || !process::is_running(pid)).then(|| Error::Conflict {
                id: id.clone(),
                message: "cannot start it: the container process is already dead".into(),
            })
        };
        let started =
            self.delegate
                .captured_watched(["start", id.as_str()], START_LOOK_EVERY, &mut died);
        self.delegate
            .about(id, started)
            .map(drop)
            .map_err(|e| self.start_refused_in_runc_words(id, e))
    }
    fn state(&self, id: &ContainerId) -> Result<State> {
        self.delegate.state(id)
    }
    fn kill(&self, req: KillRequest<'_>) -> Result<()> {
        if self.cgroups || !req.all {
            return self.delegate.kill(req);
        }
        // crun finds "all processes" through the cgroup; without one it would signal
        // none. The container's pid namespace names them just as well.
        process::signal_each(req.id, &self.ps(req.id)?, req.signal)
    }
    fn delete(&self, req: DeleteRequest<'_>) -> Result<()> {
        self.delegate.delete(req)
    }
    fn run(&self, req: &RunRequest) -> Result<i32> {
        self.delegate.run(req).map_err(hybrid_says_what_to_do)
    }
    fn list(&self) -> Result<Vec<State>> {
        // crun's list leaves out rootfs, ociVersion and annotations, which its state has:
        // each row is the container's state, so that `list` and `state` agree.
        Ok(self
            .delegate
            .list()?
            .into_iter()
            .map(|row| {
                ContainerId::new(&row.id)
                    .ok()
                    .and_then(|id| self.delegate.state(&id).ok())
                    .unwrap_or(row)
            })
            .collect())
    }
    fn exec(&self, req: &ExecRequest) -> Result<i32> {
        self.delegate.exec(req)
    }
    fn ps(&self, id: &ContainerId) -> Result<Vec<i32>> {
        if self.cgroups {
            return self.delegate.ps(id);
        }
        let state = self.delegate.state(id)?;
        if state.pid <= 0 {
            return Ok(Vec::new());
        }
        process::pids_in_pid_namespace_of(state.pid).map_err(|message| Error::Conflict {
            id: id.clone(),
            message,
        })
    }
    fn pause(&self, id: &ContainerId) -> Result<()> {
        if !self.cgroups {
            return Err(self.no_cgroup(id, "pause"));
        }
        self.delegate.pause(id)
    }
    fn resume(&self, id: &ContainerId) -> Result<()> {
        if !self.cgroups {
            return Err(self.no_cgroup(id, "resume"));
        }
        self.delegate.resume(id)
    }
    fn features(&self) -> Result<serde_json::Value> {
        self.delegate.features().or_else(|_| self.own_features())
    }
    fn update(&self, req: &UpdateRequest) -> Result<()> {
        if !self.cgroups {
            return Err(self.no_cgroup(&req.id, "update"));
        }
        self.delegate.update(req)
    }
    /// crun 1.8.1 has no `events` command: the stats are read from the container's
    /// cgroups, as runc reads them.
    fn events(
        &self,
        req: &EventsRequest,
        receiver: &mut dyn FnMut(Event) -> Result<Flow>,
    ) -> Result<()> {
        if !self.cgroups {
            return Err(self.no_cgroup(&req.id, "events"));
        }
        let mut find = || -> Result<Option<Cgroups>> {
            let state = self.delegate.state(&req.id)?;
            if state.status == Status::Stopped || state.pid <= 0 {
                return Ok(None);
            }
            Cgroups::of_pid(state.pid).map(Some).map_err(|e| {
                Error::io(
                    "cannot read the cgroups of",
                    format!("/proc/{}/cgroup", state.pid),
                    e,
                )
            })
        };
        cgroup::watch(req, &mut find, receiver)
    }
    fn checkpoint(&self, req: &CheckpointRequest) -> Result<()> {
        self.delegate.checkpoint(req)
    }
    fn restore(&self, req: &RestoreRequest) -> Result<i32> {
        self.delegate.restore(req)
    }
}

impl proxcage_store::Backend for Crun {
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
        let mut findings = self.delegate.health(store, held)?;
        if self.cgroups && !self.private_cgroup2 && !unified_cgroups() {
            findings.push(proxcage_core::Finding::new(
                "cgroup-layout",
                proxcage_core::Severity::Error,
                format!("backend {NAME}"),
                "/sys/fs/cgroup",
                format!("the host's cgroup layout is not unified (/sys/fs/cgroup is not a cgroup2 mount), and crun refuses a hybrid layout: {HYBRID_FIX}"),
            ));
        }
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse_unknown_keys() {
        let s: CrunSettings =
            toml::from_str("cgroup_manager = \"disabled\"\nprivate_cgroup2 = true").unwrap();
        assert_eq!(s.cgroup_manager, Some(CgroupManager::Disabled));
        assert!(s.private_cgroup2);
        let err = toml::from_str::<CrunSettings>("cgroup_manger = \"disabled\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `cgroup_manger`"),
            "{err}"
        );
        let err = toml::from_str::<CrunSettings>("cgroup_manager = \"v1\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant `v1`"), "{err}");
    }

    #[test]
    fn private_cgroup2_gives_crun_a_cgroup2_mount_and_leaves_the_host_alone() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (it mounts cgroup2 in a mount namespace); run it as root, e.g. `sudo scripts/test.sh`"
        );
        let host_unified = unified_cgroups();
        // In a forked child, as Delegate's pre_exec runs it; the exit code says what it saw.
        // SAFETY: the child makes only raw syscalls and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = match private_cgroup2() {
                    Ok(()) if unified_cgroups() => 0,
                    Ok(()) => 2,
                    Err(_) => 3,
                };
                std::process::exit(code);
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(child, 0),
                    "2: /sys/fs/cgroup in the child is not cgroup2; 3: private_cgroup2 failed"
                );
            }
        }
        assert_eq!(
            unified_cgroups(),
            host_unified,
            "the host's /sys/fs/cgroup changed"
        );
    }
}
