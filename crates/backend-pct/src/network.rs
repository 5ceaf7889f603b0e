//! What a CT's namespaces can be, read from `linux.namespaces` before anything is made.
//!
//! Proxmox drops every `lxc.namespace.*` key: a CT always has its own mount, pid, ipc
//! and uts namespaces and cannot join another's. Its network is its own (loopback up,
//! plus `net0` when configured), or the host's when the spec lists no network namespace
//! (`lxc.net.0.type = none`, which Proxmox passes through).

use std::path::PathBuf;

use proxcage_lxc_config::oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The network a CT gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Network {
    /// A network namespace of its own.
    Own,
    /// The host's network namespace.
    Host,
}

/// A namespace the spec asks for that a CT cannot have. Each names the field of
/// `config.json`; none can be accepted by `allow_dropped`, since running without the
/// namespace is never what the caller meant.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NamespaceError {
    #[error("{field}.path: a Proxmox CT cannot join the {ns} namespace {path}: Proxmox drops every lxc.namespace.* key and a CT always has its own; route the container to runc or crun")]
    Join {
        field: String,
        ns: String,
        path: PathBuf,
    },
    #[error("linux.namespaces: no {ns} namespace is listed, which means the host's; a Proxmox CT always has its own {ns} namespace: list {{\"type\": \"{ns}\"}}, or route the container to runc or crun")]
    Host { ns: String },
}

/// The CT's network for `spec`, or the namespace it cannot have.
pub(crate) fn plan(spec: &Spec) -> Result<Network, NamespaceError> {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for own in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
    ] {
        if !namespaces.iter().any(|ns| ns.typ() == own) {
            return Err(NamespaceError::Host {
                ns: own.to_string(),
            });
        }
    }
    let mut network = Network::Host;
    for (i, ns) in namespaces.iter().enumerate() {
        if ns.typ() == LinuxNamespaceType::Network {
            network = Network::Own;
        }
        if let Some(path) = ns.path() {
            return Err(NamespaceError::Join {
                field: format!("linux.namespaces[{i}]"),
                ns: ns.typ().to_string(),
                path: path.clone(),
            });
        }
    }
    Ok(network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxcage_lxc_config::oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder};

    fn spec(namespaces: &[(LinuxNamespaceType, Option<&str>)]) -> Spec {
        let namespaces = namespaces
            .iter()
            .map(|(typ, path)| {
                let mut b = LinuxNamespaceBuilder::default().typ(*typ);
                if let Some(p) = path {
                    b = b.path(PathBuf::from(p));
                }
                b.build().unwrap()
            })
            .collect::<Vec<_>>();
        let mut spec = Spec::default();
        spec.set_linux(Some(
            LinuxBuilder::default()
                .namespaces(namespaces)
                .build()
                .unwrap(),
        ));
        spec
    }

    use LinuxNamespaceType::{Ipc, Mount, Network as Net, Pid, Uts};

    #[test]
    fn the_network_is_the_cts_own_or_the_hosts() {
        let own = spec(&[
            (Pid, None),
            (Net, None),
            (Ipc, None),
            (Uts, None),
            (Mount, None),
        ]);
        assert_eq!(plan(&own).unwrap(), Network::Own);
        let host = spec(&[(Pid, None), (Ipc, None), (Uts, None), (Mount, None)]);
        assert_eq!(plan(&host).unwrap(), Network::Host);
    }

    #[test]
    fn joined_or_host_namespaces_name_the_field() {
        let joined = spec(&[
            (Pid, None),
            (Net, None),
            (Ipc, Some("/proc/42/ns/ipc")),
            (Uts, None),
        ]);
        let err = plan(&joined).unwrap_err().to_string();
        assert!(
            err.starts_with("linux.namespaces[2].path: a Proxmox CT cannot join the ipc namespace /proc/42/ns/ipc"),
            "{err}"
        );
        assert!(!err.contains("allow_dropped"), "{err}");
        let host_pid = spec(&[(Net, None), (Ipc, None), (Uts, None)]);
        let err = plan(&host_pid).unwrap_err().to_string();
        assert!(
            err.starts_with("linux.namespaces: no pid namespace is listed"),
            "{err}"
        );
    }
}
