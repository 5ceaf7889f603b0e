//! The contract every backend fulfils: runc's lifecycle, as an object-safe trait.
//!
//! Requests carry what the caller asked for, already validated (ids, signals) and with
//! paths absolute. A backend's process-wide settings (its binary, its root directory,
//! `--systemd-cgroup`) are given when it is constructed, not per call.

use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::runtime::Spec;

use crate::error::Result;
use crate::id::ContainerId;
use crate::resources::{
    CheckpointRequest, Event, EventsRequest, Flow, RestoreRequest, UpdateRequest,
};
use crate::signal::Signal;
use crate::state::State;

/// `create` (and the create half of `run`).
#[derive(Clone, Debug)]
pub struct CreateRequest {
    pub id: ContainerId,
    /// Absolute path of the bundle directory.
    pub bundle: PathBuf,
    /// The bundle's config.json as the caller loaded and checked it. A backend that acts
    /// on the spec acts on this one, never on a second read of the file, so what was
    /// routed and checked against the security policy is what runs.
    pub spec: Arc<Spec>,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub pidfd_socket: Option<PathBuf>,
    /// Pass fds 3 .. 3+N to the container.
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

impl CreateRequest {
    pub fn new(id: ContainerId, bundle: impl Into<PathBuf>, spec: Arc<Spec>) -> Self {
        CreateRequest {
            id,
            bundle: bundle.into(),
            spec,
            pid_file: None,
            console_socket: None,
            pidfd_socket: None,
            preserve_fds: 0,
            no_pivot: false,
            no_new_keyring: false,
        }
    }

    pub fn id(&self) -> &ContainerId {
        &self.id
    }
}

/// `run`: create, start and (unless detached) wait.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub create: CreateRequest,
    pub detach: bool,
    /// Keep the container after it exits (runc's `--keep`).
    pub keep: bool,
    pub no_subreaper: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct KillRequest<'a> {
    pub id: &'a ContainerId,
    pub signal: Signal,
    /// Signal every process of the container, not only its init.
    pub all: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct DeleteRequest<'a> {
    pub id: &'a ContainerId,
    /// Kill a running container first.
    pub force: bool,
}

/// `exec`: a process in a running container, from a process.json or from the arguments.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    pub id: ContainerId,
    /// A process.json (runc's `--process`); when set, `args` is ignored.
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    /// `UID[:GID]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub pidfd_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub cgroup: Option<String>,
    pub ignore_paused: bool,
}

impl ExecRequest {
    pub fn new(id: ContainerId) -> Self {
        ExecRequest {
            id,
            process_file: None,
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            user: None,
            additional_gids: Vec::new(),
            caps: Vec::new(),
            tty: false,
            console_socket: None,
            pidfd_socket: None,
            detach: false,
            pid_file: None,
            preserve_fds: 0,
            no_new_privs: false,
            apparmor: None,
            process_label: None,
            cgroup: None,
            ignore_paused: false,
        }
    }

    pub fn id(&self) -> &ContainerId {
        &self.id
    }
}

/// A container runtime behind proxcage: runc, crun, Proxmox's pct, or an embedder's own.
///
/// Methods that run the container's process with the caller's stdio (`run`, `exec`)
/// return its exit code (128 + signal when killed); a detached one returns 0.
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// The backend's name, as routes and records spell it.
    fn name(&self) -> &str;
    fn create(&self, req: &CreateRequest) -> Result<()>;
    fn start(&self, id: &ContainerId) -> Result<()>;
    fn state(&self, id: &ContainerId) -> Result<State>;
    fn kill(&self, req: KillRequest<'_>) -> Result<()>;
    fn delete(&self, req: DeleteRequest<'_>) -> Result<()>;
    fn run(&self, req: &RunRequest) -> Result<i32>;
    /// Every container this backend has under its root.
    fn list(&self) -> Result<Vec<State>>;
    fn exec(&self, req: &ExecRequest) -> Result<i32>;
    /// Host pids of the container's processes.
    fn ps(&self, id: &ContainerId) -> Result<Vec<i32>>;
    fn pause(&self, id: &ContainerId) -> Result<()>;
    fn resume(&self, id: &ContainerId) -> Result<()>;
    /// What the backend supports, as runtime-spec's features document.
    fn features(&self) -> Result<serde_json::Value>;
    /// Changes a running container's resources; what the backend cannot change is an
    /// error that names it, and then nothing was changed.
    fn update(&self, req: &UpdateRequest) -> Result<()>;
    /// Hands the container's events to `receiver` until it says [`Flow::Stop`], the
    /// container stops, or (with `stats_only`) after the one stats event.
    fn events(
        &self,
        req: &EventsRequest,
        receiver: &mut dyn FnMut(Event) -> Result<Flow>,
    ) -> Result<()>;
    fn checkpoint(&self, req: &CheckpointRequest) -> Result<()>;
    fn restore(&self, req: &RestoreRequest) -> Result<i32>;
}
