//! [`Translation`]: what [`from_oci`](super::from_oci) produced, and the few writes on the
//! host it needs before the start ([`Translation::prepare`]).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use oci_spec::runtime::Hook;
use proxcage_oci::oci_spec;

use crate::config::LxcConfig;

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

/// What [`from_oci`](super::from_oci) produced: the config and what must exist on the host
/// for it.
#[derive(Clone, Debug)]
pub struct Translation {
    pub(super) config: LxcConfig,
    pub(super) files: Vec<HostFile>,
    pub(super) targets: Vec<MountTarget>,
    pub(super) nodes: Vec<DeviceNode>,
    pub(super) hooks: RuntimeHooks,
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
        self.files.iter().try_for_each(write_file)?;
        self.nodes.iter().try_for_each(make_node)?;
        self.targets.iter().try_for_each(make_target)
    }
}

fn write_file(file: &HostFile) -> std::io::Result<()> {
    if let Some(parent) = file.path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = file.path.with_extension("tmp");
    std::fs::write(&tmp, &file.contents)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode))?;
    std::fs::rename(&tmp, &file.path)
}

fn make_node(node: &DeviceNode) -> std::io::Result<()> {
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
    Ok(())
}

fn make_target(target: &MountTarget) -> std::io::Result<()> {
    if std::fs::symlink_metadata(&target.path).is_ok() {
        return Ok(());
    }
    if target.dir {
        return std::fs::create_dir_all(&target.path);
    }
    if let Some(parent) = target.path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Creates of other containers from the same bundle may make it meanwhile.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target.path)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}
