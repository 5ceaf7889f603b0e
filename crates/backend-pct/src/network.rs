//! What a CT's namespaces can be, read from `linux.namespaces` before anything is made.
//!
//! Proxmox drops every `lxc.namespace.*` key: a CT always has its own mount, pid, ipc
//! and uts namespaces and cannot join another's. Its network is its own (loopback up,
//! plus `net0` when configured), the host's when the spec lists no network namespace
//! (`lxc.net.0.type = none`, which Proxmox passes through), or a sandbox's: a network
//! namespace given by path (CRI's `io.kubernetes.cri.container-type=sandbox`, podman's
//! default network) is the one CNI made for the pod, whose interfaces move into the
//! CT's own namespace (see `crate::sandbox`).

use std::path::PathBuf;

use proxcage_lxc_config::oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The network a CT gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Network {
    /// A network namespace of its own.
    Own,
    /// The host's network namespace.
    Host,
    /// The network namespace at `path` (the config.json field `field`) is a pod's, made
    /// by its client: its interfaces move into the CT's own.
    Sandbox { path: PathBuf, field: String },
}

/// The annotation CRI marks its containers with: `sandbox` or `container`.
const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

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
    #[error("{field}.path: this CRI container joins its pod's network namespace {path}, but its sandbox (io.kubernetes.cri.sandbox-id) is no pct container of this root: a pod's containers run in its sandbox's CT; create the sandbox on pct first, or run the pod on runc or crun")]
    Member { field: String, path: PathBuf },
    #[error("linux.namespaces: no {ns} namespace is listed, which means the host's; a Proxmox CT always has its own {ns} namespace: list {{\"type\": \"{ns}\"}}, or route the container to runc or crun")]
    Host { ns: String },
}

/// The CT's network for `spec`, or the namespace it cannot have. For a sandbox, the
/// network namespace's path is taken out of `spec`: the CT gets a namespace of its own.
pub(crate) fn plan(spec: &mut Spec) -> Result<Network, NamespaceError> {
    let network = check(spec)?;
    if let Network::Sandbox { .. } = network {
        if let Some(linux) = spec.linux_mut() {
            let mut namespaces = linux.namespaces().clone().unwrap_or_default();
            for ns in &mut namespaces {
                if ns.typ() == LinuxNamespaceType::Network {
                    ns.set_path(None);
                }
            }
            linux.set_namespaces(Some(namespaces));
        }
    }
    Ok(network)
}

fn check(spec: &Spec) -> Result<Network, NamespaceError> {
    let member = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(CRI_CONTAINER_TYPE))
        .is_some_and(|t| t == "container");
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
        let field = format!("linux.namespaces[{i}]");
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::Network, None) => network = Network::Own,
            (LinuxNamespaceType::Network, Some(path)) if member => {
                return Err(NamespaceError::Member {
                    field,
                    path: path.clone(),
                })
            }
            (LinuxNamespaceType::Network, Some(path)) => {
                network = Network::Sandbox {
                    path: path.clone(),
                    field: format!("{field}.path"),
                }
            }
            (_, None) => {}
            (typ, Some(path)) => {
                return Err(NamespaceError::Join {
                    field,
                    ns: typ.to_string(),
                    path: path.clone(),
                })
            }
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
        assert_eq!(plan(&mut own.clone()).unwrap(), Network::Own);
        let host = spec(&[(Pid, None), (Ipc, None), (Uts, None), (Mount, None)]);
        assert_eq!(plan(&mut host.clone()).unwrap(), Network::Host);
    }

    /// A network namespace by path is a sandbox's: the CT gets a namespace of its own
    /// (the path leaves the spec); a CRI app container's whose sandbox is no pct container
    /// of this root is refused.
    #[test]
    fn a_network_namespace_by_path_is_a_sandboxs() {
        let mut sandbox = spec(&[
            (Pid, None),
            (Net, Some("/run/netns/cni-1")),
            (Ipc, None),
            (Uts, None),
        ]);
        assert_eq!(
            plan(&mut sandbox).unwrap(),
            Network::Sandbox {
                path: "/run/netns/cni-1".into(),
                field: "linux.namespaces[1].path".into()
            }
        );
        assert_eq!(
            plan(&mut sandbox).unwrap(),
            Network::Own,
            "the path is gone"
        );
        let mut member = spec(&[
            (Pid, None),
            (Net, Some("/proc/42/ns/net")),
            (Ipc, None),
            (Uts, None),
        ]);
        member.set_annotations(Some(
            [(CRI_CONTAINER_TYPE.to_string(), "container".to_string())].into(),
        ));
        let err = plan(&mut member).unwrap_err().to_string();
        assert!(
            err.starts_with("linux.namespaces[1].path: this CRI container joins its pod's"),
            "{err}"
        );
    }

    #[test]
    fn joined_or_host_namespaces_name_the_field() {
        let joined = spec(&[
            (Pid, None),
            (Net, None),
            (Ipc, Some("/proc/42/ns/ipc")),
            (Uts, None),
        ]);
        let err = plan(&mut joined.clone()).unwrap_err().to_string();
        assert!(
            err.starts_with("linux.namespaces[2].path: a Proxmox CT cannot join the ipc namespace /proc/42/ns/ipc"),
            "{err}"
        );
        assert!(!err.contains("allow_dropped"), "{err}");
        let host_pid = spec(&[(Net, None), (Ipc, None), (Uts, None)]);
        let err = plan(&mut host_pid.clone()).unwrap_err().to_string();
        assert!(
            err.starts_with("linux.namespaces: no pid namespace is listed"),
            "{err}"
        );
    }
}
