//! `linux.resources.pids`: `pids.max`.

use oci_spec::runtime::LinuxResources;
use proxcage_oci::oci_spec;

use super::Cgroup;
use crate::error::TranslateError;

pub(super) fn apply(
    res: &LinuxResources,
    cgroup: &mut Cgroup<'_, '_>,
) -> Result<(), TranslateError> {
    let Some(pids) = res.pids() else {
        return Ok(());
    };
    let limit = pids.limit();
    cgroup.set(
        "linux.resources.pids.limit",
        "pids.max",
        if limit <= 0 {
            "max".to_string()
        } else {
            limit.to_string()
        },
    )
}
