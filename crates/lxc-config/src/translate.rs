//! [`from_oci`]: an OCI runtime spec made into an LXC configuration, following
//! `reference/oci-to-lxc.md` row by row. What LXC cannot express is an error that names the
//! field; nothing is dropped silently.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Hook, LinuxDeviceType, LinuxNamespaceType, LinuxPersonalityDomain, Mount, PosixRlimitType, Spec,
};
use proxcage_oci::{oci_spec, Bundle};

use crate::config::LxcConfig;
use crate::error::TranslateError;
use crate::init::{INIT_PATH, PROCESS_FILE_PATH};
use crate::mounts::{fstab_escape, lxc_option, resolve_in_rootfs, size_bytes};
use crate::process::ProcessFile;
use crate::process::CONTROL_SOCKET_PATH;
use crate::seccomp;

/// The host paths a translation needs besides the spec.
#[derive(Clone, Debug)]
pub struct ResolvedPaths {
    rootfs: PathBuf,
    mount_sources: Vec<Option<PathBuf>>,
    files_dir: PathBuf,
    init: bool,
    monitored: bool,
}

impl ResolvedPaths {
    /// Paths from a loaded bundle. `files_dir` is a host directory of the runtime's own
    /// (per container) where [`Translation::prepare`] writes the init, the process file and
    /// the seccomp profile that the config refers to.
    pub fn from_bundle(bundle: &Bundle, files_dir: impl Into<PathBuf>) -> ResolvedPaths {
        ResolvedPaths::new(bundle.rootfs(), bundle.mount_sources().to_vec(), files_dir)
    }

    /// Paths given one by one: the absolute rootfs, each mount's resolved source by its
    /// index in `spec.mounts` (as [`Bundle::mount_sources`]), and the files directory.
    pub fn new(
        rootfs: impl Into<PathBuf>,
        mount_sources: Vec<Option<PathBuf>>,
        files_dir: impl Into<PathBuf>,
    ) -> ResolvedPaths {
        ResolvedPaths {
            rootfs: rootfs.into(),
            mount_sources,
            files_dir: files_dir.into(),
            init: true,
            monitored: false,
        }
    }

    /// With a monitor outside the container: the init reports to it through the files
    /// directory's `run/` subdirectory, bind-mounted at `/.proxcage/run` (see
    /// [`ProcessFile::monitored`](crate::ProcessFile)). The runtime creates the socket and
    /// the FIFO there before the start.
    pub fn monitored(mut self) -> ResolvedPaths {
        self.monitored = true;
        self
    }

    /// Without `proxcage-init`: `process.args` go to `lxc.init.cmd` and `process.env` to
    /// `lxc.environment`, which LXC 5.0 splits on spaces and trims; arguments or values
    /// that would change on the way are refused.
    pub fn without_init(mut self) -> ResolvedPaths {
        self.init = false;
        self
    }

    /// The absolute rootfs.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Where the runtime's files for this container go.
    pub fn files_dir(&self) -> &Path {
        &self.files_dir
    }
}

/// A file the runtime writes on the host before the container starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// A mount target to create in the rootfs before the start (a read-only root cannot get
/// them from LXC's `create=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountTarget {
    /// Absolute host path inside the rootfs.
    pub path: PathBuf,
    pub dir: bool,
}

/// A device node the runtime creates on the host (in the files directory) before the
/// start; the config bind-mounts it onto the container's `linux.devices[].path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub block: bool,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What [`from_oci`] produced: the config and what must exist on the host for it.
#[derive(Clone, Debug)]
pub struct Translation {
    config: LxcConfig,
    files: Vec<HostFile>,
    targets: Vec<MountTarget>,
    nodes: Vec<DeviceNode>,
    hooks: RuntimeHooks,
}

/// The hooks the runtime runs itself, each list in the spec's order. Without a monitor,
/// LXC runs `prestart`, `createRuntime`, `createContainer` and `startContainer` (as
/// `lxc.hook.*` keys) and only `poststart` and `poststop` are here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeHooks {
    /// `prestart` then `createRuntime`: in the runtime namespace, once the container's
    /// namespaces exist and its init waits for `start`.
    pub create_runtime: Vec<Hook>,
    /// `createContainer`: after those, before `create` returns.
    pub create_container: Vec<Hook>,
    /// `startContainer`: inside the container at `start`, before its process runs.
    pub start_container: Vec<Hook>,
    /// `poststart`: in the runtime namespace after the process started, before `start`
    /// returns.
    pub poststart: Vec<Hook>,
    /// `poststop`: in the runtime namespace when the container is deleted.
    pub poststop: Vec<Hook>,
}

impl Translation {
    /// The LXC configuration.
    pub fn config(&self) -> &LxcConfig {
        &self.config
    }

    /// Files the config refers to (init, process file, seccomp profile).
    pub fn files(&self) -> &[HostFile] {
        &self.files
    }

    /// Device nodes to create on the host (`linux.devices`).
    pub fn device_nodes(&self) -> &[DeviceNode] {
        &self.nodes
    }

    /// Mount targets to create in the rootfs.
    pub fn mount_targets(&self) -> &[MountTarget] {
        &self.targets
    }

    /// The hooks the runtime runs itself.
    pub fn runtime_hooks(&self) -> &RuntimeHooks {
        &self.hooks
    }

    /// `hooks.poststart`: LXC has no such hook; the runtime runs them after the start.
    pub fn poststart_hooks(&self) -> &[Hook] {
        &self.hooks.poststart
    }

    /// `hooks.poststop`: LXC's `lxc.hook.post-stop` cannot be given the OCI state on stdin;
    /// the runtime runs them after the container stopped.
    pub fn poststop_hooks(&self) -> &[Hook] {
        &self.hooks.poststop
    }

    /// Writes [`Translation::files`] (creating the files directory) and creates
    /// [`Translation::mount_targets`] that do not exist yet. Existing targets are left as
    /// they are. This and the runtime's start are the only writes a translation causes.
    pub fn prepare(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for file in &self.files {
            if let Some(parent) = file.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = file.path.with_extension("tmp");
            std::fs::write(&tmp, &file.contents)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode))?;
            std::fs::rename(&tmp, &file.path)?;
        }
        for node in &self.nodes {
            use nix::sys::stat::{makedev, mknod, Mode, SFlag};
            if let Some(parent) = node.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::remove_file(&node.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let kind = if node.block {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFCHR
            };
            mknod(
                &node.path,
                kind,
                Mode::from_bits_truncate(node.mode),
                makedev(node.major, node.minor),
            )?;
            // mknod applies the umask; the spec's mode is meant exactly.
            std::fs::set_permissions(&node.path, std::fs::Permissions::from_mode(node.mode))?;
            nix::unistd::chown(
                &node.path,
                Some(nix::unistd::Uid::from_raw(node.uid)),
                Some(nix::unistd::Gid::from_raw(node.gid)),
            )?;
        }
        for target in &self.targets {
            if std::fs::symlink_metadata(&target.path).is_ok() {
                continue;
            }
            if target.dir {
                std::fs::create_dir_all(&target.path)?;
            } else {
                if let Some(parent) = target.path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target.path)?;
            }
        }
        Ok(())
    }
}

/// runc's devices that are always allowed in the device cgroup (libcontainer's
/// `AllowedDevices`): null, zero, full, tty, random, urandom, ptmx, the pty slaves, and
/// `mknod` of any character or block device.
const DEFAULT_ALLOWED_DEVICES: [&str; 10] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

struct Builder<'a> {
    spec: &'a Spec,
    paths: &'a ResolvedPaths,
    config: LxcConfig,
    files: Vec<HostFile>,
    targets: Vec<MountTarget>,
    nodes: Vec<DeviceNode>,
}

fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> TranslateError {
    TranslateError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Builder<'_> {
    fn push(
        &mut self,
        field: &str,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), TranslateError> {
        self.config
            .push(key, value)
            .map_err(|source| TranslateError::Config {
                field: field.into(),
                source,
            })
    }

    /// `lxc.mount.entry` for `target` (relative to the rootfs), recording the target for
    /// [`Translation::prepare`].
    fn mount_entry(
        &mut self,
        field: &str,
        source: &Path,
        target: &Path,
        fstype: &str,
        options: &[String],
        dir: bool,
    ) -> Result<(), TranslateError> {
        let escape = |p: &Path| {
            fstab_escape(p).ok_or_else(|| invalid(field, format!("{} is not UTF-8", p.display())))
        };
        let mut opts = options.to_vec();
        opts.push(if dir { "create=dir" } else { "create=file" }.into());
        let line = format!(
            "{} {} {} {} 0 0",
            escape(source)?,
            escape(target)?,
            fstype,
            opts.join(",")
        );
        self.push(field, "lxc.mount.entry", line)?;
        self.targets.push(MountTarget {
            path: self.paths.rootfs.join(target),
            dir,
        });
        Ok(())
    }
}

/// Translates `spec` into an LXC configuration. `paths` gives the resolved rootfs and mount
/// sources (see [`ResolvedPaths::from_bundle`]). Mount destinations are resolved by reading
/// the rootfs; nothing is written (see [`Translation::prepare`]).
pub fn from_oci(spec: &Spec, paths: &ResolvedPaths) -> Result<Translation, TranslateError> {
    let mut b = Builder {
        spec,
        paths,
        config: LxcConfig::new(),
        files: Vec::new(),
        targets: Vec::new(),
        nodes: Vec::new(),
    };
    refuse_foreign_platforms(spec)?;
    root(&mut b)?;
    if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        b.push("hostname", "lxc.uts.name", hostname)?;
    }
    if spec.domainname().as_deref().is_some_and(|d| !d.is_empty()) {
        return Err(unsupported(
            "domainname",
            "LXC 5.0 has no key for the NIS domain name",
        ));
    }
    namespaces(&mut b)?;
    process(&mut b)?;
    mounts(&mut b)?;
    devices(&mut b)?;
    masked_and_readonly(&mut b)?;
    resources(&mut b)?;
    linux_rest(&mut b)?;
    let hooks = hooks(&mut b)?;
    Ok(Translation {
        config: b.config,
        files: b.files,
        targets: b.targets,
        nodes: b.nodes,
        hooks,
    })
}

fn refuse_foreign_platforms(spec: &Spec) -> Result<(), TranslateError> {
    let sections = [
        ("solaris", spec.solaris().is_some()),
        ("windows", spec.windows().is_some()),
        ("vm", spec.vm().is_some()),
        ("zos", spec.zos().is_some()),
    ];
    if let Some((name, _)) = sections.iter().find(|(_, set)| *set) {
        return Err(unsupported(*name, "an LXC container is a Linux container"));
    }
    Ok(())
}

fn root(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let rootfs = b
        .paths
        .rootfs
        .to_str()
        .ok_or_else(|| invalid("root.path", "the rootfs path is not UTF-8"))?
        .to_string();
    b.push("root.path", "lxc.rootfs.path", rootfs.clone())?;
    // Mount the rootfs where it is on the host, so that `<rootfs>/<path>` in a mount entry
    // means the container's own path (read-only paths are bind mounts onto themselves).
    b.push("root.path", "lxc.rootfs.mount", rootfs)?;
    let mut options = Vec::new();
    if b.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        options.push("ro".to_string());
    }
    if let Some(prop) = b
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    {
        match prop.as_str() {
            "" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => options.push(prop),
            other => {
                return Err(invalid(
                    "linux.rootfsPropagation",
                    format!("{other:?} is not a propagation type"),
                ))
            }
        }
    }
    if !options.is_empty() {
        b.push("root.readonly", "lxc.rootfs.options", options.join(","))?;
    }
    Ok(())
}

fn namespaces(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(linux) = b.spec.linux() else {
        return Err(invalid(
            "linux",
            "a Linux container needs the `linux` section",
        ));
    };
    let all = [
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Time,
    ];
    let name = |t: LinuxNamespaceType| t.to_string();
    let mut clone = Vec::new();
    let mut seen = HashSet::new();
    let mut shared = Vec::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                field,
                format!("{} is listed twice", name(ns.typ())),
            ));
        }
        match ns.path() {
            Some(path) => {
                if ns.typ() == LinuxNamespaceType::Mount {
                    return Err(unsupported(
                        format!("{field}.path"),
                        "LXC always sets up a mount namespace of its own and cannot join one",
                    ));
                }
                let path = path
                    .to_str()
                    .ok_or_else(|| invalid(format!("{field}.path"), "not UTF-8"))?;
                shared.push((ns.typ(), path.to_string(), field));
            }
            None => clone.push(ns.typ()),
        }
    }
    if !seen.contains(&LinuxNamespaceType::Mount) {
        return Err(unsupported(
            "linux.namespaces",
            "without a mount namespace the container would mount on the host; LXC always needs one",
        ));
    }
    // Not `lxc.namespace.keep`: LXC refuses it next to `clone`, and on LXC 5.0.2 keeping
    // the cgroup namespace breaks /dev setup (autodev fails with EOVERFLOW). A namespace
    // the spec leaves out is shared with the caller's instead: LXC opens
    // /proc/self/ns/<ns> in lxc-start, which runs in the caller's namespaces. The cgroup
    // namespace is the exception: LXC creates one whenever the kernel has them, and a new
    // cgroup namespace only hides the host's cgroup paths.
    let names: Vec<_> = clone.iter().map(|t| name(*t)).collect();
    b.push("linux.namespaces", "lxc.namespace.clone", names.join(" "))?;
    for t in all {
        if seen.contains(&t)
            || matches!(
                t,
                LinuxNamespaceType::User | LinuxNamespaceType::Time | LinuxNamespaceType::Cgroup
            )
        {
            continue;
        }
        if t == LinuxNamespaceType::Network {
            // `none` is LXC's way to run in the caller's network namespace.
            b.push("linux.namespaces", "lxc.net.0.type", "none")?;
        } else {
            b.push(
                "linux.namespaces",
                format!("lxc.namespace.share.{}", name(t)),
                format!("/proc/self/ns/{}", name(t)),
            )?;
        }
    }
    for (typ, path, field) in shared {
        b.push(
            &format!("{field}.path"),
            format!("lxc.namespace.share.{}", name(typ)),
            path,
        )?;
    }
    if clone.contains(&LinuxNamespaceType::Network) {
        // A new network namespace with only the loopback, as runc gives.
        b.push("linux.namespaces", "lxc.net.0.type", "empty")?;
    }
    let user_ns = seen.contains(&LinuxNamespaceType::User);
    let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
    let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
    if user_ns
        && clone.contains(&LinuxNamespaceType::User)
        && (uid_maps.is_empty() || gid_maps.is_empty())
    {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if !user_ns && (!uid_maps.is_empty() || !gid_maps.is_empty()) {
        return Err(invalid(
            "linux.uidMappings",
            "id mappings need a user namespace in linux.namespaces",
        ));
    }
    for (kind, maps, field) in [
        ("u", &uid_maps, "linux.uidMappings"),
        ("g", &gid_maps, "linux.gidMappings"),
    ] {
        for (i, m) in maps.iter().enumerate() {
            b.push(
                &format!("{field}[{i}]"),
                "lxc.idmap",
                format!("{kind} {} {} {}", m.container_id(), m.host_id(), m.size()),
            )?;
        }
    }
    Ok(())
}

/// An argument `lxc.init.cmd` passes unchanged: LXC 5.0 splits on spaces, with no quoting.
fn splits_cleanly(arg: &str) -> bool {
    !arg.is_empty()
        && !arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
}

fn process(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(process) = b.spec.process().clone() else {
        return Err(invalid("process", "a container to start needs a process"));
    };
    if process.io_priority().is_some() {
        return Err(unsupported(
            "process.ioPriority",
            "LXC has no key for the I/O priority",
        ));
    }
    if process.scheduler().is_some() {
        return Err(unsupported(
            "process.scheduler",
            "LXC has no key for the scheduling policy",
        ));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(unsupported(
            "process.execCPUAffinity",
            "LXC has no key for the CPU affinity",
        ));
    }
    if process.command_line().is_some() {
        return Err(unsupported(
            "process.commandLine",
            "commandLine is for Windows containers",
        ));
    }
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(invalid("process.args", "there is no command to run"));
    }
    let env = process.env().clone().unwrap_or_default();
    for (i, var) in env.iter().enumerate() {
        if !var.contains('=') {
            return Err(invalid(
                format!("process.env[{i}]"),
                format!("{var:?} is not NAME=VALUE"),
            ));
        }
    }
    let cwd = process
        .cwd()
        .to_str()
        .ok_or_else(|| invalid("process.cwd", "not UTF-8"))?
        .to_string();
    if !cwd.is_empty() && !cwd.starts_with('/') {
        return Err(invalid("process.cwd", format!("{cwd:?} is not absolute")));
    }
    let user = process.user();
    if b.paths.init {
        let file = ProcessFile {
            args: args.clone(),
            env: env.clone(),
            cwd: if cwd.is_empty() {
                "/".into()
            } else {
                cwd.clone()
            },
            umask: user.umask(),
            no_new_privileges: process.no_new_privileges() == Some(true),
            monitored: b.paths.monitored,
            terminal: b.paths.monitored && process.terminal() == Some(true),
            // A monitored init reaches its monitor as root, then becomes the user.
            user: monitored_user(b.paths.monitored, &process),
        };
        let contents = file
            .encode()
            .map_err(|e| invalid("process", e.to_string()))?;
        let init_host = b.paths.files_dir.join("init");
        let process_host = b.paths.files_dir.join("process");
        b.files.push(HostFile {
            path: init_host.clone(),
            contents: crate::init::EXECUTABLE.to_vec(),
            mode: 0o755,
        });
        b.files.push(HostFile {
            path: process_host.clone(),
            contents,
            mode: 0o644,
        });
        b.push("process.args", "lxc.init.cmd", INIT_PATH)?;
        let ro = ["bind".to_string(), "ro".to_string()];
        let init_target = Path::new(INIT_PATH.trim_start_matches('/'));
        let process_target = Path::new(PROCESS_FILE_PATH.trim_start_matches('/'));
        b.mount_entry("process.args", &init_host, init_target, "none", &ro, false)?;
        b.mount_entry(
            "process.args",
            &process_host,
            process_target,
            "none",
            &ro,
            false,
        )?;
        if b.paths.monitored {
            let run_host = b.paths.files_dir.join("run");
            let run_target = Path::new(CONTROL_SOCKET_PATH.trim_start_matches('/'))
                .parent()
                .expect("the control socket is in a directory");
            b.mount_entry("process", &run_host, run_target, "none", &ro, true)?;
        }
    } else {
        if let Some((i, arg)) = args.iter().enumerate().find(|(_, a)| !splits_cleanly(a)) {
            return Err(unsupported(
                format!("process.args[{i}]"),
                format!("{arg:?} would be split or changed by lxc.init.cmd; use proxcage-init"),
            ));
        }
        b.push("process.args", "lxc.init.cmd", args.join(" "))?;
        if user.umask().is_some() {
            return Err(unsupported(
                "process.user.umask",
                "LXC has no umask key; use proxcage-init",
            ));
        }
        if !cwd.is_empty() {
            b.push("process.cwd", "lxc.init.cwd", cwd)?;
        }
        for (i, var) in env.iter().enumerate() {
            b.push(&format!("process.env[{i}]"), "lxc.environment", var.clone())?;
        }
    }
    if !b.paths.monitored {
        b.push("process.user.uid", "lxc.init.uid", user.uid().to_string())?;
        b.push("process.user.gid", "lxc.init.gid", user.gid().to_string())?;
    }
    let groups = user.additional_gids().as_ref().filter(|g| !g.is_empty());
    if let Some(groups) = groups.filter(|_| !b.paths.monitored) {
        let list: Vec<_> = groups.iter().map(u32::to_string).collect();
        b.push(
            "process.user.additionalGids",
            "lxc.init.groups",
            list.join(","),
        )?;
    }
    capabilities(b, &process)?;
    let mut seen = HashSet::new();
    for (i, limit) in process.rlimits().iter().flatten().enumerate() {
        let field = format!("process.rlimits[{i}]");
        if !seen.insert(rlimit_name(limit.typ())) {
            return Err(invalid(field, format!("{:?} is set twice", limit.typ())));
        }
        if limit.soft() > limit.hard() {
            return Err(invalid(field, "soft is above hard"));
        }
        let value = |v: u64| {
            if v == u64::MAX {
                "unlimited".to_string()
            } else {
                v.to_string()
            }
        };
        b.push(
            &field,
            format!("lxc.prlimit.{}", rlimit_name(limit.typ())),
            format!("{}:{}", value(limit.soft()), value(limit.hard())),
        )?;
    }
    // With the init, no_new_privs is its job (the process file says so): LXC's key would
    // set it before the init runs just the same, but Proxmox drops that key from a CT.
    if process.no_new_privileges() == Some(true) && !b.paths.init {
        b.push("process.noNewPrivileges", "lxc.no_new_privs", "1")?;
    }
    let apparmor = process.apparmor_profile().clone().unwrap_or_default();
    b.push(
        "process.apparmorProfile",
        "lxc.apparmor.profile",
        if apparmor.is_empty() {
            "unconfined".to_string()
        } else {
            apparmor
        },
    )?;
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        b.push("process.selinuxLabel", "lxc.selinux.context", label)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        b.push(
            "process.oomScoreAdj",
            "lxc.proc.oom_score_adj",
            adj.to_string(),
        )?;
    }
    if process.terminal() != Some(true) || b.paths.monitored {
        b.push("process.terminal", "lxc.console.path", "none")?;
    }
    Ok(())
}

fn rlimit_name(t: PosixRlimitType) -> &'static str {
    match t {
        PosixRlimitType::RlimitCpu => "cpu",
        PosixRlimitType::RlimitFsize => "fsize",
        PosixRlimitType::RlimitData => "data",
        PosixRlimitType::RlimitStack => "stack",
        PosixRlimitType::RlimitCore => "core",
        PosixRlimitType::RlimitRss => "rss",
        PosixRlimitType::RlimitNproc => "nproc",
        PosixRlimitType::RlimitNofile => "nofile",
        PosixRlimitType::RlimitMemlock => "memlock",
        PosixRlimitType::RlimitAs => "as",
        PosixRlimitType::RlimitLocks => "locks",
        PosixRlimitType::RlimitSigpending => "sigpending",
        PosixRlimitType::RlimitMsgqueue => "msgqueue",
        PosixRlimitType::RlimitNice => "nice",
        PosixRlimitType::RlimitRtprio => "rtprio",
        PosixRlimitType::RlimitRttime => "rttime",
    }
}

/// `lxc.cap.keep` from the bounding set. LXC drops everything else from the bounding set
/// and execs the init; root then has exactly the bounding set as effective and permitted,
/// and any other user has none. Sets that ask for something else are refused.
fn capabilities(
    b: &mut Builder<'_>,
    process: &oci_spec::runtime::Process,
) -> Result<(), TranslateError> {
    let Some(caps) = process.capabilities() else {
        // No capabilities section: runc leaves the capabilities as they are. LXC's default
        // keeps every capability too.
        return Ok(());
    };
    let names = |set: &Option<oci_spec::runtime::Capabilities>| -> BTreeSet<String> {
        set.iter()
            .flatten()
            .map(|c| c.to_string().to_ascii_lowercase())
            .collect()
    };
    let bounding = names(caps.bounding());
    let root = process.user().uid() == 0;
    for (set, field) in [
        (caps.effective(), "effective"),
        (caps.permitted(), "permitted"),
        (caps.ambient(), "ambient"),
    ] {
        let got = names(set);
        let expressible = if root {
            set.is_none() || got == bounding || (field == "ambient" && got.is_subset(&bounding))
        } else if b.paths.monitored && field != "ambient" {
            // The init becomes the user itself, as runc does: a non-root process keeps no
            // effective or permitted capability across its exec (only ambient ones would),
            // so these sets change nothing, with runc as here.
            true
        } else {
            got.is_empty()
        };
        if !expressible {
            return Err(unsupported(
                format!("process.capabilities.{field}"),
                if root {
                    "LXC gives a root process every capability of the bounding set (lxc.cap.keep); a different set is not expressible".to_string()
                } else {
                    "LXC drops every capability of a non-root process and has no ambient capabilities".to_string()
                },
            ));
        }
    }
    if !names(caps.inheritable()).is_empty() {
        return Err(unsupported(
            "process.capabilities.inheritable",
            "LXC has no key for inheritable capabilities",
        ));
    }
    // A monitored init switches users itself: it keeps what that takes, and drops it from
    // its bounding set before the switch (see `monitored_user`).
    let mut bounding = bounding;
    if monitored_user(b.paths.monitored, process).is_some() {
        bounding.extend(USER_SWITCH_CAPS.iter().map(|(name, _)| name.to_string()));
    }
    let keep = if bounding.is_empty() {
        "none".to_string()
    } else {
        bounding.into_iter().collect::<Vec<_>>().join(" ")
    };
    b.push("process.capabilities.bounding", "lxc.cap.keep", keep)
}

/// What a user switch takes: CAP_SETGID (6), CAP_SETUID (7) and, to drop them from the
/// bounding set afterwards, CAP_SETPCAP (8), last.
const USER_SWITCH_CAPS: [(&str, u32); 3] = [("setgid", 6), ("setuid", 7), ("setpcap", 8)];

/// The user a monitored init becomes: none for root with no additional groups (it stays
/// root); otherwise the ids, and the user-switch capabilities the spec's bounding set
/// lacks, which the init drops before it switches.
fn monitored_user(
    monitored: bool,
    process: &oci_spec::runtime::Process,
) -> Option<crate::process::User> {
    let user = process.user();
    let groups = user.additional_gids().clone().unwrap_or_default();
    if !monitored || (user.uid() == 0 && user.gid() == 0 && groups.is_empty()) {
        return None;
    }
    let bounding: BTreeSet<String> = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone())
        .iter()
        .flatten()
        .map(|c| c.to_string().to_ascii_lowercase())
        .collect();
    let unrestricted = process
        .capabilities()
        .as_ref()
        .is_none_or(|c| c.bounding().is_none());
    let drop_bounding = USER_SWITCH_CAPS
        .iter()
        .filter(|(name, _)| !unrestricted && !bounding.contains(*name))
        .map(|(_, number)| *number)
        .collect();
    Some(crate::process::User {
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: groups,
        drop_bounding,
    })
}

/// The mounts of a runc spec that LXC provides itself, better than with entries.
enum Standard {
    Proc,
    Sys(bool),
    Cgroup(bool),
    Dev(Option<u64>),
    DevPts,
}

fn standard_mount(mount: &Mount, field: &str) -> Result<Option<Standard>, TranslateError> {
    let fstype = mount.typ().as_deref().unwrap_or("");
    let options = mount.options().clone().unwrap_or_default();
    let ro = options.iter().any(|o| o == "ro");
    let dest = mount.destination().to_str().unwrap_or("");
    Ok(match (dest.trim_end_matches('/'), fstype) {
        ("/proc", "proc") => {
            if ro {
                return Err(unsupported(
                    format!("{field}.options"),
                    "LXC mounts /proc read-write (read-only parts through readonlyPaths)",
                ));
            }
            Some(Standard::Proc)
        }
        ("/sys", "sysfs") => Some(Standard::Sys(ro)),
        ("/sys/fs/cgroup", "cgroup" | "cgroup2") => Some(Standard::Cgroup(ro)),
        ("/dev", "tmpfs") => {
            let size = options.iter().find_map(|o| o.strip_prefix("size="));
            let bytes = match size {
                None => None,
                Some(s) => Some(size_bytes(s).ok_or_else(|| {
                    unsupported(
                        format!("{field}.options"),
                        format!("size={s}: lxc.autodev.tmpfs.size takes bytes"),
                    )
                })?),
            };
            Some(Standard::Dev(bytes))
        }
        ("/dev/pts", "devpts") => Some(Standard::DevPts),
        _ => None,
    })
}

fn mounts(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let mounts = b.spec.mounts().clone().unwrap_or_default();
    let mut auto = Vec::new();
    let mut autodev = false;
    for (i, mount) in mounts.iter().enumerate() {
        let field = format!("mounts[{i}]");
        if mount.uid_mappings().is_some() || mount.gid_mappings().is_some() {
            return Err(unsupported(
                format!("{field}.uidMappings"),
                "LXC 5.0 has no id-mapped mount entries",
            ));
        }
        match standard_mount(mount, &field)? {
            Some(Standard::Proc) => auto.push("proc:rw"),
            Some(Standard::Sys(ro)) => auto.push(if ro { "sys:ro" } else { "sys:rw" }),
            Some(Standard::Cgroup(ro)) => auto.push(if ro {
                "cgroup:ro:force"
            } else {
                "cgroup:rw:force"
            }),
            Some(Standard::Dev(size)) => {
                autodev = true;
                if let Some(size) = size {
                    b.push(
                        &format!("{field}.options"),
                        "lxc.autodev.tmpfs.size",
                        size.to_string(),
                    )?;
                }
            }
            Some(Standard::DevPts) => b.push(&field, "lxc.pty.max", "1024")?,
            None => mount_entry(b, i, mount, &field)?,
        }
    }
    if !auto.is_empty() {
        b.push("mounts", "lxc.mount.auto", auto.join(" "))?;
    }
    b.push("mounts", "lxc.autodev", if autodev { "1" } else { "0" })?;
    // Entries must come after lxc.mount.auto in the file only for readers; LXC applies
    // auto mounts first regardless. Move the key next to the other mount keys anyway.
    Ok(())
}

fn mount_entry(
    b: &mut Builder<'_>,
    i: usize,
    mount: &Mount,
    field: &str,
) -> Result<(), TranslateError> {
    let mut fstype = mount.typ().clone().unwrap_or_else(|| "none".into());
    let options = mount.options().clone().unwrap_or_default();
    let is_bind = fstype == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
    if fstype == "cgroup" {
        fstype = "cgroup2".into();
    }
    if is_bind {
        fstype = "none".into();
    }
    let target = resolve_in_rootfs(
        &b.paths.rootfs,
        mount.destination(),
        &format!("{field}.destination"),
    )?;
    let mut lxc_options = Vec::new();
    if is_bind && !options.iter().any(|o| o == "bind" || o == "rbind") {
        lxc_options.push("bind".to_string());
    }
    for (j, option) in options.iter().enumerate() {
        if option == "tmpcopyup" {
            // Copying the directory's content into the new tmpfs is a no-op when there is
            // nothing to copy; otherwise LXC cannot do it.
            let host = b.paths.rootfs.join(&target);
            let empty = std::fs::read_dir(&host)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true);
            if !empty {
                return Err(unsupported(
                    format!("{field}.options[{j}]"),
                    format!(
                        "tmpcopyup: {} has content to copy into the tmpfs, which LXC cannot do",
                        mount.destination().display()
                    ),
                ));
            }
            continue;
        }
        match lxc_option(&fstype, option) {
            Ok(Some(o)) => lxc_options.push(o),
            Ok(None) => {}
            Err(reason) => return Err(unsupported(format!("{field}.options[{j}]"), reason)),
        }
    }
    let source = match b.paths.mount_sources.get(i).cloned().flatten() {
        Some(s) => s,
        None => mount
            .source()
            .clone()
            .unwrap_or_else(|| PathBuf::from(&fstype)),
    };
    let dir = if is_bind {
        match std::fs::metadata(&source) {
            Ok(meta) => meta.is_dir(),
            Err(err) => {
                return Err(TranslateError::Rootfs {
                    field: format!("{field}.source"),
                    path: source,
                    source: err,
                })
            }
        }
    } else {
        true
    };
    // Note: LXC 5.0.2 applies nosuid/nodev/noexec to a bind mount only when it is
    // read-only ("Mountflags already were ..., skipping remount"); a read-write bind keeps
    // the source's flags. The options are written anyway: LXC 6 applies them.
    b.mount_entry(field, &source, &target, &fstype, &lxc_options, dir)
}

fn devices(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let devices = b
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for (i, dev) in devices.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let kind = match dev.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => "char",
            LinuxDeviceType::B => "block",
            LinuxDeviceType::P => {
                return Err(unsupported(
                    format!("{field}.type"),
                    "LXC cannot create a FIFO in the container's /dev",
                ))
            }
            LinuxDeviceType::A => {
                return Err(invalid(format!("{field}.type"), "`a` is not a device type"))
            }
        };
        let (Ok(major), Ok(minor)) = (u64::try_from(dev.major()), u64::try_from(dev.minor()))
        else {
            return Err(invalid(
                format!("{field}.major"),
                "a device number is not negative",
            ));
        };
        // The node is made by prepare() in the files directory and bind-mounted: it needs
        // no udev-style /dev/char on the host, and it gets the spec's mode and owner.
        let source = b.paths.files_dir.join("dev").join(i.to_string());
        b.nodes.push(DeviceNode {
            path: source.clone(),
            block: kind == "block",
            major,
            minor,
            mode: dev.file_mode().unwrap_or(0o666) & 0o7777,
            uid: dev.uid().unwrap_or(0),
            gid: dev.gid().unwrap_or(0),
        });
        let dest = dev.path();
        if !dest.starts_with("/dev/") {
            return Err(invalid(
                format!("{field}.path"),
                format!("{} is not under /dev", dest.display()),
            ));
        }
        let target = resolve_in_rootfs(&b.paths.rootfs, dest, &format!("{field}.path"))?;
        b.mount_entry(
            &field,
            &source,
            &target,
            "none",
            &["bind".to_string()],
            false,
        )?;
        let letter = if kind == "char" { "c" } else { "b" };
        b.push(
            &field,
            "lxc.cgroup2.devices.allow",
            format!("{letter} {}:{} rwm", dev.major(), dev.minor()),
        )?;
    }
    Ok(())
}

/// Directories among the kernel paths that runtimes mask or make read-only, so that the
/// translation does not depend on which of them the host's kernel has.
const KERNEL_DIRS: [&str; 9] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/scsi",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Files among the kernel paths that runc's default spec masks or makes read-only: like
/// [`KERNEL_DIRS`], known without a look at the host (a stat in /proc costs more than the
/// rest of the translation).
const KERNEL_FILES: [&str; 7] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/sysrq-trigger",
];

/// Resolves masked and read-only paths in the rootfs. Below /proc and /sys the kernel's
/// filesystems are mounted by then: only the mount point is looked up in the rootfs (it
/// may be a link), once per translation; the rest is the kernel's and kept as written.
#[derive(Default)]
struct MaskedPaths {
    mount_points: Vec<(&'static str, PathBuf)>,
}

impl MaskedPaths {
    fn resolve(
        &mut self,
        rootfs: &Path,
        path: &Path,
        field: &str,
    ) -> Result<PathBuf, TranslateError> {
        for top in ["/proc", "/sys"] {
            let Ok(rest) = path.strip_prefix(top) else {
                continue;
            };
            let plain = rest
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain || rest.as_os_str().is_empty() {
                break;
            }
            let mount_point = match self.mount_points.iter().find(|(t, _)| *t == top) {
                Some((_, resolved)) => resolved.clone(),
                None => {
                    let resolved = resolve_in_rootfs(rootfs, Path::new(top), field)?;
                    self.mount_points.push((top, resolved.clone()));
                    resolved
                }
            };
            return Ok(mount_point.join(rest));
        }
        resolve_in_rootfs(rootfs, path, field)
    }
}

/// Whether `path` (absolute, in the container) is a directory. /proc and /sys come from
/// the kernel, not the rootfs: known directories, else the host's own, else a file (the
/// entry is `optional`, so LXC skips what the kernel lacks). Elsewhere the rootfs decides;
/// `None` when the path is not in it: there is nothing to mask, as runc ignores it too.
fn is_dir_in_container(rootfs: &Path, path: &Path) -> Option<bool> {
    if path.starts_with("/proc") || path.starts_with("/sys") {
        if KERNEL_DIRS.iter().any(|d| Path::new(d) == path) {
            return Some(true);
        }
        if KERNEL_FILES.iter().any(|f| Path::new(f) == path) {
            return Some(false);
        }
        return Some(std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false));
    }
    let host = rootfs.join(path.strip_prefix("/").unwrap_or(path));
    std::fs::metadata(host).ok().map(|m| m.is_dir())
}

fn masked_and_readonly(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(linux) = b.spec.linux().clone() else {
        return Ok(());
    };
    let mut masked = MaskedPaths::default();
    for (i, path) in linux.masked_paths().iter().flatten().enumerate() {
        let field = format!("linux.maskedPaths[{i}]");
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(invalid(field, format!("{path:?} is not absolute")));
        }
        let target = masked.resolve(&b.paths.rootfs, p, &field)?;
        let Some(dir) = is_dir_in_container(&b.paths.rootfs, p) else {
            continue;
        };
        let escaped = fstab_escape(&target).ok_or_else(|| invalid(&field, "not UTF-8"))?;
        let line = if dir {
            format!("tmpfs {escaped} tmpfs ro,optional 0 0")
        } else {
            format!("/dev/null {escaped} none bind,optional 0 0")
        };
        b.push(&field, "lxc.mount.entry", line)?;
    }
    let rootfs = b.paths.rootfs.clone();
    for (i, path) in linux.readonly_paths().iter().flatten().enumerate() {
        let field = format!("linux.readonlyPaths[{i}]");
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(invalid(field, format!("{path:?} is not absolute")));
        }
        let target = masked.resolve(&rootfs, p, &field)?;
        if is_dir_in_container(&rootfs, p).is_none() {
            continue;
        }
        let escaped = fstab_escape(&target).ok_or_else(|| invalid(&field, "not UTF-8"))?;
        let source =
            fstab_escape(&rootfs.join(&target)).ok_or_else(|| invalid(&field, "not UTF-8"))?;
        b.push(
            &field,
            "lxc.mount.entry",
            format!("{source} {escaped} none bind,ro,optional 0 0"),
        )?;
    }
    Ok(())
}

fn resources(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(linux) = b.spec.linux().clone() else {
        return Ok(());
    };
    if let Some(path) = linux.cgroups_path() {
        let text = path
            .to_str()
            .ok_or_else(|| invalid("linux.cgroupsPath", "not UTF-8"))?;
        if text.contains(':') && !text.starts_with('/') {
            return Err(unsupported(
                "linux.cgroupsPath",
                format!(
                    "{text:?} is a systemd slice:prefix:name path; LXC takes a cgroup directory"
                ),
            ));
        }
        let dir = text.trim_matches('/');
        if dir.split('/').any(|c| c == "..") {
            return Err(invalid(
                "linux.cgroupsPath",
                format!("{text:?} contains `..`"),
            ));
        }
        if !dir.is_empty() {
            b.push("linux.cgroupsPath", "lxc.cgroup.dir", dir)?;
        }
    }
    let Some(res) = linux.resources().clone() else {
        return Ok(());
    };
    let cg = |k: &str| format!("lxc.cgroup2.{k}");
    let devs = res.devices().clone().unwrap_or_default();
    for (i, d) in devs.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let typ = d.typ().unwrap_or(LinuxDeviceType::A);
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(invalid(
                format!("{field}.access"),
                format!("{access:?} is not a combination of r, w, m"),
            ));
        }
        let key = cg(if d.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        });
        let num = |n: Option<i64>| {
            n.filter(|n| *n >= 0)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "*".into())
        };
        let value = match typ {
            LinuxDeviceType::A
                if d.major().is_none() && d.minor().is_none() && access.len() == 3 =>
            {
                "a".to_string()
            }
            LinuxDeviceType::A | LinuxDeviceType::C | LinuxDeviceType::B => {
                format!(
                    "{} {}:{} {access}",
                    typ.as_str(),
                    num(d.major()),
                    num(d.minor())
                )
            }
            _ => {
                return Err(invalid(
                    format!("{field}.type"),
                    "the device cgroup knows a, c and b",
                ))
            }
        };
        b.push(&field, key, value)?;
    }
    if !devs.is_empty() {
        for allowed in DEFAULT_ALLOWED_DEVICES {
            b.push("linux.resources.devices", cg("devices.allow"), allowed)?;
        }
    }
    if let Some(mem) = res.memory() {
        let f = "linux.resources.memory";
        let max = |v: i64| {
            if v < 0 {
                "max".to_string()
            } else {
                v.to_string()
            }
        };
        #[allow(deprecated)]
        let kernel = mem.kernel();
        for (name, set) in [
            ("kernel", kernel.is_some()),
            ("kernelTCP", mem.kernel_tcp().is_some()),
            ("swappiness", mem.swappiness().is_some()),
            ("disableOOMKiller", mem.disable_oom_killer() == Some(true)),
        ] {
            if set {
                return Err(unsupported(
                    format!("{f}.{name}"),
                    "cgroup v2 has no such control",
                ));
            }
        }
        if let Some(limit) = mem.limit() {
            b.push(&format!("{f}.limit"), cg("memory.max"), max(limit))?;
        }
        if let Some(res) = mem.reservation() {
            b.push(&format!("{f}.reservation"), cg("memory.low"), max(res))?;
        }
        if let Some(swap) = mem.swap() {
            // OCI's swap is memory + swap; cgroup v2's memory.swap.max is swap alone.
            let value = match (swap, mem.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => {
                    if s < l {
                        return Err(invalid(
                            format!("{f}.swap"),
                            "memory+swap is below the memory limit",
                        ));
                    }
                    (s - l).to_string()
                }
                _ => {
                    return Err(invalid(
                        format!("{f}.swap"),
                        "a swap limit needs a memory limit (swap is memory+swap)",
                    ))
                }
            };
            b.push(&format!("{f}.swap"), cg("memory.swap.max"), value)?;
        }
    }
    if let Some(cpu) = res.cpu() {
        let f = "linux.resources.cpu";
        if cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some() {
            return Err(unsupported(
                format!("{f}.realtimeRuntime"),
                "cgroup v2 has no real-time CPU budget",
            ));
        }
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            let weight = 1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142;
            b.push(&format!("{f}.shares"), cg("cpu.weight"), weight.to_string())?;
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            let quota = match cpu.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            let period = cpu.period().unwrap_or(100_000);
            b.push(
                &format!("{f}.quota"),
                cg("cpu.max"),
                format!("{quota} {period}"),
            )?;
        }
        if let Some(burst) = cpu.burst() {
            b.push(
                &format!("{f}.burst"),
                cg("cpu.max.burst"),
                burst.to_string(),
            )?;
        }
        if let Some(idle) = cpu.idle() {
            b.push(&format!("{f}.idle"), cg("cpu.idle"), idle.to_string())?;
        }
        if let Some(cpus) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
            b.push(&format!("{f}.cpus"), cg("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
            b.push(&format!("{f}.mems"), cg("cpuset.mems"), mems)?;
        }
    }
    if let Some(pids) = res.pids() {
        let limit = pids.limit();
        b.push(
            "linux.resources.pids.limit",
            cg("pids.max"),
            if limit <= 0 {
                "max".to_string()
            } else {
                limit.to_string()
            },
        )?;
    }
    if let Some(io) = res.block_io() {
        let f = "linux.resources.blockIO";
        // blkio weight 10..=1000 to io.weight 1..=10000, as crun and runc convert it.
        let convert = |w: u16| 1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990;
        if io.leaf_weight().is_some() {
            return Err(unsupported(
                format!("{f}.leafWeight"),
                "cgroup v2 has no leaf weight",
            ));
        }
        if let Some(w) = io.weight() {
            b.push(
                &format!("{f}.weight"),
                cg("io.weight"),
                convert(w).to_string(),
            )?;
        }
        for (i, d) in io.weight_device().iter().flatten().enumerate() {
            if d.leaf_weight().is_some() {
                return Err(unsupported(
                    format!("{f}.weightDevice[{i}].leafWeight"),
                    "cgroup v2 has no leaf weight",
                ));
            }
            if let Some(w) = d.weight() {
                b.push(
                    &format!("{f}.weightDevice[{i}]"),
                    cg("io.weight"),
                    format!("{}:{} {}", d.major(), d.minor(), convert(w)),
                )?;
            }
        }
        for (name, list, key) in [
            (
                "throttleReadBpsDevice",
                io.throttle_read_bps_device(),
                "rbps",
            ),
            (
                "throttleWriteBpsDevice",
                io.throttle_write_bps_device(),
                "wbps",
            ),
            (
                "throttleReadIOPSDevice",
                io.throttle_read_iops_device(),
                "riops",
            ),
            (
                "throttleWriteIOPSDevice",
                io.throttle_write_iops_device(),
                "wiops",
            ),
        ] {
            for (i, d) in list.iter().flatten().enumerate() {
                b.push(
                    &format!("{f}.{name}[{i}]"),
                    cg("io.max"),
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                )?;
            }
        }
    }
    for (i, h) in res.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let size = h.page_size();
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(
                format!("{field}.pageSize"),
                format!("{size:?} is not a page size like 2MB"),
            ));
        }
        let limit = if h.limit() < 0 {
            "max".to_string()
        } else {
            h.limit().to_string()
        };
        b.push(&field, cg(&format!("hugetlb.{size}.max")), limit)?;
    }
    if let Some(net) = res.network() {
        if net.class_id().is_some() || net.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(unsupported(
                "linux.resources.network",
                "net_cls and net_prio exist only in cgroup v1",
            ));
        }
    }
    let mut rdma: Vec<_> = res.rdma().clone().unwrap_or_default().into_iter().collect();
    rdma.sort_by(|a, b| a.0.cmp(&b.0));
    for (device, limits) in rdma {
        let mut parts = vec![device.clone()];
        if let Some(h) = limits.hca_handles() {
            parts.push(format!("hca_handle={h}"));
        }
        if let Some(o) = limits.hca_objects() {
            parts.push(format!("hca_object={o}"));
        }
        b.push(
            &format!("linux.resources.rdma.{device}"),
            cg("rdma.max"),
            parts.join(" "),
        )?;
    }
    let mut unified: Vec<_> = res
        .unified()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    unified.sort();
    for (key, value) in unified {
        let field = format!("linux.resources.unified.{key}");
        if key.is_empty() || key.contains('/') || !key.contains('.') {
            return Err(invalid(
                field,
                "not a cgroup v2 interface file name like memory.high",
            ));
        }
        b.push(&field, cg(&key), value)?;
    }
    Ok(())
}

fn linux_rest(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(linux) = b.spec.linux().clone() else {
        return Ok(());
    };
    let mut sysctl: Vec<_> = linux
        .sysctl()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    sysctl.sort();
    for (key, value) in sysctl {
        b.push(
            &format!("linux.sysctl.{key}"),
            format!("lxc.sysctl.{key}"),
            value,
        )?;
    }
    if let Some(sec) = linux.seccomp() {
        let text = seccomp::profile(sec)?;
        let path = b.paths.files_dir.join("seccomp");
        let value = path
            .to_str()
            .ok_or_else(|| invalid("linux.seccomp", "the files directory is not UTF-8"))?
            .to_string();
        b.files.push(HostFile {
            path,
            contents: text.into_bytes(),
            mode: 0o644,
        });
        b.push("linux.seccomp", "lxc.seccomp.profile", value)?;
    }
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(unsupported(
            "linux.mountLabel",
            "LXC 5.0 has no key for the mount SELinux label",
        ));
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported(
            "linux.intelRdt",
            "LXC has no Intel RDT support",
        ));
    }
    if linux.memory_policy().is_some() {
        return Err(unsupported(
            "linux.memoryPolicy",
            "LXC has no NUMA memory policy key",
        ));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(unsupported(
            "linux.netDevices",
            "moving host interfaces in is done by pct netN, not this translation",
        ));
    }
    if let Some(p) = linux.personality() {
        if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(unsupported(
                "linux.personality.flags",
                "LXC sets only the domain (lxc.arch)",
            ));
        }
        let arch = match p.domain() {
            LinuxPersonalityDomain::PerLinux => "linux64",
            LinuxPersonalityDomain::PerLinux32 => "linux32",
        };
        b.push("linux.personality.domain", "lxc.arch", arch)?;
    }
    let mut offsets: Vec<_> = linux
        .time_offsets()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    offsets.sort_by(|a, b| a.0.cmp(&b.0));
    for (clock, offset) in offsets {
        let field = format!("linux.timeOffsets.{clock}");
        if clock != "boottime" && clock != "monotonic" {
            return Err(invalid(
                field,
                "the clocks with offsets are boottime and monotonic",
            ));
        }
        let key = if clock == "boottime" {
            "lxc.time.offset.boot"
        } else {
            "lxc.time.offset.monotonic"
        };
        let ns = i128::from(offset.secs().unwrap_or(0)) * 1_000_000_000
            + i128::from(offset.nanosecs().unwrap_or(0));
        b.push(&field, key, format!("{ns}ns"))?;
    }
    Ok(())
}

/// A shell word for `sh -c`: LXC runs hooks through `/bin/sh -c`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn hooks(b: &mut Builder<'_>) -> Result<RuntimeHooks, TranslateError> {
    let Some(hooks) = b.spec.hooks().clone() else {
        return Ok(RuntimeHooks::default());
    };
    #[allow(deprecated)]
    let prestart = hooks.prestart().clone();
    if b.paths.monitored {
        for (name, list) in [
            ("prestart", &prestart),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ] {
            for (i, hook) in list.iter().flatten().enumerate() {
                if hook.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(
                        format!("hooks.{name}[{i}].timeout"),
                        "must be positive",
                    ));
                }
            }
        }
        let list = |l: &Option<Vec<Hook>>| l.clone().unwrap_or_default();
        return Ok(RuntimeHooks {
            create_runtime: [list(&prestart), list(hooks.create_runtime())].concat(),
            create_container: list(hooks.create_container()),
            start_container: list(hooks.start_container()),
            poststart: list(hooks.poststart()),
            poststop: list(hooks.poststop()),
        });
    }
    let lxc_hooks = [
        ("prestart", prestart, "lxc.hook.pre-mount"),
        (
            "createRuntime",
            hooks.create_runtime().clone(),
            "lxc.hook.pre-mount",
        ),
        (
            "createContainer",
            hooks.create_container().clone(),
            "lxc.hook.mount",
        ),
        (
            "startContainer",
            hooks.start_container().clone(),
            "lxc.hook.start",
        ),
    ];
    let mut any = false;
    for (name, list, key) in lxc_hooks {
        for (i, hook) in list.iter().flatten().enumerate() {
            let field = format!("hooks.{name}[{i}]");
            let path = hook
                .path()
                .to_str()
                .ok_or_else(|| invalid(format!("{field}.path"), "not UTF-8"))?;
            let args = hook.args().clone().unwrap_or_default();
            if let Some(arg0) = args.first() {
                let base = Path::new(path)
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or("");
                if arg0 != path && arg0 != base {
                    return Err(unsupported(
                        format!("{field}.args[0]"),
                        format!("LXC runs hooks through sh, which cannot set argv[0] to {arg0:?}; use the path or its file name"),
                    ));
                }
            }
            if key == "lxc.hook.start" {
                // LXC checks that a start hook's value is a file in the container and
                // execs it with no arguments: only a bare path is expressible.
                if args.len() > 1 || hook.env().is_some() || hook.timeout().is_some() {
                    return Err(unsupported(
                        field,
                        "LXC runs a start hook as a bare path inside the container: no arguments, env or timeout",
                    ));
                }
                if path.contains(char::is_whitespace) {
                    return Err(unsupported(
                        format!("{field}.path"),
                        "LXC start hooks cannot have blanks in their path",
                    ));
                }
                b.push(&field, key, path)?;
                any = true;
                continue;
            }
            let mut words = Vec::new();
            if let Some(t) = hook.timeout() {
                if t <= 0 {
                    return Err(invalid(format!("{field}.timeout"), "must be positive"));
                }
                words.push(format!("timeout {t}"));
            }
            if let Some(env) = hook.env() {
                words.push("env -i".into());
                words.extend(env.iter().map(|e| shell_quote(e)));
            }
            words.push(shell_quote(path));
            words.extend(args.iter().skip(1).map(|a| shell_quote(a)));
            // LXC itself runs `exec <value>` through /bin/sh -c.
            b.push(&field, key, words.join(" "))?;
            any = true;
        }
    }
    if any {
        b.push("hooks", "lxc.hook.version", "1")?;
    }
    Ok(RuntimeHooks {
        poststart: hooks.poststart().clone().unwrap_or_default(),
        poststop: hooks.poststop().clone().unwrap_or_default(),
        ..RuntimeHooks::default()
    })
}
