//! The monitor: the process that stands in for a Proxmox container's init in the caller's
//! process tree.
//!
//! `pct start` hands the CT to systemd, so its init is never a child of containerd's shim
//! or of conmon, and its output goes nowhere. `create` therefore leaves a small process
//! behind (its pid is the one in `--pid-file` and in `state`, and it is reparented to the
//! caller's subreaper when `create` exits, as runc's init is). Through a socket in the
//! CT's files directory (bind-mounted at `/.proxcage/run`) it hands the caller's stdio to
//! the CT's init, or passes the init's pseudo-terminal master on to `--console-socket`;
//! then it joins the init's namespaces but the pid namespace, so that `/proc/PID/ns/net`
//! and the others (CRI's and podman's ways into a container) are the container's. It
//! relays the signals it receives to the container's process, and exits with that
//! process's exit status (128 + signal when killed) when it ends. Killing the monitor
//! leaves the container running.
//!
//! The monitor is `proxcage-init` itself, run on the host as `init --monitor ...`: a static
//! executable of a few KiB with no libc, so one monitor per running container costs a few
//! pages. Both ends of the protocol are in `crates/init/program` (`container.rs` and
//! `monitor.rs`). This module prepares the socket and the exec FIFO, starts the monitor,
//! waits for the init to be ready, and releases the init at `start`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};

/// Stdio plus the most preserved fds the init accepts.
const MAX_FDS: u32 = 64;

/// The files a monitor and its init meet at: `<files_dir>/run`, which the translation
/// bind-mounts at `/.proxcage/run`.
#[derive(Debug)]
pub(crate) struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    pub(crate) fn new(files_dir: &Path) -> RunDir {
        RunDir {
            dir: files_dir.join("run"),
        }
    }

    pub(crate) fn exec_fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    fn control(&self) -> PathBuf {
        self.dir.join("control")
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

/// A monitor that `create` started and waits on.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: i32,
    status: File,
}

/// What a monitor is started with.
#[derive(Debug)]
pub(crate) struct Launch<'a> {
    /// proxcage-init on the host (the files directory's `init`).
    pub(crate) init: &'a Path,
    pub(crate) run: &'a RunDir,
    /// The host uid and gid of the container's root, who must reach the socket and FIFO.
    pub(crate) owner: (u32, u32),
    /// Stdio plus `--preserve-fds`.
    pub(crate) nfds: u32,
    pub(crate) console_socket: Option<&'a Path>,
    /// The read end of the network keeper's hold pipe (see `sandbox`), for a sandbox.
    pub(crate) hold: Option<std::os::fd::BorrowedFd<'a>>,
}

/// Gives `path` to `owner` (the CT's root, who opens it from inside), for it alone.
fn own(path: &Path, (uid, gid): (u32, u32)) -> io::Result<()> {
    chown(path, Some(uid), Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// A unix socket of `kind` listening at `path` (replacing whatever was there), which only
/// `owner` may connect to. It is bound through `/proc/self/fd/<its directory>/`: a socket
/// address holds at most 107 bytes, and the files directory of a container with a
/// 64-character id (podman's, containerd's) under a long files root is longer.
pub(crate) fn listen_at(path: &Path, kind: SockType, owner: (u32, u32)) -> io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::other(format!(
            "{} is no socket path",
            path.display()
        )));
    };
    let dir = File::open(dir)?;
    let mut short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    short.push(name);
    let listener = socket(AddressFamily::Unix, kind, SockFlag::SOCK_CLOEXEC, None)?;
    bind(listener.as_raw_fd(), &UnixAddr::new(&short)?)?;
    let ready = || -> io::Result<()> {
        listen(&listener, Backlog::new(1)?)?;
        own(path, owner)
    };
    if let Err(e) = ready() {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(listener)
}

/// Makes the socket and the exec FIFO, then starts the monitor listening on the socket.
pub(crate) fn spawn(launch: &Launch<'_>) -> io::Result<Spawned> {
    if launch.nfds > MAX_FDS {
        return Err(io::Error::other(format!(
            "at most {} fds can be preserved",
            MAX_FDS - 3
        )));
    }
    let dir = launch.run.path();
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let fifo = launch.run.exec_fifo();
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    own(&fifo, launch.owner)?;
    let listener = listen_at(&launch.run.control(), SockType::SeqPacket, launch.owner)?;

    let (status_read, status_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut cmd = Command::new(launch.init);
    cmd.arg("--monitor")
        .arg(listener.as_raw_fd().to_string())
        .arg(status_write.as_raw_fd().to_string())
        .arg(launch.nfds.to_string())
        .arg(
            launch
                .hold
                .map_or("-".into(), |fd| fd.as_raw_fd().to_string()),
        );
    if let Some(path) = launch.console_socket {
        cmd.arg(path);
        // With a terminal the caller reads create's own output to its end: the monitor
        // must not hold it.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    let mut inherit = vec![listener.as_raw_fd(), status_write.as_raw_fd()];
    inherit.extend(launch.hold.map(|fd| fd.as_raw_fd()));
    // SAFETY: between fork and exec only async-signal-safe calls: setsid and fcntl.
    unsafe {
        cmd.pre_exec(move || {
            // Out of the caller's process group: a ^C meant for `create` is not the
            // container's.
            nix::unistd::setsid()?;
            for &fd in &inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok(Spawned {
        pid: child.id() as i32,
        status: File::from(status_read),
    })
}

impl Spawned {
    /// Waits until the init is ready (blocked before the container's process), or fails
    /// with what went wrong: the monitor's or init's own words, or that the init exited
    /// (`init_gone` says so) or the time ran out.
    pub(crate) fn wait_ready(
        &mut self,
        timeout: Duration,
        mut init_gone: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut said = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "the container's init did not report to its monitor within {} s",
                    timeout.as_secs()
                ));
            }
            let slice = left.min(Duration::from_millis(250));
            let mut fds = [PollFd::new(self.status.as_fd(), PollFlags::POLLIN)];
            let ready = poll(
                &mut fds,
                PollTimeout::try_from(slice).unwrap_or(PollTimeout::MAX),
            )
            .unwrap_or(0);
            if ready > 0 {
                let mut chunk = [0u8; 1024];
                match self.status.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => said.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("reading the monitor's status: {e}")),
                }
            } else if init_gone() {
                return Err("the container's init exited before it reported to its monitor".into());
            }
        }
        let said = String::from_utf8_lossy(&said);
        match said.as_ref() {
            "ready" => Ok(()),
            "" => Err("the monitor exited before the container's init was ready".into()),
            other => Err(other.strip_prefix("failed: ").unwrap_or(other).to_string()),
        }
    }
}

/// Opens the exec FIFO and reads the init's byte: the init has been released. Fails when
/// `init_gone` says the init exited, or after `timeout`.
pub(crate) fn release(
    fifo: &Path,
    timeout: Duration,
    mut init_gone: impl FnMut() -> bool,
) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .map_err(|e| format!("cannot open {}: {e}", fifo.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        let mut byte = [0u8; 1];
        // Nothing yet (EAGAIN) until the init opens its end and writes.
        if let Ok(1) = file.read(&mut byte) {
            return Ok(());
        }
        if init_gone() {
            return Err("the container's init exited before it was started".into());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the container's init did not take the start within {} s",
                timeout.as_secs()
            ));
        }
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(100u8));
    }
}

/// Whether `pid` has exited (or never existed).
pub(crate) fn gone(pid: i32) -> bool {
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}
