//! proxcage-init: the container's first process. It reads the exact argv, environment,
//! working directory, umask and no_new_privs from a process file (by default `/.proxcage/process`, or
//! the path in its first argument) and execs the command, so that arguments with spaces,
//! quotes, `$`, backslashes or nothing at all, and environment values with trailing
//! whitespace, reach the process byte for byte. LXC 5.0 cannot do this itself: it splits
//! `lxc.init.cmd` on spaces and trims `lxc.environment` values.
//!
//! It has no std and no libc: a static executable of a few KiB that runs in any rootfs it
//! is bind-mounted into (busybox, distroless, scratch). The file format is written by
//! `proxcage_lxc_config::ProcessFile::encode`:
//!
//! ```text
//! PROXCAGE-PROCESS 3\0 <cwd>\0 <umask in octal, or empty>\0 <flags>\0 <user: uid:gid[:gid,...], or empty>\0 <argc>\0 <arg>\0... <env>\0...
//! ```
//!
//! Exit codes when the command cannot be started, as a shell reports them: 127 when it is
//! not found, 126 when it cannot be executed, 125 for a bad or unreadable process file.

#![no_std]
#![no_main]

use core::panic::PanicInfo;

const DEFAULT_PROCESS_FILE: &[u8] = b"/.proxcage/process\0";
const MAGIC: &[u8] = b"PROXCAGE-PROCESS 3";
const PR_SET_NO_NEW_PRIVS: usize = 38;
const PR_CAPBSET_DROP: usize = 24;
const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Room for the process file: Linux caps argv plus envp at a quarter of the stack limit,
/// 2 MiB by default; a file larger than this fails with a message.
const BUF_SIZE: usize = 8 << 20;
const MAX_STRINGS: usize = 1 << 16;

static mut BUF: [u8; BUF_SIZE] = [0; BUF_SIZE];
static mut ARGV: [*const u8; MAX_STRINGS] = [core::ptr::null(); MAX_STRINGS];
static mut ENVP: [*const u8; MAX_STRINGS] = [core::ptr::null(); MAX_STRINGS];
static mut CANDIDATE: [u8; 4096] = [0; 4096];

const ENOENT: isize = 2;
const ENOTDIR: isize = 20;
const EACCES: isize = 13;

mod sys {
    #[cfg(target_arch = "x86_64")]
    mod nr {
        pub const READ: usize = 0;
        pub const WRITE: usize = 1;
        pub const CLOSE: usize = 3;
        pub const EXECVE: usize = 59;
        pub const CHDIR: usize = 80;
        pub const UMASK: usize = 95;
        pub const EXIT_GROUP: usize = 231;
        pub const OPENAT: usize = 257;
        pub const PRCTL: usize = 157;
        pub const SOCKET: usize = 41;
        pub const CONNECT: usize = 42;
        pub const SENDMSG: usize = 46;
        pub const RECVMSG: usize = 47;
        pub const CLONE: usize = 56;
        pub const WAIT4: usize = 61;
        pub const KILL: usize = 62;
        pub const FCNTL: usize = 72;
        pub const IOCTL: usize = 16;
        pub const SETSID: usize = 112;
        pub const RT_SIGPROCMASK: usize = 14;
        pub const PPOLL: usize = 271;
        pub const SIGNALFD4: usize = 289;
        pub const DUP3: usize = 292;
        pub const ACCEPT4: usize = 288;
        pub const SETGROUPS: usize = 116;
        pub const SETGID: usize = 106;
        pub const SETUID: usize = 105;
    }
    #[cfg(target_arch = "aarch64")]
    mod nr {
        pub const READ: usize = 63;
        pub const WRITE: usize = 64;
        pub const CLOSE: usize = 57;
        pub const EXECVE: usize = 221;
        pub const CHDIR: usize = 49;
        pub const UMASK: usize = 166;
        pub const EXIT_GROUP: usize = 94;
        pub const OPENAT: usize = 56;
        pub const PRCTL: usize = 167;
        pub const SOCKET: usize = 198;
        pub const CONNECT: usize = 203;
        pub const SENDMSG: usize = 211;
        pub const RECVMSG: usize = 212;
        pub const CLONE: usize = 220;
        pub const WAIT4: usize = 260;
        pub const KILL: usize = 129;
        pub const FCNTL: usize = 25;
        pub const IOCTL: usize = 29;
        pub const SETSID: usize = 157;
        pub const RT_SIGPROCMASK: usize = 135;
        pub const PPOLL: usize = 73;
        pub const SIGNALFD4: usize = 74;
        pub const DUP3: usize = 24;
        pub const ACCEPT4: usize = 242;
        pub const SETGROUPS: usize = 159;
        pub const SETGID: usize = 144;
        pub const SETUID: usize = 146;
    }
    pub use nr::*;

    /// A raw system call; returns the kernel's result (negative errno on failure).
    ///
    /// # Safety
    /// The arguments must be valid for system call `n`.
    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize) -> isize {
        // SAFETY: as the caller's.
        unsafe { call5(n, a, b, c, 0, 0) }
    }

    /// A raw system call of up to five arguments.
    ///
    /// # Safety
    /// The arguments must be valid for system call `n`.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn call5(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller passes arguments valid for the call.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
                in("rdx") c, in("r10") d, in("r8") e, lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    /// A raw system call of up to five arguments.
    ///
    /// # Safety
    /// The arguments must be valid for system call `n`.
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn call5(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller passes arguments valid for the call.
        unsafe {
            core::arch::asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b,
                in("x2") c, in("x3") d, in("x4") e, options(nostack));
        }
        ret
    }
}

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "and sp, x0, #-16",
    "bl {entry}",
    "brk #0",
    entry = sym entry,
);

fn write_stderr(parts: &[&[u8]]) {
    write_fd(2, parts)
}

fn write_fd(fd: usize, parts: &[&[u8]]) {
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            // SAFETY: a valid buffer and length.
            let n = unsafe { sys::call(sys::WRITE, fd, rest.as_ptr() as usize, rest.len()) };
            if n <= 0 {
                return;
            }
            rest = &rest[n as usize..];
        }
    }
}

fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group takes a plain integer.
        unsafe { sys::call(sys::EXIT_GROUP, code as usize, 0, 0) };
    }
}

fn fail(code: i32, what: &[&[u8]]) -> ! {
    monitor::report_failure(what);
    write_stderr(&[b"proxcage-init: "]);
    write_stderr(what);
    write_stderr(&[b"\n"]);
    supervise::report_failure(what);
    exit(code)
}

fn errno_text(err: isize) -> &'static [u8] {
    match -err {
        1 => b"operation not permitted",
        2 => b"no such file or directory",
        7 => b"argument list too long",
        8 => b"exec format error",
        13 => b"permission denied",
        20 => b"not a directory",
        21 => b"is a directory",
        36 => b"file name too long",
        40 => b"too many levels of symbolic links",
        _ => b"system call failed",
    }
}

/// The NUL-terminated string at `buf[*pos..]`, without its NUL; moves `pos` past it.
fn next_string<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let start = *pos;
    let len = buf[start..].iter().position(|&b| b == 0)?;
    *pos = start + len + 1;
    Some(&buf[start..start + len])
}

fn parse_number(text: &[u8], radix: u32) -> Option<usize> {
    if text.is_empty() || text.len() > 12 {
        return None;
    }
    let mut n = 0usize;
    for &c in text {
        let d = (c as char).to_digit(radix)? as usize;
        n = n * radix as usize + d;
    }
    Some(n)
}

fn starts_with(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && &s[..prefix.len()] == prefix
}

/// Reads the whole of `path` (NUL-terminated) into `buf`; returns the length.
fn read_file(path: *const u8, buf: &mut [u8]) -> Result<usize, isize> {
    const AT_FDCWD: isize = -100;
    const O_RDONLY_CLOEXEC: usize = 0o2000000;
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe {
        sys::call(
            sys::OPENAT,
            AT_FDCWD as usize,
            path as usize,
            O_RDONLY_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(fd);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(-7);
        }
        // SAFETY: reading into the unused tail of `buf`.
        let n = unsafe {
            sys::call(
                sys::READ,
                fd as usize,
                buf[len..].as_mut_ptr() as usize,
                buf.len() - len,
            )
        };
        if n < 0 {
            return Err(n);
        }
        if n == 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: closing the descriptor we opened.
    unsafe { sys::call(sys::CLOSE, fd as usize, 0, 0) };
    Ok(len)
}

/// # Safety
/// `sp` is the initial stack pointer the kernel gave `_start`.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack holds argc, then argv pointers.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
    // SAFETY: argv holds argc NUL-terminated strings.
    let arg = |i: usize| unsafe { core::slice::from_raw_parts(*argv.add(i), strlen(*argv.add(i))) };
    if argc > 1 && arg(1) == b"--monitor" {
        monitor::main(argc, argv);
    }
    let path = if argc > 1 {
        // SAFETY: argv[1] exists when argc > 1.
        unsafe { *argv.add(1) }
    } else {
        DEFAULT_PROCESS_FILE.as_ptr()
    };
    // SAFETY: single-threaded; these statics are only touched here.
    let (buf, args, envs, candidate) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(BUF),
            &mut *core::ptr::addr_of_mut!(ARGV),
            &mut *core::ptr::addr_of_mut!(ENVP),
            &mut *core::ptr::addr_of_mut!(CANDIDATE),
        )
    };
    let terminal_socket = if argc > 2 {
        // SAFETY: argv[2] exists when argc > 2.
        unsafe { *argv.add(2) }
    } else {
        core::ptr::null()
    };
    run(path, terminal_socket, buf, args, envs, candidate)
}

fn run(
    path: *const u8,
    terminal_socket: *const u8,
    buf: &mut [u8],
    args: &mut [*const u8],
    envs: &mut [*const u8],
    candidate: &mut [u8],
) -> ! {
    let len = match read_file(path, buf) {
        Ok(len) => len,
        Err(err) => fail(125, &[b"cannot read the process file: ", errno_text(err)]),
    };
    let data = &buf[..len];
    let bad = |what: &[u8]| -> ! { fail(125, &[b"malformed process file: ", what]) };
    let mut pos = 0;
    if next_string(data, &mut pos) != Some(MAGIC) {
        bad(b"it does not start with PROXCAGE-PROCESS 3");
    }
    let cwd_start = pos;
    let Some(cwd) = next_string(data, &mut pos) else {
        bad(b"no cwd")
    };
    let Some(umask) = next_string(data, &mut pos) else {
        bad(b"no umask")
    };
    let Some(flags) = next_string(data, &mut pos) else {
        bad(b"no flags")
    };
    let (mut no_new_privs, mut monitored, mut terminal) = (false, false, false);
    for flag in flags.split(|&b| b == b',').filter(|f| !f.is_empty()) {
        match flag {
            b"no_new_privs" => no_new_privs = true,
            b"monitor" => monitored = true,
            b"terminal" => terminal = true,
            _ => bad(b"unknown flags"),
        }
    }
    let Some(user) = next_string(data, &mut pos) else {
        bad(b"no user")
    };
    let Some(argc) = next_string(data, &mut pos).and_then(|n| parse_number(n, 10)) else {
        bad(b"no argument count")
    };
    if argc == 0 || argc >= args.len() {
        bad(b"the argument count is 0 or too large");
    }
    for slot in args.iter_mut().take(argc) {
        let start = pos;
        if next_string(data, &mut pos).is_none() {
            bad(b"fewer arguments than the count says");
        }
        *slot = data[start..].as_ptr();
    }
    args[argc] = core::ptr::null();
    let mut envc = 0;
    let mut search_path = DEFAULT_PATH;
    while pos < data.len() {
        let start = pos;
        let Some(var) = next_string(data, &mut pos) else {
            bad(b"an unterminated variable")
        };
        if envc + 1 >= envs.len() {
            bad(b"too many environment variables");
        }
        if starts_with(var, b"PATH=") {
            search_path = &var[5..];
        }
        envs[envc] = data[start..].as_ptr();
        envc += 1;
    }
    envs[envc] = core::ptr::null();

    // Before a monitored init forks: the init holds to it as well as the process.
    if no_new_privs {
        // SAFETY: prctl takes plain integers; the unused arguments are zero.
        let err = unsafe { sys::call(sys::PRCTL, PR_SET_NO_NEW_PRIVS, 1, 0) };
        if err < 0 {
            fail(125, &[b"cannot set no_new_privs: ", errno_text(err)]);
        }
    }

    if monitored {
        // Returns in the child that goes on to exec the process; the init stays behind.
        supervise::run(terminal);
    } else if terminal {
        // An exec with a terminal: the runtime waits for the master on this socket.
        if terminal_socket.is_null() {
            bad(b"a terminal without the socket to send it to (the second argument)");
        }
        supervise::exec_terminal(terminal_socket);
    }

    if !user.is_empty() {
        become_user(user);
    }

    if !umask.is_empty() {
        let Some(mask) = parse_number(umask, 8) else {
            bad(b"the umask is not octal")
        };
        // SAFETY: umask takes a plain integer.
        unsafe { sys::call(sys::UMASK, mask, 0, 0) };
    }
    if !cwd.is_empty() {
        // SAFETY: the cwd is NUL-terminated inside `data`.
        let err = unsafe { sys::call(sys::CHDIR, data[cwd_start..].as_ptr() as usize, 0, 0) };
        if err < 0 {
            fail(
                125,
                &[
                    b"cannot change to the working directory ",
                    cwd,
                    b": ",
                    errno_text(err),
                ],
            );
        }
    }

    // SAFETY: args[0] points at a NUL-terminated string inside `data`.
    let arg0 = unsafe { core::slice::from_raw_parts(args[0], strlen(args[0])) };
    if arg0.contains(&b'/') {
        let err = execve(args[0], args, envs);
        fail(
            if err == -ENOENT { 127 } else { 126 },
            &[b"cannot execute ", arg0, b": ", errno_text(err)],
        );
    }
    // As execvp(3): search PATH from the process environment; remember a permission error.
    let mut seen_eacces = false;
    for dir in search_path.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let total = dir.len() + 1 + arg0.len() + 1;
        if total > candidate.len() {
            continue;
        }
        candidate[..dir.len()].copy_from_slice(dir);
        candidate[dir.len()] = b'/';
        candidate[dir.len() + 1..total - 1].copy_from_slice(arg0);
        candidate[total - 1] = 0;
        let err = execve(candidate.as_ptr(), args, envs);
        match err {
            e if e == -EACCES => seen_eacces = true,
            e if e == -ENOENT || e == -ENOTDIR => {}
            e => fail(
                126,
                &[
                    b"cannot execute ",
                    &candidate[..total - 1],
                    b": ",
                    errno_text(e),
                ],
            ),
        }
    }
    if seen_eacces {
        fail(126, &[b"cannot execute ", arg0, b": permission denied"]);
    }
    fail(127, &[arg0, b": command not found in PATH"])
}

static mut GROUPS: [u32; 1024] = [0; 1024];

/// `uid:gid[:gids[:caps]]`: supplementary groups, the gid, the capabilities to drop from
/// the bounding set (those the init kept only for this), then the uid. A non-root uid
/// loses every capability, as with runc.
fn become_user(user: &[u8]) {
    let bad = || -> ! {
        fail(
            125,
            &[b"malformed process file: the user is not uid:gid[:gids[:caps]]"],
        )
    };
    let mut parts = user.splitn(4, |&b| b == b':');
    let (Some(uid), Some(gid)) = (
        parts.next().and_then(|n| parse_number(n, 10)),
        parts.next().and_then(|n| parse_number(n, 10)),
    ) else {
        bad()
    };
    // SAFETY: single-threaded; only this function touches GROUPS.
    let groups = unsafe { &mut *core::ptr::addr_of_mut!(GROUPS) };
    let mut count = 0;
    for g in parts
        .next()
        .unwrap_or(b"")
        .split(|&b| b == b',')
        .filter(|g| !g.is_empty())
    {
        if count == groups.len() {
            fail(125, &[b"too many additional groups"]);
        }
        groups[count] = parse_number(g, 10).unwrap_or_else(|| bad()) as u32;
        count += 1;
    }
    use supervise::check;
    // SAFETY: `count` gids from a live array.
    let groups_set = unsafe { sys::call(sys::SETGROUPS, count, groups.as_ptr() as usize, 0) };
    check(groups_set, b"cannot set the additional groups (CAP_SETGID)");
    // SAFETY: plain integers.
    check(
        unsafe { sys::call(sys::SETGID, gid, 0, 0) },
        b"cannot set the gid (CAP_SETGID)",
    );
    for cap in parts
        .next()
        .unwrap_or(b"")
        .split(|&b| b == b',')
        .filter(|c| !c.is_empty())
    {
        let cap = parse_number(cap, 10).unwrap_or_else(|| bad());
        // SAFETY: prctl takes plain integers.
        let dropped = unsafe { sys::call(sys::PRCTL, PR_CAPBSET_DROP, cap, 0) };
        check(dropped, b"cannot drop a capability from the bounding set");
    }
    // SAFETY: plain integers.
    check(
        unsafe { sys::call(sys::SETUID, uid, 0, 0) },
        b"cannot set the uid (CAP_SETUID)",
    );
}

fn execve(path: *const u8, args: &[*const u8], envs: &[*const u8]) -> isize {
    // SAFETY: path is NUL-terminated; args and envs are NULL-terminated arrays of
    // NUL-terminated strings.
    unsafe {
        sys::call(
            sys::EXECVE,
            path as usize,
            args.as_ptr() as usize,
            envs.as_ptr() as usize,
        )
    }
}

fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller passes a NUL-terminated string.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}

/// A monitored init: the container's first process when a monitor outside the container
/// reports its exit to the caller. It connects to the monitor's socket, takes its stdio
/// from it (or makes a pseudo-terminal and sends it the master), says it is ready, waits
/// on the exec FIFO until the runtime's `start` opens it, then forks: the child execs the
/// process, the init forwards signals to it, reaps every orphan, and reports the child's
/// exit status to the monitor before it exits with the same status.
///
/// Messages on the SOCK_SEQPACKET connection, one per packet: from the monitor `I` with
/// the stdio fds (then any preserved fds) and `K<signal>`; from the init `T` with the
/// pty master, `R` (ready), `F<message>` (failed before the exec) and `E<exit code>`.
mod supervise {
    use super::{errno_text, exit, fail, sys};

    const CONTROL_SOCKET: &[u8] = b"/.proxcage/run/control\0";
    const EXEC_FIFO: &[u8] = b"/.proxcage/run/exec.fifo\0";
    const PTMX: &[u8] = b"/dev/ptmx\0";

    const AT_FDCWD: usize = -100isize as usize;
    const AF_UNIX: usize = 1;
    const SOCK_SEQPACKET: usize = 5;
    const O_WRONLY: usize = 0o1;
    const O_RDWR: usize = 0o2;
    const O_NOCTTY: usize = 0o400;
    const O_CLOEXEC: usize = 0o2000000;
    const SOL_SOCKET: i32 = 1;
    const SCM_RIGHTS: i32 = 1;
    const MSG_NOSIGNAL: usize = 0x4000;
    const MSG_CMSG_CLOEXEC: usize = 0x4000_0000;
    const TIOCSPTLCK: usize = 0x4004_5431;
    const TIOCGPTPEER: usize = 0x5441;
    const TIOCSCTTY: usize = 0x540E;
    const F_DUPFD_CLOEXEC: usize = 1030;
    const SIG_BLOCK: usize = 0;
    const SIG_SETMASK: usize = 2;
    const SIGCHLD: u32 = 17;
    const WNOHANG: usize = 1;
    const POLLIN: i16 = 1;
    /// Stdio plus preserved fds the monitor may pass.
    pub(super) const MAX_FDS: usize = 64;
    /// Received fds are moved to this number or above, out of the way of 0..MAX_FDS.
    const HIGH_FD: usize = 100;

    /// The connection to the monitor while the init has not exec'd: failures are told to
    /// it. Only the init's single thread touches it.
    static mut CONTROL: isize = -1;

    #[repr(C)]
    struct Iovec {
        base: *mut u8,
        len: usize,
    }

    #[repr(C)]
    struct Msghdr {
        name: *mut u8,
        namelen: u32,
        iov: *mut Iovec,
        iovlen: usize,
        control: *mut u8,
        controllen: usize,
        flags: i32,
    }

    #[repr(C)]
    pub(super) struct Pollfd {
        pub(super) fd: i32,
        pub(super) events: i16,
        pub(super) revents: i16,
    }

    /// A control message buffer: a cmsghdr (16 bytes) and up to MAX_FDS fds.
    #[repr(C, align(8))]
    struct Cmsg([u8; 16 + 4 * MAX_FDS]);

    #[repr(C)]
    pub(super) struct SockaddrUn {
        pub(super) family: u16,
        pub(super) path: [u8; 108],
    }

    pub(super) fn check(ret: isize, what: &[u8]) -> isize {
        if ret < 0 {
            fail(125, &[what, b": ", errno_text(ret)]);
        }
        ret
    }

    pub(super) fn send(sock: isize, data: &[u8], fds: &[i32]) -> isize {
        let mut iov = Iovec {
            base: data.as_ptr() as *mut u8,
            len: data.len(),
        };
        let mut cmsg = Cmsg([0; 16 + 4 * MAX_FDS]);
        let mut msg = Msghdr {
            name: core::ptr::null_mut(),
            namelen: 0,
            iov: &mut iov,
            iovlen: 1,
            control: core::ptr::null_mut(),
            controllen: 0,
            flags: 0,
        };
        if !fds.is_empty() {
            let len = 16 + 4 * fds.len();
            cmsg.0[..8].copy_from_slice(&len.to_ne_bytes());
            cmsg.0[8..12].copy_from_slice(&SOL_SOCKET.to_ne_bytes());
            cmsg.0[12..16].copy_from_slice(&SCM_RIGHTS.to_ne_bytes());
            for (i, fd) in fds.iter().enumerate() {
                cmsg.0[16 + 4 * i..20 + 4 * i].copy_from_slice(&fd.to_ne_bytes());
            }
            msg.control = cmsg.0.as_mut_ptr();
            msg.controllen = (len + 7) & !7;
        }
        // SAFETY: msg points at live buffers of the lengths it gives.
        unsafe {
            sys::call(
                sys::SENDMSG,
                sock as usize,
                &msg as *const Msghdr as usize,
                MSG_NOSIGNAL,
            )
        }
    }

    /// One packet into `data`, its fds into `fds`: (packet length, fd count).
    pub(super) fn recv(sock: isize, data: &mut [u8], fds: &mut [i32; MAX_FDS]) -> (isize, usize) {
        let mut iov = Iovec {
            base: data.as_mut_ptr(),
            len: data.len(),
        };
        let mut cmsg = Cmsg([0; 16 + 4 * MAX_FDS]);
        let mut msg = Msghdr {
            name: core::ptr::null_mut(),
            namelen: 0,
            iov: &mut iov,
            iovlen: 1,
            control: cmsg.0.as_mut_ptr(),
            controllen: cmsg.0.len(),
            flags: 0,
        };
        // SAFETY: msg points at live buffers of the lengths it gives.
        let n = unsafe {
            sys::call(
                sys::RECVMSG,
                sock as usize,
                &mut msg as *mut Msghdr as usize,
                MSG_CMSG_CLOEXEC,
            )
        };
        if n < 0 || msg.controllen < 16 {
            return (n, 0);
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&cmsg.0[..8]);
        let len = usize::from_ne_bytes(word).min(msg.controllen);
        let level = i32::from_ne_bytes([cmsg.0[8], cmsg.0[9], cmsg.0[10], cmsg.0[11]]);
        let kind = i32::from_ne_bytes([cmsg.0[12], cmsg.0[13], cmsg.0[14], cmsg.0[15]]);
        if level != SOL_SOCKET || kind != SCM_RIGHTS || len < 16 {
            return (n, 0);
        }
        let count = ((len - 16) / 4).min(MAX_FDS);
        for (i, slot) in fds.iter_mut().enumerate().take(count) {
            let at = 16 + 4 * i;
            *slot =
                i32::from_ne_bytes([cmsg.0[at], cmsg.0[at + 1], cmsg.0[at + 2], cmsg.0[at + 3]]);
        }
        (n, count)
    }

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

    pub(super) fn decimal(mut n: u32, out: &mut [u8; 12]) -> &[u8] {
        let mut at = out.len();
        loop {
            at -= 1;
            out[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return &out[at..];
            }
        }
    }

    pub(super) fn close(fd: isize) {
        // SAFETY: closing a descriptor this process owns.
        unsafe { sys::call(sys::CLOSE, fd as usize, 0, 0) };
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

    /// Connects to the SOCK_SEQPACKET socket at `path` (NUL-terminated).
    fn connect(path: *const u8) -> isize {
        // SAFETY: socket takes plain integers.
        let sock = check(
            unsafe { sys::call(sys::SOCKET, AF_UNIX, SOCK_SEQPACKET | O_CLOEXEC, 0) },
            b"cannot create a socket",
        );
        let len = super::strlen(path) + 1;
        let mut addr = SockaddrUn {
            family: AF_UNIX as u16,
            path: [0; 108],
        };
        if len > addr.path.len() {
            fail(125, &[b"the socket path is too long"]);
        }
        // SAFETY: `len` bytes of the path, its NUL included.
        addr.path[..len].copy_from_slice(unsafe { core::slice::from_raw_parts(path, len) });
        // SAFETY: addr is a sockaddr_un of at least 2 + len bytes.
        let err = unsafe {
            sys::call(
                sys::CONNECT,
                sock as usize,
                &addr as *const SockaddrUn as usize,
                2 + len,
            )
        };
        if err < 0 {
            // SAFETY: as above.
            let shown = unsafe { core::slice::from_raw_parts(path, len - 1) };
            fail(125, &[b"cannot reach ", shown, b": ", errno_text(err)]);
        }
        sock
    }

    /// A new pseudo-terminal: (master, peer), both close-on-exec.
    fn open_pty() -> (isize, isize) {
        // SAFETY: a NUL-terminated path.
        let master = check(
            unsafe {
                sys::call(
                    sys::OPENAT,
                    AT_FDCWD,
                    PTMX.as_ptr() as usize,
                    O_RDWR | O_NOCTTY | O_CLOEXEC,
                )
            },
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

    /// Blocks the signals of `all` and returns a signalfd that reads them.
    pub(super) fn block_signals(all: u64) -> isize {
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

    /// In a forked child about to exec: no blocked signals, a session of its own.
    fn child_setup() {
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

    fn fork() -> isize {
        // SAFETY: a plain fork: no new stack, no shared memory.
        check(
            unsafe { sys::call5(sys::CLONE, SIGCHLD as usize, 0, 0, 0, 0) },
            b"cannot fork",
        )
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
            // SAFETY: TIOCSCTTY takes an int.
            check(
                unsafe { sys::call(sys::IOCTL, 0, TIOCSCTTY, 0) },
                b"cannot set the controlling terminal",
            );
            return;
        }
        close(peer);
        supervise(child, sigfd, -1)
    }

    /// Returns in the child that is to exec the process; the init never returns.
    pub fn run(terminal: bool) {
        let sigfd = block_signals(!0);
        let sock = connect(CONTROL_SOCKET.as_ptr());
        // SAFETY: single-threaded; see CONTROL.
        unsafe { CONTROL = sock };

        let mut fds = [-1i32; MAX_FDS];
        let count;
        if terminal {
            let (master, peer) = open_pty();
            check(
                send(sock, b"T", &[master as i32]),
                b"cannot send the terminal to the monitor",
            );
            close(master);
            let peer = lift(peer as i32);
            fds[..3].copy_from_slice(&[peer; 3]);
            count = 3;
        } else {
            let mut msg = [0u8; 16];
            let (n, got) = recv(sock, &mut msg, &mut fds);
            if n < 1 || msg[0] != b'I' || got < 3 {
                fail(125, &[b"the monitor did not send the stdio"]);
            }
            for fd in fds.iter_mut().take(got) {
                *fd = lift(*fd);
            }
            count = got;
        }
        check(send(sock, b"R", &[]), b"cannot tell the monitor");

        // Blocks until `start` opens the FIFO for reading.
        // SAFETY: a NUL-terminated path.
        let fifo = check(
            unsafe {
                sys::call(
                    sys::OPENAT,
                    AT_FDCWD,
                    EXEC_FIFO.as_ptr() as usize,
                    O_WRONLY | O_CLOEXEC,
                )
            },
            b"cannot open the exec FIFO",
        );
        // SAFETY: a one-byte buffer.
        unsafe { sys::call(sys::WRITE, fifo as usize, b"0".as_ptr() as usize, 1) };
        close(fifo);

        let child = fork();
        if child == 0 {
            // SAFETY: single-threaded; see CONTROL.
            unsafe { CONTROL = -1 };
            child_setup();
            for (i, fd) in fds.iter().enumerate().take(count) {
                // SAFETY: dup3 of descriptors this process owns; fd >= HIGH_FD > i.
                check(
                    unsafe { sys::call(sys::DUP3, *fd as usize, i, 0) },
                    b"cannot set up stdio",
                );
            }
            if terminal {
                // SAFETY: TIOCSCTTY takes an int.
                check(
                    unsafe { sys::call(sys::IOCTL, 0, TIOCSCTTY, 0) },
                    b"cannot set the controlling terminal",
                );
            }
            return;
        }
        // SAFETY: single-threaded; see CONTROL.
        unsafe { CONTROL = -1 };
        let mut last = -1;
        for fd in fds.iter().take(count) {
            if *fd != last {
                close(*fd as isize);
                last = *fd;
            }
        }
        supervise(child, sigfd, sock)
    }

    /// Waits until `fds[0]` or `fds[1]` (a negative one is left out) can be read; which.
    pub(super) fn wait_readable(fds: [isize; 2]) -> [bool; 2] {
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
    pub(super) fn read_signal(sigfd: isize) -> Option<u32> {
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
        (got == info.len() as isize)
            .then(|| u32::from_ne_bytes([info[0], info[1], info[2], info[3]]))
    }

    /// A packet of `tag` and `n` in decimal: `K<signal>`, `E<exit code>`.
    pub(super) fn send_number(sock: isize, tag: u8, n: u32) {
        let mut digits = [0u8; 12];
        let text = decimal(n, &mut digits);
        let mut packet = [0u8; 13];
        packet[0] = tag;
        packet[1..1 + text.len()].copy_from_slice(text);
        send(sock, &packet[..1 + text.len()], &[]);
    }

    fn supervise(child: isize, sigfd: isize, mut sock: isize) -> ! {
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
                    if let Some(signo) = super::parse_number(digits, 10) {
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
                exit(code as i32);
            }
        }
    }
}

/// The monitor: `init --monitor LISTEN_FD STATUS_FD NFDS [CONSOLE_SOCKET]`, run on the
/// host by the pct backend's `create` and left in the caller's process tree (its pid is the
/// pid file's). It accepts the CT's init on the listening socket, sends it the stdio fds
/// 0..NFDS, or passes the terminal master it gets from the init on to the console socket
/// (runc's protocol); writes `ready` (or `failed: <why>`) to STATUS_FD and closes it; lets
/// go of the caller's stdio; then passes every signal it gets on to the init (`K<n>`) and
/// exits with the status the init reports (`E<code>`), or 137 when the init vanished
/// without one (SIGKILL, `pct stop`). Static and tiny, it costs a few pages of memory and
/// no CPU while it waits in ppoll.
mod monitor {
    use super::supervise::{
        block_signals, close, read_signal, recv, send, send_number, wait_readable, SockaddrUn,
        MAX_FDS,
    };
    use super::{errno_text, exit, parse_number, strlen, sys, write_fd};

    const AF_UNIX: usize = 1;
    const SOCK_STREAM: usize = 1;
    const O_RDWR: usize = 0o2;
    const O_CLOEXEC: usize = 0o2000000;
    const AT_FDCWD: usize = -100isize as usize;
    const KILLED: i32 = 128 + 9;
    const SIGCHLD: u64 = 1 << (17 - 1);

    /// The status fd while `create` waits on it; -1 once reported.
    static mut STATUS: isize = -1;

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
            |i: usize| unsafe { core::slice::from_raw_parts(*argv.add(i), strlen(*argv.add(i))) };
        if argc < 5 {
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
        let console = if argc > 5 {
            // SAFETY: argv[5] exists.
            Some(unsafe { *argv.add(5) })
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
        write_fd(status, &[b"ready"]);
        close(status as isize);
        // SAFETY: single-threaded.
        unsafe { STATUS = -1 };
        if console.is_none() {
            release_stdio(nfds);
        }
        relay(conn)
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
        let path = unsafe { core::slice::from_raw_parts(path, strlen(path)) };
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
        // SAFETY: a NUL-terminated path.
        let null = unsafe {
            sys::call(
                sys::OPENAT,
                AT_FDCWD,
                b"/dev/null\0".as_ptr() as usize,
                O_RDWR | O_CLOEXEC,
            )
        };
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
                    exit(KILLED);
                }
                if packet[0] == b'E' {
                    let code =
                        parse_number(&packet[1..got as usize], 10).unwrap_or(KILLED as usize);
                    exit(code as i32);
                }
            }
        }
    }
}

/// The precompiled `core` refers to this from its unwind tables; with panic=abort nothing
/// ever unwinds, so it is never called.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    fail(125, &[b"internal error"])
}

// The compiler may call these for copies and comparisons; without libc we provide them.
// Volatile accesses keep LLVM from turning the loops back into calls to themselves.

/// # Safety
/// As C's memcpy.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: as C's memcpy.
        unsafe { core::ptr::write_volatile(dest.add(i), core::ptr::read_volatile(src.add(i))) };
    }
    dest
}

/// # Safety
/// As C's memmove.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize) < (src as usize) {
        for i in 0..n {
            // SAFETY: as C's memmove.
            unsafe { core::ptr::write_volatile(dest.add(i), core::ptr::read_volatile(src.add(i))) };
        }
    } else {
        for i in (0..n).rev() {
            // SAFETY: as C's memmove.
            unsafe { core::ptr::write_volatile(dest.add(i), core::ptr::read_volatile(src.add(i))) };
        }
    }
    dest
}

/// # Safety
/// As C's memset.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: as C's memset.
        unsafe { core::ptr::write_volatile(dest.add(i), c as u8) };
    }
    dest
}

/// # Safety
/// As C's memcmp.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: as C's memcmp.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// # Safety
/// As C's bcmp.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: as C's bcmp.
    unsafe { memcmp(a, b, n) }
}
