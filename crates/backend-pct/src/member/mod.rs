//! Containers of a pod run inside the pod's CT. A member (a CRI app container whose
//! `io.kubernetes.cri.sandbox-id` names a pct sandbox of this root, or a container whose
//! namespace paths are a pct sandbox's) becomes a nested container in the sandbox's CT,
//! not a CT of its own: its own mount namespace with its rootfs (pivot_root), its own pid
//! namespace nested in the CT's (unless it shares the pod's), the CT's user, network, ipc,
//! uts and cgroup namespaces, and a cgroup below the CT's.
//!
//! The CT is unprivileged: its root is host uid 100000, which could not own the bundle's
//! files. The rootfs and the bind sources are opened on the host as detached mounts and
//! idmapped to the CT's user namespace, so that the CT's root owns what the host's root
//! owns. An overlay rootfs is rebuilt from its idmapped layers (see `mounts::Overlay`);
//! a rootfs whose filesystem takes no idmapped mount is refused.

mod mounts;
mod seccomp;
mod spawn;
pub(crate) mod sys;
mod terminal;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::resource::Resource;
use proxcage_lxc_config::oci_spec::runtime::{PosixRlimitType, Spec};
use proxcage_oci::Bundle;
use proxcage_process::cgroup::Cgroups;

pub(crate) use spawn::Spawned;

/// Why a member cannot be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemberError {
    #[error("root.path {path}: the pod CT's root (an unprivileged CT's, host uid 100000) must own the member's rootfs through an idmapped mount, and {source}; put the bundle on a filesystem that takes idmapped mounts (ext4, xfs, btrfs, tmpfs, or an overlay of layers on those), or run the pod on runc or crun")]
    Rootfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field} {path}: cannot open it for the member: {source}")]
    Bind {
        field: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: {what} is not supported for a container of a pct pod (it runs nested in the pod's CT); run the pod on runc or crun")]
    Unsupported { field: String, what: String },
    #[error("the pod's sandbox {sandbox} is not running (its CT {vmid} has no init): start the sandbox before its containers")]
    SandboxDown { sandbox: String, vmid: crate::Vmid },
    #[error("opening the pod CT's namespaces: {0}")]
    Namespaces(#[source] io::Error),
    #[error("the member's cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a member asks that a nested container of a pct pod cannot give, by field.
pub(crate) fn refuse_unsupported(spec: &Spec) -> Result<(), MemberError> {
    let unsupported = |field: &str, what: &str| {
        Err(MemberError::Unsupported {
            field: field.into(),
            what: what.into(),
        })
    };
    let has_proc = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/proc") && m.typ().as_deref() == Some("proc"));
    if !has_proc {
        return unsupported(
            "mounts",
            "a container without /proc (proc mounted at /proc)",
        );
    }
    let hooks = spec.hooks().as_ref();
    if hooks
        .and_then(|h| h.start_container().as_ref())
        .is_some_and(|h| !h.is_empty())
    {
        return unsupported("hooks.startContainer", "a startContainer hook");
    }
    Ok(())
}

/// Whether the spec shares the pod's pid namespace (a pid namespace given by path).
fn shares_pid(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .any(|ns| {
            ns.typ() == proxcage_lxc_config::oci_spec::runtime::LinuxNamespaceType::Pid
                && ns.path().is_some()
        })
}

fn rlimits(spec: &Spec) -> Vec<(Resource, u64, u64)> {
    let resource = |typ: PosixRlimitType| -> Resource {
        match typ {
            PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
            PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
            PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
            PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
            PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
            PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
            PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
            PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
            PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
            PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
            PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
            PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
            PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
            PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
            PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
            PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
        }
    };
    spec.process()
        .as_ref()
        .and_then(|p| p.rlimits().clone())
        .unwrap_or_default()
        .iter()
        .map(|r| (resource(r.typ()), r.soft(), r.hard()))
        .collect()
}

/// The member's cgroups: a child `proxcage-<id>` of each of the CT init's cgroups, made
/// here (a v1 cpuset's filled from its parent's: an empty one takes no task).
pub(crate) fn make_cgroups(init: i32, id: &str) -> Result<Cgroups, MemberError> {
    let parents = Cgroups::of_pid(init).map_err(MemberError::Namespaces)?;
    let cgroups = parents.clone().inside(&format!("proxcage-{id}"));
    let mut made: Vec<PathBuf> = Vec::new();
    let fail = |made: &[PathBuf], path: PathBuf, source| {
        remove_cgroups(made);
        MemberError::Cgroup { path, source }
    };
    for dir in cgroups.dirs() {
        match std::fs::create_dir(&dir) {
            Ok(()) => made.push(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => made.push(dir),
            Err(e) => return Err(fail(&made, dir, e)),
        }
    }
    if parents.is_v1("cpuset") {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let copied = parents
                .file("cpuset", file)
                .map(std::fs::read_to_string)
                .transpose()
                .and_then(|value| match value {
                    Some(value) => cgroups.write("cpuset", file, value.trim()).map(|_| ()),
                    None => Ok(()),
                });
            if let Err(e) = copied {
                let path = cgroups.file("cpuset", file).unwrap_or_default();
                return Err(fail(&made, path, e));
            }
        }
    }
    Ok(cgroups)
}

/// Removes the member's cgroups (waiting a little for the kernel to let them go).
pub(crate) fn remove_cgroups(dirs: &[PathBuf]) {
    for dir in dirs {
        for _ in 0..50 {
            match std::fs::remove_dir(dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
    }
}

/// Everything a member needs from the host, opened before its processes are forked.
pub(crate) struct Request<'a> {
    pub(crate) bundle: &'a Bundle,
    /// The pod CT's init (host pid).
    pub(crate) init: i32,
    pub(crate) files_dir: &'a Path,
    pub(crate) cgroups: &'a [PathBuf],
    pub(crate) preserve_fds: u32,
    /// `process.terminal`: the master comes back in [`Spawned::master`].
    pub(crate) terminal: bool,
    /// The host uid and gid of the CT's root.
    pub(crate) owner: (u32, u32),
}

/// Forks the member (see [`spawn`]) and waits until it is ready for `start`.
pub(crate) fn launch(req: &Request<'_>, timeout: Duration) -> Result<Spawned, String> {
    let ns = spawn::Namespaces::of(req.init).map_err(|e| MemberError::Namespaces(e).to_string())?;
    let fs = mounts::plan(req.bundle, ns.user.as_fd(), req.owner).map_err(|e| e.to_string())?;
    let open = |name: &str| -> Result<OwnedFd, String> {
        let path = req.files_dir.join(name);
        File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))
    };
    let mountpoint = req.files_dir.join("root");
    std::fs::create_dir_all(&mountpoint)
        .map_err(|e| format!("cannot create {}: {e}", mountpoint.display()))?;
    let fifo = req.files_dir.join("exec.fifo");
    match nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(format!("cannot make {}: {e}", fifo.display())),
    }
    let seccomp = req
        .bundle
        .spec()
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(seccomp::compile)
        .transpose()
        .map_err(|e| e.to_string())?;
    let process_spec = req.bundle.spec().process().as_ref();
    let (terminal, ours) = if req.terminal {
        let (ours, theirs) =
            terminal::pair().map_err(|e| format!("cannot make a socket pair: {e}"))?;
        let size = process_spec.and_then(|p| {
            p.console_size()
                .map(|b| (b.height() as u16, b.width() as u16))
        });
        let owner = process_spec.map_or((0, 0), |p| (p.user().uid(), p.user().gid()));
        (
            Some(terminal::Terminal {
                sock: theirs,
                size,
                owner,
            }),
            Some(ours),
        )
    } else {
        (None, None)
    };
    let launch = spawn::Launch {
        terminal,
        seccomp,
        own_pid: !shares_pid(req.bundle.spec()),
        ns,
        fs,
        mountpoint,
        init: open("init")?,
        process: open("process")?,
        fifo,
        cgroup_procs: req.cgroups.iter().map(|d| d.join("cgroup.procs")).collect(),
        rlimits: rlimits(req.bundle.spec()),
        preserve_fds: req.preserve_fds,
    };
    spawn::spawn(&launch, ours.as_ref(), timeout)
}

/// Runs `argv`'s process file in the running member `member` (host pid): a process that
/// enters its namespaces and cgroups and execs proxcage-init there, with the caller's
/// stdio. Returns the pid of the host-side process that waits for it.
pub(crate) fn exec(
    member: i32,
    files_dir: &Path,
    process: &Path,
    cgroups: &[PathBuf],
    terminal: Option<(u32, u32)>,
) -> Result<(i32, Option<OwnedFd>), String> {
    let filter = exec_filter(files_dir)?;
    let pair = terminal
        .map(|owner| {
            let (ours, theirs) = terminal::pair()?;
            let t = terminal::Terminal {
                sock: theirs,
                size: None,
                owner,
            };
            Ok::<_, io::Error>((ours, t))
        })
        .transpose()
        .map_err(|e| format!("cannot make a socket pair: {e}"))?;
    let pid = spawn::exec(
        member,
        &files_dir.join("init"),
        process,
        cgroups,
        filter.as_ref(),
        pair.as_ref().map(|(_, t)| t),
    )?;
    let master = match pair {
        None => None,
        Some((ours, theirs)) => {
            drop(theirs);
            match terminal::receive(&ours, Duration::from_secs(60)) {
                Ok(master) => Some(master),
                Err(message) => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                    return Err(message);
                }
            }
        }
    };
    Ok((pid, master))
}

/// Where a member's `linux.seccomp` is kept for its execs.
fn seccomp_file(files_dir: &Path) -> PathBuf {
    files_dir.join("seccomp.json")
}

/// Keeps the member's `linux.seccomp` in its files, for its execs (runc applies the
/// container's filter to an exec's process too).
pub(crate) fn keep_seccomp(spec: &Spec, files_dir: &Path) -> io::Result<()> {
    let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(());
    };
    let json = serde_json::to_vec(seccomp).map_err(io::Error::other)?;
    std::fs::write(seccomp_file(files_dir), json)
}

fn exec_filter(files_dir: &Path) -> Result<Option<seccomp::Program>, String> {
    let path = seccomp_file(files_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let parsed = serde_json::from_slice(&bytes)
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    seccomp::compile(&parsed)
        .map(Some)
        .map_err(|e| e.to_string())
}
/// The children of process `pid` (host pids).
pub(crate) fn children(pid: i32) -> Vec<i32> {
    sys::children(pid)
}

/// What a member create that died (its record not written yet) left: its waiter, which
/// waits in the member's mount point (its current directory) for a `start` that will not
/// come, is killed (the member and the intermediate end with it); the member's cgroups
/// below whatever CT they are in are removed.
pub(crate) fn forget_interrupted(files_dir: &Path, id: &str) {
    let mountpoint = files_dir.join("root");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let waiters: Vec<i32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == mountpoint)
        })
        .collect();
    for pid in &waiters {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let name = format!("proxcage-{id}");
    let mut found = Vec::new();
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mounts.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fstype = right.split_whitespace().next().unwrap_or("");
            if let (Some(point), "cgroup" | "cgroup2") = (left.split_whitespace().nth(4), fstype) {
                find_dirs(Path::new(point), &name, 8, &mut found);
            }
        }
    }
    remove_cgroups(&found);
}

/// Directories named `name` below `dir`, `depth` levels down at most.
fn find_dirs(dir: &Path, name: &str, depth: u32, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path);
        } else if depth > 0 {
            find_dirs(&path, name, depth - 1, found);
        }
    }
}
