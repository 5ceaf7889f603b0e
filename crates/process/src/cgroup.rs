//! A running process's cgroups, on a unified (cgroup2) or a hybrid (v1 controllers plus
//! cgroup2) host: where its controllers' files are, its usage in runc's [`Stats`] shape,
//! its OOM kill count, and writing one limit.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use proxcage_core::resources::{BlkioEntry, Stats};
use proxcage_core::{Event, EventsRequest, Flow, Result};

/// How often a stream of events looks for OOM kills between its stats.
const OOM_LOOK_EVERY: Duration = Duration::from_millis(200);

/// USER_HZ, the unit of cpuacct.stat: 100 on every Linux architecture proxcage runs on.
const USER_HZ: u64 = 100;

/// The cgroup directories of one process: per v1 controller, and its cgroup2 directory.
#[derive(Clone, Debug, Default)]
pub struct Cgroups {
    v1: BTreeMap<String, PathBuf>,
    v2: Option<PathBuf>,
}

impl Cgroups {
    /// The cgroups of `pid`, from `/proc/<pid>/cgroup` and the host's cgroup mounts.
    pub fn of_pid(pid: i32) -> io::Result<Cgroups> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        let mounts = fs::read_to_string("/proc/self/mounts")?;
        Ok(Self::parse(&text, &mounts))
    }

    fn parse(cgroup: &str, mounts: &str) -> Cgroups {
        let mut out = Cgroups::default();
        let mut v1_mounts: Vec<(Vec<&str>, &str)> = Vec::new();
        let mut v2_mount = None;
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [_, point, "cgroup2", ..] => v2_mount = Some(*point),
                [_, point, "cgroup", options, ..] => {
                    v1_mounts.push((options.split(',').collect(), point))
                }
                _ => {}
            }
        }
        for line in cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                out.v2 = v2_mount.map(|m| Path::new(m).join(rel));
                continue;
            }
            let names: Vec<&str> = controllers.split(',').collect();
            if let Some((_, point)) = v1_mounts
                .iter()
                .find(|(options, _)| names.iter().all(|n| options.contains(n)))
            {
                for name in names {
                    out.v1.insert(name.to_string(), Path::new(point).join(rel));
                }
            }
        }
        out
    }

    /// The same cgroups one level up where the process sits in a leaf named `leaf`:
    /// LXC's inner cgroup (`lxc.cgroup.dir.container.inner`), which the container's root
    /// owns, so limits go on its parent.
    pub fn outside(mut self, leaf: &str) -> Cgroups {
        let up = |dir: &mut PathBuf| {
            if dir.file_name().is_some_and(|n| n == leaf) {
                dir.pop();
            }
        };
        self.v1.values_mut().for_each(up);
        if let Some(dir) = self.v2.as_mut() {
            up(dir);
        }
        self
    }

    /// The same cgroups one level down, in the child `leaf` of each.
    pub fn inside(mut self, leaf: &str) -> Cgroups {
        self.v1.values_mut().for_each(|dir| dir.push(leaf));
        if let Some(dir) = self.v2.as_mut() {
            dir.push(leaf);
        }
        self
    }

    /// Each directory once: the v1 hierarchies' (co-mounted controllers share one), then
    /// the cgroup2 one.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for dir in self.v1.values().chain(self.v2.as_ref()) {
            if !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        dirs
    }

    /// Whether `controller` is a v1 hierarchy here (else it is cgroup2's, if anyone's).
    pub fn is_v1(&self, controller: &str) -> bool {
        self.v1.contains_key(controller)
    }

    /// The file `name` of `controller`: in its v1 directory when it has one, else in the
    /// cgroup2 directory.
    pub fn file(&self, controller: &str, name: &str) -> Option<PathBuf> {
        self.v1
            .get(controller)
            .or(self.v2.as_ref())
            .map(|dir| dir.join(name))
    }

    /// Writes `value` to `controller`'s file `name`.
    pub fn write(&self, controller: &str, name: &str, value: &str) -> io::Result<PathBuf> {
        let path = self.file(controller, name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("the process has no {controller} cgroup"),
            )
        })?;
        fs::write(&path, value)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(path)
    }

    fn read(&self, controller: &str, name: &str) -> Option<String> {
        fs::read_to_string(self.file(controller, name)?).ok()
    }

    fn number(&self, controller: &str, name: &str) -> u64 {
        self.read(controller, name)
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn keyed(&self, controller: &str, name: &str) -> BTreeMap<String, u64> {
        self.read(controller, name)
            .map(|t| keyed_values(&t))
            .unwrap_or_default()
    }

    /// How many processes the kernel's OOM killer killed in the memory cgroup so far;
    /// `None` when the kernel does not count them there.
    pub fn oom_kills(&self) -> Option<u64> {
        let (file, key) = if self.is_v1("memory") {
            ("memory.oom_control", "oom_kill")
        } else {
            ("memory.events", "oom_kill")
        };
        self.keyed("memory", file).get(key).copied()
    }

    /// The usage and limits, as runc reports them.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        self.cpu(&mut stats);
        self.memory(&mut stats);
        stats.pids.current = self.number("pids", "pids.current");
        stats.pids.limit = self.number("pids", "pids.max");
        self.blkio(&mut stats);
        stats
    }

    fn cpu(&self, stats: &mut Stats) {
        let usage = &mut stats.cpu.usage;
        let throttle = self.keyed("cpu", "cpu.stat");
        if self.is_v1("cpuacct") {
            usage.total = self.number("cpuacct", "cpuacct.usage");
            usage.percpu = self
                .read("cpuacct", "cpuacct.usage_percpu")
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let ticks = self.keyed("cpuacct", "cpuacct.stat");
            let ns = |key: &str| ticks.get(key).copied().unwrap_or(0) * (1_000_000_000 / USER_HZ);
            usage.user = ns("user");
            usage.kernel = ns("system");
            stats.cpu.throttling.throttled_time = value(&throttle, "throttled_time");
        } else {
            usage.total = value(&throttle, "usage_usec") * 1000;
            usage.user = value(&throttle, "user_usec") * 1000;
            usage.kernel = value(&throttle, "system_usec") * 1000;
            stats.cpu.throttling.throttled_time = value(&throttle, "throttled_usec") * 1000;
        }
        stats.cpu.throttling.periods = value(&throttle, "nr_periods");
        stats.cpu.throttling.throttled_periods = value(&throttle, "nr_throttled");
    }

    fn memory(&self, stats: &mut Stats) {
        let memory = &mut stats.memory;
        memory.raw = self.keyed("memory", "memory.stat");
        if self.is_v1("memory") {
            memory.cache = value(&memory.raw, "cache");
            memory.usage.usage = self.number("memory", "memory.usage_in_bytes");
            memory.usage.max = self.number("memory", "memory.max_usage_in_bytes");
            memory.usage.limit = self.number("memory", "memory.limit_in_bytes");
            memory.usage.failcnt = self.number("memory", "memory.failcnt");
            memory.swap.usage = self.number("memory", "memory.memsw.usage_in_bytes");
            memory.swap.max = self.number("memory", "memory.memsw.max_usage_in_bytes");
            memory.swap.limit = self.number("memory", "memory.memsw.limit_in_bytes");
            memory.swap.failcnt = self.number("memory", "memory.memsw.failcnt");
        } else {
            memory.cache = value(&memory.raw, "file");
            memory.usage.usage = self.number("memory", "memory.current");
            memory.usage.max = self.number("memory", "memory.peak");
            memory.usage.limit = self.limit("memory.max");
            memory.usage.failcnt = value(&self.keyed("memory", "memory.events"), "max");
            memory.swap.usage = self.number("memory", "memory.swap.current");
            memory.swap.limit = self.limit("memory.swap.max");
        }
    }

    /// A cgroup2 limit file: a number, or `max` (then the host's memory, as runc says).
    fn limit(&self, name: &str) -> u64 {
        match self.read("memory", name).as_deref().map(str::trim) {
            Some("max") | None => host_memory(),
            Some(v) => v.parse().unwrap_or(0),
        }
    }

    fn blkio(&self, stats: &mut Stats) {
        let blkio = &mut stats.blkio;
        if self.is_v1("blkio") {
            blkio.io_service_bytes_recursive =
                v1_blkio(&self.read("blkio", "blkio.throttle.io_service_bytes_recursive"));
            blkio.io_serviced_recursive =
                v1_blkio(&self.read("blkio", "blkio.throttle.io_serviced_recursive"));
            return;
        }
        for line in self.read("io", "io.stat").unwrap_or_default().lines() {
            let mut fields = line.split_whitespace();
            let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            let (major, minor) = (major.parse().unwrap_or(0), minor.parse().unwrap_or(0));
            for field in fields {
                let Some((key, v)) = field.split_once('=') else {
                    continue;
                };
                let value = v.parse().unwrap_or(0);
                let entry = |op: &str| BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                };
                match key {
                    "rbytes" => blkio.io_service_bytes_recursive.push(entry("Read")),
                    "wbytes" => blkio.io_service_bytes_recursive.push(entry("Write")),
                    "rios" => blkio.io_serviced_recursive.push(entry("Read")),
                    "wios" => blkio.io_serviced_recursive.push(entry("Write")),
                    _ => {}
                }
            }
        }
    }
}

/// `events` read from cgroups: one stats event (`stats_only`), or stats every interval and
/// an `oom` event whenever the OOM kill count grew. `find` gives the container's cgroups
/// each time, `None` once it stopped, which ends the stream.
pub fn watch(
    req: &EventsRequest,
    find: &mut dyn FnMut() -> Result<Option<Cgroups>>,
    receiver: &mut dyn FnMut(Event) -> Result<Flow>,
) -> Result<()> {
    let mut kills = None;
    let mut next_stats = Instant::now();
    loop {
        let Some(cgroups) = find()? else {
            return Ok(());
        };
        if req.stats_only {
            return receiver(Event::stats(&req.id, &cgroups.stats())).map(drop);
        }
        let now = cgroups.oom_kills();
        if matches!((kills, now), (Some(before), Some(now)) if now > before)
            && receiver(Event::oom(&req.id))? == Flow::Stop
        {
            return Ok(());
        }
        kills = now.or(kills);
        if Instant::now() >= next_stats {
            if receiver(Event::stats(&req.id, &cgroups.stats()))? == Flow::Stop {
                return Ok(());
            }
            next_stats = Instant::now() + req.interval;
        }
        std::thread::sleep(OOM_LOOK_EVERY.min(req.interval));
    }
}

fn value(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
fn keyed_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// v1 blkio lines `8:0 Read 4096` (the `Total` lines are left out, as runc does).
fn v1_blkio(text: &Option<String>) -> Vec<BlkioEntry> {
    let Some(text) = text else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (major, minor) = f.next()?.split_once(':')?;
            let op = f.next()?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: f.next()?.parse().ok()?,
            })
        })
        .collect()
}

fn host_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0\n\
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";

    #[test]
    fn hybrid_hosts_give_v1_controllers_and_the_cgroup2_tree() {
        let cg = Cgroups::parse(
            "5:cpu,cpuacct:/lxc/100\n4:memory:/lxc/100\n0::/lxc/100\n",
            MOUNTS,
        );
        assert!(cg.is_v1("memory") && cg.is_v1("cpuacct") && !cg.is_v1("pids"));
        assert_eq!(
            cg.file("cpu", "cpu.shares").unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/lxc/100/cpu.shares")
        );
        assert_eq!(
            cg.file("pids", "pids.max").unwrap(),
            Path::new("/sys/fs/cgroup/unified/lxc/100/pids.max")
        );
    }

    #[test]
    fn keyed_files_and_v1_blkio_lines_parse() {
        let m = keyed_values("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
        assert_eq!(m["oom_kill"], 3);
        let e = v1_blkio(&Some("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n".into()));
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].major, e[0].op.as_str(), e[0].value),
            (8, "Read", 4096)
        );
    }
}
