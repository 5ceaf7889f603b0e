//! Terminals of pct containers. proxcage-init makes the pseudo-terminal inside the CT (so
//! it is the CT's own devpts) and sends its master out: to the monitor for the container's
//! process, over a socket in the run directory for an exec. From here the master goes to
//! the caller's `--console-socket` (runc's protocol: one message, the master as its one
//! `SCM_RIGHTS` fd), or, when the caller gave none, is relayed to this process's own
//! terminal as `runc run`/`runc exec -t` do.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, connect, recvmsg, sendmsg, socket, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::termios::{self, SetArg};

/// A socket that waits for one pseudo-terminal master; removed when dropped.
#[derive(Debug)]
pub(crate) struct MasterSocket {
    listener: OwnedFd,
    path: PathBuf,
}

impl MasterSocket {
    /// Listens at `path`: SOCK_SEQPACKET for proxcage-init (an exec's terminal), or
    /// SOCK_STREAM for a monitor (runc's console socket protocol). Only `owner` (the CT's
    /// root, who connects) may reach it.
    pub(crate) fn listen(path: &Path, kind: SockType, owner: (u32, u32)) -> io::Result<Self> {
        Ok(MasterSocket {
            listener: crate::monitor::listen_at(path, kind, owner)?,
            path: path.to_path_buf(),
        })
    }

    /// Accepts one connection and receives the master from it. Gives up after `timeout`
    /// or as soon as `gone` says the sender can no longer come.
    pub(crate) fn receive(
        &self,
        timeout: Duration,
        mut gone: impl FnMut() -> bool,
    ) -> Result<OwnedFd, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, PollTimeout::from(100u8)).unwrap_or(0);
            if ready > 0 {
                break;
            }
            if gone() {
                return Err("the terminal's sender exited before it sent the terminal".into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no terminal arrived within {} s",
                    timeout.as_secs()
                ));
            }
        }
        let conn = accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)
            .map_err(|e| format!("accepting the terminal: {e}"))?;
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let conn = unsafe { OwnedFd::from_raw_fd(conn) };
        receive_fd(&conn).map_err(|e| format!("receiving the terminal: {e}"))
    }
}

impl Drop for MasterSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One message with one fd in it.
pub(crate) fn receive_fd(conn: &OwnedFd) -> nix::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<UnixAddr>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            let mut owned: Vec<OwnedFd> = fds
                .into_iter()
                // SAFETY: SCM_RIGHTS gave this process new descriptors to own.
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                .collect();
            if let Some(master) = owned.pop() {
                return Ok(master);
            }
        }
    }
    Err(nix::errno::Errno::EBADMSG)
}

/// Sends `master` to the caller's console socket, as runc does.
pub(crate) fn send_to_console(path: &Path, master: &OwnedFd) -> Result<(), String> {
    let fail = |e: nix::Error| format!("sending the terminal to {}: {e}", path.display());
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(fail)?;
    connect(sock.as_raw_fd(), &UnixAddr::new(path).map_err(fail)?).map_err(fail)?;
    send_fd(&sock, master.as_fd()).map_err(fail)
}

/// Sends `master` over the connected socket `sock`, named `/dev/ptmx` as runc names it.
pub(crate) fn send_fd(sock: &OwnedFd, master: BorrowedFd<'_>) -> nix::Result<()> {
    let fds = [master.as_raw_fd()];
    sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &[IoSlice::new(b"/dev/ptmx")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(drop)
}

/// Relays this process's stdin to `master` and `master` to its stdout until the terminal's
/// other side is closed by every process in the container. Our stdin is put in raw mode
/// (and restored) when it is a terminal, whose size the container's terminal takes.
pub(crate) fn relay(master: OwnedFd) {
    let stdin = io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(saved) = &saved {
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        // SAFETY: winsize is plain integers, all-zero valid; TIOCGWINSZ and TIOCSWINSZ
        // write and read one.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        unsafe {
            if libc::ioctl(stdin.as_raw_fd(), libc::TIOCGWINSZ, &mut size) == 0 {
                libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size);
            }
        }
    }
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let master_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = stdin_open && fds[1].revents().is_some_and(|r| !r.is_empty());
        if master_ready {
            // EIO once no process holds the terminal any more: the end.
            match nix::unistd::read(&master, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if write_all(io::stdout().as_fd(), &buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        if stdin_ready {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = write_all(master.as_fd(), &buf[..n]);
                }
            }
        }
    }
    if let Some(saved) = saved {
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &saved);
    }
}

fn write_all(fd: std::os::fd::BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
