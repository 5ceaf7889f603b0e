//! System calls: their numbers, the raw call, and the few wrappers every part uses.

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
    pub const CAPSET: usize = 126;
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
    pub const GETSOCKOPT: usize = 55;
    pub const SETNS: usize = 308;
    pub const PIDFD_OPEN: usize = 434;
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
    pub const CAPSET: usize = 91;
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
    pub const GETSOCKOPT: usize = 209;
    pub const SETNS: usize = 268;
    pub const PIDFD_OPEN: usize = 434;
}

pub use nr::*;

pub const AT_FDCWD: usize = -100isize as usize;
pub const O_WRONLY: usize = 0o1;
pub const O_RDWR: usize = 0o2;
pub const O_NOCTTY: usize = 0o400;
pub const O_CLOEXEC: usize = 0o2000000;
pub const AF_UNIX: usize = 1;

pub const ENOENT: isize = 2;
pub const ENOTDIR: isize = 20;
pub const EACCES: isize = 13;
pub const EINVAL: isize = 22;

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

/// `prctl(option, arg)`: the calls the init makes take one integer argument.
pub fn prctl(option: usize, arg: usize, arg2: usize) -> isize {
    // SAFETY: prctl with plain integers; the unused arguments are zero.
    unsafe { call(PRCTL, option, arg, arg2) }
}

pub fn write_fd(fd: usize, parts: &[&[u8]]) {
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            // SAFETY: a valid buffer and length.
            let n = unsafe { call(WRITE, fd, rest.as_ptr() as usize, rest.len()) };
            if n <= 0 {
                return;
            }
            rest = &rest[n as usize..];
        }
    }
}

pub fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group takes a plain integer.
        unsafe { call(EXIT_GROUP, code as usize, 0, 0) };
    }
}

pub fn close(fd: isize) {
    // SAFETY: closing a descriptor this process owns.
    unsafe { call(CLOSE, fd as usize, 0, 0) };
}

pub fn errno_text(err: isize) -> &'static [u8] {
    match -err {
        1 => b"operation not permitted",
        2 => b"no such file or directory",
        7 => b"argument list too long",
        8 => b"exec format error",
        13 => b"permission denied",
        20 => b"not a directory",
        21 => b"is a directory",
        22 => b"invalid argument",
        36 => b"file name too long",
        40 => b"too many levels of symbolic links",
        _ => b"system call failed",
    }
}

pub fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller passes a NUL-terminated string.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}

/// The NUL-terminated string at `s`, without its NUL.
///
/// # Safety
/// `s` points at a NUL-terminated string that outlives the slice.
pub unsafe fn c_str<'a>(s: *const u8) -> &'a [u8] {
    // SAFETY: as the caller's.
    unsafe { core::slice::from_raw_parts(s, strlen(s)) }
}

/// `openat(AT_FDCWD, path, flags)`; the kernel's result.
pub fn open(path: *const u8, flags: usize) -> isize {
    // SAFETY: the callers pass NUL-terminated paths (literals ending in `\0`, argv).
    unsafe { call(OPENAT, AT_FDCWD, path as usize, flags) }
}

/// Reads the whole of `path` (NUL-terminated) into `buf`; returns the length.
pub fn read_file(path: *const u8, buf: &mut [u8]) -> Result<usize, isize> {
    let fd = open(path, O_CLOEXEC);
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
            call(
                READ,
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
    close(fd);
    Ok(len)
}
