//! `linux.resources.unified`: cgroup v2 interface files written as given.

use oci_spec::runtime::LinuxResources;
use proxcage_oci::oci_spec;

use super::{invalid, Cgroup};
use crate::error::TranslateError;

pub(super) fn apply(
    res: &LinuxResources,
    cgroup: &mut Cgroup<'_, '_>,
) -> Result<(), TranslateError> {
    let mut unified: Vec<_> = res
        .unified()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    unified.sort();
    for (key, value) in unified {
        let field = format!("linux.resources.unified.{key}");
        if key.is_empty() || key.contains('/') || !key.contains('.') {
            return Err(invalid(
                field,
                "not a cgroup v2 interface file name like memory.high",
            ));
        }
        cgroup.set(&field, &key, value)?;
    }
    Ok(())
}
