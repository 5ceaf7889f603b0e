//! `linux.resources.blockIO` (cgroup v1's blkio) as cgroup v2's io controller: `io.weight`
//! and `io.max`.

use oci_spec::runtime::{LinuxBlockIo, LinuxResources};
use proxcage_oci::oci_spec;

use super::{unsupported, Cgroup};
use crate::error::TranslateError;

const FIELD: &str = "linux.resources.blockIO";

/// blkio weight 10..=1000 to io.weight 1..=10000, as crun and runc convert it.
fn weight(w: u16) -> u64 {
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

pub(super) fn apply(
    res: &LinuxResources,
    cgroup: &mut Cgroup<'_, '_>,
) -> Result<(), TranslateError> {
    let Some(io) = res.block_io() else {
        return Ok(());
    };
    weights(io, cgroup)?;
    throttles(io, cgroup)
}

fn weights(io: &LinuxBlockIo, cgroup: &mut Cgroup<'_, '_>) -> Result<(), TranslateError> {
    if io.leaf_weight().is_some() {
        return Err(unsupported(
            format!("{FIELD}.leafWeight"),
            "cgroup v2 has no leaf weight",
        ));
    }
    if let Some(w) = io.weight() {
        cgroup.set(
            &format!("{FIELD}.weight"),
            "io.weight",
            weight(w).to_string(),
        )?;
    }
    for (i, d) in io.weight_device().iter().flatten().enumerate() {
        if d.leaf_weight().is_some() {
            return Err(unsupported(
                format!("{FIELD}.weightDevice[{i}].leafWeight"),
                "cgroup v2 has no leaf weight",
            ));
        }
        if let Some(w) = d.weight() {
            cgroup.set(
                &format!("{FIELD}.weightDevice[{i}]"),
                "io.weight",
                format!("{}:{} {}", d.major(), d.minor(), weight(w)),
            )?;
        }
    }
    Ok(())
}

fn throttles(io: &LinuxBlockIo, cgroup: &mut Cgroup<'_, '_>) -> Result<(), TranslateError> {
    for (name, list, key) in [
        (
            "throttleReadBpsDevice",
            io.throttle_read_bps_device(),
            "rbps",
        ),
        (
            "throttleWriteBpsDevice",
            io.throttle_write_bps_device(),
            "wbps",
        ),
        (
            "throttleReadIOPSDevice",
            io.throttle_read_iops_device(),
            "riops",
        ),
        (
            "throttleWriteIOPSDevice",
            io.throttle_write_iops_device(),
            "wiops",
        ),
    ] {
        for (i, d) in list.iter().flatten().enumerate() {
            cgroup.set(
                &format!("{FIELD}.{name}[{i}]"),
                "io.max",
                format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}
