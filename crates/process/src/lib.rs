//! proxcage-process: running external tools for proxcage's backends: argv lists only,
//! never a shell; a timeout for everything that should finish; stderr kept for the error.
//!
//! Process-wide effects an embedder should know of: the `run_inherited*` functions and
//! [`wait_child_relaying`] block SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and
//! SIGWINCH in the calling thread while they relay them to the child (and restore the mask
//! after); nothing else touches signal dispositions, stdio or the environment.

use std::ffi::{CString, OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SigSet, Signal as NixSignal};
use nix::unistd::Pid;
use wait_timeout::ChildExt;

use proxcage_core::{ContainerId, Error, Result, Signal};

pub mod cgroup;
mod pending;

use pending::Pending;

/// What a captured run produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Finds `program` (a name to look up in `PATH`, or a path) and checks it is executable.
/// `package` names the Debian package that provides it and `setting` the config key that
/// names it (`[backends.pct] pct`), for the error.
pub fn find_program(program: &Path, package: &'static str, setting: &str) -> Result<PathBuf> {
    let not_found = |searched: String| Error::ToolNotFound {
        program: program.display().to_string(),
        package,
        setting: setting.to_string(),
        searched,
    };
    if program.components().count() > 1 {
        return if is_executable(program) {
            Ok(program.to_path_buf())
        } else {
            Err(not_found(program.display().to_string()))
        };
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/sbin:/usr/bin:/sbin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| not_found(format!("PATH={}", path.to_string_lossy())))
}

fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && path.is_file()
}

/// The command line, shell-quoted where needed, for messages and logs only.
pub fn describe(cmd: &Command) -> String {
    let mut out = String::new();
    let words = std::iter::once(cmd.get_program()).chain(cmd.get_args());
    for (i, word) in words.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let text = word.to_string_lossy();
        let plain = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
        if plain {
            out.push_str(&text);
        } else {
            let _ = write!(out, "'{}'", text.replace('\'', r"'\''"));
        }
    }
    out
}

/// The exit code a shell would report: the code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 255,
    }
}

/// How a tool ended, for messages: `exit status N`, or `killed by SIGKILL` when a signal
/// ended it (someone killed it, or it crashed): then its stderr so far is all there is.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match NixSignal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "exit status 255".to_owned(),
    }
}

/// Runs `cmd` with stdin closed and stdout/stderr captured; kills it after `timeout`.
/// Both pipes are drained by polling them from this thread: a reader thread per pipe
/// cost more than the rest of proxcage's own work in `start`, `state`, `kill` and `delete`.
pub fn run_captured(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    run_fed(cmd, None, timeout, None)
}

/// As [`run_captured`], for a command that can wait on something that will never
/// happen: every `every` while it runs, `give_up` says whether waiting on still makes
/// sense. When it returns an error, the command is killed and that error returned.
pub fn run_captured_watched(
    cmd: &mut Command,
    timeout: Duration,
    every: Duration,
    give_up: &mut dyn FnMut() -> Option<Error>,
) -> Result<Output> {
    run_fed(cmd, None, timeout, Some(Watch { every, give_up }))
}

/// As [`run_captured`], with `input` on the command's stdin (closed after it). A command
/// that does not read it all is not an error.
pub fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Result<Output> {
    run_fed(cmd, Some(input), timeout, None)
}

/// What [`run_captured_watched`] asks while a command runs.
struct Watch<'a> {
    every: Duration,
    give_up: &'a mut dyn FnMut() -> Option<Error>,
}

/// How draining a command's output ended.
enum Drained {
    Done(Vec<u8>, Vec<u8>),
    TimedOut,
    GaveUp(Error),
}

fn run_fed(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
    watch: Option<Watch<'_>>,
) -> Result<Output> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let deadline = Instant::now() + timeout;
    let mut child = spawn(cmd)?;
    // A thread writes the input: a command may not read it before it writes output.
    let writer = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                use std::io::Write;
                // A command that exits without reading its input must not take this
                // process with it: SIGPIPE stays pending on this thread, the write fails.
                let mut pipe = SigSet::empty();
                pipe.add(NixSignal::SIGPIPE);
                let _ = pipe.thread_block();
                let _ = stdin.write_all(&data);
            }))
        }
        _ => None,
    };
    let drained = drain(child.stdout.take(), child.stderr.take(), deadline, watch);
    let (stdout, stderr) = match drained {
        Ok(Drained::Done(stdout, stderr)) => (stdout, stderr),
        Ok(Drained::TimedOut) => return Err(kill_for_timeout(&mut child, cmd, timeout)),
        Ok(Drained::GaveUp(error)) => {
            stop(&mut child);
            return Err(error);
        }
        Err(source) => {
            stop(&mut child);
            return Err(Error::Spawn {
                command: describe(cmd),
                source,
            });
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let status = wait_with_timeout(&mut child, cmd, Some(left)).map_err(|e| match e {
        Error::Timeout { command, .. } => Error::Timeout { command, timeout },
        other => other,
    })?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Reads both pipes to their end, unless `deadline` passes first or `watch` gives up.
fn drain(
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    deadline: Instant,
    mut watch: Option<Watch<'_>>,
) -> io::Result<Drained> {
    let mut next_look = watch.as_ref().map(|w| Instant::now() + w.every);
    let mut pipes: [(Option<File>, Vec<u8>); 2] = [
        (stdout.map(|p| File::from(OwnedFd::from(p))), Vec::new()),
        (stderr.map(|p| File::from(OwnedFd::from(p))), Vec::new()),
    ];
    let mut chunk = [0u8; 8192];
    loop {
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .filter_map(|(pipe, _)| pipe.as_ref())
            .map(|pipe| libc::pollfd {
                fd: pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if fds.is_empty() {
            let [(_, out), (_, err)] = pipes;
            return Ok(Drained::Done(out, err));
        }
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Ok(Drained::TimedOut);
        }
        if let (Some(look), Some(watch)) = (next_look, watch.as_mut()) {
            if now >= look {
                if let Some(error) = (watch.give_up)() {
                    return Ok(Drained::GaveUp(error));
                }
                next_look = Some(Instant::now() + watch.every);
            }
        }
        let wait = next_look.map_or(left, |look| left.min(look.saturating_duration_since(now)));
        let ms = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for fd in fds.iter().filter(|fd| fd.revents != 0) {
            let Some((slot, buf)) = pipes
                .iter_mut()
                .find(|(pipe, _)| pipe.as_ref().is_some_and(|p| p.as_raw_fd() == fd.fd))
            else {
                continue;
            };
            let Some(pipe) = slot.as_mut() else {
                continue;
            };
            match pipe.read(&mut chunk) {
                Ok(0) => *slot = None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Kills a child whose result no longer matters and reaps it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn kill_for_timeout(child: &mut Child, cmd: &Command, timeout: Duration) -> Error {
    stop(child);
    Error::Timeout {
        command: describe(cmd),
        timeout,
    }
}

/// Runs `cmd` with the caller's stdio and inherited file descriptors, as if the caller had
/// run it directly. Signals that a supervisor sends to this process are passed on to the
/// child while it runs (see [`forward_signals`]).
pub fn run_inherited(cmd: &mut Command, timeout: Option<Duration>) -> Result<ExitStatus> {
    run_inherited_then(cmd, timeout, |_| ())
}

/// [`run_inherited`], calling `started` with the child's pid as soon as it runs. Signals
/// for the child wait until `started` returns.
fn run_inherited_then(
    cmd: &mut Command,
    timeout: Option<Duration>,
    started: impl FnOnce(Pid),
) -> Result<ExitStatus> {
    preserve_socket_activation(cmd)?;
    let relay = SignalRelay::block(cmd)?;
    let pid = Pid::from_raw(spawn(cmd)?.id() as i32);
    started(pid);
    relay.wait(pid, cmd, timeout)
}

/// [`run_inherited`] for a `cmd` that is only a program, its arguments and changes to the
/// environment: no `pre_exec`, no stdio or working directory of its own (it gets ours).
/// Such a command is started with posix_spawn, which empties the child's signal mask
/// itself: the relay's blocked signals must not reach the child, and std, which passes
/// the mask on, would have to fork this whole process (copy its page tables) to reset it
/// in the child.
pub fn run_inherited_plain(cmd: &mut Command, timeout: Option<Duration>) -> Result<ExitStatus> {
    run_inherited_plain_then(cmd, timeout, |_| ())
}

/// [`run_inherited_plain`], calling `started` with the child's pid as soon as it runs.
/// Signals for the child wait until `started` returns.
pub fn run_inherited_plain_then(
    cmd: &mut Command,
    timeout: Option<Duration>,
    started: impl FnOnce(Pid),
) -> Result<ExitStatus> {
    if cmd.get_current_dir().is_some() || socket_activation_is_ours() {
        return run_inherited_then(cmd, timeout, started);
    }
    let relay = SignalRelay::block(cmd)?;
    let pid = spawn_unmasked(cmd).map_err(|source| Error::Spawn {
        command: describe(cmd),
        source,
    })?;
    started(pid);
    relay.wait(pid, cmd, timeout)
}

/// posix_spawn of `cmd` (a program, arguments, environment changes) with no signal
/// blocked and SIGPIPE at its default in the child.
fn spawn_unmasked(cmd: &Command) -> io::Result<Pid> {
    use nix::spawn::{posix_spawn, posix_spawnp, PosixSpawnAttr, PosixSpawnFileActions};
    let argv = c_argv(cmd)?;
    let envp = c_env(cmd, None)?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigmask(&SigSet::empty())?;
    let mut pipe = SigSet::empty();
    pipe.add(NixSignal::SIGPIPE);
    attr.set_sigdefault(&pipe)?;
    attr.set_flags(
        nix::spawn::PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | nix::spawn::PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    let actions = PosixSpawnFileActions::init()?;
    let program = cmd.get_program();
    let spawned = if program.as_bytes().contains(&b'/') {
        posix_spawn(program, &actions, &attr, &argv, &envp)
    } else {
        posix_spawnp(&c_string(program)?, &actions, &attr, &argv, &envp)
    };
    Ok(spawned?)
}

fn c_string(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument holds a NUL byte"))
}

/// `cmd`'s program and arguments, for an exec.
fn c_argv(cmd: &Command) -> io::Result<Vec<CString>> {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(c_string)
        .collect()
}

/// The environment `cmd` runs with (ours, with its changes), as `KEY=VALUE` strings for
/// an exec, without `leave_out`.
fn c_env(cmd: &Command, leave_out: Option<&str>) -> io::Result<Vec<CString>> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    for (key, value) in cmd.get_envs() {
        env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    env.into_iter()
        .filter(|(k, _)| leave_out.is_none_or(|name| k != name))
        .map(|(mut kv, v)| {
            kv.push("=");
            kv.push(v);
            c_string(&kv)
        })
        .collect()
}

/// `pid`'s exit status once it has exited (and is reaped), `None` while it runs.
fn reap(pid: Pid) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    // SAFETY: waitpid with a valid status pointer.
    match unsafe { libc::waitpid(pid.as_raw(), &mut status, libc::WNOHANG) } {
        0 => Ok(None),
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(Some(ExitStatus::from_raw(status))),
    }
}

fn spawn(cmd: &mut Command) -> Result<Child> {
    // The child starts with no signal blocked, whatever this thread blocks to relay them:
    // runc passes its mask on to the container's process, which would then never see the
    // SIGTERM of a `kill`. std passes the mask on as it is, so a thread that blocks
    // signals resets it in the child; one that blocks none leaves std free to use
    // posix_spawn (a vfork, without copying this process's page tables).
    if blocks_signals() {
        // SAFETY: sigprocmask is async-signal-safe; the set lives on the child's stack.
        unsafe {
            cmd.pre_exec(|| {
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn().map_err(|source| Error::Spawn {
        command: describe(cmd),
        source,
    })
}

/// Whether the calling thread blocks any signal.
fn blocks_signals() -> bool {
    // SAFETY: pthread_sigmask only writes the current mask into `mask`.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) != 0 {
            return true;
        }
        (1..=max_signal()).any(|signal| libc::sigismember(&mask, signal) == 1)
    }
}

/// The highest signal number.
#[cfg(target_os = "linux")]
fn max_signal() -> libc::c_int {
    libc::SIGRTMAX()
}

/// The highest signal number (FreeBSD's `_SIG_MAXSIG`).
#[cfg(not(target_os = "linux"))]
fn max_signal() -> libc::c_int {
    128
}

fn wait_with_timeout(
    child: &mut Child,
    cmd: &Command,
    timeout: Option<Duration>,
) -> Result<ExitStatus> {
    let waited = match timeout {
        Some(limit) => wait_until(child, Instant::now() + limit),
        None => child.wait().map(Some),
    };
    match waited {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(kill_for_timeout(child, cmd, timeout.unwrap_or_default())),
        Err(source) => Err(Error::Spawn {
            command: describe(cmd),
            source,
        }),
    }
}

/// Waits for `child` until `deadline`; `None` if it still runs then. The exit is seen on
/// a pidfd: no SIGCHLD handler to install and remove, and no helper socket pairs (the
/// wait-timeout crate's way: eleven system calls per wait).
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let Some(pidfd) = pidfd_open(Pid::from_raw(child.id() as i32)) else {
        // Kernels before 5.3.
        return child.wait_timeout(deadline.saturating_duration_since(Instant::now()));
    };
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut fd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut fd, 1, ms) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// A pidfd for `pid`, which becomes readable when it exits; `None` where the kernel has
/// none (before 5.3).
#[cfg(target_os = "linux")]
fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    use std::os::fd::{FromRawFd, RawFd};
    // SAFETY: pidfd_open takes a pid and flags, and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Only Linux has pidfds: the waits look at the child every few milliseconds instead.
#[cfg(not(target_os = "linux"))]
fn pidfd_open(_pid: Pid) -> Option<OwnedFd> {
    None
}

/// Signals a supervisor sends to us that the child should get instead. SIGINT and SIGQUIT
/// are not among them: a terminal sends those to the whole process group, so the child has
/// them already, and passing them on would deliver them twice.
fn forward_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        NixSignal::SIGHUP,
        NixSignal::SIGTERM,
        NixSignal::SIGUSR1,
        NixSignal::SIGUSR2,
        NixSignal::SIGALRM,
        NixSignal::SIGWINCH,
        #[cfg(target_os = "linux")]
        NixSignal::SIGPWR,
        NixSignal::SIGCONT,
    ] {
        set.add(sig);
    }
    set
}

/// While a child runs with our stdio, the forwarded signals (and SIGINT/SIGQUIT, which the
/// child gets from the terminal itself) are blocked in this thread and read from a
/// signalfd, and passed on; the child's exit is seen on a pidfd. There is no relay
/// thread: one had to be woken and joined after the child exited, and on a loaded host
/// that wait was milliseconds per command. SIGCHLD stays unblocked: the child inherits
/// this thread's mask, and a child that waits for its own children by SIGCHLD (the wait
/// of the pct tools) must get it. Dropping the relay restores the signal mask, so an
/// embedding program gets its own signal handling back.
struct SignalRelay {
    fd: Pending,
    old: SigSet,
}

/// How often the wait looks at the child when the kernel has no pidfds (before Linux 5.3,
/// and on other systems).
const WAIT_RECHECK_MS: libc::c_int = 10;

impl SignalRelay {
    fn block(cmd: &Command) -> Result<Self> {
        let fail = |e: nix::errno::Errno| Error::Spawn {
            command: describe(cmd),
            source: e.into(),
        };
        let mut set = forward_signals();
        set.add(NixSignal::SIGINT);
        set.add(NixSignal::SIGQUIT);
        let old = set
            .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
            .map_err(fail)?;
        match Pending::new(&set) {
            Ok(fd) => Ok(SignalRelay { fd, old }),
            Err(e) => {
                let _ = old.thread_set_mask();
                Err(fail(e))
            }
        }
    }

    /// Waits for `pid`, the child `cmd` started, passing the forwarded signals on; kills it
    /// after `timeout`.
    fn wait(&self, pid: Pid, cmd: &Command, timeout: Option<Duration>) -> Result<ExitStatus> {
        let deadline = timeout.map(|t| Instant::now() + t);
        match self.relay_until_exit(pid, || reap(pid), deadline) {
            Ok(Some(status)) => Ok(status),
            Ok(None) => {
                let _ = kill(pid, NixSignal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
                Err(Error::Timeout {
                    command: describe(cmd),
                    timeout: timeout.unwrap_or_default(),
                })
            }
            Err(source) => Err(Error::Spawn {
                command: describe(cmd),
                source,
            }),
        }
    }

    /// Passes the forwarded signals on to `pid` until `reap` sees it exit; `None` when
    /// `deadline` passed first.
    fn relay_until_exit(
        &self,
        pid: Pid,
        mut reap: impl FnMut() -> io::Result<Option<ExitStatus>>,
        deadline: Option<Instant>,
    ) -> io::Result<Option<ExitStatus>> {
        let forwarded = forward_signals();
        let pidfd = pidfd_open(pid);
        loop {
            // Signals first, then the child: a SIGCHLD read here is never lost, as the
            // child is looked at after it.
            loop {
                match self.fd.take() {
                    Ok(Some(signo)) => {
                        if let Ok(sig) = NixSignal::try_from(signo) {
                            LAST_RELAYED.store(sig as i32, std::sync::atomic::Ordering::SeqCst);
                            if forwarded.contains(sig) {
                                let _ = kill(pid, sig);
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(status) = reap()? {
                return Ok(Some(status));
            }
            let mut ms = if pidfd.is_some() { -1 } else { WAIT_RECHECK_MS };
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                let left = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
                ms = if ms < 0 { left } else { ms.min(left) };
            }
            let mut fds = [
                self.fd.raw_fd(),
                pidfd.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
            ]
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            // SAFETY: two valid pollfds (poll skips a negative fd).
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Waits for `pid`, a child of this process that was spawned without being waited for,
/// passing on the signals this process gets as [`run_inherited`] does; returns its exit
/// code (128 + signal when killed).
pub fn wait_child_relaying(pid: i32) -> Result<i32> {
    let cmd = Command::new(format!("process {pid}"));
    let relay = SignalRelay::block(&cmd)?;
    let pid = Pid::from_raw(pid);
    match relay.relay_until_exit(pid, || reap(pid), None) {
        Ok(Some(status)) => Ok(exit_code(status)),
        Ok(None) => unreachable!("no deadline"),
        Err(source) => Err(Error::Spawn {
            command: describe(&cmd),
            source,
        }),
    }
}

/// The last signal a command's own handler noted (0: none): see [`note_signal`].
static NOTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Notes `signal` for a command that defers SIGINT/SIGTERM/SIGHUP instead of dying of them
/// (`create`, which must roll back). Async-signal-safe (an atomic store): for handlers.
/// Waits that could last, such as the wait for a container's lock, give up when a signal
/// is noted.
pub fn note_signal(signal: libc::c_int) {
    NOTED.store(signal, std::sync::atomic::Ordering::SeqCst);
}

/// The last signal passed to [`note_signal`].
pub fn noted_signal() -> Option<NixSignal> {
    match NOTED.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        n => NixSignal::try_from(n).ok(),
    }
}

/// The last signal the relay took while a child ran (0: none), forwarded or not.
static LAST_RELAYED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The last signal (SIGTERM, SIGINT, SIGHUP, ...) this process received while a child of
/// [`run_inherited`] ran: the relay took it, so the process's own handlers never saw it.
/// A command that must react to being interrupted (`create` rolls back) asks here too.
pub fn last_relayed_signal() -> Option<NixSignal> {
    match LAST_RELAYED.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        n => NixSignal::try_from(n).ok(),
    }
}

impl Drop for SignalRelay {
    fn drop(&mut self) {
        let _ = self.old.thread_set_mask();
    }
}

/// Whether process `pid` runs: it exists and is not a zombie waiting to be reaped.
pub fn is_running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after `(comm)`, which may itself hold spaces and `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

/// Host pids of every process in the pid namespace of `init`, sorted. Refuses when that
/// namespace is our own (the container shares the host's pids and has no set of its own).
pub fn pids_in_pid_namespace_of(init: i32) -> std::result::Result<Vec<i32>, String> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let target = ns(&init.to_string()).ok_or_else(|| format!("process {init} is gone"))?;
    if Some(&target) == ns("self").as_ref() {
        return Err("the container shares the host's pid namespace and has no cgroup: its processes cannot be told apart".into());
    }
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map_err(|e| format!("cannot read /proc: {e}"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| ns(&pid.to_string()).as_ref() == Some(&target))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Sends `signal` to each of `pids` of container `id`; a process that is already gone is
/// not an error. For backends that signal a container's processes themselves.
pub fn signal_each(id: &ContainerId, pids: &[i32], signal: Signal) -> Result<()> {
    let sig = NixSignal::try_from(signal.number()).ok();
    for &pid in pids {
        match kill(Pid::from_raw(pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                return Err(Error::Conflict {
                    id: id.clone(),
                    message: format!("cannot send {signal} to process {pid}: {e}"),
                })
            }
        }
    }
    Ok(())
}

/// systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`) names the process the fds are
/// for. When they were meant for us, the child must see its own pid in `LISTEN_PID`, or
/// runc ignores the fds. The pid is only known after fork, so the child writes it into a
/// buffer prepared here and execs itself (nothing in the child allocates).
fn preserve_socket_activation(cmd: &mut Command) -> Result<()> {
    if !socket_activation_is_ours() {
        return Ok(());
    }
    let spawn_error = |source| Error::Spawn {
        command: describe(cmd),
        source,
    };
    let program = c_string(cmd.get_program()).map_err(spawn_error)?;
    let argv = c_argv(cmd).map_err(spawn_error)?;
    let mut env = c_env(cmd, Some("LISTEN_PID")).map_err(spawn_error)?;
    const PREFIX: &[u8] = b"LISTEN_PID=";
    // Room for the prefix, 20 digits and the NUL; filled in by the child.
    let mut listen_pid = vec![0u8; PREFIX.len() + 21];
    listen_pid[..PREFIX.len()].copy_from_slice(PREFIX);
    let listen_pid_ptr = listen_pid.as_mut_ptr();
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter_mut().map(|e| e.as_ptr()).collect();
    env_ptrs.push(listen_pid_ptr as *const libc::c_char);
    env_ptrs.push(std::ptr::null());
    let captured = SendPtrs {
        _owned: (program, argv, env, listen_pid),
        argv: argv_ptrs,
        env: env_ptrs,
        listen_pid: listen_pid_ptr,
    };
    // SAFETY: the closure runs in the forked child, where only async-signal-safe calls are
    // allowed: getpid, writes into memory prepared before the fork, and execve.
    unsafe {
        cmd.pre_exec(move || {
            // Capture the whole struct (it is Send), not its raw-pointer fields one by one.
            let captured = &captured;
            let mut digits = [0u8; 20];
            let mut n = libc::getpid() as u64;
            let mut len = 0;
            loop {
                digits[len] = b'0' + (n % 10) as u8;
                len += 1;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for i in 0..len {
                *captured.listen_pid.add(PREFIX.len() + i) = digits[len - 1 - i];
            }
            *captured.listen_pid.add(PREFIX.len() + len) = 0;
            libc::execve(
                captured._owned.0.as_ptr(),
                captured.argv.as_ptr(),
                captured.env.as_ptr(),
            );
            Err(io::Error::last_os_error())
        });
    }
    Ok(())
}

/// Whether systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`) names this process.
fn socket_activation_is_ours() -> bool {
    std::env::var_os("LISTEN_FDS").is_some()
        && std::env::var_os("LISTEN_PID")
            .is_some_and(|pid| pid == OsStr::new(&std::process::id().to_string()))
}

/// Raw pointers into buffers this struct owns, moved into the pre-exec closure.
struct SendPtrs {
    _owned: (CString, Vec<CString>, Vec<CString>, Vec<u8>),
    argv: Vec<*const libc::c_char>,
    env: Vec<*const libc::c_char>,
    listen_pid: *mut u8,
}

// SAFETY: the pointers point into `_owned`, which moves with them; they are only used in
// the forked child, which has a single thread.
unsafe impl Send for SendPtrs {}
unsafe impl Sync for SendPtrs {}

/// Writes `pid` to `path` the way runc does: the number without a newline (go-runc reads
/// it with Atoi), through a temp file renamed into place so a reader never sees half of it.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("cannot write the pid file", path, e)
        })
}

/// Whether process `pid` exists (EPERM: it exists and belongs to someone else).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// When process `pid` started, in seconds since the epoch (from /proc).
pub fn started_at(pid: u32) -> Option<i64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, clock ticks after boot), counted after the `(comm)` field.
    let ticks: i64 = stat
        .rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot: i64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| boot + ticks / i64::from(hz as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_run_keeps_stdout_stderr_and_code() {
        let out = run_captured(
            Command::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(exit_code(out.status), 3);
    }

    #[test]
    fn a_hanging_tool_is_killed_and_named() {
        let err = run_captured(
            Command::new("/bin/sleep").arg("30"),
            Duration::from_millis(200),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/bin/sleep 30") && text.contains("did not finish"),
            "{text}"
        );
    }

    #[test]
    fn inherited_run_waits_for_the_child_and_times_out() {
        let status = run_inherited(
            Command::new("/bin/sh").args(["-c", "sleep 0.1; exit 5"]),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(exit_code(status), 5);
        let err = run_inherited(
            Command::new("/bin/sleep").arg("30"),
            Some(Duration::from_millis(200)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
    }

    #[test]
    fn a_plain_inherited_child_starts_unmasked_with_the_commands_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        std::env::set_var("PROXCAGE_TEST_DROPPED", "x");
        let mut cmd = Command::new("/bin/sh");
        cmd.args([
            "-c",
            "grep SigBlk /proc/self/status > \"$1\"; echo \"${PROXCAGE_TEST_ADDED-unset} ${PROXCAGE_TEST_DROPPED-unset}\" >> \"$1\"; exit 3",
            "sh",
            out.to_str().unwrap(),
        ])
        .env("PROXCAGE_TEST_ADDED", "added")
        .env_remove("PROXCAGE_TEST_DROPPED");
        // The relay blocks signals in this thread while the child runs; the child must
        // start with none blocked, or a container's process would never see a SIGTERM.
        let status = run_inherited_plain(&mut cmd, Some(Duration::from_secs(10))).unwrap();
        assert_eq!(exit_code(status), 3);
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lines = text.lines();
        let mask = lines.next().unwrap().trim_start_matches("SigBlk:").trim();
        assert_eq!(u64::from_str_radix(mask, 16).unwrap(), 0, "{text}");
        assert_eq!(lines.next(), Some("added unset"), "{text}");

        let err = run_inherited_plain(
            Command::new("/bin/sleep").arg("30"),
            Some(Duration::from_millis(200)),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/bin/sleep 30 did not finish"),
            "{err}"
        );
        let err = run_inherited_plain(&mut Command::new("/nonexistent/tool"), None).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/tool")
                && err.to_string().contains("No such file"),
            "{err}"
        );
    }

    #[test]
    fn an_inherited_child_can_wait_for_its_own_children() {
        // The child's own wait by SIGCHLD must work: SIGCHLD is not blocked for it.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("status");
        let status = run_inherited(
            Command::new("/bin/sh").args([
                "-c",
                "grep SigBlk /proc/self/status > \"$1\"",
                "sh",
                out.to_str().unwrap(),
            ]),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(exit_code(status), 0);
        let text = std::fs::read_to_string(&out).unwrap();
        let mask =
            u64::from_str_radix(text.trim().trim_start_matches("SigBlk:").trim(), 16).unwrap();
        assert_eq!(mask & (1 << (libc::SIGCHLD - 1)), 0, "{text}");
    }

    #[test]
    fn killed_by_signal_is_128_plus_signal() {
        let out = run_captured(
            Command::new("/bin/sh").args(["-c", "kill -9 $$"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(exit_code(out.status), 137);
    }

    #[test]
    fn missing_tool_names_the_package() {
        let err = find_program(
            Path::new("no-such-tool-proxcage"),
            "no-such-package",
            "[backends.x] tool",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("install the Debian package 'no-such-package'"),
            "{err}"
        );
        assert!(find_program(Path::new("sh"), "dash", "[backends.x] sh").is_ok());
    }

    #[test]
    fn own_pid_namespace_is_refused() {
        let err = pids_in_pid_namespace_of(std::process::id() as i32).unwrap_err();
        assert!(err.contains("shares the host's pid namespace"), "{err}");
    }

    #[test]
    fn describe_quotes_what_a_shell_would_split() {
        let mut cmd = Command::new("runc");
        cmd.args(["exec", "t1", "echo", "a b", "it's"]);
        assert_eq!(describe(&cmd), r"runc exec t1 echo 'a b' 'it'\''s'");
    }

    #[test]
    fn a_tool_killed_by_a_realtime_signal_is_described_by_its_number() {
        let out = run_captured(
            Command::new("/bin/sh").args(["-c", "kill -s RTMIN+6 $$"]),
            Duration::from_secs(10),
        )
        .unwrap();
        let signal = out.status.signal().unwrap();
        assert!(signal >= libc::SIGRTMIN(), "{}", out.status);
        assert_eq!(
            describe_status(out.status),
            format!("killed by signal {signal}")
        );
        assert_eq!(exit_code(out.status), 128 + signal);
    }

    #[test]
    fn pid_files_hold_the_bare_number_and_name_the_path_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pid");
        write_pid_file(&path, 4242).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4242");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temp file was left: {names:?}");

        let missing = dir.path().join("no-such-dir/c.pid");
        let err = write_pid_file(&missing, 1).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cannot write the pid file")
                && text.contains(&*missing.to_string_lossy()),
            "{text}"
        );
    }
}
