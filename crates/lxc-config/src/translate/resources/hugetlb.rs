//! `linux.resources.hugepageLimits`: `hugetlb.<size>.max`.

use oci_spec::runtime::LinuxResources;
use proxcage_oci::oci_spec;

use super::{invalid, max_or, Cgroup};
use crate::error::TranslateError;

pub(super) fn apply(
    res: &LinuxResources,
    cgroup: &mut Cgroup<'_, '_>,
) -> Result<(), TranslateError> {
    for (i, h) in res.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let size = h.page_size();
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(
                format!("{field}.pageSize"),
                format!("{size:?} is not a page size like 2MB"),
            ));
        }
        cgroup.set(&field, &format!("hugetlb.{size}.max"), max_or(h.limit()))?;
    }
    Ok(())
}
