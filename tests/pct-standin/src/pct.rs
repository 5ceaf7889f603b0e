//! The `pct` subcommands: create, start, stop, shutdown, destroy, status, list, config,
//! set, exec, unlock, mount, unmount; and the stand-in's own `cleanup` for test teardown.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use crate::args::{
    self, check, check_vmid, config_option, param_error, parse, Arity, Fmt, ParamErrors, Params, Ty,
};
use crate::conf::{self, Conf};
use crate::layout::Layout;
use crate::lock::{default_timeout, lock_file, lock_file_checked, ConfigLock};
use crate::{lxc, storage, template, Failure, Warn};

const COMMANDS: &[&str] = &[
    "create", "start", "stop", "shutdown", "destroy", "status", "list", "config", "set", "exec",
    "unlock", "mount", "unmount",
];

pub fn main(layout: &Layout, argv: &[String]) -> Result<(), Failure> {
    let Some(cmd) = argv.first() else {
        return Err(Failure::new(format!(
            "ERROR: no command specified\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]\n       (pct stand-in: {})",
            COMMANDS.join(", ")
        )));
    };
    let args = &argv[1..];
    match cmd.as_str() {
        "create" => create(layout, args),
        "start" => start_cmd(layout, args),
        "stop" => stop(layout, args),
        "shutdown" => shutdown(layout, args),
        "destroy" => destroy(layout, args),
        "status" => status(layout, args),
        "list" => list(layout, args),
        "config" => config(layout, args),
        "set" => set(layout, args),
        "exec" => exec(layout, args),
        "unlock" => unlock(layout, args),
        "mount" => mount(layout, args),
        "unmount" => unmount(layout, args),
        other => Err(Failure::new(format!(
            "ERROR: unknown command 'pct {other}'\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]\n       (pct stand-in: {})",
            COMMANDS.join(", ")
        ))),
    }
}

/// Parses a subcommand with only boolean or valued options from `opts`; checks the VMID.
fn simple(
    args: &[String],
    usage: &str,
    opts: &[(&str, Ty)],
    extra: bool,
) -> Result<(u32, Params), Failure> {
    let p = parse(
        args,
        &["vmid"],
        extra,
        |name| {
            opts.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, ty)| match ty {
                    Ty::Bool => Arity::Bool,
                    _ => Arity::Value,
                })
        },
        usage,
    )?;
    let mut errors = ParamErrors::default();
    let vmid = check_vmid(&p.pos[0])
        .map_err(|e| errors.add("vmid", e))
        .ok();
    let mut p = p;
    for (name, ty) in opts {
        if let Some(v) = p.opts.get(*name) {
            match check(name, *ty, v) {
                Ok(v) => {
                    p.opts.insert(name.to_string(), v);
                }
                Err(e) => errors.add(name, e),
            }
        }
    }
    errors.into_result(usage)?;
    Ok((vmid.unwrap_or(0), p))
}

fn config_lock(layout: &Layout, vmid: u32) -> Result<ConfigLock, Failure> {
    lock_file(&layout.lock_path(vmid), default_timeout())
}

/// `CT <vmid> already exists on node '<node>'` / `VM ...` when the VMID is taken anywhere.
fn check_vmid_unused(layout: &Layout, vmid: u32) -> Result<(), Failure> {
    if let Some((_, node, kind)) = layout
        .all_guests()
        .into_iter()
        .find(|(id, _, _)| *id == vmid)
    {
        return Err(Failure::new(format!(
            "{kind} {vmid} already exists on node '{node}'"
        )));
    }
    Ok(())
}

/// Sleeps the milliseconds the environment variable `var` gives, if any: the time real
/// pct spends where the stand-in is quick (perl start-up, unpacking, systemd).
fn pause_for(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

// ---------------------------------------------------------------- create

const CREATE_USAGE: &str = "pct create <vmid> <ostemplate> [OPTIONS]";

/// Options of `pct create` beyond the config options.
fn create_only(name: &str) -> Option<Ty> {
    Some(match name {
        "storage" => Ty::Str(None, Fmt::Plain),
        "unprivileged" | "force" | "start" | "restore" | "ignore-unpack-errors" | "unique" => {
            Ty::Bool
        }
        "password" | "ssh-public-keys" | "pool" => Ty::Str(None, Fmt::Plain),
        "bwlimit" => Ty::Num(0.0, f64::MAX),
        _ => return None,
    })
}

fn create_option(name: &str) -> Option<Ty> {
    if name == "lock" {
        return None;
    }
    create_only(name).or_else(|| config_option(name))
}

fn arity_of(ty: Ty) -> Arity {
    match ty {
        Ty::Bool => Arity::Bool,
        _ => Arity::Value,
    }
}

/// A mount point or rootfs to set up: its key, parsed property string and what to do.
struct MountSpec {
    key: String,
    props: BTreeMap<String, String>,
    /// `Some(size GiB)` when the volume is `<storage>:<size>` (allocate).
    alloc: Option<(String, f64)>,
}

fn create(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let warn = Warn::Stdout;
    let mut p = parse(
        args,
        &["vmid", "ostemplate"],
        false,
        |n| create_option(n).map(arity_of),
        CREATE_USAGE,
    )?;
    let mut errors = ParamErrors::default();
    let vmid = check_vmid(&p.pos[0])
        .map_err(|e| errors.add("vmid", e))
        .ok();
    let ostemplate = p.pos[1].clone();
    if ostemplate.chars().count() > 255 {
        errors.add("ostemplate", "value may only be 255 characters long");
    }
    let names: Vec<String> = p.opts.keys().cloned().collect();
    for name in names {
        let ty = create_option(&name).expect("parse accepted only known options");
        match check(&name, ty, &p.opts[&name]) {
            Ok(v) => {
                p.opts.insert(name, v);
            }
            Err(e) => errors.add(&name, e),
        }
    }
    errors.into_result(CREATE_USAGE)?;
    let vmid = vmid.unwrap_or(0);
    let mut opts = p.opts;
    normalize_tags(&mut opts);

    check_vmid_unused(layout, vmid)?;

    // The template: a volume id on a storage, or an absolute path.
    let archive = if ostemplate.starts_with('/') {
        PathBuf::from(&ostemplate)
    } else {
        let (sid, name) = storage::parse_volume_id(&ostemplate)
            .ok_or_else(|| Failure::new(format!("unable to parse volume ID '{ostemplate}'")))?;
        let store = storage::get(layout, sid)?;
        let file = name
            .strip_prefix("vztmpl/")
            .ok_or_else(|| Failure::new(format!("unable to parse volume ID '{ostemplate}'")))?;
        store.template_path(layout, file)
    };

    let default_storage = opts.remove("storage").unwrap_or_else(|| "local".into());
    let check_storage = |sid: &str| -> Result<(), Failure> {
        let store = storage::get(layout, sid)?;
        if !store.supports_rootdir() {
            return Err(param_error(
                "storage",
                format!("storage '{sid}' does not support container directories"),
                CREATE_USAGE,
            ));
        }
        Ok(())
    };
    let mut mounts = Vec::new();
    // rootfs first, then mp0, mp1, ...: the order pve allocates volumes in.
    let mut mount_keys: Vec<String> = opts
        .keys()
        .filter(|k| *k == "rootfs" || (k.starts_with("mp") && config_option(k).is_some()))
        .cloned()
        .collect();
    mount_keys.sort_by_key(|k| {
        k.strip_prefix("mp")
            .and_then(|n| n.parse::<u32>().ok())
            .map_or(0, |n| n + 1)
    });
    for key in &mount_keys {
        let mut value = opts.remove(key).expect("key from the map");
        if args::is_disk_size(&value) && !value.ends_with(['K', 'M', 'G', 'T']) {
            value = format!("{default_storage}:{value}");
        }
        let fmt = if key == "rootfs" {
            Fmt::Rootfs
        } else {
            Fmt::Mp
        };
        let props = args::parse_property_string(fmt, &value).map_err(Failure::new)?;
        let volume = props["volume"].clone();
        let mut alloc = None;
        if !volume.starts_with('/') {
            let (sid, name) = storage::parse_volume_id(&volume)
                .ok_or_else(|| Failure::new(format!("unable to parse volume ID '{volume}'")))?;
            check_storage(sid)?;
            if let Ok(size) = name.parse::<f64>() {
                alloc = Some((sid.to_string(), size));
            }
        }
        mounts.push(MountSpec {
            key: key.clone(),
            props,
            alloc,
        });
    }
    if !mounts.is_empty() && !mounts.iter().any(|m| m.key == "rootfs") {
        return Err(Failure::new(
            "mount points configured, but 'rootfs' not set - aborting",
        ));
    }
    if mounts.is_empty() {
        check_storage(&default_storage)?;
        let mut props = BTreeMap::new();
        props.insert("volume".to_string(), format!("{default_storage}:4"));
        mounts.push(MountSpec {
            key: "rootfs".into(),
            props,
            alloc: Some((default_storage.clone(), 4.0)),
        });
    }

    let unprivileged = opts.remove("unprivileged").is_none_or(|v| v == "1");
    let start_after = opts.remove("start").is_some_and(|v| v == "1");
    for key in [
        "force",
        "restore",
        "ignore-unpack-errors",
        "unique",
        "password",
        "ssh-public-keys",
        "pool",
        "bwlimit",
    ] {
        opts.remove(key);
    }

    // create_and_lock_config: under the flock, claim the VMID with a `lock: create` config.
    {
        // While another create of this VMID extracts under the lock, its claim is already
        // visible: fail with `already exists` at once rather than with a lock timeout
        // (the reference's promise for concurrent creates; real pct may time out).
        let _lock = lock_file_checked(
            &layout.lock_path(vmid),
            std::time::Duration::from_secs(5),
            || check_vmid_unused(layout, vmid),
        )?;
        check_vmid_unused(layout, vmid)?;
        let mut claim = Conf::default();
        claim.keys.insert("lock".into(), "create".into());
        let path = layout.conf_path(vmid);
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Failure::new(format!(
                    "CT {vmid} already exists on node '{}'",
                    layout.node
                )))
            }
            Err(e) => return Err(crate::io_fail("create", &path)(e)),
        };
        use std::io::Write;
        file.write_all(claim.render().as_bytes())
            .map_err(crate::io_fail("write", &path))?;
    }

    // The task: under the config lock; on failure everything made so far goes again.
    let task_lock = config_lock(layout, vmid)?;
    let mut made: Vec<String> = Vec::new();
    let result = (|| -> Result<Conf, Failure> {
        if !archive.is_file() {
            return Err(Failure::new(format!("can't find file '{ostemplate}'")));
        }
        // Proxmox unpacks the template here, with the VMID claimed and its lock held.
        pause_for("PCT_STANDIN_TASK_DELAY_MS");
        let mut conf = Conf::default();
        let mut rootdir = None;
        for m in &mut mounts {
            if let Some((sid, size)) = &m.alloc {
                let store = storage::get(layout, sid)?;
                let (volid, dir) = store.alloc(layout, vmid)?;
                made.push(volid.clone());
                if unprivileged {
                    // A new volume's root belongs to the container's root, as after mkfs.
                    std::os::unix::fs::chown(
                        &dir,
                        Some(template::ID_SHIFT),
                        Some(template::ID_SHIFT),
                    )
                    .map_err(crate::io_fail("chown", &dir))?;
                }
                m.props.insert("volume".into(), volid);
                m.props.insert("size".into(), storage::format_size(*size));
                if m.key == "rootfs" {
                    rootdir = Some(dir);
                }
            } else if m.key == "rootfs" {
                let dir = storage::volume_dir(layout, &m.props["volume"])?;
                // The template is extracted into it: never into a host directory in use.
                let empty = fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none());
                if !empty {
                    return Err(Failure::new(format!(
                        "pct stand-in: rootfs '{}' must be an existing empty directory",
                        dir.display()
                    )));
                }
                rootdir = Some(dir);
            }
            conf.keys
                .insert(m.key.clone(), print_property_string(&m.props));
        }
        let rootdir = rootdir.expect("rootfs is always among the mounts");
        template::extract(layout, &archive, &rootdir, unprivileged, warn)?;
        let ostype = match opts.remove("ostype") {
            Some(t) => t,
            None => template::detect_ostype(&rootdir)?.to_string(),
        };
        conf.keys.insert("ostype".into(), ostype);
        if let Some(d) = opts.remove("description") {
            conf.description = d.lines().map(|l| format!("{l}\n")).collect();
        }
        conf.keys
            .entry("arch".into())
            .or_insert_with(|| "amd64".into());
        for (k, v) in opts.iter() {
            conf.keys.insert(k.clone(), v.clone());
        }
        conf.keys
            .entry("hostname".into())
            .or_insert_with(|| format!("CT{vmid}"));
        conf.keys
            .entry("memory".into())
            .or_insert_with(|| "512".into());
        conf.keys
            .entry("swap".into())
            .or_insert_with(|| "512".into());
        if unprivileged {
            conf.keys.insert("unprivileged".into(), "1".into());
        }
        conf::write(layout, vmid, &conf)?;
        Ok(conf)
    })();
    if let Err(e) = result {
        for volid in &made {
            storage::free(layout, volid);
        }
        let _ = fs::remove_file(layout.conf_path(vmid));
        return Err(Failure::new(format!(
            "unable to create CT {vmid} - {}",
            e.message
        )));
    }
    drop(task_lock);
    if start_after {
        if let Err(e) = start(layout, vmid, false, warn) {
            warn.say(&e.message);
        }
    }
    Ok(())
}

/// pve's `get_unique_tags`: tags sorted, duplicates dropped, joined with `;`.
fn normalize_tags(opts: &mut BTreeMap<String, String>) {
    if let Some(tags) = opts.get_mut("tags") {
        let set: std::collections::BTreeSet<&str> = tags
            .split([';', ',', ' '])
            .filter(|t| !t.is_empty())
            .collect();
        *tags = set.into_iter().collect::<Vec<_>>().join(";");
    }
}

/// pve's `print_property_string`: the default key's value first, then `key=value` sorted.
fn print_property_string(props: &BTreeMap<String, String>) -> String {
    let mut parts = vec![props["volume"].clone()];
    parts.extend(
        props
            .iter()
            .filter(|(k, _)| *k != "volume")
            .map(|(k, v)| format!("{k}={v}")),
    );
    parts.join(",")
}

// ---------------------------------------------------------------- start / stop

fn start_cmd(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, p) = simple(
        args,
        "pct start <vmid> [OPTIONS]",
        &[("skiplock", Ty::Bool), ("debug", Ty::Bool)],
        false,
    )?;
    let skiplock = p.opts.get("skiplock").is_some_and(|v| v == "1");
    start(layout, vmid, skiplock, Warn::Stdout)
}

/// `pct start`: rebuild the LXC config, `lxc-start -d`, and find the init's PID.
pub fn start(layout: &Layout, vmid: u32, skiplock: bool, warn: Warn) -> Result<(), Failure> {
    conf::load(layout, vmid, Warn::Silent)?;
    if lxc::running(layout, vmid) {
        return Err(Failure::new(format!("CT {vmid} already running")));
    }
    let _lock = config_lock(layout, vmid)?;
    let mut conf = conf::load(layout, vmid, warn)?;
    if !skiplock {
        conf.check_lock()?;
    }
    if lxc::running(layout, vmid) {
        return Err(Failure::new(format!("CT {vmid} already running")));
    }
    if conf.apply_pending() {
        conf::write(layout, vmid, &conf)?;
    }
    // Proxmox's hooks and systemd unit, under the config lock.
    pause_for("PCT_STANDIN_TASK_DELAY_MS");
    let config = lxc::generate(layout, vmid, &conf, warn)?;
    let dir = layout.ct_dir(vmid);
    fs::create_dir_all(&dir).map_err(crate::io_fail("create", &dir))?;
    let config_path = dir.join("config");
    fs::write(
        &config_path,
        format!(
            "# generated by the pct stand-in (test code, not Proxmox) on every pct start\n{config}"
        ),
    )
    .map_err(crate::io_fail("write", &config_path))?;
    lxc::remove_ct_cgroups(layout, vmid);
    let ran = lxc::tool(layout, "lxc-start", vmid, &["-d"], 60)?;
    if !ran.ok() {
        for line in ran.stderr.lines() {
            warn.say(line);
        }
        lxc::remove_ct_cgroups(layout, vmid);
        return Err(Failure::new(format!(
            "startup for container '{vmid}' failed"
        )));
    }
    // An init that exits at once may still show up right after `lxc-start -d`: give it
    // a moment, then ask again (Proxmox's next lxc-info would not find it either).
    let alive = lxc::pid(layout, vmid).is_some_and(|pid| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        !process_gone(pid)
    });
    if !alive {
        lxc::remove_ct_cgroups(layout, vmid);
        return Err(Failure::new(format!(
            "unable to get PID for CT {vmid} (not running?)"
        )));
    }
    Ok(())
}

/// True once `pid` has exited (a zombie not yet reaped counts as gone).
fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn stop(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, p) = simple(
        args,
        "pct stop <vmid> [OPTIONS]",
        &[
            ("skiplock", Ty::Bool),
            ("overrule-shutdown", Ty::Bool),
            ("timeout", Ty::Int(Some(0), None)),
        ],
        false,
    )?;
    conf::load(layout, vmid, Warn::Silent)?;
    if !lxc::running(layout, vmid) {
        return Err(Failure::new(format!("CT {vmid} not running")));
    }
    let _lock = config_lock(layout, vmid)?;
    let conf = conf::load(layout, vmid, Warn::Stdout)?;
    if p.opts.get("skiplock").is_none_or(|v| v != "1") {
        conf.check_lock()?;
    }
    kill(layout, vmid)
}

fn kill(layout: &Layout, vmid: u32) -> Result<(), Failure> {
    let ran = lxc::tool(layout, "lxc-stop", vmid, &["--kill"], 60)?;
    lxc::remove_cgroups(layout, vmid);
    if !ran.ok() && lxc::running(layout, vmid) {
        return Err(Failure::new(format!(
            "command 'lxc-stop -n {vmid} --kill' failed: exit code {}\n{}",
            ran.status.code().unwrap_or(-1),
            ran.stderr.trim_end()
        )));
    }
    Ok(())
}

fn shutdown(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, p) = simple(
        args,
        "pct shutdown <vmid> [OPTIONS]",
        &[("timeout", Ty::Int(Some(0), None)), ("forceStop", Ty::Bool)],
        false,
    )?;
    conf::load(layout, vmid, Warn::Silent)?;
    if !lxc::running(layout, vmid) {
        return Err(Failure::new(format!("CT {vmid} not running")));
    }
    let _lock = config_lock(layout, vmid)?;
    let conf = conf::load(layout, vmid, Warn::Stdout)?;
    conf.check_lock()?;
    let timeout = p
        .opts
        .get("timeout")
        .cloned()
        .unwrap_or_else(|| "60".into());
    let force = p.opts.get("forceStop").is_some_and(|v| v == "1");
    let secs: u64 = timeout.parse().unwrap_or(60);
    let mut stop_args = vec!["--timeout", &timeout];
    if !force {
        stop_args.push("--nokill");
    }
    // lxc-stop's own verdict is not needed: whether the container still runs is.
    lxc::tool(layout, "lxc-stop", vmid, &stop_args, secs + 30)?;
    if lxc::running(layout, vmid) {
        if force {
            return kill(layout, vmid);
        }
        return Err(Failure::new("container did not stop"));
    }
    lxc::remove_cgroups(layout, vmid);
    Ok(())
}

// ---------------------------------------------------------------- destroy

fn destroy(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, p) = simple(
        args,
        "pct destroy <vmid> [OPTIONS]",
        &[
            ("force", Ty::Bool),
            ("purge", Ty::Bool),
            ("destroy-unreferenced-disks", Ty::Bool),
        ],
        false,
    )?;
    let force = p.opts.get("force").is_some_and(|v| v == "1");
    let conf = conf::load(layout, vmid, Warn::Silent)?;
    conf.check_protection(&format!("can't remove CT {vmid}"))?;
    let running_msg = format!("unable to destroy CT {vmid} - container is running");
    if lxc::running(layout, vmid) {
        if !force {
            return Err(Failure::new(running_msg));
        }
        kill(layout, vmid)?;
    }
    let _lock = config_lock(layout, vmid)?;
    let conf = conf::load(layout, vmid, Warn::Stdout)?;
    conf.check_lock()?;
    if lxc::running(layout, vmid) {
        return Err(Failure::new(running_msg));
    }
    remove_ct(layout, vmid, &conf);
    Ok(())
}

/// Frees the container's volumes and removes its config and LXC directory.
fn remove_ct(layout: &Layout, vmid: u32, conf: &Conf) {
    let _ = nix::mount::umount2(
        &layout.ct_dir(vmid).join("rootfs"),
        nix::mount::MntFlags::MNT_DETACH,
    );
    for (key, value) in &conf.keys {
        let fmt = if key == "rootfs" {
            Fmt::Rootfs
        } else if key.starts_with("mp") || key.starts_with("unused") {
            Fmt::Mp
        } else {
            continue;
        };
        let volume = if key.starts_with("unused") {
            value.clone()
        } else {
            match args::parse_property_string(fmt, value) {
                Ok(p) => p["volume"].clone(),
                Err(_) => continue,
            }
        };
        storage::free(layout, &volume);
    }
    // pve-container's destroy writes a config of nothing but `lock: destroyed` once the
    // volumes are freed, and removes it last ("else we can have reuse race").
    let mut zombie = Conf::default();
    zombie.keys.insert("lock".into(), "destroyed".into());
    let _ = conf::write(layout, vmid, &zombie);
    if std::env::var_os("PCT_STANDIN_DESTROY_DIES").is_some() {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    let _ = fs::remove_file(layout.conf_path(vmid));
    let _ = fs::remove_dir_all(layout.ct_dir(vmid));
    lxc::remove_cgroups(layout, vmid);
}

// ---------------------------------------------------------------- status / list / config

fn status(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, p) = simple(
        args,
        "pct status <vmid> [OPTIONS]",
        &[("verbose", Ty::Bool)],
        false,
    )?;
    let conf = conf::load(layout, vmid, Warn::Stderr)?;
    let state = crate::pvesh::vm_status(layout, vmid, &conf);
    if p.opts.get("verbose").is_some_and(|v| v == "1") {
        for (k, v) in state.as_object().expect("status is an object") {
            if k == "ha" {
                continue;
            }
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{k}: {v}");
        }
    } else {
        println!("status: {}", state["status"].as_str().unwrap_or("stopped"));
    }
    Ok(())
}

fn list(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    parse(args, &[], false, |_| None, "pct list")?;
    let mut rows = Vec::new();
    for vmid in layout.local_cts() {
        let Ok(conf) = conf::load(layout, vmid, Warn::Stderr) else {
            continue;
        };
        let status = if lxc::running(layout, vmid) {
            "running"
        } else {
            "stopped"
        };
        rows.push((
            vmid,
            status,
            conf.get("lock").unwrap_or("").to_string(),
            conf.hostname(vmid),
        ));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let row = |a: &str, b: &str, c: &str, d: &str| println!("{a:<10} {b:<10} {c:<12} {d:<20}");
    row("VMID", "Status", "Lock", "Name");
    for (vmid, status, lock, name) in rows {
        row(&vmid.to_string(), status, &lock, &name);
    }
    Ok(())
}

fn config(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, p) = simple(
        args,
        "pct config <vmid> [OPTIONS]",
        &[
            ("current", Ty::Bool),
            ("snapshot", Ty::Str(None, Fmt::Plain)),
        ],
        false,
    )?;
    let conf = conf::load(layout, vmid, Warn::Stderr)?;
    let mut keys = conf.keys.clone();
    // Pending values are shown as the config unless --current asks for the running one.
    if p.opts.get("current").map(String::as_str) != Some("1") {
        keys.extend(conf.pending());
    }
    if !conf.description.is_empty() {
        keys.insert("description".into(), conf::encode_text(&conf.description));
    }
    for (k, v) in keys {
        println!("{k}: {v}");
    }
    for (k, v) in &conf.lxc {
        println!("{k}: {v}");
    }
    Ok(())
}

// ---------------------------------------------------------------- set

const SET_USAGE: &str = "pct set <vmid> [OPTIONS]";

fn set_option(name: &str) -> Option<Ty> {
    match name {
        "delete" | "revert" | "digest" => Some(Ty::Str(None, Fmt::Plain)),
        "lock" => Some(Ty::Enum(args::LOCKS)),
        "unprivileged" => Some(Ty::Bool),
        _ => config_option(name),
    }
}

fn set(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let mut p = parse(
        args,
        &["vmid"],
        false,
        |n| set_option(n).map(arity_of),
        SET_USAGE,
    )?;
    let mut errors = ParamErrors::default();
    let vmid = check_vmid(&p.pos[0])
        .map_err(|e| errors.add("vmid", e))
        .ok();
    let names: Vec<String> = p.opts.keys().cloned().collect();
    for name in names {
        let ty = set_option(&name).expect("parse accepted only known options");
        match check(&name, ty, &p.opts[&name]) {
            Ok(v) => {
                p.opts.insert(name, v);
            }
            Err(e) => errors.add(&name, e),
        }
    }
    errors.into_result(SET_USAGE)?;
    let vmid = vmid.unwrap_or(0);
    let mut opts = p.opts;
    normalize_tags(&mut opts);
    let delete: Vec<String> = opts
        .remove("delete")
        .map(|d| {
            d.split([',', ';', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    opts.remove("digest");
    opts.remove("revert");
    for key in &delete {
        if opts.contains_key(key) {
            return Err(param_error(
                key,
                format!("can't set option '{key}' and delete it at the same time"),
                SET_USAGE,
            ));
        }
    }

    let _lock = config_lock(layout, vmid)?;
    let mut conf = conf::load(layout, vmid, Warn::Stderr)?;
    conf.check_lock()?;
    let running = lxc::running(layout, vmid);
    let mut made = Vec::new();
    let mut hotplugged: Vec<&str> = Vec::new();
    let result = (|| -> Result<(), Failure> {
        for key in &delete {
            if !conf.keys.contains_key(key) && (key != "description" || conf.description.is_empty())
            {
                Warn::Stderr.say(&format!(
                    "cannot delete '{key}' - not set in current configuration!"
                ));
                continue;
            }
            match key.as_str() {
                "memory" | "rootfs" | "ostype" => {
                    return Err(Failure::new(format!(
                        "unable to delete required option '{key}'"
                    )))
                }
                "unprivileged" => {
                    return Err(Failure::new(format!(
                        "unable to delete read-only option: '{key}'"
                    )))
                }
                k if k.starts_with("mp") => {
                    conf.check_protection(&format!("can't remove CT {vmid} drive '{k}'"))?;
                }
                _ => {}
            }
            if key == "description" {
                conf.description.clear();
            }
            conf.keys.remove(key);
        }
        for (key, value) in &opts {
            match key.as_str() {
                "unprivileged" => {
                    return Err(Failure::new(format!(
                        "unable to modify read-only option: '{key}'"
                    )))
                }
                "description" => {
                    conf.description = value.lines().map(|l| format!("{l}\n")).collect();
                    continue;
                }
                k @ ("memory" | "swap" | "cpulimit" | "cpuunits") if running => {
                    hotplugged.push(k);
                }
                k if running && !hotplugs(k, &conf) => {
                    conf.set_pending(k, value);
                    continue;
                }
                k if k == "rootfs" || k.starts_with("mp") => {
                    conf.check_protection(&format!("can't update CT {vmid} drive '{k}'"))?;
                    let fmt = if k == "rootfs" { Fmt::Rootfs } else { Fmt::Mp };
                    let mut props =
                        args::parse_property_string(fmt, value).map_err(Failure::new)?;
                    let volume = props["volume"].clone();
                    if !volume.starts_with('/') {
                        let (sid, name) = storage::parse_volume_id(&volume).ok_or_else(|| {
                            Failure::new(format!("unable to parse volume ID '{volume}'"))
                        })?;
                        let store = storage::get(layout, sid)?;
                        if !store.supports_rootdir() {
                            return Err(Failure::new(format!(
                                "storage '{sid}' does not allow content type 'rootdir' (Container)"
                            )));
                        }
                        if let Ok(size) = name.parse::<f64>() {
                            let (volid, _) = store.alloc(layout, vmid)?;
                            made.push(volid.clone());
                            props.insert("volume".into(), volid);
                            props.insert("size".into(), storage::format_size(size));
                        }
                    }
                    conf.keys.insert(key.clone(), print_property_string(&props));
                    continue;
                }
                _ => {}
            }
            conf.keys.insert(key.clone(), value.clone());
        }
        if !hotplugged.is_empty() {
            lxc::hotplug(layout, vmid, &conf, &hotplugged)?;
        }
        conf::write(layout, vmid, &conf)
    })();
    if result.is_err() {
        for volid in &made {
            storage::free(layout, volid);
        }
    }
    result
}

/// What `pct set` changes on a running CT at once (reference/pct.md): the resources
/// (handled by the caller), `netN`, and a new `mpN` or `devN`; the rest waits in
/// `[pve:pending]` for the next start.
fn hotplugs(key: &str, conf: &Conf) -> bool {
    let numbered = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    numbered("net") || ((numbered("mp") || numbered("dev")) && !conf.keys.contains_key(key))
}

// ---------------------------------------------------------------- exec / unlock / mount

fn exec(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    // pct's own start-up (a few hundred ms of perl on Proxmox), made as long as a test
    // needs to have other commands overtake an exec before it reads the CT's config.
    pause_for("PCT_STANDIN_EXEC_DELAY_MS");
    let (vmid, p) = simple(
        args,
        "pct exec <vmid> [<extra-args>] [OPTIONS]",
        &[("keep-env", Ty::Bool)],
        true,
    )?;
    conf::load(layout, vmid, Warn::Stderr)?;
    if !lxc::running(layout, vmid) {
        return Err(Failure::new(format!("container '{vmid}' not running!")));
    }
    if p.extra.is_empty() {
        return Err(Failure::new("missing command"));
    }
    let keep_env = p.opts.get("keep-env").is_none_or(|v| v == "1");
    let code = lxc::attach(layout, vmid, keep_env, &p.extra)?;
    if code != 0 {
        return Err(Failure::exit(code));
    }
    Ok(())
}

/// pve's `remove_lock`: `lock` names the one expected, None removes any.
fn remove_lock(layout: &Layout, vmid: u32, lock: Option<&str>) -> Result<(), Failure> {
    let _lock = config_lock(layout, vmid)?;
    let mut conf = conf::load(layout, vmid, Warn::Stderr)?;
    match (conf.get("lock"), lock) {
        (None, Some(want)) => {
            return Err(Failure::new(format!(
                "no lock found trying to remove '{want}'  lock"
            )))
        }
        (None, None) => return Err(Failure::new("no lock found trying to remove any lock")),
        (Some(have), Some(want)) if have != want => {
            return Err(Failure::new(format!(
                "found lock '{have}' trying to remove '{want}' lock"
            )))
        }
        _ => {}
    }
    conf.keys.remove("lock");
    conf::write(layout, vmid, &conf)
}

fn unlock(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, _) = simple(args, "pct unlock <vmid>", &[], false)?;
    remove_lock(layout, vmid, None)
}

fn mount(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, _) = simple(args, "pct mount <vmid>", &[], false)?;
    let _lock = config_lock(layout, vmid)?;
    let mut conf = conf::load(layout, vmid, Warn::Stderr)?;
    conf.check_lock()?;
    conf.keys.insert("lock".into(), "mounted".into());
    conf::write(layout, vmid, &conf)?;
    let rootfs = args::parse_property_string(Fmt::Rootfs, conf.get("rootfs").unwrap_or(""))
        .map_err(Failure::new)?;
    let source = storage::volume_dir(layout, &rootfs["volume"])?;
    let target = layout.ct_dir(vmid).join("rootfs");
    fs::create_dir_all(&target).map_err(crate::io_fail("create", &target))?;
    nix::mount::mount(
        Some(&source),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| Failure::new(format!("mount of rootfs failed - {e}")))?;
    println!("mounted CT {vmid} in '{}'", target.display());
    Ok(())
}

fn unmount(layout: &Layout, args: &[String]) -> Result<(), Failure> {
    let (vmid, _) = simple(args, "pct unmount <vmid>", &[], false)?;
    conf::load(layout, vmid, Warn::Stderr)?;
    let target = layout.ct_dir(vmid).join("rootfs");
    let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
    let _ = fs::remove_dir(&target);
    remove_lock(layout, vmid, Some("mounted"))
}

/// `pct-standin cleanup`: stops and destroys every container under the root and removes
/// the root's cgroups, so a test leaves nothing behind.
pub fn cleanup(layout: &Layout) -> Result<(), Failure> {
    let mut seen = layout.local_cts();
    for &vmid in &seen {
        if lxc::running(layout, vmid) {
            let _ = lxc::tool(layout, "lxc-stop", vmid, &["--kill"], 60);
        }
        let conf = conf::load(layout, vmid, Warn::Stderr).unwrap_or_default();
        remove_ct(layout, vmid, &conf);
    }
    // Containers whose config is already gone but whose LXC directory is not.
    if let Ok(entries) = fs::read_dir(layout.lxcpath()) {
        for entry in entries.flatten() {
            if let Some(vmid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            {
                seen.push(vmid);
                if lxc::running(layout, vmid) {
                    let _ = lxc::tool(layout, "lxc-stop", vmid, &["--kill"], 60);
                }
                remove_ct(layout, vmid, &Conf::default());
            }
        }
    }
    lxc::remove_all_cgroups(layout, &seen);
    Ok(())
}
