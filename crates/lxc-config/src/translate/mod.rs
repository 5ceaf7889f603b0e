//! [`from_oci`]: an OCI runtime spec made into an LXC configuration, following
//! `reference/oci-to-lxc.md` row by row. What LXC cannot express is an error that names the
//! field; nothing is dropped silently.
//!
//! One module per part of the spec, each adding its keys to a [`Builder`] in the order
//! the config file has them: `root` (the root filesystem and the UTS names),
//! `namespaces`, `process` (with its capabilities, rlimits and user), `mounts`,
//! `devices`, `masked` (masked and read-only paths), `resources` (one module per cgroup
//! controller), `linux` (the rest of the `linux` section) and `hooks`.

mod devices;
mod hooks;
mod linux;
mod masked;
mod mounts;
mod namespaces;
mod paths;
mod process;
mod resources;
mod root;
mod translation;

use std::path::Path;

use oci_spec::runtime::Spec;
use proxcage_oci::oci_spec;

pub use paths::ResolvedPaths;
pub use translation::{DeviceNode, HostFile, MountTarget, RuntimeHooks, Translation};

use crate::config::LxcConfig;
use crate::error::TranslateError;
use crate::mounts::fstab_escape;

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
    root::root(&mut b)?;
    root::uts_names(&mut b)?;
    namespaces::namespaces(&mut b)?;
    process::process(&mut b)?;
    mounts::mounts(&mut b)?;
    devices::devices(&mut b)?;
    masked::masked_and_readonly(&mut b)?;
    resources::resources(&mut b)?;
    linux::rest(&mut b)?;
    let hooks = hooks::hooks(&mut b)?;
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

/// The translation under way: the spec, the host paths, and what has been produced.
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
    /// Appends `key = value`; a value LXC could not read as written is an error on `field`.
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

    /// A file for [`Translation::prepare`] to write.
    fn host_file(&mut self, path: std::path::PathBuf, contents: Vec<u8>, mode: u32) {
        self.files.push(HostFile {
            path,
            contents,
            mode,
        });
    }
}
