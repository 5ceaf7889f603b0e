//! `root` and the UTS names (`hostname`, `domainname`).

use super::{invalid, unsupported, Builder};
use crate::error::TranslateError;

/// `root.path` as `lxc.rootfs.path`, `root.readonly` and `linux.rootfsPropagation` as
/// `lxc.rootfs.options`.
pub(super) fn root(b: &mut Builder<'_>) -> Result<(), TranslateError> {
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

/// `hostname` as `lxc.uts.name`; a NIS domain name has no key.
pub(super) fn uts_names(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    if let Some(hostname) = b.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        b.push("hostname", "lxc.uts.name", hostname)?;
    }
    if b.spec
        .domainname()
        .as_deref()
        .is_some_and(|d| !d.is_empty())
    {
        return Err(unsupported(
            "domainname",
            "LXC 5.0 has no key for the NIS domain name",
        ));
    }
    Ok(())
}
