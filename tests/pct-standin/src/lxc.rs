//! The LXC side: the config pct start writes to `<lxcpath>/<vmid>/config` (rebuilt from
//! the `.conf` each time, as pve-container's `update_lxc_config` does), and the LXC tools
//! the stand-in runs (`lxc-start -d`, `lxc-info`, `lxc-stop`, `lxc-attach`), plus removal
//! of the empty cgroups a daemonised run leaves.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::args::{parse_property_string, Fmt};
use crate::conf::Conf;
use crate::layout::Layout;
use crate::run::{run, Ran};
use crate::storage;
use crate::template::ID_SHIFT;
use crate::{Failure, Warn};

const LXC_CONFIG_DIR: &str = "/usr/share/lxc/config";

/// Builds the LXC config of `vmid` from its `.conf`.
pub fn generate(layout: &Layout, vmid: u32, conf: &Conf, warn: Warn) -> Result<String, Failure> {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k} = {v}\n"));
    let ostype = conf.get("ostype").unwrap_or("unmanaged");
    // As pve-container's update_lxc_config: a raw lxc.idmap makes the CT unprivileged and
    // replaces the default idmap.
    let custom_idmap = conf.lxc.iter().any(|(k, _)| k == "lxc.idmap");
    let unprivileged = conf.flag("unprivileged") || custom_idmap;
    let arch = conf.get("arch").unwrap_or("amd64");
    line("lxc.arch", arch);
    let common = Path::new(LXC_CONFIG_DIR).join(format!("{ostype}.common.conf"));
    line(
        "lxc.include",
        &if ostype != "unmanaged" && common.exists() {
            common.display().to_string()
        } else {
            format!("{LXC_CONFIG_DIR}/common.conf")
        },
    );
    if unprivileged {
        let userns = Path::new(LXC_CONFIG_DIR).join(format!("{ostype}.userns.conf"));
        line(
            "lxc.include",
            &if ostype != "unmanaged" && userns.exists() {
                userns.display().to_string()
            } else {
                format!("{LXC_CONFIG_DIR}/userns.conf")
            },
        );
    }
    let features = conf
        .get("features")
        .map(|f| parse_property_string(Fmt::Features, f).unwrap_or_default())
        .unwrap_or_default();
    if features.get("nesting").map(String::as_str) == Some("1") {
        line("lxc.include", &format!("{LXC_CONFIG_DIR}/nesting.conf"));
    }
    for (key, value) in apparmor(conf, &features) {
        line(key, &value);
    }
    line("lxc.monitor.unshare", "1");
    if unprivileged && !custom_idmap {
        line("lxc.idmap", &format!("u 0 {ID_SHIFT} 65536"));
        line("lxc.idmap", &format!("g 0 {ID_SHIFT} 65536"));
    }
    let prefix = layout.cgroup_prefix();
    line(
        "lxc.cgroup.dir.monitor",
        &format!("{prefix}/lxc.monitor/{vmid}"),
    );
    line("lxc.cgroup.dir.container", &format!("{prefix}/lxc/{vmid}"));
    let memory: u64 = conf
        .get("memory")
        .and_then(|m| m.parse().ok())
        .unwrap_or(512);
    let swap: u64 = conf.get("swap").and_then(|m| m.parse().ok()).unwrap_or(512);
    line("lxc.cgroup2.memory.max", &(memory << 20).to_string());
    line("lxc.cgroup2.memory.swap.max", &(swap << 20).to_string());
    if let Some(limit) = conf
        .get("cpulimit")
        .and_then(|c| c.parse::<f64>().ok())
        .filter(|c| *c > 0.0)
    {
        line(
            "lxc.cgroup2.cpu.max",
            &format!("{} 100000", (limit * 100_000.0) as u64),
        );
    }
    if let Some(units) = conf.get("cpuunits").and_then(|c| c.parse::<u64>().ok()) {
        line(
            "lxc.cgroup2.cpu.weight",
            &units.clamp(1, 10_000).to_string(),
        );
    }
    let rootfs = conf
        .get("rootfs")
        .ok_or_else(|| Failure::new(format!("CT {vmid} has no rootfs configured")))?;
    let rootfs = parse_property_string(Fmt::Rootfs, rootfs).map_err(Failure::new)?;
    let rootdir = storage::volume_dir(layout, &rootfs["volume"])?;
    line("lxc.rootfs.path", &format!("dir:{}", rootdir.display()));
    if rootfs.get("ro").map(String::as_str) == Some("1") {
        line("lxc.rootfs.options", "ro");
    }
    line("lxc.uts.name", &conf.hostname(vmid));
    line(
        "lxc.console.logfile",
        &layout
            .ct_dir(vmid)
            .join("console.log")
            .display()
            .to_string(),
    );
    line(
        "lxc.init.cmd",
        conf.get("entrypoint").unwrap_or("/sbin/init"),
    );
    if let Some(env) = conf.get("env") {
        for var in env.split('\0').filter(|v| !v.is_empty()) {
            line("lxc.environment", var);
        }
    }
    for (key, value) in &conf.keys {
        let Some(index) = key.strip_prefix("net").and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let net = parse_property_string(Fmt::Net, value).map_err(Failure::new)?;
        let k = |s: &str| format!("lxc.net.{index}.{s}");
        line(&k("type"), "veth");
        // No `veth.pair = veth<vmid>i<n>` as Proxmox writes: parallel test roots reuse
        // VMIDs, and host interface names are host-wide; LXC picks a free name.
        if let Some(hw) = net.get("hwaddr") {
            line(&k("hwaddr"), hw);
        }
        line(&k("name"), &net["name"]);
        if let Some(mtu) = net.get("mtu") {
            line(&k("mtu"), mtu);
        }
        if net.get("link_down").map(String::as_str) != Some("1") {
            line(&k("flags"), "up");
        }
    }
    let mut mps: Vec<(u32, &String)> = conf
        .keys
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("mp")?.parse().ok()?, v)))
        .collect();
    mps.sort_unstable();
    for (_, value) in mps {
        let mp = parse_property_string(Fmt::Mp, value).map_err(Failure::new)?;
        let source = storage::volume_dir(layout, &mp["volume"])?;
        let target = mp["mp"].trim_start_matches('/');
        let create = if source.is_file() {
            "create=file"
        } else {
            "create=dir"
        };
        let mut opts = format!("bind,{create}");
        if mp.get("ro").map(String::as_str) == Some("1") {
            opts.push_str(",ro");
        }
        if let Some(extra) = mp.get("mountoptions") {
            for o in extra.split(';') {
                opts.push(',');
                opts.push_str(o);
            }
        }
        line(
            "lxc.mount.entry",
            &format!(
                "{} {target} none {opts} 0 0",
                escape_path(&source.display().to_string())
            ),
        );
    }
    if conf.keys.keys().any(|k| k.starts_with("dev")) {
        warn.say(&format!(
            "pct stand-in: devN passthrough is not emulated, ignored for CT {vmid}"
        ));
    }
    for (key, value) in &conf.lxc {
        out.push_str(&format!("{key} = {value}\n"));
    }
    Ok(out)
}

/// Proxmox's confinement of every CT (pve-container's `make_apparmor_config`): LXC's
/// generated profile with raw rules, unless the `.conf` names a profile of its own, which
/// then replaces all of it.
fn apparmor(
    conf: &Conf,
    features: &std::collections::BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    if conf.lxc.iter().any(|(k, _)| k == "lxc.apparmor.profile") {
        return Vec::new();
    }
    let raw = "lxc.apparmor.raw";
    let mut out = vec![
        ("lxc.apparmor.profile", "generated".to_string()),
        (raw, "allow mqueue,".to_string()),
    ];
    if features.get("nesting").map(String::as_str) == Some("1") {
        out.push(("lxc.apparmor.allow_nesting", "1".to_string()));
        out.push((raw, "allow userns,".to_string()));
    } else {
        out.push((raw, "deny mount -> /proc/,".to_string()));
        out.push((raw, "deny mount -> /sys/,".to_string()));
    }
    for fs in features.get("mount").into_iter().flat_map(|m| m.split(';')) {
        out.push((raw, format!("mount fstype={fs},")));
    }
    out
}

fn escape_path(p: &str) -> String {
    p.replace(' ', "\\040")
}

fn lxc_cmd(layout: &Layout, tool: &str, vmid: u32) -> Result<Command, Failure> {
    let mut cmd = Command::new(tool);
    cmd.arg("-n")
        .arg(vmid.to_string())
        .arg("-P")
        .arg(layout.lxcpath())
        .env("PATH", layout.lxc_env_path()?);
    Ok(cmd)
}

/// Runs an LXC tool on `vmid` with a timeout.
pub fn tool(
    layout: &Layout,
    tool: &str,
    vmid: u32,
    args: &[&str],
    secs: u64,
) -> Result<Ran, Failure> {
    let mut cmd = lxc_cmd(layout, tool, vmid)?;
    cmd.args(args);
    run(&layout.scratch(), &mut cmd, None, Duration::from_secs(secs))
}

/// The init's host PID, or None when the container is not running.
pub fn pid(layout: &Layout, vmid: u32) -> Option<u32> {
    if !layout.ct_dir(vmid).join("config").exists() {
        return None;
    }
    let ran = tool(layout, "lxc-info", vmid, &["-p", "-H"], 30).ok()?;
    ran.stdout.trim().parse().ok()
}

pub fn running(layout: &Layout, vmid: u32) -> bool {
    if !layout.ct_dir(vmid).join("config").exists() {
        return false;
    }
    tool(layout, "lxc-info", vmid, &["-s", "-H"], 30)
        .map(|r| {
            let s = r.stdout.trim();
            !s.is_empty() && s != "STOPPED"
        })
        .unwrap_or(false)
}

/// `lxc-attach` in the foreground with the caller's stdio; returns its exit code.
pub fn attach(layout: &Layout, vmid: u32, keep_env: bool, argv: &[String]) -> Result<i32, Failure> {
    let mut cmd = lxc_cmd(layout, "lxc-attach", vmid)?;
    // The caller's PATH (without the tool path) is what the command inside sees.
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    // pct's clean_environment(), and the stand-in's own variables.
    for var in [
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "PCT_STANDIN_ROOT",
        "PCT_STANDIN_NODE",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg(if keep_env {
        "--keep-env"
    } else {
        "--clear-env"
    });
    cmd.arg("--").args(argv);
    let status = cmd
        .status()
        .map_err(|e| Failure::new(format!("unable to run lxc-attach: {e}")))?;
    Ok(status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    }))
}

/// Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers and the v2 tree).
fn hierarchies() -> Vec<std::path::PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.procs").exists() {
        return vec![root.to_path_buf()];
    }
    fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes empty cgroup directories under `dir`, deepest first; busy ones stay.
fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Removes the (empty) cgroups of one container, left by a stopped or failed run.
pub fn remove_cgroups(layout: &Layout, vmid: u32) {
    remove_ct_cgroups(layout, vmid);
    let prefix = layout.cgroup_prefix();
    for h in hierarchies() {
        // The root's own directories go too once no container of it is left.
        for dir in ["lxc", "lxc.monitor", ""] {
            let _ = fs::remove_dir(h.join(&prefix).join(dir));
        }
    }
}

/// Removes the empty cgroup directories of CT `vmid` only: what `pct start` clears
/// before and after `lxc-start`. The root's directories stay, since another CT's
/// `lxc-start` may have just made them and be about to make its own below them.
pub fn remove_ct_cgroups(layout: &Layout, vmid: u32) {
    let prefix = layout.cgroup_prefix();
    for h in hierarchies() {
        rmdir_tree(&h.join(&prefix).join("lxc").join(vmid.to_string()));
        rmdir_tree(&h.join(&prefix).join("lxc.monitor").join(vmid.to_string()));
    }
}

/// Removes this root's whole cgroup tree, LXC's default-named `lxc.monitor.<vmid>` and
/// `lxc.payload.<vmid>` of `vmids` (a raw `lxc.cgroup.dir.*` key may have brought LXC's
/// defaults back) and `lxc.pivot`, each only when empty.
pub fn remove_all_cgroups(layout: &Layout, vmids: &[u32]) {
    let prefix = layout.cgroup_prefix();
    for h in hierarchies() {
        rmdir_tree(&h.join(&prefix));
        for vmid in vmids {
            rmdir_tree(&h.join(format!("lxc.monitor.{vmid}")));
            rmdir_tree(&h.join(format!("lxc.payload.{vmid}")));
        }
        let _ = fs::remove_dir(h.join("lxc.pivot"));
    }
}

/// Applies `memory`, `swap`, `cpulimit` and `cpuunits` of `conf` to the running container
/// `vmid`, as pve-container's `vmconfig_hotplug_pending` does: through the container's
/// cgroups (v1 files on a host whose memory controller is v1, else cgroup2's).
pub fn hotplug(layout: &Layout, vmid: u32, conf: &Conf, keys: &[&str]) -> Result<(), Failure> {
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    let set = |key: &str, value: &str| -> Result<(), Failure> {
        // `--`: a value of -1 (no CPU quota) is no option.
        let ran = tool(layout, "lxc-cgroup", vmid, &["--", key, value], 30)?;
        if !ran.status.success() {
            return Err(Failure::new(format!(
                "unable to hotplug {key}: {}",
                ran.stderr.trim()
            )));
        }
        Ok(())
    };
    let mib = |key: &str, default: u64| -> u64 {
        conf.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if keys.iter().any(|k| *k == "memory" || *k == "swap") {
        let (memory, swap) = (mib("memory", 512) << 20, mib("swap", 512) << 20);
        if v1 {
            // memory.limit_in_bytes may never exceed memsw: raise memsw first when
            // growing, lower memory first when shrinking.
            let both = (memory + swap).to_string();
            if set("memory.memsw.limit_in_bytes", &both).is_err() {
                set("memory.limit_in_bytes", &memory.to_string())?;
                set("memory.memsw.limit_in_bytes", &both)?;
            } else {
                set("memory.limit_in_bytes", &memory.to_string())?;
            }
        } else {
            set("memory.max", &memory.to_string())?;
            set("memory.swap.max", &swap.to_string())?;
        }
    }
    if keys.contains(&"cpulimit") {
        let limit: f64 = conf
            .get("cpulimit")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0.0);
        let quota = (limit * 100_000.0) as i64;
        if v1 {
            set("cpu.cfs_period_us", "100000")?;
            set(
                "cpu.cfs_quota_us",
                &if quota > 0 {
                    quota.to_string()
                } else {
                    "-1".into()
                },
            )?;
        } else {
            let q = if quota > 0 {
                quota.to_string()
            } else {
                "max".into()
            };
            set("cpu.max", &format!("{q} 100000"))?;
        }
    }
    if keys.contains(&"cpuunits") {
        let units = mib("cpuunits", 100);
        if v1 {
            set("cpu.shares", &units.to_string())?;
        } else {
            set("cpu.weight", &units.clamp(1, 10_000).to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The LXC config of a privileged CT with every generated part, against the golden
    /// file (the root directory written as `$ROOT`).
    #[test]
    fn generated_config_matches_the_golden_file() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path().to_path_buf(), "pve".into()).unwrap();
        let raw = "#description\n\
            arch: amd64\n\
            cores: 2\n\
            cpulimit: 1.5\n\
            cpuunits: 20000\n\
            entrypoint: /bin/sh /start.sh\n\
            features: nesting=1\n\
            hostname: golden\n\
            memory: 256\n\
            mp0: /srv/data,mp=/data,ro=1\n\
            mp1: local-lvm:vm-101-disk-1,mp=/vol,size=1G\n\
            net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,mtu=1400\n\
            ostype: unmanaged\n\
            rootfs: local-lvm:vm-101-disk-0,size=4G\n\
            swap: 0\n\
            lxc.init.cmd: /bin/sleep 1000\n\
            lxc.mount.entry: tmpfs tmp tmpfs size=1m 0 0\n";
        let conf = Conf::parse(101, raw, Warn::Silent);
        let text = generate(&layout, 101, &conf, Warn::Silent).unwrap();
        let text = text.replace(&dir.path().display().to_string(), "$ROOT");
        let prefix = layout.cgroup_prefix();
        let text = text.replace(&prefix, "$CGROUP");
        let golden = include_str!("../golden/privileged-101.config");
        assert_eq!(text, golden, "generated:\n{text}");
    }
}
