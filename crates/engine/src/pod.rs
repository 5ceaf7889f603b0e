//! Pods: a container of a pod runs on the backend of its pod's sandbox, so a pod is never
//! split across backends (on pct a pod is one CT, which another backend's container could
//! not join). A CRI app container (`io.kubernetes.cri.container-type=container`) names
//! its sandbox in `io.kubernetes.cri.sandbox-id`; when that sandbox is a container of this
//! root, its recorded backend is the member's, whatever the routing rules say. An
//! `io.proxcage.backend` annotation that asks for another backend is refused.

use std::collections::BTreeMap;

use proxcage_core::{ContainerId, Error, Result, BACKEND_ANNOTATION};

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

impl Engine {
    /// `chosen` (the routing rules' choice for container `id`), or the backend of the
    /// sandbox whose member it is.
    pub(crate) fn follow_sandbox(
        &self,
        id: &ContainerId,
        annotations: &BTreeMap<String, String>,
        chosen: (String, Reason),
    ) -> Result<(String, Reason)> {
        let Some(sandbox) = sandbox_of(annotations) else {
            return Ok(chosen);
        };
        // An id that is not a valid container id cannot be one of this root's sandboxes.
        let Ok(sandbox) = ContainerId::new(sandbox) else {
            return Ok(chosen);
        };
        let Some(record) = self.store.read(&sandbox)? else {
            return Ok(chosen);
        };
        let backend = record.backend().to_string();
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
}
