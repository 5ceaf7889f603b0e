//! A sandbox's network on pct: the network namespace CNI or netavark made for the pod
//! (`linux.namespaces[network].path`) cannot be joined by a CT, so its interfaces move
//! into the CT's own namespace after `pct start`, and back before the client hears that
//! the container ended.
//!
//! The move back is the job of a small process `create` leaves behind, the network
//! keeper: it holds the CT's network namespace open (so the interfaces outlive the CT's
//! processes, whatever order they die in), waits for the CT's init to end, moves the
//! interfaces back with their addresses and routes, and exits. The container's monitor
//! waits for it (the hold pipe) before it reports the exit status, so the client's CNI
//! DEL finds the interfaces where it put them and removes its NAT and port-mapping rules.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::netlink::{move_interfaces, NetlinkError};

/// The NS_GET_USERNS ioctl: the user namespace that owns a namespace.
const NS_GET_USERNS: libc::Ioctl = 0xb701;

/// Why a sandbox's network could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    #[error("{field}: cannot open the network namespace {path}: {source}")]
    Open {
        field: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: the network namespace {path} belongs to another container (its owner is not the host's user namespace) that is no pct sandbox of this root: a pod's containers can join only a pct sandbox's CT; run the pod on runc or crun")]
    Member { field: String, path: PathBuf },
    #[error("{field}: {path} is a running process's network namespace (another container's, as `--network container:NAME` gives), not one a client made for a pod: its interfaces are not the pod's to move; joining another container's network is not supported on pct; run the container on runc or crun")]
    Process { field: String, path: PathBuf },
    #[error("{field}: the network namespace {path} is already the network of the pct container {owner}, which is being deleted or has no monitor left: its pod takes no more containers")]
    Taken {
        field: String,
        path: PathBuf,
        owner: String,
    },
    #[error("moving the interfaces of {path} into CT {vmid}: {source}")]
    Move {
        path: PathBuf,
        vmid: crate::Vmid,
        #[source]
        source: NetlinkError,
    },
    #[error("starting the network keeper of CT {vmid}: {source}")]
    Keeper {
        vmid: crate::Vmid,
        #[source]
        source: io::Error,
    },
}

/// The identity of a namespace file: device and inode.
pub(crate) fn identity(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino()))
}

/// Opens the sandbox's network namespace at `path` (`field` names it in config.json)
/// and checks that the host's user namespace owns it: one a container's user namespace
/// owns (another CT's, a pod member's path), or a process's (`/proc/PID/ns/net`), is
/// refused.
pub(crate) fn open(path: &Path, field: &str) -> Result<File, SandboxError> {
    // CNI and netavark bind-mount the namespaces they make (/run/netns/...); a path under
    // /proc is some process's, whose interfaces would be taken from it.
    if path.starts_with("/proc") {
        return Err(SandboxError::Process {
            field: field.into(),
            path: path.into(),
        });
    }
    let open_err = |source| SandboxError::Open {
        field: field.into(),
        path: path.into(),
        source,
    };
    let netns = File::open(path).map_err(open_err)?;
    // SAFETY: an ioctl without argument on an fd this function owns; the result is a
    // new fd or -1.
    let owner = unsafe { libc::ioctl(netns.as_raw_fd(), NS_GET_USERNS) };
    if owner < 0 {
        return Err(open_err(io::Error::last_os_error()));
    }
    // SAFETY: NS_GET_USERNS returned a new fd that nothing else owns.
    let owner = File::from(unsafe { OwnedFd::from_raw_fd(owner) });
    let own = std::fs::metadata("/proc/self/ns/user").map_err(open_err)?;
    let owner = owner.metadata().map_err(open_err)?;
    if (owner.dev(), owner.ino()) != (own.dev(), own.ino()) {
        return Err(SandboxError::Member {
            field: field.into(),
            path: path.into(),
        });
    }
    Ok(netns)
}

/// Moves the sandbox's interfaces into the network namespace of the CT whose init is
/// `init`, then leaves the network keeper, which holds `hold` (the write end of the
/// monitor's hold pipe) until it has moved them back. Returns the keeper's pid.
pub(crate) fn join(
    sandbox: &File,
    path: &Path,
    vmid: crate::Vmid,
    init: i32,
    hold: OwnedFd,
) -> Result<i32, SandboxError> {
    let keeper_err = |source| SandboxError::Keeper { vmid, source };
    let (ct, pidfd) = ct_of(init).map_err(keeper_err)?;
    if let Err(source) = move_interfaces(sandbox.as_fd(), ct.as_fd()) {
        // What moved before the failure goes back, not down with the CT.
        let _ = move_interfaces(ct.as_fd(), sandbox.as_fd());
        return Err(SandboxError::Move {
            path: path.into(),
            vmid,
            source,
        });
    }
    match spawn_keeper(&ct, sandbox, &pidfd, Some(&hold)) {
        Ok(pid) => Ok(pid),
        Err(e) => {
            let _ = move_interfaces(ct.as_fd(), sandbox.as_fd());
            Err(keeper_err(e))
        }
    }
}

/// The network namespace of the CT whose init is `init`, and a pidfd of that init.
fn ct_of(init: i32) -> io::Result<(File, OwnedFd)> {
    let ct = File::open(format!("/proc/{init}/ns/net"))?;
    // SAFETY: pidfd_open with a pid and no flags; the result is a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, init, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    Ok((ct, unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) }))
}

/// A keeper in place of one that is gone, for the running sandbox CT whose init is
/// `init`: the interfaces are in the CT already, so it only holds the CT's network
/// namespace and moves them back to `path` when the init ends. The monitor reads its hold
/// pipe only once the process has exited, so a keeper holding a write end of it again
/// (opened through the monitor's `/proc/PID/fd`) is waited for like the first one.
pub(crate) fn replace_keeper(
    path: &Path,
    vmid: crate::Vmid,
    init: i32,
    monitor: Option<i32>,
) -> Result<i32, SandboxError> {
    let sandbox = open(path, "the sandbox's network namespace")?;
    let keeper_err = |source| SandboxError::Keeper { vmid, source };
    let (ct, pidfd) = ct_of(init).map_err(keeper_err)?;
    let hold = match monitor {
        Some(monitor) => hold_of(monitor).map_err(keeper_err)?,
        None => None,
    };
    spawn_keeper(&ct, &sandbox, &pidfd, hold.as_ref()).map_err(keeper_err)
}

/// A write end of the hold pipe of `monitor` (`init --monitor LISTEN STATUS NFDS HOLD
/// ...`); `None` when it has none or is no longer that monitor.
fn hold_of(monitor: i32) -> io::Result<Option<OwnedFd>> {
    let Ok(cmdline) = std::fs::read(format!("/proc/{monitor}/cmdline")) else {
        return Ok(None);
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let Some(at) = args.iter().position(|a| *a == b"--monitor") else {
        return Ok(None);
    };
    let Some(hold) = args
        .get(at + 4)
        .and_then(|a| std::str::from_utf8(a).ok()?.parse::<RawFd>().ok())
    else {
        return Ok(None);
    };
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let pipe = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(format!("/proc/{monitor}/fd/{hold}"))?;
    if !pipe.metadata()?.file_type().is_fifo() {
        return Err(io::Error::other(format!(
            "fd {hold} of the monitor {monitor} is not its hold pipe"
        )));
    }
    Ok(Some(pipe.into()))
}

/// Forks the keeper. Only a single-threaded process may fork and go on running Rust
/// code in the child (another thread may hold the allocator's lock): with more threads
/// the keeper is refused.
fn spawn_keeper(
    ct: &File,
    sandbox: &File,
    pidfd: &OwnedFd,
    hold: Option<&OwnedFd>,
) -> io::Result<i32> {
    single_threaded().map_err(io::Error::other)?;
    let keep = [
        ct.as_raw_fd(),
        sandbox.as_raw_fd(),
        pidfd.as_raw_fd(),
        hold.map_or(-1, |hold| hold.as_raw_fd()),
    ];
    // SAFETY: the process is single-threaded (checked above), so the child may run any
    // code; it never returns from `keeper`.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw()),
        nix::unistd::ForkResult::Child => keeper(ct, sandbox, pidfd, &keep),
    }
}

/// The keeper's life: out of the caller's session and stdio, holding only its own fds,
/// it waits for the CT's init to end and moves the interfaces back.
fn keeper(ct: &File, sandbox: &File, pidfd: &OwnedFd, keep: &[RawFd]) -> ! {
    let _ = nix::unistd::setsid();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard fds, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    close_all_but(keep);
    let mut fds = [nix::poll::PollFd::new(
        pidfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    while let Err(nix::errno::Errno::EINTR) =
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE)
    {}
    let code = match move_interfaces(ct.as_fd(), sandbox.as_fd()) {
        Ok(_) => 0,
        Err(_) => 1,
    };
    // SAFETY: _exit ends the process without running the parent's destructors twice.
    unsafe { libc::_exit(code) }
}

/// Fails unless this process runs one thread: only then may it fork and go on running
/// Rust code in the child (another thread may hold the allocator's lock).
pub(crate) fn single_threaded() -> Result<(), String> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("cannot read /proc/self/task: {e}"))?
        .count();
    if threads != 1 {
        return Err(format!(
            "proxcage runs {threads} threads here and cannot fork safely"
        ));
    }
    Ok(())
}

/// Closes every fd but 0-2 and `keep`: a forked helper must not hold the caller's pipes,
/// the engine's locks or the monitor's sockets.
pub(crate) fn close_all_but(keep: &[RawFd]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: closing an fd of this process that nothing in it uses any more.
        unsafe { libc::close(fd) };
    }
}

/// Waits (up to `timeout`) for the keeper `pid` to have moved the interfaces back and
/// exited; a pid that is gone, or not a keeper any more, is done.
pub(crate) fn wait_keeper(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    };
    while alive() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
