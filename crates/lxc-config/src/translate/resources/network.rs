//! `linux.resources.network`: net_cls and net_prio are cgroup v1 controllers, with nothing
//! to write in v2.

use oci_spec::runtime::LinuxResources;
use proxcage_oci::oci_spec;

use super::{unsupported, Cgroup};
use crate::error::TranslateError;

pub(super) fn apply(res: &LinuxResources, _: &mut Cgroup<'_, '_>) -> Result<(), TranslateError> {
    let Some(net) = res.network() else {
        return Ok(());
    };
    if net.class_id().is_some() || net.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(unsupported(
            "linux.resources.network",
            "net_cls and net_prio exist only in cgroup v1",
        ));
    }
    Ok(())
}
