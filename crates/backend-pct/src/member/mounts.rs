//! A member's filesystem: its rootfs and bind sources are opened on the host, as host
//! root (which reaches the 0700 directories kubelet and podman keep them in), as detached
//! mount trees idmapped to the pod CT's user namespace; the member's own process, in a
//! mount namespace of its own, attaches them and makes the spec's other mounts, then
//! pivots into the rootfs.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use proxcage_lxc_config::oci_spec::runtime::Spec;
use proxcage_oci::Bundle;

use super::sys;
use super::MemberError;

/// One mount of the spec, ready for the member's process.
pub(super) enum Mount {
    /// A bind: its source, opened on the host as a detached tree.
    Bind { dest: PathBuf, tree: OwnedFd },
    /// A filesystem the member's process mounts itself (proc, tmpfs, devpts, ...).
    Fs {
        dest: PathBuf,
        fstype: String,
        source: String,
        flags: MsFlags,
        data: String,
    },
}

/// What the member's process attaches and mounts, in order.
pub(super) struct Filesystem {
    pub(super) root: Rootfs,
    pub(super) readonly: bool,
    pub(super) mounts: Vec<Mount>,
    /// Device nodes bound from the host into a `/dev` the spec mounts as tmpfs.
    pub(super) devices: Vec<(PathBuf, OwnedFd)>,
    pub(super) masked: Vec<PathBuf>,
    pub(super) readonly_paths: Vec<PathBuf>,
    /// `linux.sysctl`: the pod's namespaces (the CT's network, ipc and uts) take them.
    pub(super) sysctl: Vec<(String, String)>,
}

/// The devices every container gets (runtime-spec's default devices).
const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// `options` as mount flags, mount_setattr attributes and the remaining data.
fn parse_options(options: &[String]) -> (MsFlags, u64, String, bool) {
    let mut flags = MsFlags::empty();
    let mut attrs = 0;
    let mut data = Vec::new();
    let mut recursive = false;
    for o in options {
        match o.as_str() {
            "ro" => {
                flags |= MsFlags::MS_RDONLY;
                attrs |= sys::MOUNT_ATTR_RDONLY;
            }
            "nosuid" => {
                flags |= MsFlags::MS_NOSUID;
                attrs |= sys::MOUNT_ATTR_NOSUID;
            }
            "nodev" => {
                flags |= MsFlags::MS_NODEV;
                attrs |= sys::MOUNT_ATTR_NODEV;
            }
            "noexec" => {
                flags |= MsFlags::MS_NOEXEC;
                attrs |= sys::MOUNT_ATTR_NOEXEC;
            }
            "rbind" => recursive = true,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "bind" | "rw" | "suid" | "dev" | "exec" | "atime" | "diratime" | "async"
            | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" | "defaults" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, attrs, data.join(","), recursive)
}

fn is_bind(options: &[String]) -> bool {
    options.iter().any(|o| o == "bind" || o == "rbind")
}

/// A detached copy of `path`, idmapped to `userns` where the kernel and the filesystem
/// take it (`required`: else an error), with `attrs` set.
fn tree(
    path: &Path,
    recursive: bool,
    attrs: u64,
    userns: BorrowedFd<'_>,
    required: bool,
) -> io::Result<OwnedFd> {
    let flags = sys::OPEN_TREE_CLONE | if recursive { sys::AT_RECURSIVE } else { 0 };
    let tree = sys::open_tree(path, flags)?;
    match sys::set_attr(
        tree.as_fd(),
        attrs | sys::MOUNT_ATTR_IDMAP,
        Some(userns),
        recursive,
    ) {
        Ok(()) => return Ok(tree),
        Err(e) if required => {
            return Err(io::Error::new(
                e.kind(),
                format!("the kernel or the filesystem takes no idmapped mount: {e}"),
            ))
        }
        Err(_) => {}
    }
    // Not idmappable (a device node, proc): a plain copy, whose files the CT's root sees
    // as owned by nobody, as LXC shows them.
    let tree = sys::open_tree(path, flags)?;
    if attrs != 0 {
        sys::set_attr(tree.as_fd(), attrs, None, recursive)?;
    }
    Ok(tree)
}

/// Opens what the member mounts, on the host. `userns` is the pod CT's user namespace.
pub(super) fn plan(
    bundle: &Bundle,
    userns: BorrowedFd<'_>,
    owner: (u32, u32),
) -> Result<Filesystem, MemberError> {
    let spec: &Spec = bundle.spec();
    let rootfs = bundle.rootfs();
    let root = match tree(rootfs, false, 0, userns, true) {
        Ok(tree) => Rootfs::Tree(tree),
        Err(source) => match overlay_options(rootfs) {
            Some(options) => {
                Rootfs::Overlay(Overlay::open(&options, userns, owner).map_err(|source| {
                    MemberError::Rootfs {
                        path: rootfs.to_path_buf(),
                        source,
                    }
                })?)
            }
            None => {
                return Err(MemberError::Rootfs {
                    path: rootfs.to_path_buf(),
                    source,
                })
            }
        },
    };
    let mut mounts = Vec::new();
    let mut dev_tmpfs = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let options = m.options().clone().unwrap_or_default();
        let (mut flags, attrs, data, recursive) = parse_options(&options);
        let dest = m.destination().clone();
        let fstype = m.typ().clone().unwrap_or_default();
        if is_bind(&options) || fstype == "bind" {
            let source = bundle
                .mount_sources()
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| m.source().clone().unwrap_or_default());
            let tree = tree(&source, recursive, attrs, userns, false).map_err(|source_err| {
                MemberError::Bind {
                    field: format!("mounts[{i}].source"),
                    path: source.clone(),
                    source: source_err,
                }
            })?;
            mounts.push(Mount::Bind { dest, tree });
            continue;
        }
        if fstype == "proc" || fstype == "sysfs" {
            // The host's proc and sysfs are nosuid, nodev and noexec: a new mount of them
            // in a user namespace must be at least as restricted.
            flags |= MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        }
        dev_tmpfs |= dest == Path::new("/dev") && fstype == "tmpfs";
        mounts.push(Mount::Fs {
            dest,
            source: m
                .source()
                .as_ref()
                .map(|s| s.display().to_string())
                .unwrap_or_else(|| fstype.clone()),
            fstype,
            flags,
            data,
        });
    }
    let devices = if dev_tmpfs {
        devices(spec, userns)?
    } else {
        Vec::new()
    };
    let linux = spec.linux().as_ref();
    let paths = |list: Option<&Vec<String>>| -> Vec<PathBuf> {
        list.into_iter().flatten().map(PathBuf::from).collect()
    };
    Ok(Filesystem {
        root,
        readonly: spec.root().as_ref().and_then(|r| r.readonly()) == Some(true),
        mounts,
        devices,
        masked: paths(linux.and_then(|l| l.masked_paths().as_ref())),
        readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
        sysctl: linux
            .and_then(|l| l.sysctl().clone())
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

/// The member's root filesystem, opened on the host.
pub(super) enum Rootfs {
    /// The rootfs, idmapped.
    Tree(OwnedFd),
    /// An overlay (the snapshots of containerd and podman) takes no idmapping itself; its
    /// layers do, and the waiter mounts an overlay of them ([`Overlay::mount`]).
    Overlay(Overlay),
}

impl Rootfs {
    pub(super) fn fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Rootfs::Tree(tree) => vec![tree.as_raw_fd()],
            Rootfs::Overlay(o) => o
                .lower
                .iter()
                .chain(o.upper.as_ref().map(|(tree, _, _)| tree))
                .map(|fd| fd.as_raw_fd())
                .collect(),
        }
    }

    /// The rootfs as one tree: the idmapped rootfs, or an overlay of the idmapped layers
    /// mounted in a private mount namespace of the calling process (the waiter), under
    /// `scratch`.
    pub(super) fn tree(&self, scratch: &Path) -> io::Result<OwnedFd> {
        match self {
            Rootfs::Tree(tree) => tree.try_clone(),
            Rootfs::Overlay(overlay) => overlay.mount(scratch),
        }
    }
}

/// An overlay rootfs's layers, idmapped.
pub(super) struct Overlay {
    /// `lowerdir`, top first.
    lower: Vec<OwnedFd>,
    /// The directory holding `upperdir` and `workdir`, and their names in it.
    upper: Option<(OwnedFd, String, String)>,
    /// The overlay's other options (`index=off`, ...).
    options: Vec<String>,
    /// The host uid and gid of the CT's root.
    owner: (u32, u32),
}

/// The super options of the overlay mounted at `path`, if one is.
fn overlay_options(path: &Path) -> Option<Vec<String>> {
    let path = path.canonicalize().ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        let mut r = right.split_whitespace();
        let (fstype, options) = (r.next()?, r.nth(1)?);
        (fstype == "overlay" && Path::new(point) == path)
            .then(|| options.split(',').map(str::to_string).collect())
    })
}

impl Overlay {
    fn open(options: &[String], userns: BorrowedFd<'_>, owner: (u32, u32)) -> io::Result<Overlay> {
        let idmapped = |dir: &Path| tree(dir, false, 0, userns, true);
        let value = |key: &str| {
            options
                .iter()
                .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
        };
        let lower = value("lowerdir")
            .ok_or_else(|| io::Error::other("an overlay without lowerdir"))?
            .split(':')
            .map(|dir| idmapped(Path::new(dir)))
            .collect::<io::Result<Vec<_>>>()?;
        let upper = match (value("upperdir"), value("workdir")) {
            (Some(upper), Some(work)) => {
                let (upper, work) = (Path::new(upper), Path::new(work));
                let parent = upper.parent().filter(|p| work.parent() == Some(*p));
                let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
                match (parent, name(upper), name(work)) {
                    (Some(parent), Some(u), Some(w)) => Some((idmapped(parent)?, u, w)),
                    _ => {
                        return Err(io::Error::other(format!(
                            "the overlay's upperdir {} and workdir {} are not in one directory",
                            upper.display(),
                            work.display()
                        )))
                    }
                }
            }
            _ => None,
        };
        let kept = options
            .iter()
            .filter(|o| {
                !["lowerdir=", "upperdir=", "workdir="]
                    .iter()
                    .any(|k| o.starts_with(k))
                    && !matches!(o.as_str(), "rw" | "ro")
            })
            .cloned()
            .collect();
        Ok(Overlay {
            lower,
            upper,
            options: kept,
            owner,
        })
    }

    /// In a private mount namespace (of the calling process, host root): a tmpfs at
    /// `scratch`, the layers attached below it, the overlay of them mounted there; returns
    /// a detached copy of the overlay.
    fn mount(&self, scratch: &Path) -> io::Result<OwnedFd> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        nix::mount::mount(None::<&str>, "/", None::<&str>, private, None::<&str>)?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        nix::mount::mount(
            Some("tmpfs"),
            scratch,
            Some("tmpfs"),
            flags,
            Some("mode=0755"),
        )?;
        let attach = |name: &str, tree: &OwnedFd| -> io::Result<PathBuf> {
            let dir = scratch.join(name);
            fs::create_dir(&dir)?;
            let target = nix::fcntl::open(
                &dir,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?;
            sys::move_onto(tree.as_fd(), target.as_fd())?;
            Ok(dir)
        };
        let lower = self
            .lower
            .iter()
            .enumerate()
            .map(|(i, tree)| attach(&format!("l{i}"), tree).map(|d| d.display().to_string()))
            .collect::<io::Result<Vec<_>>>()?;
        let mut options = vec![format!("lowerdir={}", lower.join(":"))];
        if let Some((tree, upper, work)) = &self.upper {
            let dir = attach("s", tree)?;
            options.push(format!("upperdir={}", dir.join(upper).display()));
            options.push(format!("workdir={}", dir.join(work).display()));
        }
        options.extend(self.options.iter().cloned());
        let merged = scratch.join("m");
        fs::create_dir(&merged)?;
        // The overlay works on its upper layer with its mounter's credentials: the host's
        // root cannot create files on a mount idmapped to the CT (its uid has no mapping
        // there), the CT's root can. So it is mounted with the CT root's filesystem ids
        // (and every capability effective: the kernel drops the file ones with the fsuid).
        as_owner(self.owner, || {
            nix::mount::mount(
                Some("overlay"),
                &merged,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.join(",").as_str()),
            )
            .map_err(io::Error::from)
        })
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("mounting the overlay of idmapped layers: {e}"),
            )
        })?;
        sys::open_tree(&merged, sys::OPEN_TREE_CLONE)
    }
}

/// Runs `f` with the filesystem uid and gid `owner` and every permitted capability
/// effective, then back to root's.
fn as_owner<T>((uid, gid): (u32, u32), f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a version-3 header and two data structs, as the kernel expects.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain ids; what they allow is checked by the kernel on each access.
    unsafe {
        libc::setfsgid(gid);
        libc::setfsuid(uid);
    }
    let mut raised = data;
    for d in &mut raised {
        d.effective = d.permitted;
    }
    // SAFETY: capset with a version-3 header and two data structs.
    let result = if unsafe { libc::syscall(libc::SYS_capset, &header, raised.as_ptr()) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        f()
    };
    // SAFETY: back to root's filesystem ids, which gives the file capabilities back.
    unsafe {
        libc::setfsuid(0);
        libc::setfsgid(0);
    }
    // SAFETY: capset with the sets read above.
    unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    result
}

/// The default devices and `linux.devices`, bound from the host's nodes of the same path
/// (a CT's root cannot make device nodes).
fn devices(spec: &Spec, userns: BorrowedFd<'_>) -> Result<Vec<(PathBuf, OwnedFd)>, MemberError> {
    let listed = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let paths = DEFAULT_DEVICES
        .iter()
        .map(PathBuf::from)
        .chain(listed.iter().map(|d| d.path().clone()));
    let mut devices: Vec<(PathBuf, OwnedFd)> = Vec::new();
    for path in paths {
        if devices.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let tree = tree(&path, false, 0, userns, false).map_err(|source| MemberError::Bind {
            field: "linux.devices".into(),
            path: path.clone(),
            source,
        })?;
        devices.push((path, tree));
    }
    Ok(devices)
}

/// The file or directory `dest` below `root`, made (with its parents) when missing.
fn ensure(root: BorrowedFd<'_>, dest: &Path, file: bool) -> io::Result<OwnedFd> {
    let path = |flags| sys::open_in_root(root, dest, libc::O_PATH | flags, 0);
    match path(0) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        found => return found,
    }
    let parent = dest.parent().unwrap_or(Path::new("/"));
    let name = dest
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", dest.display())))?;
    let parent = ensure(root, parent, false)?;
    if file {
        nix::fcntl::openat(
            parent.as_fd(),
            name,
            nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )?;
    } else {
        match nix::sys::stat::mkdirat(
            parent.as_fd(),
            name,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    path(0)
}

fn fd_path(fd: &OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn context(what: String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// In the member's process, in its own mount namespace with the current directory where
/// the rootfs goes: attaches the rootfs and the mounts, and pivots into it.
pub(super) fn assemble(fs_plan: &Filesystem, rootfs: BorrowedFd<'_>) -> io::Result<()> {
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| context("making the mounts private".into())(e.into()))?;
    sys::move_onto_cwd(rootfs).map_err(context("attaching the rootfs".into()))?;
    nix::unistd::fchdir(rootfs).map_err(io::Error::from)?;
    let root = sys::open_in_root(rootfs, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    for m in &fs_plan.mounts {
        match m {
            Mount::Bind { dest, tree } => {
                let file = !is_dir_tree(tree);
                let target = ensure(root.as_fd(), dest, file)
                    .map_err(context(format!("making {}", dest.display())))?;
                sys::move_onto(tree.as_fd(), target.as_fd())
                    .map_err(context(format!("binding onto {}", dest.display())))?;
            }
            Mount::Fs {
                dest,
                fstype,
                source,
                flags,
                data,
            } => {
                let target = ensure(root.as_fd(), dest, false)
                    .map_err(context(format!("making {}", dest.display())))?;
                let mounted = nix::mount::mount(
                    Some(source.as_str()),
                    fd_path(&target).as_str(),
                    Some(fstype.as_str()),
                    *flags,
                    (!data.is_empty()).then_some(data.as_str()),
                );
                match mounted {
                    Ok(()) => {}
                    // A cgroup filesystem cannot be mounted from a CT's user namespace on
                    // a host with cgroup v1 hierarchies: the member sees none.
                    Err(_) if fstype == "cgroup" || fstype == "cgroup2" => {}
                    Err(e) => {
                        return Err(context(format!("mounting {fstype} on {}", dest.display()))(
                            e.into(),
                        ))
                    }
                }
            }
        }
    }
    for (path, tree) in &fs_plan.devices {
        let target = ensure(root.as_fd(), path, true)
            .map_err(context(format!("making {}", path.display())))?;
        sys::move_onto(tree.as_fd(), target.as_fd())
            .map_err(context(format!("binding the device {}", path.display())))?;
    }
    if !fs_plan.devices.is_empty() {
        dev_links(root.as_fd());
    }
    sys::pivot_to_cwd().map_err(context("pivot_root into the rootfs".into()))?;
    set_sysctls(&fs_plan.sysctl)?;
    protect(fs_plan)
}

fn is_dir_tree(tree: &OwnedFd) -> bool {
    nix::sys::stat::fstat(tree).is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// The links runtime-spec puts in a container's `/dev`.
fn dev_links(root: BorrowedFd<'_>) {
    let Ok(dev) = sys::open_in_root(root, Path::new("/dev"), libc::O_PATH | libc::O_DIRECTORY, 0)
    else {
        return;
    };
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        let _ = nix::unistd::symlinkat(target, dev.as_fd(), name);
    }
}

/// After the pivot, through the member's own /proc (mounted by the spec), before
/// `linux.readonlyPaths` makes /proc/sys read-only.
fn set_sysctls(sysctl: &[(String, String)]) -> io::Result<()> {
    for (key, value) in sysctl {
        if key.contains("..") || key.starts_with('/') || key.starts_with('.') {
            return Err(io::Error::other(format!(
                "linux.sysctl {key}: not a sysctl name"
            )));
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        fs::write(&path, value).map_err(context(format!("linux.sysctl {key}={value} ({path})")))?;
    }
    Ok(())
}

/// After the pivot: `linux.maskedPaths`, `linux.readonlyPaths` and `root.readonly`.
fn protect(fs_plan: &Filesystem) -> io::Result<()> {
    for path in &fs_plan.readonly_paths {
        let Ok(tree) = sys::open_tree(path, sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE) else {
            continue;
        };
        sys::set_attr(tree.as_fd(), sys::MOUNT_ATTR_RDONLY, None, true)
            .and_then(|()| {
                let target = nix::fcntl::open(
                    path,
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )?;
                sys::move_onto(tree.as_fd(), target.as_fd())
            })
            .map_err(context(format!("linux.readonlyPaths {}", path.display())))?;
    }
    for path in &fs_plan.masked {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        let masked = if meta.is_dir() {
            nix::mount::mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(io::Error::from)
        } else {
            nix::mount::mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)
        };
        masked.map_err(context(format!("linux.maskedPaths {}", path.display())))?;
    }
    if fs_plan.readonly {
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| context("root.readonly".into())(e.into()))?;
    }
    Ok(())
}
