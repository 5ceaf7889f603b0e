//! The container side of a monitored init: the container's first process when a monitor
//! outside the container reports its exit to the caller. It connects to the monitor's
//! socket, takes its stdio from it (or makes a pseudo-terminal and sends it the master),
//! says it is ready, waits on the exec FIFO until the runtime's `start` opens it, then
//! forks: the child execs the process, the init forwards signals to it, reaps every
//! orphan, and reports the child's exit status to the monitor before it exits with the
//! same status.
//!
//! Messages on the SOCK_SEQPACKET connection, one per packet: from the monitor `I` with
//! the stdio fds (then any preserved fds) and `K<signal>`; from the init `T` with the
//! pty master, `R` (ready), `F<message>` (failed before the exec) and `E<exit code>`.

use crate::channel::{connect, recv, send, send_number, MAX_FDS};
use crate::sys::{self, close, O_CLOEXEC, O_WRONLY};
use crate::terminal::{make_controlling, open_pty};
use crate::text::parse_number;
use crate::wait::{block_signals, read_signal, wait_readable};
use crate::{check, fail};

const CONTROL_SOCKET: &[u8] = b"/.proxcage/run/control\0";
const EXEC_FIFO: &[u8] = b"/.proxcage/run/exec.fifo\0";
const F_DUPFD_CLOEXEC: usize = 1030;
const SIG_SETMASK: usize = 2;
const SIGCHLD: u32 = 17;
const WNOHANG: usize = 1;
/// Received fds are moved to this number or above, out of the way of 0..MAX_FDS.
const HIGH_FD: usize = 100;

/// The connection to the monitor while the init has not exec'd: failures are told to
/// it. Only the init's single thread touches it.
static mut CONTROL: isize = -1;

/// `F<message>` to the monitor, when connected and not yet exec'ing.
pub fn report_failure(what: &[&[u8]]) {
    // SAFETY: single-threaded; see CONTROL.
    let sock = unsafe { CONTROL };
    if sock < 0 {
        return;
    }
    let mut buf = [0u8; 512];
    buf[0] = b'F';
    let mut len = 1;
    for part in what {
        let take = part.len().min(buf.len() - len);
        buf[len..len + take].copy_from_slice(&part[..take]);
        len += take;
    }
    send(sock, &buf[..len], &[]);
}

fn set_control(sock: isize) {
    // SAFETY: single-threaded; see CONTROL.
    unsafe { CONTROL = sock };
}

/// Moves `fd` to HIGH_FD or above.
fn lift(fd: i32) -> i32 {
    // SAFETY: fcntl on a descriptor this process owns.
    let high = check(
        unsafe { sys::call(sys::FCNTL, fd as usize, F_DUPFD_CLOEXEC, HIGH_FD) },
        b"cannot move a descriptor",
    );
    close(fd as isize);
    high as i32
}

/// In a forked child about to exec: no blocked signals, a session of its own.
pub fn child_setup() {
    let none: u64 = 0;
    // SAFETY: a valid sigset pointer.
    unsafe {
        sys::call5(
            sys::RT_SIGPROCMASK,
            SIG_SETMASK,
            &none as *const u64 as usize,
            0,
            8,
            0,
        )
    };
    // SAFETY: no arguments.
    check(
        unsafe { sys::call(sys::SETSID, 0, 0, 0) },
        b"cannot start a session",
    );
}

pub fn fork() -> isize {
    // SAFETY: a plain fork: no new stack, no shared memory.
    check(
        unsafe { sys::call5(sys::CLONE, SIGCHLD as usize, 0, 0, 0, 0) },
        b"cannot fork",
    )
}

/// The process's stdio from the monitor: a new terminal whose master goes to it, or the
/// fds it sends. Returns the fds (lifted out of the way) and how many.
fn take_stdio(sock: isize, terminal: bool) -> ([i32; MAX_FDS], usize) {
    let mut fds = [-1i32; MAX_FDS];
    if terminal {
        let (master, peer) = open_pty();
        check(
            send(sock, b"T", &[master as i32]),
            b"cannot send the terminal to the monitor",
        );
        close(master);
        let peer = lift(peer as i32);
        fds[..3].copy_from_slice(&[peer; 3]);
        return (fds, 3);
    }
    let mut msg = [0u8; 16];
    let (n, got) = recv(sock, &mut msg, &mut fds);
    if n < 1 || msg[0] != b'I' || got < 3 {
        fail(125, &[b"the monitor did not send the stdio"]);
    }
    for fd in fds.iter_mut().take(got) {
        *fd = lift(*fd);
    }
    (fds, got)
}

/// Blocks until `start` opens the exec FIFO for reading.
fn wait_for_start() {
    let fifo = check(
        sys::open(EXEC_FIFO.as_ptr(), O_WRONLY | O_CLOEXEC),
        b"cannot open the exec FIFO",
    );
    // SAFETY: a one-byte buffer.
    unsafe { sys::call(sys::WRITE, fifo as usize, b"0".as_ptr() as usize, 1) };
    close(fifo);
}

/// Returns in the child that is to exec the process; the init never returns.
pub fn run(terminal: bool) {
    let sigfd = block_signals(!0);
    let sock = connect(CONTROL_SOCKET.as_ptr());
    set_control(sock);
    let (fds, count) = take_stdio(sock, terminal);
    check(send(sock, b"R", &[]), b"cannot tell the monitor");
    wait_for_start();

    let child = fork();
    if child == 0 {
        set_control(-1);
        child_setup();
        for (i, fd) in fds.iter().enumerate().take(count) {
            // SAFETY: dup3 of descriptors this process owns; fd >= HIGH_FD > i.
            check(
                unsafe { sys::call(sys::DUP3, *fd as usize, i, 0) },
                b"cannot set up stdio",
            );
        }
        if terminal {
            make_controlling();
        }
        return;
    }
    set_control(-1);
    let mut last = -1;
    for fd in fds.iter().take(count) {
        if *fd != last {
            close(*fd as isize);
            last = *fd;
        }
    }
    supervise(child, sigfd, sock)
}

/// Passes signals (from the signalfd, and `K<n>` from the monitor) on to `child`, reaps,
/// and exits with the child's status once it has exited.
pub fn supervise(child: isize, sigfd: isize, mut sock: isize) -> ! {
    let mut msg = [0u8; 16];
    let mut none = [-1i32; MAX_FDS];
    loop {
        let [signal, message] = wait_readable([sigfd, sock]);
        if signal {
            match read_signal(sigfd) {
                Some(SIGCHLD) => reap(child, sock),
                // SAFETY: kill takes plain integers.
                Some(signo) => unsafe {
                    sys::call(sys::KILL, child as usize, signo as usize, 0);
                },
                None => {}
            }
        }
        if message {
            let (got, _) = recv(sock, &mut msg, &mut none);
            if got <= 0 {
                // The monitor is gone: the container runs on without it.
                sock = -1;
            } else if msg[0] == b'K' {
                let digits = &msg[1..got as usize];
                if let Some(signo) = parse_number(digits, 10) {
                    // SAFETY: kill takes plain integers.
                    unsafe { sys::call(sys::KILL, child as usize, signo, 0) };
                }
            }
        }
    }
}

/// Reaps every exited child; when the process itself has exited, reports and exits.
fn reap(child: isize, sock: isize) {
    loop {
        let mut status: i32 = 0;
        // SAFETY: a valid status pointer; no rusage.
        let pid = unsafe {
            sys::call5(
                sys::WAIT4,
                -1isize as usize,
                &mut status as *mut i32 as usize,
                WNOHANG,
                0,
                0,
            )
        };
        if pid <= 0 {
            return;
        }
        if pid == child {
            let code = if status & 0x7f == 0 {
                ((status >> 8) & 0xff) as u32
            } else {
                128 + (status & 0x7f) as u32
            };
            send_number(sock, b'E', code);
            sys::exit(code as i32);
        }
    }
}
