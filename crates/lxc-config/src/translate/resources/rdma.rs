//! `linux.resources.rdma`: `rdma.max`, one line per device.

use oci_spec::runtime::LinuxResources;
use proxcage_oci::oci_spec;

use super::Cgroup;
use crate::error::TranslateError;

pub(super) fn apply(
    res: &LinuxResources,
    cgroup: &mut Cgroup<'_, '_>,
) -> Result<(), TranslateError> {
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
        cgroup.set(
            &format!("linux.resources.rdma.{device}"),
            "rdma.max",
            parts.join(" "),
        )?;
    }
    Ok(())
}
