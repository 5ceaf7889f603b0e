//! The processes of a member, forked from `create` (which must be single-threaded):
//!
//! - the **waiter**, host root, left in the caller's process tree (its pid is the pid
//!   file's, so a shim that reaps it gets the member's exit status): it enters the pod
//!   CT's pid namespace for its children, forks the intermediate, blocks on the exec FIFO
//!   until `start`, releases the member, passes signals on to it and exits with its status;
//! - the **intermediate**, in the CT's pid namespace: it joins the member's cgroup and
//!   the CT's net, ipc, uts, cgroup and user namespaces (as the CT's root), makes the
//!   member's pid namespace and forks the member, then waits for it;
//! - the **member**, PID 1 of its pid namespace (unless it shares the pod's): it makes its
//!   mount namespace (see [`super::mounts`]), reports that it is ready, waits for the
//!   release and execs proxcage-init, which becomes the spec's user and process.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, ForkResult, Pid};

use super::mounts::{self, Filesystem};
use super::sys;

/// The pod CT's namespaces, opened from its init.
pub(super) struct Namespaces {
    pub(super) user: OwnedFd,
    pub(super) pid: OwnedFd,
    pub(super) others: Vec<(&'static str, OwnedFd)>,
}

impl Namespaces {
    pub(super) fn of(pid: i32) -> io::Result<Namespaces> {
        let open = |kind: &str| -> io::Result<OwnedFd> {
            let path = format!("/proc/{pid}/ns/{kind}");
            File::open(&path)
                .map(OwnedFd::from)
                .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
        };
        Ok(Namespaces {
            user: open("user")?,
            pid: open("pid")?,
            others: ["net", "ipc", "uts", "cgroup"]
                .into_iter()
                .map(|kind| Ok((kind, open(kind)?)))
                .collect::<io::Result<_>>()?,
        })
    }
}

/// Everything the member's processes need, opened on the host before the fork.
pub(super) struct Launch {
    pub(super) ns: Namespaces,
    /// A pid namespace of its own (else the pod's).
    pub(super) own_pid: bool,
    pub(super) fs: Filesystem,
    /// The empty directory the rootfs is attached onto, in the member's mount namespace.
    pub(super) mountpoint: PathBuf,
    /// proxcage-init, and its process file (inherited across the exec).
    pub(super) init: OwnedFd,
    pub(super) process: OwnedFd,
    pub(super) fifo: PathBuf,
    /// `cgroup.procs` files of the member's cgroups.
    pub(super) cgroup_procs: Vec<PathBuf>,
    pub(super) rlimits: Vec<(nix::sys::resource::Resource, u64, u64)>,
    /// The caller's fds 3.. passed on (`--preserve-fds`).
    pub(super) preserve_fds: u32,
    /// `linux.seccomp`, installed just before the exec.
    pub(super) seccomp: Option<super::seccomp::Program>,
    /// `process.terminal`: the member's side.
    pub(super) terminal: Option<super::terminal::Terminal>,
}

/// What a spawn left: the waiter (the pid file's pid) and the member's host pid.
pub(crate) struct Spawned {
    pub(crate) waiter: i32,
    pub(crate) member: i32,
    /// The terminal's master, with `process.terminal`.
    pub(crate) master: Option<OwnedFd>,
}

/// Forks the waiter and waits up to `timeout` for the member to be ready; on a failure
/// the waiter is killed (and with it the rest, which end at the closed release pipe).
pub(super) fn spawn(
    launch: &Launch,
    terminal: Option<&OwnedFd>,
    timeout: Duration,
) -> Result<Spawned, String> {
    crate::sandbox::single_threaded()?;
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make a pipe: {e}"))?;
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make a pipe: {e}"))?;
    // SAFETY: the process is single-threaded (checked above), so the child may run any
    // code; it never returns from `waiter`.
    let waiter = match unsafe { fork() }.map_err(|e| format!("cannot fork: {e}"))? {
        ForkResult::Child => {
            drop(report_r);
            waiter(launch, report_w, go_r, go_w)
        }
        ForkResult::Parent { child } => child.as_raw(),
    };
    drop(report_w);
    drop(go_r);
    drop(go_w);
    let kill = || {
        let _ = nix::sys::signal::kill(Pid::from_raw(waiter), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(waiter), None);
    };
    match read_report(report_r, timeout) {
        Ok(()) => {}
        Err(message) => {
            kill();
            return Err(message);
        }
    }
    let member = sys::children(waiter)
        .first()
        .and_then(|i| sys::children(*i).first().copied());
    let Some(member) = member else {
        kill();
        return Err("the member's process is gone after it was ready".into());
    };
    let master = match terminal.map(|sock| super::terminal::receive(sock, timeout)) {
        None => None,
        Some(Ok(master)) => Some(master),
        Some(Err(message)) => {
            kill();
            return Err(message);
        }
    };
    Ok(Spawned {
        waiter,
        member,
        master,
    })
}

/// `ok` from the member, or what failed on the way.
fn read_report(report: OwnedFd, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut file = File::from(report);
    let mut text = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the member was not ready within {} s",
                timeout.as_secs()
            ));
        }
        let mut fds = [nix::poll::PollFd::new(
            file.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for the member: {e}")),
            Ok(_) => {}
        }
        let mut buf = [0u8; 4096];
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the member's report: {e}")),
        }
    }
    match String::from_utf8_lossy(&text).as_ref() {
        "ok" => Ok(()),
        "" => Err("the member's process ended before it was ready, without a word".into()),
        message => Err(message.to_string()),
    }
}

/// Tells the report pipe what failed and exits.
fn fail(report: &OwnedFd, what: &str, e: impl std::fmt::Display) -> ! {
    let _ = nix::unistd::write(report, format!("{what}: {e}").as_bytes());
    // SAFETY: _exit ends the forked process without running the parent's destructors.
    unsafe { libc::_exit(125) }
}

/// Back to default signal handling, nothing blocked: what `create` set up is its own.
fn reset_signals() {
    for n in 1..32 {
        if n == libc::SIGKILL || n == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition to the default in a single-threaded child.
        unsafe { libc::signal(n, libc::SIG_DFL) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Closes every fd but 0-2, the `preserve` fds after them and `keep`.
fn close_all_but(preserve: u32, keep: &[RawFd]) {
    let mut kept = keep.to_vec();
    kept.extend((3..).take(preserve as usize));
    crate::sandbox::close_all_but(&kept);
}

/// The fds the member's processes hold.
fn launch_fds(launch: &Launch) -> Vec<RawFd> {
    let mut fds = vec![
        launch.ns.user.as_raw_fd(),
        launch.ns.pid.as_raw_fd(),
        launch.init.as_raw_fd(),
        launch.process.as_raw_fd(),
    ];
    fds.extend(launch.ns.others.iter().map(|(_, fd)| fd.as_raw_fd()));
    fds.extend(launch.fs.root.fds());
    for m in &launch.fs.mounts {
        if let mounts::Mount::Bind { tree, .. } = m {
            fds.push(tree.as_raw_fd());
        }
    }
    fds.extend(launch.fs.devices.iter().map(|(_, fd)| fd.as_raw_fd()));
    fds.extend(launch.terminal.iter().map(|t| t.sock.as_raw_fd()));
    fds
}

fn exit_code(status: nix::sys::wait::WaitStatus) -> i32 {
    match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    }
}

fn wait_for(child: Pid) -> i32 {
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(
                status @ (nix::sys::wait::WaitStatus::Exited(..)
                | nix::sys::wait::WaitStatus::Signaled(..)),
            ) => return exit_code(status),
            Ok(_) => continue,
            Err(_) => return 1,
        }
    }
}

/// The signals the waiter passes on to the member.
const FORWARDED: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

fn waiter(launch: &Launch, report: OwnedFd, go_r: OwnedFd, go_w: OwnedFd) -> ! {
    reset_signals();
    let mut keep = launch_fds(launch);
    keep.extend([report.as_raw_fd(), go_r.as_raw_fd(), go_w.as_raw_fd()]);
    close_all_but(launch.preserve_fds, &keep);
    let rootfs = match launch.fs.root.tree(&launch.mountpoint) {
        Ok(rootfs) => rootfs,
        Err(e) => fail(&report, "root.path", e),
    };
    if let Err(e) = std::env::set_current_dir(&launch.mountpoint) {
        fail(
            &report,
            &format!("entering {}", launch.mountpoint.display()),
            e,
        );
    }
    if let Err(e) = sys::setns(launch.ns.pid.as_fd(), "the pod CT's pid namespace") {
        fail(&report, "joining the pod", e);
    }
    // SAFETY: single-threaded (forked from a single-threaded process).
    let child = match unsafe { fork() } {
        Err(e) => fail(&report, "fork", e),
        Ok(ForkResult::Child) => {
            drop(go_w);
            intermediate(launch, &rootfs, report, go_r)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(report);
    drop(go_r);
    // `start` opens the FIFO for reading: then the member goes.
    let released = open_when_started(&launch.fifo, child)
        .and_then(|mut f| f.write_all(&[0]))
        .and_then(|()| File::from(go_w).write_all(&[1]));
    if released.is_err() {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
    }
    let member = sys::children(child.as_raw()).first().copied();
    relay_until_exit(child, member)
}

/// The FIFO opened for writing once `start` has opened it for reading. Until then the
/// intermediate is reaped if it ends (the pod CT stopped under a created member): a
/// zombie of the CT's pid namespace whose parent is outside it keeps the CT's init from
/// ending, and the CT's stop would hang. The waiter then exits with its status.
fn open_when_started(fifo: &std::path::Path, child: Pid) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    loop {
        match File::options()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(fifo)
        {
            Ok(file) => return Ok(file),
            // No reader yet.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            Err(e) => return Err(e),
        }
        if let Ok(
            status @ (nix::sys::wait::WaitStatus::Exited(..)
            | nix::sys::wait::WaitStatus::Signaled(..)),
        ) = nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        {
            // SAFETY: ending the forked process.
            unsafe { libc::_exit(exit_code(status)) }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the intermediate, passing the signals this process gets on to the member.
fn relay_until_exit(child: Pid, member: Option<i32>) -> ! {
    let mut set = SigSet::empty();
    FORWARDED.iter().for_each(|s| set.add(*s));
    set.add(Signal::SIGCHLD);
    let _ = set.thread_block();
    let Ok(signals) = nix::sys::signalfd::SignalFd::new(&set) else {
        // SAFETY: ending the forked process.
        unsafe { libc::_exit(wait_for(child)) }
    };
    loop {
        match nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
            Ok(
                status @ (nix::sys::wait::WaitStatus::Exited(..)
                | nix::sys::wait::WaitStatus::Signaled(..)),
            ) => {
                // SAFETY: ending the forked process.
                unsafe { libc::_exit(exit_code(status)) }
            }
            Ok(_) => {}
            // SAFETY: ending the forked process.
            Err(_) => unsafe { libc::_exit(1) },
        }
        if let Ok(Some(info)) = signals.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo != libc::SIGCHLD {
                if let (Some(member), Ok(sig)) = (member, Signal::try_from(signo)) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(member), sig);
                }
            }
        }
    }
}

fn intermediate(launch: &Launch, rootfs: &OwnedFd, report: OwnedFd, go_r: OwnedFd) -> ! {
    for procs in &launch.cgroup_procs {
        if let Err(e) = std::fs::write(procs, "0") {
            fail(
                &report,
                &format!("joining the cgroup {}", procs.display()),
                e,
            );
        }
    }
    for (kind, fd) in &launch.ns.others {
        if let Err(e) = sys::setns(fd.as_fd(), kind) {
            fail(&report, "joining the pod CT", e);
        }
    }
    if let Err(e) = become_ct_root(launch.ns.user.as_fd()) {
        fail(&report, "becoming the pod CT's root", e);
    }
    if launch.own_pid {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID) {
            fail(&report, "unshare(CLONE_NEWPID)", e);
        }
    }
    // SAFETY: single-threaded.
    let child = match unsafe { fork() } {
        Err(e) => fail(&report, "fork", e),
        Ok(ForkResult::Child) => member(launch, rootfs, report, go_r),
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(report);
    drop(go_r);
    // SAFETY: ending the forked process with the member's status.
    unsafe { libc::_exit(wait_for(child)) }
}

fn member(launch: &Launch, rootfs: &OwnedFd, report: OwnedFd, go_r: OwnedFd) -> ! {
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS) {
        fail(&report, "unshare(CLONE_NEWNS)", e);
    }
    if let Err(e) = mounts::assemble(&launch.fs, rootfs.as_fd()) {
        fail(&report, "setting up the member's filesystem", e);
    }
    for (resource, soft, hard) in &launch.rlimits {
        if let Err(e) = nix::sys::resource::setrlimit(*resource, *soft, *hard) {
            fail(
                &report,
                &format!("process.rlimits: setting {resource:?}"),
                io::Error::from(e),
            );
        }
    }
    if let Some(terminal) = &launch.terminal {
        if let Err(e) = super::terminal::attach(terminal) {
            fail(&report, "process.terminal", e);
        }
    }
    let _ = File::from(report).write_all(b"ok");
    let mut go = [0u8; 1];
    if !matches!(File::from(go_r).read(&mut go), Ok(1)) {
        // SAFETY: ending the forked process: it was never started.
        unsafe { libc::_exit(1) }
    }
    exec_init(&launch.init, &launch.process, launch.seccomp.as_ref())
}

/// The member's namespaces and what the exec'd process runs, opened before the fork.
struct Entry {
    user: OwnedFd,
    pid: OwnedFd,
    mnt: OwnedFd,
    others: Vec<(&'static str, OwnedFd)>,
    init: OwnedFd,
    process: OwnedFd,
}

impl Entry {
    fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![
            self.user.as_raw_fd(),
            self.pid.as_raw_fd(),
            self.mnt.as_raw_fd(),
            self.init.as_raw_fd(),
            self.process.as_raw_fd(),
        ];
        fds.extend(self.others.iter().map(|(_, fd)| fd.as_raw_fd()));
        fds
    }
}

/// Forks a process that enters the member `member` (host pid): its cgroups, its pid
/// namespace for its child, the CT's namespaces as the CT's root, the member's mount
/// namespace; the child execs proxcage-init with the process file `process`. Returns the
/// forked process's pid: it waits for the child and exits with its status.
pub(super) fn exec(
    member: i32,
    init: &std::path::Path,
    process: &std::path::Path,
    cgroup_procs: &[PathBuf],
    filter: Option<&super::seccomp::Program>,
    terminal: Option<&super::terminal::Terminal>,
) -> Result<i32, String> {
    crate::sandbox::single_threaded()?;
    let open = |path: &std::path::Path| -> Result<OwnedFd, String> {
        File::open(path)
            .map(OwnedFd::from)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))
    };
    let ns = |kind: &str| open(std::path::Path::new(&format!("/proc/{member}/ns/{kind}")));
    let entry = Entry {
        user: ns("user")?,
        pid: ns("pid")?,
        mnt: ns("mnt")?,
        others: ["net", "ipc", "uts", "cgroup"]
            .into_iter()
            .map(|k| Ok((k, ns(k)?)))
            .collect::<Result<Vec<_>, String>>()?,
        init: open(init)?,
        process: open(process)?,
    };
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make a pipe: {e}"))?;
    // SAFETY: the process is single-threaded (checked above).
    let child = match unsafe { fork() }.map_err(|e| format!("cannot fork: {e}"))? {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            drop(report_r);
            enter(&entry, cgroup_procs, report_w, filter, terminal)
        }
    };
    drop(report_w);
    match read_report(report_r, Duration::from_secs(60)) {
        Ok(()) => Ok(child.as_raw()),
        Err(message) => {
            let _ = nix::sys::wait::waitpid(child, None);
            Err(message)
        }
    }
}

/// The exec's host-side process: enters the member and forks the process, then waits
/// for it, passing signals on.
fn enter(
    entry: &Entry,
    cgroup_procs: &[PathBuf],
    report: OwnedFd,
    filter: Option<&super::seccomp::Program>,
    terminal: Option<&super::terminal::Terminal>,
) -> ! {
    reset_signals();
    let mut keep = entry.fds();
    keep.push(report.as_raw_fd());
    keep.extend(terminal.iter().map(|t| t.sock.as_raw_fd()));
    close_all_but(0, &keep);
    for procs in cgroup_procs {
        if let Err(e) = std::fs::write(procs, "0") {
            fail(
                &report,
                &format!("joining the cgroup {}", procs.display()),
                e,
            );
        }
    }
    let joined = sys::setns(entry.pid.as_fd(), "pid")
        .and_then(|()| {
            entry
                .others
                .iter()
                .try_for_each(|(kind, fd)| sys::setns(fd.as_fd(), kind))
        })
        .and_then(|()| become_ct_root(entry.user.as_fd()))
        .and_then(|()| sys::setns(entry.mnt.as_fd(), "mnt"));
    if let Err(e) = joined {
        fail(&report, "entering the member", e);
    }
    // SAFETY: single-threaded.
    let child = match unsafe { fork() } {
        Err(e) => fail(&report, "fork", e),
        Ok(ForkResult::Child) => {
            if let Some(Err(e)) = terminal.map(super::terminal::attach) {
                fail(&report, "exec --tty", e);
            }
            drop(report);
            exec_init(&entry.init, &entry.process, filter)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    let _ = nix::unistd::write(&report, b"ok");
    drop(report);
    relay_until_exit(child, Some(child.as_raw()))
}

/// Joins the user namespace `userns` as its root, without supplementary groups.
fn become_ct_root(userns: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    sys::setns(userns, "user")?;
    let (root, group) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    nix::unistd::setresgid(group, group, group)?;
    nix::unistd::setresuid(root, root, root)?;
    let _ = nix::unistd::setgroups(&[]);
    Ok(())
}

/// Installs `filter` and execs proxcage-init (`init`) with the process file `process`,
/// which it reads by `/proc/self/fd/N` (so the fd stays open across the exec).
fn exec_init(init: &OwnedFd, process: &OwnedFd, filter: Option<&super::seccomp::Program>) -> ! {
    let argv = [
        CString::new("proxcage-init").expect("no NUL"),
        CString::new(format!("/proc/self/fd/{}", process.as_raw_fd())).expect("no NUL"),
    ];
    let _ = nix::fcntl::fcntl(
        process,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    );
    if let Some(Err(e)) = filter.map(|f| f.install()) {
        let _ = writeln!(io::stderr(), "proxcage: cannot install linux.seccomp: {e}");
        // SAFETY: ending the forked process.
        unsafe { libc::_exit(125) }
    }
    let e = sys::exec_fd(init.as_fd(), &argv);
    let _ = writeln!(io::stderr(), "proxcage: cannot exec proxcage-init: {e}");
    // SAFETY: ending the forked process.
    unsafe { libc::_exit(125) }
}
