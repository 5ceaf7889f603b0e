//! The monitor: the process that stands in for a Proxmox container's init in the caller's
//! process tree.
//!
//! `pct start` hands the CT to systemd, so its init is never a child of containerd's shim
//! or of conmon, and its output goes nowhere. `create` therefore leaves this small process
//! behind (its pid is the one in `--pid-file`, and it is reparented to the caller's
//! subreaper when `create` exits, as runc's init is). Through a socket in the CT's files
//! directory (bind-mounted at `/.proxcage/run`) it hands the caller's stdio to the CT's
//! init, or passes the init's pseudo-terminal master on to `--console-socket`; it relays
//! the signals it receives to the container's process, and exits with that process's exit
//! status (128 + signal when killed) when it ends. Killing the monitor leaves the
//! container running. The other end is `proxcage-init`'s monitored mode
//! (`crates/lxc-config/init/main.rs`), which documents the messages.
//!
//! The monitor runs as the current executable with [`ARG`] as its first argument; a
//! program that embeds this crate calls [`run_if_invoked`] first thing in `main`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    accept, bind, connect, listen, recvmsg, sendmsg, socket, AddressFamily, Backlog,
    ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// The first argument that makes the current executable a monitor.
pub const ARG: &str = "__proxcage-pct-monitor";

/// The exit status reported when the init vanished without reporting: only SIGKILL (or
/// `pct stop`) ends it that way.
const KILLED: i32 = 128 + 9;

/// Stdio plus the most preserved fds the init accepts.
const MAX_FDS: u32 = 64;

/// Runs the monitor and exits if this process was started as one; returns otherwise.
pub fn run_if_invoked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(ARG.as_ref()) {
        return;
    }
    let code = match parse_args(args.collect()) {
        Some(args) => monitor(args),
        None => {
            eprintln!("proxcage: {ARG} LISTEN_FD STATUS_FD NFDS [CONSOLE_SOCKET]");
            2
        }
    };
    std::process::exit(code)
}

struct Args {
    listen: OwnedFd,
    status: File,
    nfds: u32,
    console_socket: Option<PathBuf>,
}

fn parse_args(args: Vec<OsString>) -> Option<Args> {
    let number = |s: &OsString| s.to_str()?.parse::<u32>().ok();
    let (listen, status, nfds) = (
        number(args.first()?)?,
        number(args.get(1)?)?,
        number(args.get(2)?)?,
    );
    if listen < 3 || status < 3 || listen == status || !(3..=MAX_FDS).contains(&nfds) {
        return None;
    }
    // SAFETY: the spawner passed these descriptors to this process for it to own.
    let (listen, status) = unsafe {
        (
            OwnedFd::from_raw_fd(listen as RawFd),
            File::from_raw_fd(status as RawFd),
        )
    };
    Some(Args {
        listen,
        status,
        nfds,
        console_socket: args.get(3).map(PathBuf::from),
    })
}

fn monitor(args: Args) -> i32 {
    let Args {
        listen,
        mut status,
        nfds,
        console_socket,
    } = args;
    let conn = match handshake(&listen, nfds, console_socket.as_deref()) {
        Ok(conn) => conn,
        Err(message) => {
            let _ = status.write_all(format!("failed: {message}").as_bytes());
            return 1;
        }
    };
    drop(listen);
    let _ = status.write_all(b"ready");
    drop(status);
    // The init has the caller's stdio now; holding it here would keep the caller's pipes
    // open after the container's processes closed them.
    if console_socket.is_none() {
        release_stdio(nfds);
    }
    match relay(&conn) {
        Ok(code) => code,
        Err(_) => KILLED,
    }
}

/// Accepts the init, gives it stdio or passes its terminal on, waits for it to be ready.
fn handshake(
    listen: &OwnedFd,
    nfds: u32,
    console_socket: Option<&Path>,
) -> Result<OwnedFd, String> {
    let conn = accept(listen.as_raw_fd()).map_err(|e| format!("accepting the init: {e}"))?;
    // SAFETY: accept returned a new descriptor that nothing else owns.
    let conn = unsafe { OwnedFd::from_raw_fd(conn) };
    match console_socket {
        Some(path) => {
            let (packet, fds) = receive(&conn).map_err(|e| format!("from the init: {e}"))?;
            let master = match (packet.first(), fds.into_iter().next()) {
                (Some(b'T'), Some(master)) => master,
                _ => return Err(init_said(&packet)),
            };
            send_console(path, &master)?;
        }
        None => {
            let fds: Vec<RawFd> = (0..nfds as RawFd).collect();
            send(&conn, b"I", &fds).map_err(|e| format!("sending the stdio to the init: {e}"))?;
        }
    }
    let (packet, _) = receive(&conn).map_err(|e| format!("from the init: {e}"))?;
    match packet.first() {
        Some(b'R') => Ok(conn),
        _ => Err(init_said(&packet)),
    }
}

/// What the init's last packet means when it was not the expected one.
fn init_said(packet: &[u8]) -> String {
    match packet.split_first() {
        Some((b'F', message)) => {
            format!(
                "the container's init failed: {}",
                String::from_utf8_lossy(message)
            )
        }
        None => "the container's init exited before it was ready".into(),
        Some(_) => format!(
            "unexpected message from the init: {:?}",
            String::from_utf8_lossy(packet)
        ),
    }
}

/// runc's console protocol: one message on a stream socket, the pty master as its one fd.
fn send_console(path: &Path, master: &OwnedFd) -> Result<(), String> {
    let fail = |e: nix::Error| format!("sending the terminal to {}: {e}", path.display());
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(fail)?;
    let addr = UnixAddr::new(path).map_err(fail)?;
    connect(sock.as_raw_fd(), &addr).map_err(fail)?;
    send(&sock, b"/dev/ptmx", &[master.as_raw_fd()]).map_err(fail)
}

/// Points 0, 1 and 2 at /dev/null and closes the preserved fds 3..nfds.
fn release_stdio(nfds: u32) {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: replacing this process's own stdio descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    for fd in 3..nfds as RawFd {
        // SAFETY: the preserved fds were the caller's, for the container; not used here.
        unsafe { libc::close(fd) };
    }
}

/// Relays signals to the init until it reports the exit code.
fn relay(conn: &OwnedFd) -> nix::Result<i32> {
    let mut all = SigSet::all();
    all.remove(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None)?;
    let signals = SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC)?;
    loop {
        let mut fds = [
            PollFd::new(conn.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let conn_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let signal_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        if signal_ready {
            if let Some(info) = signals.read_signal()? {
                let _ = send(conn, format!("K{}", info.ssi_signo).as_bytes(), &[]);
            }
        }
        if conn_ready {
            let (packet, _) = receive(conn)?;
            match packet.split_first() {
                Some((b'E', code)) => {
                    let code = std::str::from_utf8(code).ok().and_then(|c| c.parse().ok());
                    return Ok(code.unwrap_or(KILLED));
                }
                None => return Ok(KILLED),
                Some(_) => {}
            }
        }
    }
}

fn send(sock: &OwnedFd, data: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    let iov = [IoSlice::new(data)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).map(drop)
}

/// One packet and the fds that came with it; an empty packet means the peer is gone.
fn receive(sock: &OwnedFd) -> nix::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS as usize]);
    let (len, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                // SAFETY: SCM_RIGHTS gave this process new descriptors to own.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (msg.bytes, fds)
    };
    buf.truncate(len);
    Ok((buf, fds))
}

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
    pub(crate) program: &'a Path,
    pub(crate) run: &'a RunDir,
    /// The host uid and gid of the container's root, who must reach the socket and FIFO.
    pub(crate) owner: (u32, u32),
    /// Stdio plus `--preserve-fds`.
    pub(crate) nfds: u32,
    pub(crate) console_socket: Option<&'a Path>,
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
    let (uid, gid) = launch.owner;
    let owned_by_root = |path: &Path| -> io::Result<()> {
        chown(path, Some(uid), Some(gid))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    };

    let fifo = launch.run.exec_fifo();
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    owned_by_root(&fifo)?;

    let control = launch.run.control();
    let _ = std::fs::remove_file(&control);
    let listener = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(listener.as_raw_fd(), &UnixAddr::new(&control)?)?;
    listen(&listener, Backlog::new(1)?)?;
    owned_by_root(&control)?;

    let (status_read, status_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut cmd = Command::new(launch.program);
    cmd.arg(ARG)
        .arg(listener.as_raw_fd().to_string())
        .arg(status_write.as_raw_fd().to_string())
        .arg(launch.nfds.to_string());
    if let Some(path) = launch.console_socket {
        cmd.arg(path);
        // With a terminal the caller reads create's own output to its end: the monitor
        // must not hold it.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    let inherit = [listener.as_raw_fd(), status_write.as_raw_fd()];
    // SAFETY: between fork and exec only async-signal-safe calls: setsid and fcntl.
    unsafe {
        cmd.pre_exec(move || {
            // Out of the caller's process group: a ^C meant for `create` is not the
            // container's.
            nix::unistd::setsid()?;
            for fd in inherit {
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
