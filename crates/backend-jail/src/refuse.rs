//! What ocijail cannot do, refused before it is asked, with an error that names the
//! backend and says what to do instead.

use std::path::PathBuf;

use proxcage_core::{ContainerId, CreateRequest, Error, ExecRequest, Result, RunRequest};

/// Why the jail backend cannot serve a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JailError {
    #[error("jail backend: {} was not found (looked in {searched}): the jail backend runs FreeBSD jails through ocijail; install it on the FreeBSD host (pkg install ocijail) or set binary under [backends.jail] in {}", program.display(), origin.display())]
    NotInstalled {
        program: PathBuf,
        searched: String,
        origin: PathBuf,
    },

    #[error("jail backend: --rootless=true cannot be honoured: ocijail makes jails as root only; run proxcage as root without --rootless=true")]
    Rootless,

    #[error(
        "container {id}: the jail backend cannot {what}: ocijail, which it drives, {lacks}; {fix}"
    )]
    Lacks {
        id: ContainerId,
        what: String,
        lacks: &'static str,
        fix: &'static str,
    },
}

impl From<JailError> for Error {
    fn from(e: JailError) -> Self {
        Error::Input(Box::new(e))
    }
}

fn lacks(
    id: &ContainerId,
    what: impl Into<String>,
    lacks: &'static str,
    fix: &'static str,
) -> Error {
    JailError::Lacks {
        id: id.clone(),
        what: what.into(),
        lacks,
        fix,
    }
    .into()
}

pub(crate) fn create(req: &CreateRequest) -> Result<()> {
    if req.pidfd_socket.is_some() {
        return Err(lacks(
            req.id(),
            "create with --pidfd-socket",
            "has no --pidfd-socket (FreeBSD has no pidfds)",
            "leave --pidfd-socket out",
        ));
    }
    Ok(())
}

pub(crate) fn run(req: &RunRequest) -> Result<()> {
    if !req.detach {
        return Err(lacks(
            req.create.id(),
            "run a container in the foreground",
            "has no run command",
            "use run --detach, or create and start",
        ));
    }
    Ok(())
}

pub(crate) fn exec(req: &ExecRequest) -> Result<()> {
    if req.process_file.is_none() {
        return Err(lacks(
            req.id(),
            "exec a command given on the command line",
            "runs only exec --process FILE",
            "write the process as runtime-spec JSON (args, env, cwd, user) and pass --process FILE",
        ));
    }
    let flags = [
        (req.cwd.is_some(), "--cwd"),
        (!req.env.is_empty(), "--env"),
        (req.user.is_some(), "--user"),
        (!req.additional_gids.is_empty(), "--additional-gids"),
        (!req.caps.is_empty(), "--cap"),
        (req.no_new_privs, "--no-new-privs"),
        (req.apparmor.is_some(), "--apparmor"),
        (req.process_label.is_some(), "--process-label"),
        (req.cgroup.is_some(), "--cgroup"),
        (req.pidfd_socket.is_some(), "--pidfd-socket"),
        (req.ignore_paused, "--ignore-paused"),
    ];
    match flags.iter().find(|(set, _)| *set) {
        Some((_, flag)) => Err(lacks(
            req.id(),
            format!("exec with {flag}"),
            "has only --process, --tty, --detach, --console-socket, --pid-file and --preserve-fds for exec",
            "put what the flag sets into the --process file, or leave it out",
        )),
        None => Ok(()),
    }
}

pub(crate) fn ps(id: &ContainerId) -> Error {
    lacks(
        id,
        "list the container's processes",
        "has no ps command",
        "on the host, ps -J <jid> lists them (the jid is the annotation org.freebsd.jail.jid in proxcage state)",
    )
}

/// `pause` or `resume`.
pub(crate) fn freeze(id: &ContainerId, what: &'static str) -> Error {
    lacks(
        id,
        what,
        "has no pause or resume command (a jail cannot be frozen)",
        "stop the container with kill instead",
    )
}

/// `update` and `events`: what runc reads and writes in cgroups, which FreeBSD has not.
pub(crate) fn resources(id: &ContainerId, what: &'static str) -> Error {
    lacks(
        id,
        what,
        "has no update or events command (FreeBSD has no cgroups)",
        "limit and watch the jail with rctl(8) on the host (rctl -a jail:<jid>:memoryuse:deny=256m, rctl -u jail:<jid>)",
    )
}

/// `checkpoint` and `restore`.
pub(crate) fn checkpoint(id: &ContainerId, what: &'static str) -> Error {
    lacks(
        id,
        what,
        "has no checkpoint or restore command (FreeBSD has no CRIU)",
        "route a container that must be checkpointed to the runc backend on a Linux host",
    )
}
