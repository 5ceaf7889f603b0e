//! `linux.resources.cpu`: `cpu.weight`, `cpu.max`, `cpu.max.burst`, `cpu.idle` and the
//! cpuset's `cpuset.cpus` and `cpuset.mems`.

use oci_spec::runtime::LinuxResources;
use proxcage_oci::oci_spec;

use super::{unsupported, Cgroup};
use crate::error::TranslateError;

const FIELD: &str = "linux.resources.cpu";

pub(super) fn apply(
    res: &LinuxResources,
    cgroup: &mut Cgroup<'_, '_>,
) -> Result<(), TranslateError> {
    let Some(cpu) = res.cpu() else {
        return Ok(());
    };
    if cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some() {
        return Err(unsupported(
            format!("{FIELD}.realtimeRuntime"),
            "cgroup v2 has no real-time CPU budget",
        ));
    }
    if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
        let weight = 1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142;
        cgroup.set(&format!("{FIELD}.shares"), "cpu.weight", weight.to_string())?;
    }
    if cpu.quota().is_some() || cpu.period().is_some() {
        let quota = match cpu.quota() {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".into(),
        };
        let period = cpu.period().unwrap_or(100_000);
        cgroup.set(
            &format!("{FIELD}.quota"),
            "cpu.max",
            format!("{quota} {period}"),
        )?;
    }
    if let Some(burst) = cpu.burst() {
        cgroup.set(
            &format!("{FIELD}.burst"),
            "cpu.max.burst",
            burst.to_string(),
        )?;
    }
    if let Some(idle) = cpu.idle() {
        cgroup.set(&format!("{FIELD}.idle"), "cpu.idle", idle.to_string())?;
    }
    if let Some(cpus) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
        cgroup.set(&format!("{FIELD}.cpus"), "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
        cgroup.set(&format!("{FIELD}.mems"), "cpuset.mems", mems)?;
    }
    Ok(())
}
