//! Pods: a container of a pod runs on the backend of its pod's sandbox, so a pod is never
//! split across backends (on pct a pod is one CT, which another backend's container could
//! not join). A CRI app container (`io.kubernetes.cri.container-type=container`) names
//! its sandbox in `io.kubernetes.cri.sandbox-id`; a podman pod's member joins its infra
//! container's namespaces by `/proc/PID/ns/*`, PID being the infra's `state` pid. When
//! that sandbox is a container of this root, its recorded backend is the member's,
//! whatever the routing rules say. An `io.proxcage.backend` annotation that asks for
//! another backend is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proxcage_core::{ContainerId, Error, Result, Status, BACKEND_ANNOTATION};

use crate::engine::Engine;
use crate::router::Reason;

/// CRI's annotation: `sandbox` or `container`.
pub(crate) const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// CRI's annotation: the id of the container's pod sandbox.
pub(crate) const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// The sandbox a CRI app container belongs to, by its annotations.
fn sandbox_of(annotations: &BTreeMap<String, String>) -> Option<&str> {
    match annotations.get(CONTAINER_TYPE).map(String::as_str) {
        Some("container") => annotations.get(SANDBOX_ID).map(String::as_str),
        _ => None,
    }
}

/// The pids whose namespaces `paths` (the spec's namespace paths) are, by
/// `/proc/PID/ns/*`.
fn joined_pids(paths: &[PathBuf]) -> Vec<i32> {
    let mut pids: Vec<i32> = paths
        .iter()
        .filter_map(|path| {
            let rest = path.strip_prefix("/proc").ok()?;
            let mut parts = rest.components();
            let pid = parts.next()?.as_os_str().to_str()?.parse().ok()?;
            (parts.next()?.as_os_str() == "ns").then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

impl Engine {
    /// `chosen` (the routing rules' choice for container `id`), or the backend of the
    /// sandbox whose member it is.
    pub(crate) fn follow_sandbox(
        &self,
        id: &ContainerId,
        namespace_paths: &[PathBuf],
        annotations: &BTreeMap<String, String>,
        chosen: (String, Reason),
    ) -> Result<(String, Reason)> {
        // An id that is not a valid container id cannot be one of this root's sandboxes.
        let named = sandbox_of(annotations).and_then(|s| ContainerId::new(s).ok());
        let by_annotation = match named {
            Some(sandbox) => self
                .store
                .read(&sandbox)?
                .map(|r| (sandbox, r.backend().to_string())),
            None => None,
        };
        let found = match by_annotation {
            Some(found) => Some(found),
            None => self.joined_container(id, namespace_paths)?,
        };
        let Some((sandbox, backend)) = found else {
            return Ok(chosen);
        };
        if chosen.1 == Reason::Annotation && chosen.0 != backend {
            return Err(Error::Conflict {
                id: id.clone(),
                message: format!(
                    "its annotation {BACKEND_ANNOTATION}={:?} asks for another backend than its pod's: the sandbox {sandbox} runs on {backend}, and a pod is never split across backends; remove the annotation, or route the whole pod to {:?}",
                    chosen.0, chosen.0
                ),
            });
        }
        Ok((backend, Reason::Pod(sandbox.to_string())))
    }

    /// The container of this root (and its backend) whose `state` pid the spec's
    /// `/proc/PID/ns/*` namespace paths name: a podman pod's infra container.
    fn joined_container(
        &self,
        id: &ContainerId,
        namespace_paths: &[PathBuf],
    ) -> Result<Option<(ContainerId, String)>> {
        let pids = joined_pids(namespace_paths);
        if pids.is_empty() {
            return Ok(None);
        }
        for record in self.store.records()?.into_iter().flatten() {
            if record.id() == id {
                continue;
            }
            let Ok(backend) = self.backend(record.backend()) else {
                continue;
            };
            let Ok(state) = backend.state(record.id()) else {
                continue;
            };
            let live = matches!(state.status, Status::Created | Status::Running);
            if live
                && state.pid > 0
                && pids.contains(&state.pid)
                && Path::new(&format!("/proc/{}", state.pid)).exists()
            {
                return Ok(Some((record.id().clone(), record.backend().to_string())));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_pids_are_read_from_proc_namespace_paths_only() {
        let paths: Vec<PathBuf> = [
            "/proc/42/ns/ipc",
            "/proc/42/ns/uts",
            "/proc/7/ns/net",
            "/run/netns/cni-1",
            "/proc/self/ns/pid",
            "/proc/9/status",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(joined_pids(&paths), vec![7, 42]);
    }
}
