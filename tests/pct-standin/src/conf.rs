//! `/etc/pve/lxc/<vmid>.conf`: parsing with pve-container's warnings and raw-key allow-list,
//! and writing back as pct does (description as `#` lines on top, keys sorted, raw `lxc.*`
//! keys in file order, snapshot sections kept as they were).

use std::collections::BTreeMap;
use std::fs;

use crate::layout::Layout;
use crate::{io_fail, Failure, Warn};

/// The live section of a container config.
#[derive(Debug, Default, Clone)]
pub struct Conf {
    pub description: String,
    pub keys: BTreeMap<String, String>,
    pub lxc: Vec<(String, String)>,
    /// `[snapshot]` and `[pve:pending]` sections, verbatim.
    pub sections: String,
}

impl Conf {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .and_then(crate::args::parse_bool)
            .unwrap_or(false)
    }

    pub fn hostname(&self, vmid: u32) -> String {
        self.get("hostname")
            .map(str::to_string)
            .unwrap_or_else(|| format!("CT{vmid}"))
    }

    /// `CT is locked (<lock>)` when a lock is set.
    pub fn check_lock(&self) -> Result<(), Failure> {
        match self.get("lock") {
            Some(lock) => Err(Failure::new(format!("CT is locked ({lock})"))),
            None => Ok(()),
        }
    }

    pub fn check_protection(&self, what: &str) -> Result<(), Failure> {
        if self.flag("protection") {
            return Err(Failure::new(format!("{what} - protection mode enabled")));
        }
        Ok(())
    }

    /// Parses a config, warning (to `warn`) about what pve-container warns about.
    pub fn parse(vmid: u32, raw: &str, warn: Warn) -> Conf {
        let mut conf = Conf::default();
        let mut lines = raw.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with('[') {
                conf.sections = std::iter::once(line)
                    .chain(lines.by_ref())
                    .map(|l| format!("{l}\n"))
                    .collect();
                break;
            }
            if let Some(text) = line.strip_prefix('#') {
                conf.description.push_str(&decode_text(text));
                conf.description.push('\n');
                continue;
            }
            if let Some((key, value)) = split_lxc_line(line) {
                match raw_key_validity(key) {
                    Validity::Ok(note) => {
                        if let Some(note) = note {
                            warn.say(&format!("vm {vmid} - {note}"));
                        }
                        conf.lxc.push((key.to_string(), value.to_string()));
                    }
                    Validity::Rejected(msg) => warn.say(&format!("vm {vmid} - {key}: {msg}")),
                    Validity::Unknown => {
                        warn.say(&format!("vm {vmid} - unable to parse config: {line}"))
                    }
                }
                continue;
            }
            match line.split_once(':') {
                Some((key, value))
                    if !key.is_empty()
                        && key.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                        }) =>
                {
                    conf.keys.insert(key.to_string(), value.trim().to_string());
                }
                _ => warn.say(&format!("vm {vmid} - unable to parse config: {line}")),
            }
        }
        conf
    }

    /// Splits the `[pve:pending]` section off the other sections: its keys, the rest.
    fn split_pending(&self) -> (BTreeMap<String, String>, String) {
        let mut pending = BTreeMap::new();
        let mut rest = String::new();
        let mut inside = false;
        for line in self.sections.lines() {
            if line.starts_with('[') {
                inside = line == "[pve:pending]";
            }
            if !inside {
                rest.push_str(line);
                rest.push('\n');
            } else if let Some((k, v)) = line.split_once(':') {
                pending.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        (pending, rest)
    }

    /// The keys of `[pve:pending]`.
    pub fn pending(&self) -> BTreeMap<String, String> {
        self.split_pending().0
    }

    /// Puts `key` into `[pve:pending]`: what `pct set` cannot apply to a running CT.
    pub fn set_pending(&mut self, key: &str, value: &str) {
        let (mut pending, rest) = self.split_pending();
        pending.insert(key.into(), value.into());
        let mut text = String::from("[pve:pending]\n");
        for (k, v) in &pending {
            text.push_str(&format!("{k}: {v}\n"));
        }
        if !rest.is_empty() {
            text.push('\n');
        }
        self.sections = text + rest.trim_start_matches('\n');
    }

    /// Moves the pending keys into the live config (at `pct start`); whether there were any.
    pub fn apply_pending(&mut self) -> bool {
        let (pending, rest) = self.split_pending();
        let any = !pending.is_empty();
        self.keys.extend(pending);
        self.sections = rest.trim_start_matches('\n').to_string();
        any
    }

    /// The file text, as pct writes it.
    pub fn render(&self) -> String {
        let mut raw = String::new();
        // Perl's split(/\n/): empty lines inside stay, trailing empty fields go.
        let mut lines: Vec<&str> = self.description.split('\n').collect();
        while lines.last() == Some(&"") {
            lines.pop();
        }
        for line in lines {
            raw.push('#');
            raw.push_str(&encode_text(line));
            raw.push('\n');
        }
        for (key, value) in &self.keys {
            raw.push_str(&format!("{key}: {value}\n"));
        }
        for (key, value) in &self.lxc {
            raw.push_str(&format!("{key}: {value}\n"));
        }
        if !self.sections.is_empty() {
            raw.push('\n');
            raw.push_str(&self.sections);
        }
        raw
    }
}

/// `lxc.key: value` or `lxc.key = value`.
fn split_lxc_line(line: &str) -> Option<(&str, &str)> {
    if !line.starts_with("lxc.") {
        return None;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c)))
        .unwrap_or(line.len());
    let key = &line[..end];
    let rest = line[end..].trim_start();
    let value = rest.strip_prefix(':').or_else(|| rest.strip_prefix('='))?;
    Some((key, value.trim()))
}

enum Validity {
    /// Passed through; with a note to warn (deprecated names).
    Ok(Option<String>),
    Rejected(&'static str),
    Unknown,
}

const ALLOWED_KEYS: &[&str] = &[
    "lxc.apparmor.profile",
    "lxc.apparmor.allow_incomplete",
    "lxc.apparmor.allow_nesting",
    "lxc.apparmor.raw",
    "lxc.selinux.context",
    "lxc.include",
    "lxc.arch",
    "lxc.uts.name",
    "lxc.signal.halt",
    "lxc.signal.reboot",
    "lxc.signal.stop",
    "lxc.init.cmd",
    "lxc.init.cwd",
    "lxc.init.uid",
    "lxc.init.gid",
    "lxc.init.groups",
    "lxc.pty.max",
    "lxc.console.logfile",
    "lxc.console.path",
    "lxc.tty.max",
    "lxc.devtty.dir",
    "lxc.hook.autodev",
    "lxc.autodev",
    "lxc.kmsg",
    "lxc.mount.fstab",
    "lxc.mount.entry",
    "lxc.mount.auto",
    "lxc.rootfs.mount",
    "lxc.cap.drop",
    "lxc.cap.keep",
    "lxc.seccomp.profile",
    "lxc.seccomp.notify.proxy",
    "lxc.seccomp.notify.cookie",
    "lxc.idmap",
    "lxc.hook.pre-start",
    "lxc.hook.pre-mount",
    "lxc.hook.mount",
    "lxc.hook.start",
    "lxc.hook.stop",
    "lxc.hook.post-stop",
    "lxc.hook.clone",
    "lxc.hook.destroy",
    "lxc.hook.version",
    "lxc.log.level",
    "lxc.log.file",
    "lxc.start.auto",
    "lxc.start.delay",
    "lxc.start.order",
    "lxc.group",
    "lxc.environment",
    "lxc.environment.runtime",
    "lxc.environment.hooks",
    "lxc.sysctl.fs.mqueue",
    "lxc.sysctl.kernel.msgmax",
    "lxc.sysctl.kernel.msgmnb",
    "lxc.sysctl.kernel.msgmni",
    "lxc.sysctl.kernel.sem",
    "lxc.sysctl.kernel.shmall",
    "lxc.sysctl.kernel.shmmax",
    "lxc.sysctl.kernel.shmmni",
    "lxc.sysctl.kernel.shm_rmid_forced",
];

const DEPRECATED_KEYS: &[(&str, &str)] = &[
    ("lxc.aa_profile", "lxc.apparmor.profile"),
    ("lxc.console", "lxc.console.path"),
    ("lxc.haltsignal", "lxc.signal.halt"),
    ("lxc.id_map", "lxc.idmap"),
    ("lxc.init_cmd", "lxc.init.cmd"),
    ("lxc.loglevel", "lxc.log.level"),
    ("lxc.logfile", "lxc.log.file"),
    ("lxc.mount", "lxc.mount.fstab"),
    ("lxc.pts", "lxc.pty.max"),
    ("lxc.seccomp", "lxc.seccomp.profile"),
    ("lxc.tty", "lxc.tty.max"),
    ("lxc.utsname", "lxc.uts.name"),
];

/// pve-container's `is_valid_lxc_conf_key`.
fn raw_key_validity(key: &str) -> Validity {
    if key.starts_with("lxc.limit.") {
        return Validity::Ok(Some(format!(
            "{key}: lxc.limit.* was renamed to lxc.prlimit.*"
        )));
    }
    if let Some((_, new)) = DEPRECATED_KEYS.iter().find(|(old, _)| *old == key) {
        return Validity::Ok(Some(format!(
            "{key} is deprecated and was renamed to {new}"
        )));
    }
    match key {
        "lxc.rootfs.path" => return Validity::Rejected("lxc.rootfs.path is auto generated from rootfs"),
        "lxc.rootfs.options" => {
            return Validity::Rejected(
                "lxc.rootfs.options is not supported, please use mount point options in the \"rootfs\" key",
            )
        }
        _ => {}
    }
    if ALLOWED_KEYS.contains(&key)
        || key.starts_with("lxc.cgroup.")
        || key.starts_with("lxc.cgroup2.")
        || key.starts_with("lxc.prlimit.")
        || key.starts_with("lxc.net.")
    {
        return Validity::Ok(None);
    }
    Validity::Unknown
}

/// `Configuration file 'nodes/<node>/lxc/<vmid>.conf' does not exist`
pub fn missing(layout: &Layout, vmid: u32) -> Failure {
    Failure::new(format!(
        "Configuration file '{}' does not exist",
        layout.cfs_path(vmid)
    ))
}

/// Loads a container's config; warnings go to `warn`.
pub fn load(layout: &Layout, vmid: u32, warn: Warn) -> Result<Conf, Failure> {
    match fs::read_to_string(layout.conf_path(vmid)) {
        Ok(raw) => Ok(Conf::parse(vmid, &raw, warn)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing(layout, vmid)),
        Err(e) => Err(Failure::new(format!(
            "unable to read '{}' - {e}",
            layout.conf_path(vmid).display()
        ))),
    }
}

/// Writes a container's config atomically (temp file + rename), as pmxcfs does.
pub fn write(layout: &Layout, vmid: u32, conf: &Conf) -> Result<(), Failure> {
    let path = layout.conf_path(vmid);
    let tmp = path.with_extension(format!("conf.tmp.{}", std::process::id()));
    fs::write(&tmp, conf.render()).map_err(io_fail("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_fail("rename to", &path))?;
    Ok(())
}

/// Perl's `uri_escape` with pve's unsafe set: control characters, `:` and non-ASCII.
pub fn encode_text(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if (0x20..=0x39).contains(&b) || (0x3b..=0x7e).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `uri_unescape`.
pub fn decode_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
