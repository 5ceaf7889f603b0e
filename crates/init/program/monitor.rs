//! The monitor: `init --monitor LISTEN_FD STATUS_FD NFDS HOLD_FD [CONSOLE_SOCKET]`, run on the
//! host by the pct backend's `create` and left in the caller's process tree (its pid is the
//! pid file's and `state`'s). It accepts the CT's init on the listening socket, sends it
//! the stdio fds 0..NFDS, or passes the terminal master it gets from the init on to the
//! console socket (runc's protocol); joins the init's namespaces but the pid namespace (so
//! `/proc/PID/ns/{net,ipc,uts,mnt,user,cgroup}` of the pid the caller knows are the
//! container's); writes `ready` (or `failed: <why>`) to STATUS_FD and closes it; lets go
//! of the caller's stdio; then passes every signal it gets on to the init (`K<n>`) and
//! exits with the status the init reports (`E<code>`), or 137 when the init vanished
//! without one (SIGKILL, `pct stop`). HOLD_FD (`-` for none) is the read end of a pipe
//! whose write end the pct backend's network keeper holds: before it exits the monitor
//! reads it to its end, so that a pod's interfaces are back in the client's network
//! namespace before the client hears that the container ended. Static and tiny, it costs a few pages of memory and
//! no CPU while it waits in ppoll.

use crate::channel::{recv, send, send_number, SockaddrUn, MAX_FDS};
use crate::sys::{self, close, errno_text, exit, write_fd, AF_UNIX, O_CLOEXEC, O_RDWR};
use crate::text::parse_number;
use crate::wait::{block_signals, read_signal, wait_readable};

const SOCK_STREAM: usize = 1;
const KILLED: i32 = 128 + 9;
const SIGCHLD: u64 = 1 << (17 - 1);
const SOL_SOCKET: usize = 1;
const SO_PEERCRED: usize = 17;
const PR_SET_DUMPABLE: usize = 4;
const EINVAL: isize = -22;
const CLONE_NEWUSER: usize = 0x1000_0000;
/// The namespaces of the CT's init the monitor joins: mount, cgroup, UTS, IPC, user, net.
/// Not the pid namespace: a process of it that its caller did not reap (a caller need not
/// be a subreaper) would keep the CT's init from ever finishing its exit.
const CT_NAMESPACES: usize =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | CLONE_NEWUSER | 0x4000_0000;

/// The status fd while `create` waits on it; -1 once reported.
static mut STATUS: isize = -1;

/// The hold fd, or -1.
static mut HOLD: isize = -1;

/// `failed: <what>` to `create`, once.
pub fn report_failure(what: &[&[u8]]) {
    // SAFETY: single-threaded; only this module touches STATUS.
    let status = unsafe { STATUS };
    if status < 0 {
        return;
    }
    write_fd(status as usize, &[b"failed: "]);
    write_fd(status as usize, what);
    // SAFETY: as above.
    unsafe { STATUS = -1 };
}

fn failed(what: &[&[u8]]) -> ! {
    report_failure(what);
    exit(1)
}

fn number(arg: &[u8]) -> usize {
    match parse_number(arg, 10) {
        Some(n) => n,
        None => failed(&[b"bad monitor arguments"]),
    }
}

pub fn main(argc: usize, argv: *const *const u8) -> ! {
    // SAFETY: argv holds argc NUL-terminated strings.
    let arg =
        |i: usize| unsafe { sys::c_str(*argv.add(i)) };
    if argc < 6 {
        exit(2);
    }
    let status = number(arg(3));
    // SAFETY: single-threaded.
    unsafe { STATUS = status as isize };
    let listen = number(arg(2));
    let nfds = number(arg(4));
    if !(3..=MAX_FDS).contains(&nfds) {
        failed(&[b"bad monitor arguments"]);
    }
    if arg(5) != b"-" {
        // SAFETY: single-threaded.
        unsafe { HOLD = number(arg(5)) as isize };
    }
    let console = if argc > 6 {
        // SAFETY: argv[6] exists.
        Some(unsafe { *argv.add(6) })
    } else {
        None
    };

    // SAFETY: accept4 with no peer address.
    let conn = unsafe { sys::call5(sys::ACCEPT4, listen, 0, 0, O_CLOEXEC, 0) };
    if conn < 0 {
        failed(&[b"accepting the init: ", errno_text(conn)]);
    }
    close(listen as isize);
    let mut packet = [0u8; 512];
    let mut fds = [-1i32; MAX_FDS];
    match console {
        Some(path) => {
            let (n, got) = recv(conn, &mut packet, &mut fds);
            if n < 1 || packet[0] != b'T' || got != 1 {
                init_said(&packet, n);
            }
            send_console(path, fds[0]);
            close(fds[0] as isize);
        }
        None => {
            let mut stdio = [0i32; MAX_FDS];
            for (i, fd) in stdio.iter_mut().enumerate().take(nfds) {
                *fd = i as i32;
            }
            let sent = send(conn, b"I", &stdio[..nfds]);
            if sent < 0 {
                failed(&[b"sending the stdio to the init: ", errno_text(sent)]);
            }
        }
    }
    let (n, _) = recv(conn, &mut packet, &mut fds);
    if n < 1 || packet[0] != b'R' {
        init_said(&packet, n);
    }
    join_container(conn);
    write_fd(status, &[b"ready"]);
    close(status as isize);
    // SAFETY: single-threaded.
    unsafe { STATUS = -1 };
    if console.is_none() {
        release_stdio(nfds);
    }
    relay(conn)
}

/// Joins the namespaces of the init at the other end of `conn` (see [`CT_NAMESPACES`]).
fn join_container(conn: isize) {
    // Not dumpable: the container's root (whose user namespace the monitor joins) cannot
    // ptrace it into running code outside the CT.
    sys::prctl(PR_SET_DUMPABLE, 0, 0);
    let mut cred = [0i32; 3];
    let mut len: u32 = 12;
    // SAFETY: getsockopt into a struct ucred (three ints) with its length.
    let err = unsafe {
        sys::call5(
            sys::GETSOCKOPT,
            conn as usize,
            SOL_SOCKET,
            SO_PEERCRED,
            cred.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
        )
    };
    if err < 0 || cred[0] <= 0 {
        failed(&[b"cannot tell the container's init's pid: ", errno_text(err)]);
    }
    // SAFETY: pidfd_open takes plain integers.
    let pidfd = unsafe { sys::call(sys::PIDFD_OPEN, cred[0] as usize, 0, 0) };
    if pidfd < 0 {
        failed(&[b"cannot open the container's init: ", errno_text(pidfd)]);
    }
    // SAFETY: setns takes plain integers.
    let mut err = unsafe { sys::call(sys::SETNS, pidfd as usize, CT_NAMESPACES, 0) };
    if err == EINVAL {
        // A privileged CT shares the host's user namespace, which cannot be re-entered.
        let others = CT_NAMESPACES & !CLONE_NEWUSER;
        // SAFETY: as above.
        err = unsafe { sys::call(sys::SETNS, pidfd as usize, others, 0) };
    }
    if err < 0 {
        failed(&[b"cannot join the container's namespaces: ", errno_text(err)]);
    }
    close(pidfd);
}

/// Fails with what the init's last packet (or its absence) means.
fn init_said(packet: &[u8], n: isize) -> ! {
    if n < 1 {
        failed(&[b"the container's init exited before it was ready"]);
    }
    let n = n as usize;
    if packet[0] == b'F' {
        failed(&[
            b"the container's init failed: ",
            &packet[1..n.min(packet.len())],
        ]);
    }
    failed(&[b"unexpected message from the container's init"])
}

/// runc's console protocol: one message on a stream socket, the master as its one fd.
fn send_console(path: *const u8, master: i32) {
    // SAFETY: the path is NUL-terminated (an argv string).
    let path = unsafe { sys::c_str(path) };
    let mut addr = SockaddrUn {
        family: AF_UNIX as u16,
        path: [0; 108],
    };
    if path.len() >= addr.path.len() {
        failed(&[b"the console socket path is too long"]);
    }
    addr.path[..path.len()].copy_from_slice(path);
    // SAFETY: socket takes plain integers.
    let sock = unsafe { sys::call(sys::SOCKET, AF_UNIX, SOCK_STREAM | O_CLOEXEC, 0) };
    if sock < 0 {
        failed(&[b"cannot create a socket: ", errno_text(sock)]);
    }
    // SAFETY: addr is a sockaddr_un of at least the given length.
    let err = unsafe {
        sys::call(
            sys::CONNECT,
            sock as usize,
            &addr as *const SockaddrUn as usize,
            2 + path.len() + 1,
        )
    };
    if err < 0 {
        failed(&[
            b"cannot connect to the console socket ",
            path,
            b": ",
            errno_text(err),
        ]);
    }
    let sent = send(sock, b"/dev/ptmx", &[master]);
    if sent < 0 {
        failed(&[
            b"cannot send the terminal to ",
            path,
            b": ",
            errno_text(sent),
        ]);
    }
    close(sock);
}

/// Points 0, 1 and 2 at /dev/null and closes the preserved fds 3..nfds (the init has
/// its own copies): holding them would keep the caller's pipes open.
fn release_stdio(nfds: usize) {
    let null = sys::open(b"/dev/null\0".as_ptr(), O_RDWR | O_CLOEXEC);
    for fd in 0..3 {
        if null >= 0 {
            // SAFETY: dup3 onto this process's own stdio.
            unsafe { sys::call(sys::DUP3, null as usize, fd, 0) };
        } else {
            close(fd as isize);
        }
    }
    if null >= 0 {
        close(null);
    }
    for fd in 3..nfds {
        close(fd as isize);
    }
}

fn relay(conn: isize) -> ! {
    // A signalfd that fails leaves the monitor reporting the exit, without relaying.
    let sigfd = block_signals(!SIGCHLD);
    let mut packet = [0u8; 32];
    let mut fds = [-1i32; MAX_FDS];
    loop {
        let [message, signal] = wait_readable([conn, sigfd]);
        if signal {
            if let Some(signo) = read_signal(sigfd) {
                send_number(conn, b'K', signo);
            }
        }
        if message {
            let (got, count) = recv(conn, &mut packet, &mut fds);
            for fd in fds.iter().take(count) {
                close(*fd as isize);
            }
            if got <= 0 {
                exit_after_hold(KILLED);
            }
            if packet[0] == b'E' {
                let code =
                    parse_number(&packet[1..got as usize], 10).unwrap_or(KILLED as usize);
                exit_after_hold(code as i32);
            }
        }
    }
}

/// Exits with `code` once the hold pipe (if any) has reached its end.
fn exit_after_hold(code: i32) -> ! {
    // SAFETY: single-threaded.
    let hold = unsafe { HOLD };
    if hold >= 0 {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into a local buffer.
            let n = unsafe { sys::call(sys::READ, hold as usize, buf.as_mut_ptr() as usize, buf.len()) };
            if n == 0 || (n < 0 && n != -4) {
                break;
            }
        }
    }
    exit(code)
}
