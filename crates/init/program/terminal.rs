//! Pseudo-terminals: made inside the container, the master sent out (to the monitor, or
//! for an exec to the runtime's socket), the peer the process's controlling terminal.

use crate::channel::{connect, send};
use crate::container::{child_setup, fork, supervise};
use crate::sys::{self, close, O_CLOEXEC, O_NOCTTY, O_RDWR};
use crate::wait::block_signals;
use crate::check;

const PTMX: &[u8] = b"/dev/ptmx\0";
const TIOCSPTLCK: usize = 0x4004_5431;
const TIOCGPTPEER: usize = 0x5441;
const TIOCSCTTY: usize = 0x540E;

/// A new pseudo-terminal: (master, peer), both close-on-exec.
pub fn open_pty() -> (isize, isize) {
    let master = check(
        sys::open(PTMX.as_ptr(), O_RDWR | O_NOCTTY | O_CLOEXEC),
        b"cannot open /dev/ptmx",
    );
    let unlock: i32 = 0;
    // SAFETY: TIOCSPTLCK reads an int.
    check(
        unsafe {
            sys::call(
                sys::IOCTL,
                master as usize,
                TIOCSPTLCK,
                &unlock as *const i32 as usize,
            )
        },
        b"cannot unlock the pseudo-terminal",
    );
    // SAFETY: TIOCGPTPEER takes open flags.
    let peer = check(
        unsafe {
            sys::call(
                sys::IOCTL,
                master as usize,
                TIOCGPTPEER,
                O_RDWR | O_NOCTTY | O_CLOEXEC,
            )
        },
        b"cannot open the pseudo-terminal",
    );
    (master, peer)
}

/// Makes the terminal on stdin the controlling terminal of this process's session.
pub fn make_controlling() {
    // SAFETY: TIOCSCTTY takes an int.
    check(
        unsafe { sys::call(sys::IOCTL, 0, TIOCSCTTY, 0) },
        b"cannot set the controlling terminal",
    );
}

/// An exec with a terminal: sends the master of a new pseudo-terminal to the runtime
/// over the socket at `path`, then forks (what `pct exec` starts leads a process
/// group, so it cannot start the session a controlling terminal needs): the child
/// returns to exec the process with the terminal as its controlling terminal and
/// stdio; this process passes signals on to it and exits with its status.
pub fn exec_terminal(path: *const u8) {
    let sigfd = block_signals(!0);
    let sock = connect(path);
    let (master, peer) = open_pty();
    check(
        send(sock, b"T", &[master as i32]),
        b"cannot send the terminal",
    );
    close(master);
    close(sock);
    let child = fork();
    if child == 0 {
        child_setup();
        for fd in 0..3 {
            // SAFETY: dup3 of a descriptor this process owns onto its stdio.
            check(
                unsafe { sys::call(sys::DUP3, peer as usize, fd, 0) },
                b"cannot set up stdio",
            );
        }
        close(peer);
        make_controlling();
        return;
    }
    close(peer);
    supervise(child, sigfd, -1)
}
