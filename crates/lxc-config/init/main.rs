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
//! PROXCAGE-PROCESS 2\0 <cwd>\0 <umask in octal, or empty>\0 <flags: no_new_privs, or empty>\0 <argc>\0 <arg>\0... <env>\0...
//! ```
//!
//! Exit codes when the command cannot be started, as a shell reports them: 127 when it is
//! not found, 126 when it cannot be executed, 125 for a bad or unreadable process file.

#![no_std]
#![no_main]

use core::panic::PanicInfo;

const DEFAULT_PROCESS_FILE: &[u8] = b"/.proxcage/process\0";
const MAGIC: &[u8] = b"PROXCAGE-PROCESS 2";
const PR_SET_NO_NEW_PRIVS: usize = 38;
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
    }
    pub use nr::*;

    /// A raw system call; returns the kernel's result (negative errno on failure).
    ///
    /// # Safety
    /// The arguments must be valid for system call `n`.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller passes arguments valid for the call.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
                in("rdx") c, in("r10") 0usize, in("r8") 0usize, lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    /// A raw system call; returns the kernel's result (negative errno on failure).
    ///
    /// # Safety
    /// The arguments must be valid for system call `n`.
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller passes arguments valid for the call.
        unsafe {
            core::arch::asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b,
                in("x2") c, in("x3") 0usize, in("x4") 0usize, options(nostack));
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
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            // SAFETY: a valid buffer and length.
            let n = unsafe { sys::call(sys::WRITE, 2, rest.as_ptr() as usize, rest.len()) };
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
    write_stderr(&[b"proxcage-init: "]);
    write_stderr(what);
    write_stderr(&[b"\n"]);
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
    run(path, buf, args, envs, candidate)
}

fn run(
    path: *const u8,
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
        bad(b"it does not start with PROXCAGE-PROCESS 2");
    }
    let cwd_start = pos;
    let Some(cwd) = next_string(data, &mut pos) else {
        bad(b"no cwd")
    };
    let Some(umask) = next_string(data, &mut pos) else {
        bad(b"no umask")
    };
    let no_new_privs = match next_string(data, &mut pos) {
        Some(b"") => false,
        Some(b"no_new_privs") => true,
        Some(_) => bad(b"unknown flags"),
        None => bad(b"no flags"),
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

    if no_new_privs {
        // SAFETY: prctl takes plain integers; the unused arguments are zero.
        let err = unsafe { sys::call(sys::PRCTL, PR_SET_NO_NEW_PRIVS, 1, 0) };
        if err < 0 {
            fail(125, &[b"cannot set no_new_privs: ", errno_text(err)]);
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
