//! Proxmox's `/etc/pve/lxc/<vmid>.conf` ([`PveConfig`]) and the split of an [`LxcConfig`]
//! into pct options and the raw `lxc.*` keys Proxmox passes through
//! ([`split_for_proxmox`]), following `reference/pct.md`.
//!
//! A `.conf` is `key: value` lines (pct options and raw `lxc.*` keys), `#` lines (the
//! description), and `[name]` lines that start a snapshot section: everything after one
//! belongs to that snapshot. [`PveConfig`] keeps every line, so that parse and render
//! round-trip and changes touch only the live config.

use std::collections::BTreeMap;

use crate::config::{Entry, LxcConfig};
use crate::error::PveError;

/// One line of a `.conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    Blank,
    /// `#text`: a line of the description (text as written, after the `#`).
    Comment(String),
    /// `key: value`, a pct option or a raw `lxc.*` key.
    Pair(String, String),
}

/// A section: the live config, or one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Section {
    lines: Vec<Line>,
}

/// `/etc/pve/lxc/<vmid>.conf` as data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PveConfig {
    live: Section,
    snapshots: Vec<(String, Section)>,
}

fn check_value(key: &str, value: &str) -> Result<(), PveError> {
    if value.contains(['\n', '\r', '\0']) || value != value.trim() {
        return Err(PveError::InvalidValue {
            key: key.into(),
            value: value.into(),
            reason: "a value is one line without blanks at its ends".into(),
        });
    }
    Ok(())
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl PveConfig {
    /// Parses a `.conf`. Unknown option names are kept (Proxmox knows its own); a line
    /// that is none of the three kinds is an error with its number.
    pub fn parse(text: &str) -> Result<PveConfig, PveError> {
        let mut config = PveConfig::default();
        for (i, raw) in text.lines().enumerate() {
            let syntax = |reason: &str| PveError::Syntax {
                line: i + 1,
                text: raw.into(),
                reason: reason.into(),
            };
            // A carriage return would not survive a render and parse (`lines()` takes
            // `\r\n` as one line end); Proxmox never writes one.
            if raw.contains('\r') {
                return Err(syntax("carriage return in line"));
            }
            let line = if raw.trim().is_empty() {
                Line::Blank
            } else if let Some(comment) = raw.strip_prefix('#') {
                Line::Comment(comment.into())
            } else if let Some(name) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                if !valid_key(name)
                    && !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
                {
                    return Err(syntax("invalid snapshot name"));
                }
                config.snapshots.push((name.into(), Section::default()));
                continue;
            } else if let Some((key, value)) = raw.split_once(':') {
                if !valid_key(key) {
                    return Err(syntax("invalid key"));
                }
                Line::Pair(key.into(), value.trim().into())
            } else {
                return Err(syntax(
                    "expected `key: value`, `#description` or `[snapshot]`",
                ));
            };
            match config.snapshots.last_mut() {
                Some((_, section)) => section.lines.push(line),
                None => config.live.lines.push(line),
            }
        }
        Ok(config)
    }

    /// The file text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let section = |out: &mut String, s: &Section| {
            for line in &s.lines {
                match line {
                    Line::Blank => {}
                    Line::Comment(c) => {
                        out.push('#');
                        out.push_str(c);
                    }
                    Line::Pair(k, v) => {
                        out.push_str(k);
                        out.push(':');
                        // `lxc.cap.drop:` clears a list: no blank left at the line's end.
                        if !v.is_empty() {
                            out.push(' ');
                            out.push_str(v);
                        }
                    }
                }
                out.push('\n');
            }
        };
        section(&mut out, &self.live);
        for (name, s) in &self.snapshots {
            out.push('[');
            out.push_str(name);
            out.push_str("]\n");
            section(&mut out, s);
        }
        out
    }

    /// The live config's pct options (not raw `lxc.*` keys), in file order.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs().filter(|(k, _)| !k.starts_with("lxc."))
    }

    /// The live config's raw `lxc.*` keys, in file order.
    pub fn raw_keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs().filter(|(k, _)| k.starts_with("lxc."))
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.live.lines.iter().filter_map(|l| match l {
            Line::Pair(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }

    /// A live pct option's value.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Sets a live pct option, replacing it where it is or adding it after the others.
    pub fn set_option(&mut self, key: &str, value: &str) -> Result<(), PveError> {
        if !valid_key(key) || key.starts_with("lxc.") {
            return Err(PveError::InvalidValue {
                key: key.into(),
                value: value.into(),
                reason: "not a pct option name".into(),
            });
        }
        check_value(key, value)?;
        for line in &mut self.live.lines {
            if let Line::Pair(k, v) = line {
                if k == key {
                    *v = value.into();
                    return Ok(());
                }
            }
        }
        let at = self
            .live
            .lines
            .iter()
            .rposition(|l| matches!(l, Line::Pair(k, _) if !k.starts_with("lxc.")))
            .map_or(self.live.lines.len(), |i| i + 1);
        self.live
            .lines
            .insert(at, Line::Pair(key.into(), value.into()));
        Ok(())
    }

    /// Appends a raw `lxc.*` key to the live config (before any snapshot section).
    pub fn push_raw(&mut self, entry: &Entry) -> Result<(), PveError> {
        check_value(entry.key(), entry.value())?;
        while matches!(self.live.lines.last(), Some(Line::Blank)) {
            self.live.lines.pop();
        }
        self.live
            .lines
            .push(Line::Pair(entry.key().into(), entry.value().into()));
        Ok(())
    }

    /// Sets a raw `lxc.*` key of the live config: its earlier lines go, the new one is
    /// appended (a later line wins in LXC, so there is one).
    pub fn set_raw(&mut self, entry: &Entry) -> Result<(), PveError> {
        check_value(entry.key(), entry.value())?;
        self.live
            .lines
            .retain(|l| !matches!(l, Line::Pair(k, _) if k == entry.key()));
        self.push_raw(entry)
    }

    /// The description: the `#` lines of the live config, joined with newlines.
    pub fn description(&self) -> String {
        let lines: Vec<&str> = self
            .live
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Comment(c) => Some(c.as_str()),
                _ => None,
            })
            .collect();
        lines.join("\n")
    }

    /// The snapshot names, in file order.
    pub fn snapshots(&self) -> impl Iterator<Item = &str> {
        self.snapshots.iter().map(|(n, _)| n.as_str())
    }
}

/// What the operator accepts when Proxmox would not apply a key.
#[derive(Clone, Debug)]
pub struct ProxmoxPolicy {
    /// Key prefixes (e.g. `lxc.no_new_privs`, `lxc.proc.`) that may be left out instead of
    /// failing: the operator's explicit fallback.
    pub allow_dropped: Vec<String>,
    /// Where Proxmox's LXC mounts a CT's rootfs (`lxc.rootfs.mount`): mount sources under
    /// the translated rootfs are rewritten to it.
    pub rootfs_mount: String,
}

impl Default for ProxmoxPolicy {
    fn default() -> Self {
        ProxmoxPolicy {
            allow_dropped: Vec::new(),
            rootfs_mount: "/usr/lib/x86_64-linux-gnu/lxc/rootfs".into(),
        }
    }
}

/// An [`LxcConfig`] split for Proxmox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxmoxConfig {
    /// pct options (`memory`, `swap`, `cpulimit`, `cpuunits`, `hostname`, `mpN`,
    /// `unprivileged`, `features`), sorted by key.
    pub options: BTreeMap<String, String>,
    /// Raw keys Proxmox's allow-list passes, in order.
    pub raw: LxcConfig,
    /// The rootfs is read-only (`rootfs: ...,ro=1`).
    pub rootfs_readonly: bool,
    /// Keys left out because the policy allowed it.
    pub dropped: Vec<Entry>,
}

impl ProxmoxConfig {
    /// The options and raw keys as `.conf` lines, as `pct config` would show them.
    pub fn to_pve_config(&self) -> Result<PveConfig, PveError> {
        let mut pve = PveConfig::default();
        for (k, v) in &self.options {
            pve.set_option(k, v)?;
        }
        for e in self.raw.entries() {
            pve.push_raw(e)?;
        }
        Ok(pve)
    }
}

/// Whether Proxmox passes `key` through to LXC (pct.md, "Raw lxc.* keys").
pub fn proxmox_allows(key: &str) -> bool {
    const PREFIXES: [&str; 12] = [
        "lxc.apparmor.",
        "lxc.init.",
        "lxc.mount.",
        "lxc.cap.",
        "lxc.hook.",
        "lxc.seccomp.",
        "lxc.environment",
        "lxc.cgroup2.",
        "lxc.cgroup.",
        "lxc.prlimit.",
        "lxc.net.",
        "lxc.sysctl.fs.mqueue.",
    ];
    const IPC_SYSCTLS: [&str; 8] = [
        "lxc.sysctl.kernel.msgmax",
        "lxc.sysctl.kernel.msgmnb",
        "lxc.sysctl.kernel.msgmni",
        "lxc.sysctl.kernel.sem",
        "lxc.sysctl.kernel.shmall",
        "lxc.sysctl.kernel.shmmax",
        "lxc.sysctl.kernel.shmmni",
        "lxc.sysctl.kernel.shm_rmid_forced",
    ];
    key == "lxc.idmap" || PREFIXES.iter().any(|p| key.starts_with(p)) || IPC_SYSCTLS.contains(&key)
}

fn mib(bytes: &str) -> Option<u64> {
    let b: u64 = bytes.parse().ok()?;
    Some(b.div_ceil(1 << 20))
}

/// Splits a translated config into pct options and raw keys. A key Proxmox would drop is
/// an error naming it, unless `policy.allow_dropped` covers it; keys Proxmox sets itself
/// (rootfs, autodev, the standard namespaces, the cgroup directory) are left to Proxmox.
pub fn split_for_proxmox(
    config: &LxcConfig,
    policy: &ProxmoxPolicy,
) -> Result<ProxmoxConfig, PveError> {
    let idmaps: Vec<&str> = config.values("lxc.idmap").collect();
    let mut split = Split {
        policy,
        rootfs: config.get("lxc.rootfs.path").map(str::to_string),
        proxmox_idmap: idmaps == ["u 0 100000 65536", "g 0 100000 65536"],
        host_network: config.get("lxc.net.0.type") == Some("none"),
        auto_mounts_seen: false,
        mp: 0,
        out: ProxmoxConfig::default(),
    };
    if !idmaps.is_empty() {
        split.option("unprivileged", "1");
    }
    for e in config.entries() {
        split.entry(e)?;
    }
    if split.host_network && !split.auto_mounts_seen {
        split.auto_mounts_in_host_network("")?;
    }
    Ok(split.out)
}

/// A split under way.
struct Split<'a> {
    policy: &'a ProxmoxPolicy,
    /// The translated `lxc.rootfs.path`: mount sources under it are rewritten.
    rootfs: Option<String>,
    /// The idmap is Proxmox's own for unprivileged CTs, which it writes itself.
    proxmox_idmap: bool,
    /// The CT runs in the host's network namespace (`lxc.net.0.type = none`).
    host_network: bool,
    /// An `lxc.mount.auto` key was split.
    auto_mounts_seen: bool,
    /// The next free `mpN`.
    mp: usize,
    out: ProxmoxConfig,
}

impl Split<'_> {
    fn option(&mut self, key: &str, value: impl Into<String>) {
        self.out.options.insert(key.into(), value.into());
    }

    fn raw(&mut self, key: &str, value: &str) -> Result<(), PveError> {
        self.out
            .raw
            .push(key, value)
            .map_err(|e| PveError::InvalidValue {
                key: key.into(),
                value: value.into(),
                reason: e.to_string(),
            })
    }

    /// A key Proxmox would drop: left out if the policy allows it, else an error.
    fn drop(&mut self, e: &Entry, reason: &str) -> Result<(), PveError> {
        if self
            .policy
            .allow_dropped
            .iter()
            .any(|p| e.key().starts_with(p.as_str()))
        {
            self.out.dropped.push(e.clone());
            Ok(())
        } else {
            Err(PveError::Dropped {
                key: e.key().into(),
                reason: reason.into(),
            })
        }
    }

    fn entry(&mut self, e: &Entry) -> Result<(), PveError> {
        let (key, value) = (e.key(), e.value());
        match key {
            "lxc.rootfs.path" | "lxc.rootfs.mount" | "lxc.autodev" | "lxc.cgroup.dir" => {}
            "lxc.rootfs.options" => {
                for opt in value.split(',') {
                    match opt {
                        "ro" => self.out.rootfs_readonly = true,
                        "rw" | "" => {}
                        _ => self.drop(e, "rootfs propagation is Proxmox's")?,
                    }
                }
            }
            "lxc.uts.name" => self.option("hostname", value),
            "lxc.namespace.clone" => {
                let standard = ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user"];
                if !value.split(' ').all(|ns| standard.contains(&ns)) {
                    self.drop(e, "Proxmox creates the standard namespaces only")?;
                }
            }
            k if k.starts_with("lxc.namespace.share.") => {
                return Err(PveError::Namespace {
                    key: key.into(),
                    value: value.into(),
                })
            }
            "lxc.mount.auto" if self.host_network => self.auto_mounts_in_host_network(value)?,
            "lxc.idmap" if self.proxmox_idmap => {}
            "lxc.cgroup2.memory.max" if value != "max" => {
                let m = mib(value).unwrap_or(0).max(16);
                self.option("memory", m.to_string());
            }
            "lxc.cgroup2.memory.swap.max" if value != "max" => {
                self.option("swap", mib(value).unwrap_or(0).to_string());
            }
            "lxc.cgroup2.cpu.max" => {
                if let Some((q, p)) = value.split_once(' ').filter(|(q, _)| *q != "max") {
                    let (q, p): (f64, f64) =
                        (q.parse().unwrap_or(0.0), p.parse().unwrap_or(100_000.0));
                    let limit = (q / p * 100.0).ceil() / 100.0;
                    self.option("cpulimit", format!("{limit}"));
                }
            }
            "lxc.cgroup2.cpu.weight" => self.option("cpuunits", value),
            "lxc.mount.entry" => self.mount_entry(key, value)?,
            k if proxmox_allows(k) => self.raw(key, value)?,
            _ => self.drop(e, "it is not on Proxmox's raw-key allow-list")?,
        }
        Ok(())
    }

    /// The automatic mounts of a CT in the host's network namespace. The kernel lets only
    /// the owner of a network namespace mount sysfs, and the host's is not the CT's: the
    /// `sys` mount Proxmox and LXC's `common.conf` ask for would fail the start. So the
    /// list is cleared and written again without `sys`, and `/sys` is the host's, bound
    /// recursively (as runc does in a user namespace without a network namespace).
    fn auto_mounts_in_host_network(&mut self, value: &str) -> Result<(), PveError> {
        self.auto_mounts_seen = true;
        self.raw("lxc.mount.auto", "")?;
        let (sys, rest): (Vec<&str>, Vec<&str>) =
            value.split_whitespace().partition(|f| f.starts_with("sys"));
        if !rest.is_empty() {
            self.raw("lxc.mount.auto", &rest.join(" "))?;
        }
        let ro = if sys.contains(&"sys:ro") { ",ro" } else { "" };
        self.raw(
            "lxc.mount.entry",
            &format!("/sys sys none rbind{ro},create=dir 0 0"),
        )
    }

    /// A plain bind mount of a host path becomes `mpN` (mounted by Proxmox as host root);
    /// a source under the translated rootfs is rewritten to where Proxmox mounts it; any
    /// other entry stays a raw key. So does a bind onto `/dev`, `/proc` or `/sys`: Proxmox
    /// mounts `mpN` into the rootfs before LXC mounts its own `/dev` tmpfs and the kernel
    /// filesystems over them (CRI's sandbox `/dev/shm` would be hidden), while raw entries
    /// are mounted after those.
    fn mount_entry(&mut self, key: &str, value: &str) -> Result<(), PveError> {
        let fields: Vec<&str> = value.split(' ').collect();
        let opts: Vec<&str> = fields
            .get(3)
            .map(|o| o.split(',').collect())
            .unwrap_or_default();
        let bind = opts.iter().any(|o| *o == "bind" || *o == "rbind");
        let simple = opts
            .iter()
            .all(|o| matches!(*o, "bind" | "rbind" | "ro" | "rw" | "create=dir"));
        let source = fields.first().copied().unwrap_or("");
        let rootfs = self.rootfs.clone().unwrap_or_default();
        let under_rootfs = self.rootfs.is_some() && source.starts_with(&rootfs);
        if bind
            && simple
            && source.starts_with('/')
            && !under_rootfs
            && !source.contains('\\')
            && fields.len() >= 2
            && !fields[1].contains('\\')
            && !mounted_over_by_lxc(fields[1])
        {
            let target = format!("/{}", fields[1].trim_start_matches('/'));
            let ro = if opts.contains(&"ro") { ",ro=1" } else { "" };
            let mp = format!("mp{}", self.mp);
            self.option(&mp, format!("{source},mp={target}{ro},backup=0"));
            self.mp += 1;
            Ok(())
        } else if under_rootfs {
            let rewritten = format!("{}{}", self.policy.rootfs_mount, &value[rootfs.len()..]);
            self.raw(key, &rewritten)
        } else {
            self.raw(key, value)
        }
    }
}

/// Whether the CT path `target` (relative to the rootfs, as in `lxc.mount.entry`) lies
/// where LXC mounts `/dev`, `/proc` or `/sys` after Proxmox's mount points.
fn mounted_over_by_lxc(target: &str) -> bool {
    let top = target
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    matches!(top, "dev" | "proc" | "sys")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONF: &str = "#web%20server\n#second line\narch: amd64\nhostname: web\nmemory: 512\nmp0: /srv/data,mp=/data,ro=1\nrootfs: local-lvm:vm-100-disk-0,size=4G\nlxc.init.cmd: /.proxcage/init\nlxc.mount.entry: /a b none bind 0 0\n\n[before-upgrade]\n#snap\nhostname: web\nmemory: 256\nsnaptime: 1700000000\n";

    #[test]
    fn round_trips_and_keeps_snapshots() {
        let c = PveConfig::parse(CONF).unwrap();
        assert_eq!(c.render(), CONF);
        assert_eq!(c.option("memory"), Some("512"));
        assert_eq!(c.description(), "web%20server\nsecond line");
        assert_eq!(c.raw_keys().count(), 2);
        assert_eq!(c.snapshots().collect::<Vec<_>>(), ["before-upgrade"]);
    }

    #[test]
    fn changes_touch_only_the_live_config() {
        let mut c = PveConfig::parse(CONF).unwrap();
        c.set_option("memory", "1024").unwrap();
        c.set_option("swap", "0").unwrap();
        c.push_raw(&Entry::new("lxc.prlimit.nofile", "10:20").unwrap())
            .unwrap();
        let text = c.render();
        let (live, snap) = text.split_once("[before-upgrade]").unwrap();
        assert!(live.contains("memory: 1024\n") && live.contains("swap: 0\n"));
        assert!(live.ends_with("lxc.prlimit.nofile: 10:20\n"));
        assert!(snap.contains("memory: 256\n") && !snap.contains("lxc.prlimit"));
        assert!(c.set_option("memory", "1\nlxc.x: y").is_err());
        assert!(c.set_option("lxc.x", "1").is_err());
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        let err = PveConfig::parse("memory: 1\nnonsense\n").unwrap_err();
        assert!(err.to_string().starts_with("line 2"), "{err}");
        // Found by fuzz/pve_config_parse: a lone CR would not round-trip.
        assert!(PveConfig::parse("# \0 \r").is_err());
    }

    #[test]
    fn splits_into_options_and_allowed_raw_keys() {
        let lxc = LxcConfig::parse(concat!(
            "lxc.rootfs.path = /b/rootfs\n",
            "lxc.rootfs.mount = /b/rootfs\n",
            "lxc.rootfs.options = ro\n",
            "lxc.uts.name = web\n",
            "lxc.namespace.clone = pid net ipc uts mnt\n",
            "lxc.net.0.type = empty\n",
            "lxc.init.cmd = /.proxcage/init\n",
            "lxc.mount.entry = /srv/data srv/data none rbind,ro,create=dir 0 0\n",
            "lxc.mount.entry = /run/sandbox/shm dev/shm none rbind,ro 0 0\n",
            "lxc.mount.entry = /b/rootfs/proc/sys proc/sys none bind,ro,optional 0 0\n",
            "lxc.mount.entry = tmpfs tmp tmpfs size=1m,create=dir 0 0\n",
            "lxc.cap.keep = kill\n",
            "lxc.cgroup2.memory.max = 268435456\n",
            "lxc.cgroup2.memory.swap.max = 0\n",
            "lxc.cgroup2.cpu.max = 50000 100000\n",
            "lxc.cgroup2.cpu.weight = 100\n",
            "lxc.cgroup2.pids.max = 64\n",
            "lxc.sysctl.kernel.shmmax = 1000\n",
            "lxc.idmap = u 0 100000 65536\n",
            "lxc.idmap = g 0 100000 65536\n",
            "lxc.autodev = 1\n",
        ))
        .unwrap();
        let split = split_for_proxmox(&lxc, &ProxmoxPolicy::default()).unwrap();
        let opts: Vec<_> = split
            .options
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        assert_eq!(
            opts,
            [
                "cpulimit: 0.5",
                "cpuunits: 100",
                "hostname: web",
                "memory: 256",
                "mp0: /srv/data,mp=/srv/data,ro=1,backup=0",
                "swap: 0",
                "unprivileged: 1"
            ]
        );
        assert!(split.rootfs_readonly);
        assert_eq!(
            split.raw.render(),
            concat!(
                "lxc.net.0.type = empty\n",
                "lxc.init.cmd = /.proxcage/init\n",
                "lxc.mount.entry = /run/sandbox/shm dev/shm none rbind,ro 0 0\n",
                "lxc.mount.entry = /usr/lib/x86_64-linux-gnu/lxc/rootfs/proc/sys proc/sys none bind,ro,optional 0 0\n",
                "lxc.mount.entry = tmpfs tmp tmpfs size=1m,create=dir 0 0\n",
                "lxc.cap.keep = kill\n",
                "lxc.cgroup2.pids.max = 64\n",
                "lxc.sysctl.kernel.shmmax = 1000\n",
            )
        );
        let pve = split.to_pve_config().unwrap().render();
        assert!(
            pve.starts_with("cpulimit: 0.5\n") && pve.contains("\nlxc.cap.keep: kill\n"),
            "{pve}"
        );
        let mut empty = PveConfig::default();
        empty
            .push_raw(&Entry::new("lxc.cap.drop", "").unwrap())
            .unwrap();
        assert_eq!(empty.render(), "lxc.cap.drop:\n");
        assert_eq!(PveConfig::parse("lxc.cap.drop:\n").unwrap(), empty);
    }

    #[test]
    fn dropped_keys_are_errors_unless_allowed() {
        let lxc = LxcConfig::parse("lxc.no_new_privs = 1\nlxc.proc.oom_score_adj = 5\n").unwrap();
        let err = split_for_proxmox(&lxc, &ProxmoxPolicy::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("lxc.no_new_privs: Proxmox does not pass"),
            "{err}"
        );
        let policy = ProxmoxPolicy {
            allow_dropped: vec!["lxc.no_new_privs".into(), "lxc.proc.".into()],
            ..ProxmoxPolicy::default()
        };
        let split = split_for_proxmox(&lxc, &policy).unwrap();
        assert_eq!(split.dropped.len(), 2);
        for key in [
            "lxc.namespace.share.net = /x",
            "lxc.sysctl.net.ipv4.ip_forward = 1",
        ] {
            let lxc = LxcConfig::parse(key).unwrap();
            assert!(
                split_for_proxmox(&lxc, &ProxmoxPolicy::default()).is_err(),
                "{key}"
            );
        }
    }

    #[test]
    fn a_shared_namespace_is_refused_whatever_allow_dropped_says() {
        let lxc = LxcConfig::parse("lxc.namespace.share.ipc = /proc/42/ns/ipc\n").unwrap();
        let policy = ProxmoxPolicy {
            allow_dropped: vec!["lxc.".into()],
            ..ProxmoxPolicy::default()
        };
        let err = split_for_proxmox(&lxc, &policy).unwrap_err().to_string();
        assert!(err.contains("/proc/42/ns/ipc"), "{err}");
        assert!(!err.contains("allow_dropped"), "{err}");
    }

    /// The host's network: `lxc.net.0.type = none` goes through, and sysfs (which only
    /// the network namespace's owner may mount) becomes the host's /sys, bound.
    #[test]
    fn the_host_network_binds_sys_instead_of_mounting_it() {
        let lxc = LxcConfig::parse(concat!(
            "lxc.net.0.type = none\n",
            "lxc.mount.auto = proc:rw sys:ro cgroup:rw:force\n",
        ))
        .unwrap();
        let split = split_for_proxmox(&lxc, &ProxmoxPolicy::default()).unwrap();
        assert_eq!(
            split.raw.render(),
            concat!(
                "lxc.net.0.type = none\n",
                "lxc.mount.auto =\n",
                "lxc.mount.auto = proc:rw cgroup:rw:force\n",
                "lxc.mount.entry = /sys sys none rbind,ro,create=dir 0 0\n",
            )
        );
        let bare = LxcConfig::parse("lxc.net.0.type = none\n").unwrap();
        let split = split_for_proxmox(&bare, &ProxmoxPolicy::default()).unwrap();
        assert!(
            split.raw.render().contains("lxc.mount.auto =\n"),
            "Proxmox's sys:mixed is cleared: {}",
            split.raw.render()
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_what_parses_round_trips(text in "((#[ -~]*|[a-z][a-z0-9.]{0,6}: ?[ -~]{0,8}|\\[[a-z0-9]{1,5}\\]|)\n){0,10}") {
            if let Ok(c) = PveConfig::parse(&text) {
                prop_assert_eq!(PveConfig::parse(&c.render()).unwrap(), c);
            }
        }

        #[test]
        fn parse_never_panics_on_anything(text in "\\PC*") {
            let _ = PveConfig::parse(&text);
        }
    }
}
