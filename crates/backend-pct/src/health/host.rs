//! What a pct create needs of the host: a writable template directory, a pvesh that hands
//! out VMIDs, and a free VMID in the configured range.

use proxcage_core::{Finding, Severity};

use crate::backend::Pct;
use crate::parse::ListEntry;
use crate::NAME;

pub(super) fn checks(pct: &Pct) -> Vec<Finding> {
    let mut findings = Vec::new();
    let backend = format!("backend {NAME}");
    let template_dir = pct.template_dir().to_path_buf();
    if !template_dir.is_dir() {
        findings.push(Finding::new(
            "template-dir-missing",
            Severity::Error,
            &backend,
            template_dir.display(),
            "the template directory does not exist: set [backends.pct] template_dir to the template storage's directory (pvesm path <storage>:vztmpl/x shows it)",
        ));
    } else if nix::unistd::access(&template_dir, nix::unistd::AccessFlags::W_OK).is_err() {
        findings.push(Finding::new(
            "template-dir-not-writable",
            Severity::Error,
            &backend,
            template_dir.display(),
            "proxcage cannot write templates here: run as root",
        ));
    }
    if let Err(e) = pct.tools().next_id(None) {
        findings.push(Finding::new(
            "pvesh-failed",
            Severity::Error,
            &backend,
            pct.tools().pvesh.display(),
            format!("pvesh cannot give a free VMID, so no create can work: {e}"),
        ));
    }
    findings
}

/// Every VMID of a configured `vmid_range` taken by a CT of `cts`.
pub(super) fn vmid_range_full(pct: &Pct, cts: &[ListEntry]) -> Option<Finding> {
    let range = pct.range();
    if range == crate::VmidRange::default() {
        return None;
    }
    let size = u64::from(range.last().get() - range.first().get()) + 1;
    let used = cts.iter().filter(|c| range.contains(c.vmid)).count() as u64;
    (used >= size).then(|| {
        Finding::new(
            "vmid-range-full",
            Severity::Error,
            format!("backend {NAME}"),
            format!("vmid_range {range}"),
            format!("every VMID of the configured range is taken by a CT ({used} of {size}): widen [backends.pct] vmid_range"),
        )
    })
}
