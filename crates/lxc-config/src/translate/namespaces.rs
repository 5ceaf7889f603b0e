//! `linux.namespaces` as `lxc.namespace.clone` and `lxc.namespace.share.*`, and the id
//! mappings as `lxc.idmap`.

use std::collections::HashSet;

use oci_spec::runtime::{Linux, LinuxNamespaceType};
use proxcage_oci::oci_spec;

use super::{invalid, unsupported, Builder};
use crate::error::TranslateError;

/// The namespaces LXC knows, in the order their `share` keys are written.
const ALL: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::User,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
];

/// `linux.namespaces` read: the new ones, the listed ones, and the ones joined by path
/// (with the field that names the path).
#[derive(Default)]
struct Listed {
    clone: Vec<LinuxNamespaceType>,
    seen: HashSet<LinuxNamespaceType>,
    shared: Vec<(LinuxNamespaceType, String, String)>,
}

fn name(t: LinuxNamespaceType) -> String {
    t.to_string()
}

pub(super) fn namespaces(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(linux) = b.spec.linux() else {
        return Err(invalid(
            "linux",
            "a Linux container needs the `linux` section",
        ));
    };
    let listed = list(linux)?;
    write_clone_and_share(b, &listed)?;
    idmaps(b, linux, &listed)
}

fn list(linux: &Linux) -> Result<Listed, TranslateError> {
    let mut listed = Listed::default();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        if !listed.seen.insert(ns.typ()) {
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
                listed.shared.push((ns.typ(), path.to_string(), field));
            }
            None => listed.clone.push(ns.typ()),
        }
    }
    if !listed.seen.contains(&LinuxNamespaceType::Mount) {
        return Err(unsupported(
            "linux.namespaces",
            "without a mount namespace the container would mount on the host; LXC always needs one",
        ));
    }
    Ok(listed)
}

fn write_clone_and_share(b: &mut Builder<'_>, listed: &Listed) -> Result<(), TranslateError> {
    // Not `lxc.namespace.keep`: LXC refuses it next to `clone`, and on LXC 5.0.2 keeping
    // the cgroup namespace breaks /dev setup (autodev fails with EOVERFLOW). A namespace
    // the spec leaves out is shared with the caller's instead: LXC opens
    // /proc/self/ns/<ns> in lxc-start, which runs in the caller's namespaces. The cgroup
    // namespace is the exception: LXC creates one whenever the kernel has them, and a new
    // cgroup namespace only hides the host's cgroup paths.
    let names: Vec<_> = listed.clone.iter().map(|t| name(*t)).collect();
    b.push("linux.namespaces", "lxc.namespace.clone", names.join(" "))?;
    for t in ALL {
        if listed.seen.contains(&t)
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
    for (typ, path, field) in &listed.shared {
        b.push(
            &format!("{field}.path"),
            format!("lxc.namespace.share.{}", name(*typ)),
            path.clone(),
        )?;
    }
    if listed.clone.contains(&LinuxNamespaceType::Network) {
        // A new network namespace with only the loopback, up, as runc gives.
        b.push("linux.namespaces", "lxc.net.0.type", "empty")?;
        b.push("linux.namespaces", "lxc.net.0.flags", "up")?;
    }
    Ok(())
}

fn idmaps(b: &mut Builder<'_>, linux: &Linux, listed: &Listed) -> Result<(), TranslateError> {
    let user_ns = listed.seen.contains(&LinuxNamespaceType::User);
    let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
    let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
    if user_ns
        && listed.clone.contains(&LinuxNamespaceType::User)
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
