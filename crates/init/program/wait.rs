//! Waiting: signals through a signalfd, and ppoll on two descriptors.

use crate::check;
use crate::sys::{self, O_CLOEXEC};

const SIG_BLOCK: usize = 0;
const POLLIN: i16 = 1;

#[repr(C)]
struct Pollfd {
    fd: i32,
    events: i16,
    revents: i16,
}

/// Blocks the signals of `all` and returns a signalfd that reads them.
pub fn block_signals(all: u64) -> isize {
    // SAFETY: valid sigset pointers of the kernel's size (8 bytes).
    check(
        unsafe {
            sys::call5(
                sys::RT_SIGPROCMASK,
                SIG_BLOCK,
                &all as *const u64 as usize,
                0,
                8,
                0,
            )
        },
        b"cannot block signals",
    );
    // SAFETY: as above.
    check(
        unsafe {
            sys::call5(
                sys::SIGNALFD4,
                -1isize as usize,
                &all as *const u64 as usize,
                8,
                O_CLOEXEC,
                0,
            )
        },
        b"cannot create a signalfd",
    )
}

/// Waits until `fds[0]` or `fds[1]` (a negative one is left out) can be read; which.
pub fn wait_readable(fds: [isize; 2]) -> [bool; 2] {
    let mut polls = fds.map(|fd| Pollfd {
        fd: fd as i32,
        events: POLLIN,
        revents: 0,
    });
    // SAFETY: two pollfds, no timeout, no signal mask.
    let n = unsafe { sys::call5(sys::PPOLL, polls.as_mut_ptr() as usize, 2, 0, 0, 8) };
    if n < 0 {
        return [false; 2];
    }
    polls.map(|p| p.revents != 0)
}

/// The next signal from a signalfd.
pub fn read_signal(sigfd: isize) -> Option<u32> {
    let mut info = [0u8; 128];
    // SAFETY: reading one signalfd_siginfo into a buffer of its size.
    let got = unsafe {
        sys::call(
            sys::READ,
            sigfd as usize,
            info.as_mut_ptr() as usize,
            info.len(),
        )
    };
    (got == info.len() as isize).then(|| u32::from_ne_bytes([info[0], info[1], info[2], info[3]]))
}
