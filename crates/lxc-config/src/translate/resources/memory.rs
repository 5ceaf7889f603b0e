//! `linux.resources.memory`: `memory.max`, `memory.low` and `memory.swap.max`.

use oci_spec::runtime::{LinuxMemory, LinuxResources};
use proxcage_oci::oci_spec;

use super::{invalid, max_or, unsupported, Cgroup};
use crate::error::TranslateError;

const FIELD: &str = "linux.resources.memory";

pub(super) fn apply(
    res: &LinuxResources,
    cgroup: &mut Cgroup<'_, '_>,
) -> Result<(), TranslateError> {
    let Some(mem) = res.memory() else {
        return Ok(());
    };
    #[allow(deprecated)]
    let kernel = mem.kernel();
    for (name, set) in [
        ("kernel", kernel.is_some()),
        ("kernelTCP", mem.kernel_tcp().is_some()),
        ("swappiness", mem.swappiness().is_some()),
        ("disableOOMKiller", mem.disable_oom_killer() == Some(true)),
    ] {
        if set {
            return Err(unsupported(
                format!("{FIELD}.{name}"),
                "cgroup v2 has no such control",
            ));
        }
    }
    if let Some(limit) = mem.limit() {
        cgroup.set(&format!("{FIELD}.limit"), "memory.max", max_or(limit))?;
    }
    if let Some(res) = mem.reservation() {
        cgroup.set(&format!("{FIELD}.reservation"), "memory.low", max_or(res))?;
    }
    if let Some(swap) = mem.swap() {
        cgroup.set(
            &format!("{FIELD}.swap"),
            "memory.swap.max",
            swap_max(mem, swap)?,
        )?;
    }
    Ok(())
}

/// OCI's swap is memory + swap; cgroup v2's memory.swap.max is swap alone.
fn swap_max(mem: &LinuxMemory, swap: i64) -> Result<String, TranslateError> {
    match (swap, mem.limit()) {
        (s, _) if s < 0 => Ok("max".to_string()),
        (s, Some(l)) if l >= 0 => {
            if s < l {
                return Err(invalid(
                    format!("{FIELD}.swap"),
                    "memory+swap is below the memory limit",
                ));
            }
            Ok((s - l).to_string())
        }
        _ => Err(invalid(
            format!("{FIELD}.swap"),
            "a swap limit needs a memory limit (swap is memory+swap)",
        )),
    }
}
