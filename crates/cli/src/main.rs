//! `proxcage`: runc's command line over proxcage's backends.

// proxcage brings its own C `main` (see there); the unit tests keep the test harness's.
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

mod commands;
mod config;
mod context;
mod interrupt;
mod log;
mod security;

use proxcage_cli_args as args;

use crate::args::Cli;
use crate::context::Ctx;
use crate::log::LogSink;

/// The release build links musl (scripts/build-release.sh), whose own malloc maps and
/// unmaps memory for nearly every size class it meets: 43 mmap and 39 munmap calls for
/// `proxcage --version`. dlmalloc takes 64 KiB at a time and keeps what is freed.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// The entry point, without Rust's runtime set-up. That set-up finds the main thread's
/// stack by reading /proc/self/maps (for a stack-overflow message) and installs signal
/// handlers and an alternate stack for it: on a 2-core VM about a tenth of what a short
/// proxcage command costs of its own. What of it matters is done here: fds 0, 1 and 2
/// are open (a file opened later must not become our stdout). SIGPIPE keeps its default,
/// as in runc and crun, and as the backends get it.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: the C runtime passes `argc` valid, NUL-terminated strings in `argv`.
    let args = unsafe { c_args(argc, argv) };
    open_standard_fds();
    no_error_backtraces();
    run(args);
    0
}

/// The command line as the C runtime passed it to `main`. (glibc also hands it to std
/// through an init hook, musl does not: `std::env::args_os` is empty in a musl build
/// whose `main` is not std's.)
///
/// # Safety
/// `argv` must hold `argc` valid pointers to NUL-terminated strings.
#[cfg(not(test))]
unsafe fn c_args(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    (0..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: the caller's promise, for each i < argc.
            let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
            std::ffi::OsStr::from_bytes(arg.to_bytes()).to_owned()
        })
        .collect()
}

/// anyhow captures a backtrace with every error when RUST_BACKTRACE or RUST_LIB_BACKTRACE
/// asks for one, and proxcage never shows it: its errors are messages for operators. In
/// the static build a capture costs 2.4 ms of CPU (libgcc sorts the unwind tables
/// first), twice what the rest of a failing command costs. std decides whether to
/// capture once and keeps the answer: it is asked here with RUST_LIB_BACKTRACE=0, and the
/// environment is put back as it was, so the backends and hooks inherit what the caller
/// set. Panics follow RUST_BACKTRACE as before. When neither variable is set, nothing
/// would be captured anyway, and the environment is left alone: setting a variable
/// copies the environment (in the static build, three page faults and four system calls).
fn no_error_backtraces() {
    let caller = std::env::var_os("RUST_LIB_BACKTRACE");
    if caller.is_none() && std::env::var_os("RUST_BACKTRACE").is_none() {
        return;
    }
    // Single-threaded here: nothing else reads the environment meanwhile.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    let _ = std::backtrace::Backtrace::capture();
    match caller {
        Some(value) => std::env::set_var("RUST_LIB_BACKTRACE", value),
        None => std::env::remove_var("RUST_LIB_BACKTRACE"),
    }
}

/// Opens /dev/null on any of fds 0, 1, 2 that is closed.
fn open_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd structs.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for fd in fds.iter().filter(|fd| fd.revents & libc::POLLNVAL != 0) {
        // SAFETY: plain syscalls; the lowest free fd is `fd.fd`, which is closed.
        unsafe {
            let flags = if fd.fd == 0 {
                libc::O_RDONLY
            } else {
                libc::O_WRONLY
            };
            libc::open(c"/dev/null".as_ptr(), flags);
        }
    }
}

fn run(args: Vec<std::ffi::OsString>) {
    let cli = match args::parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and usage are not failures; anything else exits 1, as runc does.
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if cli.global.version {
        print!(
            "proxcage version {}\ncommit: {}\nspec: {}\n",
            env!("CARGO_PKG_VERSION"),
            env!("PROXCAGE_COMMIT"),
            proxcage_core::OCI_VERSION
        );
        return;
    }
    let Some(command) = &cli.command else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        std::process::exit(1);
    };
    let sink: &'static LogSink =
        match LogSink::open(cli.global.log.as_deref(), cli.global.log_format) {
            Ok(sink) => Box::leak(Box::new(sink)),
            Err(e) => {
                let path = cli
                    .global
                    .log
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display();
                eprintln!("proxcage: cannot open the log file {path}: {e}");
                std::process::exit(1);
            }
        };
    log::init(sink, cli.global.debug);
    let ctx = Ctx::new(&cli.global);
    let code = match commands::dispatch(command, &ctx) {
        Ok(code) => code,
        Err(e) => {
            sink.error(&chain(&e));
            exit_code(&e)
        }
    };
    if cli.global.debug {
        tracing::debug!("{}", own_usage());
    }
    std::process::exit(code);
}

/// What this invocation cost, itself, without the backend's processes: peak RSS, CPU
/// time and the fds open at its end. With `--debug`, for `scripts/valgrind.sh` and
/// `benches/soak.sh`.
fn own_usage() -> String {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec * 1000 + t.tv_usec / 1000;
    // One of the entries is read_dir's own descriptor.
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1));
    format!(
        "usage: peak RSS {} kB, user {} ms, system {} ms, open fds {fds}",
        usage.ru_maxrss,
        ms(usage.ru_utime),
        ms(usage.ru_stime)
    )
}

/// The whole error chain on one line. Sources whose text the message already holds
/// (errors that print their cause) are not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn exit_code(e: &anyhow::Error) -> i32 {
    e.chain()
        .find_map(|c| c.downcast_ref::<proxcage_core::Error>())
        .map_or(1, proxcage_core::Error::exit_code)
}
