//! A pod CT's memory and CPU: the sum of its containers' limits, as Kubernetes sizes a
//! pod's cgroup. A container without a limit leaves the pod bounded only by the node:
//! a Proxmox CT always has a memory size (`memory` >= 16 MiB, no "unlimited"), so such
//! a pod CT gets the host's memory and swap, which the kernel could not give it more of
//! anyway, and `cpulimit` 0 (Proxmox's "unlimited"). Proxmox applies `pct set` of these
//! to a running CT at once, so the pod CT is resized as members come and go.

use super::*;
use proxcage_lxc_config::oci_spec::runtime::LinuxResources;

const MIB: u64 = 1 << 20;
/// Proxmox's limits: `memory` >= 16 MiB, `cpulimit` <= 8192 CPUs.
const MIN_MEMORY_MIB: u64 = 16;
const MAX_CPULIMIT: f64 = 8192.0;
/// Proxmox's `cpuunits` when none is given (cgroup2's default `cpu.weight`).
const DEFAULT_CPUUNITS: u64 = 100;

/// One container's part of its pod CT's size: its spec's `linux.resources` as given
/// (OCI's values: the swap is memory+swap, -1 is unlimited).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Share {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    swap: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shares: Option<u64>,
}

impl Share {
    /// The share of a container with `spec`.
    pub(super) fn of_spec(spec: &proxcage_lxc_config::oci_spec::runtime::Spec) -> Share {
        Share::of(spec.linux().as_ref().and_then(|l| l.resources().as_ref()))
    }

    fn of(resources: Option<&LinuxResources>) -> Share {
        Share::default().updated(resources)
    }

    /// The share after `update` (runc's: a field given replaces the one before).
    pub(super) fn updated(&self, resources: Option<&LinuxResources>) -> Share {
        let mut share = self.clone();
        let memory = resources.and_then(|r| r.memory().as_ref());
        let cpu = resources.and_then(|r| r.cpu().as_ref());
        share.memory = memory.and_then(|m| m.limit()).or(self.memory);
        share.swap = memory.and_then(|m| m.swap()).or(self.swap);
        share.quota = cpu.and_then(|c| c.quota()).or(self.quota);
        share.period = cpu.and_then(|c| c.period()).or(self.period);
        share.shares = cpu.and_then(|c| c.shares()).or(self.shares);
        share
    }

    /// The memory limit in bytes; `None`: unlimited.
    fn memory_limit(&self) -> Option<u64> {
        self.memory.filter(|m| *m > 0).map(|m| m as u64)
    }

    /// The swap allowed beyond the memory limit, in bytes; `None`: unlimited (no memory
    /// limit, or a swap not given or -1, which leaves the cgroup's swap unlimited).
    fn swap_beyond(&self) -> Option<u64> {
        let limit = self.memory_limit()?;
        let swap = u64::try_from(self.swap.filter(|s| *s > 0)?).ok()?;
        Some(swap.saturating_sub(limit))
    }

    /// The CPU limit in CPUs; `None`: unlimited.
    fn cpus(&self) -> Option<f64> {
        let quota = self.quota.filter(|q| *q > 0)?;
        let period = self.period.filter(|p| *p > 0).unwrap_or(100_000);
        Some(quota as f64 / period as f64)
    }

    fn cpu_shares(&self) -> Option<u64> {
        self.shares.filter(|s| *s > 0)
    }

    /// The member's own limits, for its cgroup below the pod CT's (the CT's size is the
    /// pod's; these keep one member from taking the others' part): memory, CPU quota and
    /// shares. Swap stays the pod's: the member's cgroup takes no swap limit of its own.
    pub(super) fn cgroup_writes(&self) -> Vec<resources::CgroupWrite> {
        let mut writes = Vec::new();
        if let Some(limit) = self.memory_limit() {
            writes.push(resources::CgroupWrite::new(
                "memory",
                ("memory.limit_in_bytes", limit.to_string()),
                ("memory.max", limit.to_string()),
            ));
        }
        if let Some(quota) = self.quota.filter(|q| *q > 0) {
            let period = self.period.filter(|p| *p > 0).unwrap_or(100_000);
            // v1 takes the period first: a quota is checked against the period there.
            writes.push(resources::CgroupWrite::new(
                "cpu",
                ("cpu.cfs_period_us", period.to_string()),
                ("cpu.max", format!("{quota} {period}")),
            ));
            writes.push(resources::CgroupWrite::new(
                "cpu",
                ("cpu.cfs_quota_us", quota.to_string()),
                ("cpu.max", format!("{quota} {period}")),
            ));
        }
        if let Some(shares) = self.cpu_shares() {
            writes.push(resources::CgroupWrite::new(
                "cpu",
                ("cpu.shares", shares.to_string()),
                (
                    "cpu.weight",
                    resources::shares_to_weight(shares).to_string(),
                ),
            ));
        }
        writes
    }
}

/// The host's memory and swap (`/proc/meminfo`), the size of a pod bounded by the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Host {
    pub memory_mib: u64,
    pub swap_mib: u64,
}

impl Host {
    pub(super) fn read() -> Result<Host> {
        let path = "/proc/meminfo";
        let text = fs::read_to_string(path).map_err(io_error("cannot read", Path::new(path)))?;
        let kib = |key: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        match (kib("MemTotal"), kib("SwapTotal")) {
            (Some(memory), Some(swap)) => Ok(Host {
                memory_mib: (memory / 1024).max(MIN_MEMORY_MIB),
                swap_mib: swap / 1024,
            }),
            _ => Err(Error::io(
                "cannot find MemTotal and SwapTotal in",
                path,
                io::Error::from(io::ErrorKind::InvalidData),
            )),
        }
    }
}

/// The values of `what` the pod's size adds up: every member's and the sandbox's own if
/// it has one (a sandbox without a limit is the pod's pause process, which Kubernetes
/// does not count); `None` when a member has no limit, or nothing has one.
fn counted<T>(
    own: &Share,
    members: &[Share],
    what: impl Fn(&Share) -> Option<T>,
) -> Option<Vec<T>> {
    let mut values = members.iter().map(&what).collect::<Option<Vec<T>>>()?;
    values.extend(what(own));
    (!values.is_empty()).then_some(values)
}

/// The sum of `values`, saturating: limits are the caller's numbers.
fn total(values: &[u64]) -> u64 {
    values.iter().fold(0, |sum, v| sum.saturating_add(*v))
}

/// The pod CT's `memory`, `swap`, `cpulimit` and `cpuunits` for the sandbox's own share
/// and its members'.
pub(super) fn size(own: &Share, members: &[Share], host: Host) -> Vec<(String, String)> {
    let memory = counted(own, members, Share::memory_limit);
    let swap = memory.as_ref().and_then(|_| {
        // The same containers as the memory: each must bound its swap too.
        let swaps: Vec<Share> = members
            .iter()
            .chain(own.memory_limit().map(|_| own))
            .cloned()
            .collect();
        swaps
            .iter()
            .map(Share::swap_beyond)
            .collect::<Option<Vec<u64>>>()
    });
    // A sum beyond the host's is the host's: the CT could not have more.
    let memory_mib = memory.map_or(host.memory_mib, |m| {
        total(&m)
            .div_ceil(MIB)
            .clamp(MIN_MEMORY_MIB, host.memory_mib)
    });
    let swap_mib = swap.map_or(host.swap_mib, |s| {
        total(&s).div_ceil(MIB).min(host.swap_mib)
    });
    let cpus = counted(own, members, Share::cpus).map_or(0.0, |c| c.iter().sum::<f64>());
    let shares: Vec<u64> = members
        .iter()
        .chain([own])
        .filter_map(Share::cpu_shares)
        .collect();
    let cpuunits = if shares.is_empty() {
        DEFAULT_CPUUNITS
    } else {
        resources::shares_to_weight(total(&shares))
    };
    vec![
        ("memory".into(), memory_mib.to_string()),
        ("swap".into(), swap_mib.to_string()),
        (
            "cpulimit".into(),
            resources::format_cpulimit(cpus.min(MAX_CPULIMIT)),
        ),
        ("cpuunits".into(), cpuunits.to_string()),
    ]
}

/// What of an update is no part of a pod CT's size, named; `None` when it is all.
/// (Device rules, which containerd sends with every update, are left alone, as on CTs.)
pub(super) fn not_a_pod_size(req: &UpdateRequest) -> Option<String> {
    let r = &req.resources;
    if req.l3_cache_schema.is_some() || req.mem_bw_schema.is_some() {
        return Some("Intel RDT schemata".into());
    }
    let cpu = r.cpu().as_ref();
    let memory = r.memory().as_ref();
    let named = [
        (
            "the cpu realtime runtime/period",
            cpu.is_some_and(|c| {
                c.realtime_runtime().is_some_and(|v| v != 0)
                    || c.realtime_period().is_some_and(|v| v != 0)
            }),
        ),
        (
            "the cpuset",
            cpu.is_some_and(|c| {
                [c.cpus(), c.mems()]
                    .iter()
                    .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()))
            }),
        ),
        (
            "the memory reservation",
            memory.is_some_and(|m| m.reservation().is_some_and(|v| v != 0)),
        ),
        (
            "the pids limit",
            r.pids().as_ref().is_some_and(|p| p.limit() != 0),
        ),
        (
            "the block IO weight",
            r.block_io()
                .as_ref()
                .is_some_and(|b| b.weight().is_some_and(|w| w != 0)),
        ),
        (
            "hugepage limits",
            r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        ),
        (
            "unified cgroup2 keys",
            r.unified().as_ref().is_some_and(|u| !u.is_empty()),
        ),
    ];
    if let Some((what, _)) = named.iter().find(|(_, given)| *given) {
        return Some((*what).to_string());
    }
    let swap_below = memory.is_some_and(|m| match (m.limit(), m.swap()) {
        (Some(l), Some(s)) => l > 0 && s > 0 && s < l,
        _ => false,
    });
    swap_below.then(|| "a memory+swap below the memory limit".to_string())
}

impl Pct {
    /// The lock a pod's resize is made under: members created or deleted at once would
    /// otherwise each count the pod without the other.
    pub(super) fn pod_lock(&self, sandbox: &ContainerId, record: &CtRecord) -> Result<Flock<File>> {
        let path = self.files_dir_of(sandbox, record).join("pod.lock");
        crate::locks::wait(
            &path,
            &format!("the pod lock of sandbox {sandbox}"),
            CONF_LOCK_WAIT,
        )
    }

    /// Sets the pod CT of `sandbox` to the sum of its containers' limits: its recorded
    /// members', and `new`, one about to be recorded. Only the options that change are
    /// given to `pct set`. The caller holds [`Pct::pod_lock`].
    pub(super) fn resize_pod(
        &self,
        sandbox: &ContainerId,
        record: &CtRecord,
        new: Option<&Share>,
    ) -> Result<()> {
        if record.destroying {
            return Ok(());
        }
        let own = record.pod_share.clone().unwrap_or_default();
        let mut members: Vec<Share> = self
            .members()
            .into_iter()
            .filter(|(_, m)| m.sandbox == sandbox.as_str())
            .map(|(_, m)| m.share)
            .collect();
        members.extend(new.cloned());
        let wanted = size(&own, &members, Host::read()?);
        let conf = self
            .pve_dir
            .join("lxc")
            .join(format!("{}.conf", record.vmid));
        let text = fs::read_to_string(&conf).map_err(io_error("cannot read", &conf))?;
        let now = PveConfig::parse(&text).map_err(input)?;
        let changed: Vec<(String, String)> = wanted
            .into_iter()
            .filter(|(k, v)| now.option(k) != Some(v.as_str()))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        self.tools.set(record.vmid, &changed).map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Host = Host {
        memory_mib: 64_000,
        swap_mib: 8_000,
    };

    fn share(json: &str) -> Share {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        Share::of(Some(&r))
    }

    fn sized(own: &Share, members: &[Share]) -> Vec<(String, String)> {
        size(own, members, HOST)
    }

    fn values(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_pod_whose_members_all_have_limits_is_their_sum() {
        let a = share(
            r#"{"memory":{"limit":134217728,"swap":134217728},"cpu":{"quota":50000,"period":100000,"shares":512}}"#,
        );
        let b = share(
            r#"{"memory":{"limit":67108864,"swap":134217728},"cpu":{"quota":25000,"shares":256}}"#,
        );
        // containerd's sandbox: cpu shares 2 and no limit, not counted but for its shares.
        let sandbox = share(r#"{"cpu":{"shares":2}}"#);
        assert_eq!(
            sized(&sandbox, &[a.clone(), b]),
            values(&[
                ("memory", "192"),
                ("swap", "64"),
                ("cpulimit", "0.75"),
                ("cpuunits", "30")
            ])
        );
        assert_eq!(
            sized(&sandbox, &[a]),
            values(&[
                ("memory", "128"),
                ("swap", "0"),
                ("cpulimit", "0.5"),
                ("cpuunits", "20")
            ])
        );
    }

    #[test]
    fn a_member_without_a_limit_leaves_the_pod_bounded_by_the_host() {
        let limited =
            share(r#"{"memory":{"limit":134217728,"swap":134217728},"cpu":{"quota":50000}}"#);
        let free = share(r#"{"memory":{"limit":-1}}"#);
        assert_eq!(
            sized(&Share::default(), &[limited.clone(), free]),
            values(&[
                ("memory", "64000"),
                ("swap", "8000"),
                ("cpulimit", "0"),
                ("cpuunits", "100")
            ])
        );
        // A limit without a swap leaves the swap unbounded.
        let no_swap = share(r#"{"memory":{"limit":134217728}}"#);
        assert_eq!(
            sized(&Share::default(), &[limited, no_swap])[1],
            ("swap".into(), "8000".into())
        );
        // A pod of nothing limited: the host's.
        assert_eq!(
            sized(&Share::default(), &[])[0],
            ("memory".into(), "64000".into())
        );
    }

    #[test]
    fn a_sandbox_with_its_own_limit_counts_it() {
        // A podman container on its own (a sandbox): its own limit is the CT's.
        let own =
            share(r#"{"memory":{"limit":268435456,"swap":536870912},"cpu":{"quota":150000}}"#);
        assert_eq!(
            sized(&own, &[]),
            values(&[
                ("memory", "256"),
                ("swap", "256"),
                ("cpulimit", "1.5"),
                ("cpuunits", "100")
            ])
        );
        let member =
            share(r#"{"memory":{"limit":16777216,"swap":16777216},"cpu":{"quota":50000}}"#);
        assert_eq!(
            sized(&own, &[member])[..3],
            values(&[("memory", "272"), ("swap", "256"), ("cpulimit", "2")])[..]
        );
    }

    #[test]
    fn limits_beyond_the_host_are_the_hosts() {
        let huge = share(
            r#"{"memory":{"limit":9223372036854771712,"swap":9223372036854771712},"cpu":{"quota":9223372036854775807,"period":1,"shares":18446744073709551615}}"#,
        );
        assert_eq!(
            sized(&Share::default(), &[huge.clone(), huge]),
            values(&[
                ("memory", "64000"),
                ("swap", "0"),
                ("cpulimit", "8192"),
                ("cpuunits", "10000")
            ])
        );
    }

    #[test]
    fn an_update_replaces_what_it_gives() {
        let before =
            share(r#"{"memory":{"limit":134217728,"swap":134217728},"cpu":{"quota":50000}}"#);
        let r: LinuxResources =
            serde_json::from_str(r#"{"memory":{"limit":268435456,"swap":268435456}}"#).unwrap();
        let after = before.updated(Some(&r));
        assert_eq!(
            sized(&Share::default(), &[after])[..3],
            values(&[("memory", "256"), ("swap", "0"), ("cpulimit", "0.5")])[..]
        );
    }
}
