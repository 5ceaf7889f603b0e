//! `update`, `events`, `checkpoint` and `restore` on a Proxmox CT.
//!
//! `update` takes the fields runc's own `update` applies. Memory, swap, the CPU limit
//! and CPU weight become `pct set` options, which Proxmox applies to a running CT at once
//! and shows in its UI; pids, cpuset, the memory reservation and the block IO weight,
//! for which Proxmox has no option, are written to the CT's cgroup and recorded as raw
//! `lxc.cgroup2.*` keys in its `.conf`, so the next start applies them too. What a CT
//! cannot have (unlimited memory or swap, realtime CPU time, a CFS period other than
//! Proxmox's) is refused, naming it, before anything changes.

use proxcage_core::{
    CheckpointRequest, ContainerId, Error, Event, EventsRequest, Flow, RestoreRequest, Result,
    Status, UpdateRequest,
};
use proxcage_lxc_config::oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use proxcage_lxc_config::Entry;
use proxcage_process::cgroup::{self, Cgroups};

use super::{input, Pct};

const MIB: i64 = 1 << 20;
/// Proxmox writes `cpulimit` as `cpu.max = <cpulimit * 100000> 100000`.
const PVE_CPU_PERIOD: u64 = 100_000;

/// A cgroup file Proxmox has no option for: the controller, its v1 and cgroup2 files,
/// the value for each, and the raw key that records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CgroupWrite {
    controller: &'static str,
    v1: (&'static str, String),
    v2: (&'static str, String),
}

/// What an update does to a CT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct UpdatePlan {
    pub pct_options: Vec<(String, String)>,
    pub cgroup: Vec<CgroupWrite>,
}

impl CgroupWrite {
    pub(super) fn new(
        controller: &'static str,
        v1: (&'static str, String),
        v2: (&'static str, String),
    ) -> CgroupWrite {
        CgroupWrite { controller, v1, v2 }
    }

    /// Writes the value into `cgroups`, in the v1 or the cgroup2 file as the host has
    /// the controller; returns the file written.
    pub(super) fn apply(&self, cgroups: &Cgroups) -> std::io::Result<&'static str> {
        let (file, value) = if cgroups.is_v1(self.controller) {
            &self.v1
        } else {
            &self.v2
        };
        cgroups.write(self.controller, file, value)?;
        Ok(file)
    }
}

impl UpdatePlan {
    fn option(&mut self, key: &str, value: impl ToString) {
        self.pct_options.push((key.into(), value.to_string()));
    }
}

fn refuse(what: &str, why: &str) -> String {
    format!("{what}: {why}")
}

/// The plan for `resources` on a CT whose memory is `memory_mib` now; `Err` names the
/// first resource a Proxmox CT cannot take.
pub(super) fn plan(
    resources: &LinuxResources,
    memory_mib: i64,
) -> std::result::Result<UpdatePlan, String> {
    let mut plan = UpdatePlan::default();
    if let Some(m) = resources.memory() {
        plan_memory(m, memory_mib, &mut plan)?;
    }
    if let Some(c) = resources.cpu() {
        plan_cpu(c, &mut plan)?;
    }
    if let Some(p) = resources.pids().map(|p| p.limit()).filter(|l| *l != 0) {
        let v = if p < 0 {
            "max".to_string()
        } else {
            p.to_string()
        };
        plan.cgroup.push(CgroupWrite {
            controller: "pids",
            v1: ("pids.max", v.clone()),
            v2: ("pids.max", v),
        });
    }
    let weight = resources.block_io().as_ref().and_then(|b| b.weight());
    if let Some(w) = weight.filter(|w| *w != 0) {
        if !(10..=1000).contains(&w) {
            return Err(refuse(
                &format!("blkio weight {w}"),
                "the range is 10 to 1000",
            ));
        }
        let io = 1 + (u64::from(w) - 10) * 9999 / 990;
        plan.cgroup.push(CgroupWrite {
            controller: "blkio",
            v1: ("blkio.weight", w.to_string()),
            v2: ("io.weight", format!("default {io}")),
        });
    }
    if resources.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(refuse(
            "unified cgroup2 keys",
            "Proxmox has no such option, and proxcage writes only the resources runc's update names",
        ));
    }
    Ok(plan)
}

/// Memory and swap become `memory` and `swap` (MiB); the reservation goes to the cgroup.
fn plan_memory(
    m: &LinuxMemory,
    memory_mib: i64,
    plan: &mut UpdatePlan,
) -> std::result::Result<(), String> {
    let limit = match m.limit() {
        Some(l) if l < 0 => {
            return Err(refuse(
                "memory limit -1 (unlimited)",
                "a Proxmox CT always has a memory size; give one in bytes",
            ))
        }
        Some(l) if l > 0 && l / MIB < 16 => {
            return Err(refuse(
                &format!("memory limit {l}"),
                "Proxmox's minimum is 16 MiB",
            ))
        }
        Some(l) if l > 0 => {
            plan.option("memory", l / MIB);
            l / MIB
        }
        _ => memory_mib,
    };
    match m.swap() {
        Some(s) if s < 0 => {
            return Err(refuse(
                "memory+swap -1 (unlimited swap)",
                "a Proxmox CT's swap has a size (pct set --swap); give memory+swap in bytes",
            ))
        }
        Some(s) if s > 0 && s / MIB < limit => {
            return Err(refuse(
                &format!("memory+swap {s}"),
                &format!("less than the memory limit ({limit} MiB)"),
            ))
        }
        Some(s) if s > 0 => plan.option("swap", s / MIB - limit),
        _ => {}
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        let (v1, v2) = if r < 0 {
            ("-1".to_string(), "max".to_string())
        } else {
            (r.to_string(), r.to_string())
        };
        plan.cgroup.push(CgroupWrite {
            controller: "memory",
            v1: ("memory.soft_limit_in_bytes", v1),
            v2: ("memory.low", v2),
        });
    }
    Ok(())
}

/// Quota and period become `cpulimit`, shares `cpuunits`; the cpusets go to the cgroup.
fn plan_cpu(c: &LinuxCpu, plan: &mut UpdatePlan) -> std::result::Result<(), String> {
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(refuse(
            "cpu realtime runtime/period",
            "Proxmox CTs get no realtime CPU time",
        ));
    }
    match (c.quota(), c.period()) {
        (Some(q), period) if q != 0 => {
            let period = period.filter(|p| *p != 0).unwrap_or(PVE_CPU_PERIOD);
            let limit = if q < 0 { 0.0 } else { q as f64 / period as f64 };
            if limit > 8192.0 {
                return Err(refuse(
                    &format!("cpu quota {q} per period {period}"),
                    "more than Proxmox's cpulimit maximum of 8192 CPUs",
                ));
            }
            plan.option("cpulimit", format_cpulimit(limit));
        }
        (_, Some(p)) if p != 0 && p != PVE_CPU_PERIOD => {
            return Err(refuse(
                &format!("cpu period {p} without a quota"),
                "Proxmox's CPU limit has a fixed period of 100000us; give --cpu-quota with it",
            ));
        }
        _ => {}
    }
    if let Some(shares) = c.shares().filter(|s| *s != 0) {
        plan.option("cpuunits", shares_to_weight(shares));
    }
    for (value, file) in [(c.cpus(), "cpuset.cpus"), (c.mems(), "cpuset.mems")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            plan.cgroup.push(CgroupWrite {
                controller: "cpuset",
                v1: (file, v.into()),
                v2: (file, v.into()),
            });
        }
    }
    Ok(())
}

/// runc's conversion of cgroup v1 shares to a cgroup2 weight, which is what Proxmox's
/// `cpuunits` is on cgroup2 (clamped to 1..=10000).
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    (1 + ((shares - 2) * 9999) / 262_142).clamp(1, 10_000)
}

pub(super) fn format_cpulimit(limit: f64) -> String {
    let text = format!("{limit:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Pct {
    pub(super) fn update_ct(&self, req: &UpdateRequest) -> Result<()> {
        let record = self.load(&req.id)?;
        let (status, pid) = self.ct_status(&req.id, &record)?;
        if status != Status::Running && status != Status::Created {
            return Err(Error::Conflict {
                id: req.id.clone(),
                message: "container not running: update changes a running CT".into(),
            });
        }
        if req.l3_cache_schema.is_some() || req.mem_bw_schema.is_some() {
            return Err(self.refused(
                &req.id,
                "Intel RDT schemata: Proxmox CTs have no RDT option".into(),
            ));
        }
        let memory_mib = self
            .tools
            .config(record.vmid)?
            .iter()
            .find(|(k, _)| k == "memory")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(512);
        let plan = plan(&req.resources, memory_mib).map_err(|why| self.refused(&req.id, why))?;
        let cgroups = Cgroups::of_pid(pid)
            .map_err(|e| {
                Error::io(
                    "cannot read the cgroups of",
                    format!("/proc/{pid}/cgroup"),
                    e,
                )
            })?
            .outside("ns");
        if !plan.pct_options.is_empty() {
            self.tools.set(record.vmid, &plan.pct_options)?;
        }
        let mut raw = Vec::new();
        for write in &plan.cgroup {
            write
                .apply(&cgroups)
                .map_err(|e| Error::io("cannot write the CT's cgroup limit", write.v2.0, e))?;
            raw.push(
                Entry::new(format!("lxc.cgroup2.{}", write.v2.0), write.v2.1.clone())
                    .map_err(input)?,
            );
        }
        self.record_raw_keys(record.vmid, &raw)
    }

    fn refused(&self, id: &ContainerId, why: String) -> Error {
        Error::Conflict {
            id: id.clone(),
            message: format!("the pct backend cannot change {why}; nothing was changed"),
        }
    }

    /// Sets raw keys in the CT's `.conf`, replacing earlier ones.
    fn record_raw_keys(&self, vmid: crate::vmid::Vmid, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.edit_conf(vmid, |pve| {
            entries
                .iter()
                .try_for_each(|entry| pve.set_raw(entry).map_err(input))
        })
    }

    /// The CT's cgroups (LXC's inner `ns` cgroup left out), read each time from its init.
    pub(super) fn events_ct(
        &self,
        req: &EventsRequest,
        receiver: &mut dyn FnMut(Event) -> Result<Flow>,
    ) -> Result<()> {
        let mut find = || -> Result<Option<Cgroups>> {
            let record = self.load(&req.id)?;
            match self.ct_status(&req.id, &record)? {
                (Status::Stopped, _) | (_, 0) => Ok(None),
                (_, pid) => Cgroups::of_pid(pid)
                    .map(|c| Some(c.outside("ns")))
                    .map_err(|e| {
                        Error::io(
                            "cannot read the cgroups of",
                            format!("/proc/{pid}/cgroup"),
                            e,
                        )
                    }),
            }
        };
        cgroup::watch(req, &mut find, receiver)
    }

    pub(super) fn no_checkpoint(&self, id: &ContainerId, what: &str) -> Error {
        Error::Conflict {
            id: id.clone(),
            message: format!("{what}: Proxmox CTs are not checkpointed (Proxmox has no CRIU support for containers). Instead, keep the CT's data with 'vzdump' or a snapshot of its volumes and start it again, or run a container that must be checkpointed on the runc backend (annotation io.proxcage.backend=runc in its config.json)"),
        }
    }

    pub(super) fn refuse_checkpoint(&self, req: &CheckpointRequest) -> Error {
        self.no_checkpoint(&req.id, "checkpoint")
    }

    pub(super) fn refuse_restore(&self, req: &RestoreRequest) -> Error {
        self.no_checkpoint(&req.id, "restore")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn memory_cpu_and_shares_become_pct_options() {
        let p = plan(&resources(r#"{"memory":{"limit":268435456,"swap":536870912},"cpu":{"quota":50000,"period":100000,"shares":1024}}"#), 512).unwrap();
        let opts: Vec<(&str, &str)> = p
            .pct_options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            opts,
            [
                ("memory", "256"),
                ("swap", "256"),
                ("cpulimit", "0.5"),
                ("cpuunits", "39")
            ]
        );
        assert!(p.cgroup.is_empty());
        // Swap alone is counted from the CT's memory now; an unlimited quota is cpulimit 0.
        let p = plan(
            &resources(r#"{"memory":{"swap":1073741824},"cpu":{"quota":-1}}"#),
            512,
        )
        .unwrap();
        assert_eq!(
            p.pct_options,
            [
                ("swap".into(), "512".into()),
                ("cpulimit".into(), "0".into())
            ]
        );
    }

    #[test]
    fn pids_cpuset_and_blkio_go_to_the_cgroup() {
        let p = plan(
            &resources(r#"{"pids":{"limit":64},"cpu":{"cpus":"0"},"blockIO":{"weight":500}}"#),
            512,
        )
        .unwrap();
        assert!(p.pct_options.is_empty());
        let files: Vec<(&str, &str)> = p.cgroup.iter().map(|w| (w.v2.0, w.v2.1.as_str())).collect();
        assert_eq!(
            files,
            [
                ("cpuset.cpus", "0"),
                ("pids.max", "64"),
                ("io.weight", "default 4950")
            ]
        );
    }

    #[test]
    fn what_a_ct_cannot_have_is_refused_by_name() {
        for (json, named) in [
            (r#"{"memory":{"limit":-1}}"#, "memory limit -1"),
            (r#"{"memory":{"limit":1048576}}"#, "16 MiB"),
            (
                r#"{"memory":{"limit":268435456,"swap":-1}}"#,
                "unlimited swap",
            ),
            (r#"{"cpu":{"realtimeRuntime":1000}}"#, "realtime"),
            (r#"{"cpu":{"period":50000}}"#, "cpu period 50000"),
            (r#"{"unified":{"memory.high":"1"}}"#, "unified"),
        ] {
            let err = plan(&resources(json), 512).unwrap_err();
            assert!(err.contains(named), "{json}: {err}");
        }
    }
}
