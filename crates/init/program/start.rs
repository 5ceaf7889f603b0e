//! `_start`: the kernel's entry point, which hands the initial stack to [`entry`].

use crate::sys;

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

/// The monitor with `--monitor`; otherwise the init, with the process file's path as its
/// first argument (default [`crate::DEFAULT_PROCESS_FILE`]) and, for an exec with a
/// terminal, the socket to send the terminal to as its second.
///
/// # Safety
/// `sp` is the initial stack pointer the kernel gave `_start`.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack holds argc, then argv pointers.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
    // SAFETY: argv holds argc NUL-terminated strings.
    let arg = |i: usize| unsafe { *argv.add(i) };
    // SAFETY: as above.
    if argc > 1 && unsafe { sys::c_str(arg(1)) } == b"--monitor" {
        crate::monitor::main(argc, argv);
    }
    let path = if argc > 1 {
        arg(1)
    } else {
        crate::DEFAULT_PROCESS_FILE.as_ptr()
    };
    let terminal_socket = if argc > 2 {
        arg(2)
    } else {
        core::ptr::null()
    };
    crate::run(path, terminal_socket)
}
