//! A member's terminal (`process.terminal`, `exec --tty`): its process makes a
//! pseudo-terminal in the member's own devpts, makes it its controlling terminal and
//! stdio, and sends the master back to proxcage over a socket pair, which hands it to the
//! caller's console socket (or relays it, for `run` and a foreground `exec`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// What the member's side of a terminal needs.
pub(super) struct Terminal {
    /// The member's end of the socket pair.
    pub(super) sock: OwnedFd,
    /// `process.consoleSize`: rows and columns.
    pub(super) size: Option<(u16, u16)>,
    /// The user the terminal is given to (`process.user`, in the CT's user namespace).
    pub(super) owner: (u32, u32),
}

/// A socket pair: proxcage's end and the member's.
pub(super) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// In the member's process (in its mount namespace, after the pivot): a new session with
/// a new pseudo-terminal as its controlling terminal and stdio; the master goes over
/// `terminal.sock`.
pub(super) fn attach(terminal: &Terminal) -> io::Result<()> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    nix::unistd::setsid()?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: TIOCSCTTY on a terminal fd this process owns, with argument 0.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some((rows, cols)) = terminal.size {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a winsize struct that lives for the call.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
    let (uid, gid) = terminal.owner;
    nix::unistd::fchown(
        &slave,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard fds, which this process owns.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    crate::tty::send_fd(&terminal.sock, master.as_fd())?;
    Ok(())
}

/// The master the member sent over `sock` (proxcage's end), within `timeout`.
pub(super) fn receive(sock: &OwnedFd, timeout: Duration) -> Result<OwnedFd, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut fds = [nix::poll::PollFd::new(
            sock.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the member's terminal did not come".into());
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for the member's terminal: {e}")),
            Ok(_) => {
                return crate::tty::receive_fd(sock)
                    .map_err(|e| format!("receiving the member's terminal: {e}"))
            }
        }
    }
}
