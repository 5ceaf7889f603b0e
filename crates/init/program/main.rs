//! proxcage-init: the container's first process, and its monitor on the host (see the
//! library's documentation, `src/lib.rs`). No std and no libc: a static executable of a
//! few KiB that runs in any rootfs it is bind-mounted into (busybox, distroless, scratch).
//!
//! - `start`, `rt`: the entry point, the panic handler and the memory functions;
//! - `sys`, `text`: system calls and the text forms the init reads and writes;
//! - `process_file`: what to run; `user`, `caps`, `exec`: becoming the user, applying the
//!   capability sets and exec'ing the process;
//! - `container`, `terminal`, `channel`, `wait`: the monitored init in the container,
//!   its pseudo-terminals, and the channel to the monitor;
//! - `monitor`: the monitor's side, on the host.

#![no_std]
#![no_main]

mod caps;
mod channel;
mod container;
mod exec;
mod monitor;
mod process_file;
mod rt;
mod start;
mod sys;
mod terminal;
mod text;
mod user;
mod wait;

const DEFAULT_PROCESS_FILE: &[u8] = b"/.proxcage/process\0";
const PR_SET_NO_NEW_PRIVS: usize = 38;

/// Room for the process file: Linux caps argv plus envp at a quarter of the stack limit,
/// 2 MiB by default; a file larger than this fails with a message.
const BUF_SIZE: usize = 8 << 20;
const MAX_STRINGS: usize = 1 << 16;

static mut BUF: [u8; BUF_SIZE] = [0; BUF_SIZE];
static mut ARGV: [*const u8; MAX_STRINGS] = [core::ptr::null(); MAX_STRINGS];
static mut ENVP: [*const u8; MAX_STRINGS] = [core::ptr::null(); MAX_STRINGS];
static mut CANDIDATE: [u8; 4096] = [0; 4096];

/// Tells whoever waits (the monitor's `create`, the monitor, stderr) what failed, and
/// exits with `code`.
fn fail(code: i32, what: &[&[u8]]) -> ! {
    monitor::report_failure(what);
    sys::write_fd(2, &[b"proxcage-init: "]);
    sys::write_fd(2, what);
    sys::write_fd(2, &[b"\n"]);
    container::report_failure(what);
    sys::exit(code)
}

/// `ret`, or a failure (125) saying `what` and the errno.
fn check(ret: isize, what: &[u8]) -> isize {
    if ret < 0 {
        fail(125, &[what, b": ", sys::errno_text(ret)]);
    }
    ret
}

/// The init: reads the process file at `path`, sets up the process it describes and execs
/// it (monitored: in a child, the init staying behind as its supervisor).
fn run(path: *const u8, terminal_socket: *const u8) -> ! {
    // SAFETY: single-threaded; these statics are only touched here.
    let (buf, args, envs, candidate) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(BUF),
            &mut *core::ptr::addr_of_mut!(ARGV),
            &mut *core::ptr::addr_of_mut!(ENVP),
            &mut *core::ptr::addr_of_mut!(CANDIDATE),
        )
    };
    let len = match sys::read_file(path, buf) {
        Ok(len) => len,
        Err(err) => fail(
            125,
            &[b"cannot read the process file: ", sys::errno_text(err)],
        ),
    };
    let process = match process_file::parse(&buf[..len], args, envs) {
        Ok(process) => process,
        Err(what) => fail(125, &[b"malformed process file: ", what]),
    };

    // Before a monitored init forks: the init holds to it as well as the process.
    if process.no_new_privs {
        let err = sys::prctl(PR_SET_NO_NEW_PRIVS, 1, 0);
        if err < 0 {
            fail(125, &[b"cannot set no_new_privs: ", sys::errno_text(err)]);
        }
    }
    if process.monitored {
        // Returns in the child that goes on to exec the process; the init stays behind.
        container::run(process.terminal);
    } else if process.terminal {
        // An exec with a terminal: the runtime waits for the master on this socket.
        if terminal_socket.is_null() {
            fail(
                125,
                &[b"malformed process file: a terminal without the socket to send it to (the second argument)"],
            );
        }
        terminal::exec_terminal(terminal_socket);
    }
    if !process.user.is_empty() {
        user::become_user(process.user, process.caps.is_some());
    }
    if let Some(mask) = process.umask {
        // SAFETY: umask takes a plain integer.
        unsafe { sys::call(sys::UMASK, mask, 0, 0) };
    }
    if !process.cwd.is_empty() {
        // SAFETY: the cwd is NUL-terminated inside the buffer.
        let err = unsafe { sys::call(sys::CHDIR, process.cwd_ptr as usize, 0, 0) };
        if err < 0 {
            fail(
                125,
                &[
                    b"cannot change to the working directory ",
                    process.cwd,
                    b": ",
                    sys::errno_text(err),
                ],
            );
        }
    }
    if let Some(sets) = &process.caps {
        caps::apply(sets);
    }
    exec::exec(args, envs, process.search_path, candidate)
}
