//! The pct backend: an OCI bundle becomes a Proxmox container. This module holds the
//! backend, its record of each container and what the lifecycle steps share; each step
//! is a module of its own (create, start/kill/delete/run, exec).
//!
//! `create` validates everything first (the bundle, its translation to LXC, what Proxmox
//! accepts of it), then acts: the init and process files, the template (packed once per
//! rootfs content), a VMID and `pct create`, the raw `lxc.*` keys written into the CT's
//! `.conf` under pct's config lock. A failure at any step undoes the steps before it.
//! The backend keeps one small record per container under its root: the VMID, the
//! template, whether it was started.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use proxcage_core::{
    CheckpointRequest, ContainerId, CreateRequest, DeleteRequest, Error, Event, EventsRequest,
    ExecRequest, Flow, KillRequest, RestoreRequest, Result, RunRequest, Runtime, State, Status,
    UpdateRequest,
};
use proxcage_lxc_config::init::INIT_PATH;
use proxcage_lxc_config::oci_spec::runtime::Process;
use proxcage_lxc_config::{
    from_oci, split_for_proxmox, LxcConfig, ProcessFile, ProxmoxPolicy, PveConfig, ResolvedPaths,
    User, CONTROL_SOCKET_PATH,
};
use proxcage_oci::Bundle;
use proxcage_process as process;
use serde::{Deserialize, Serialize};

mod corrupt;
mod create;
mod exec;
mod lifecycle;
mod members;
mod pod;
mod resources;

use crate::alloc::allocate;
use crate::attach;
use crate::error::PctError;
use crate::hooks::{self, LaterHooks};
use crate::identity::{self, Proof};
use crate::monitor::{self, Launch, RunDir};
use crate::network::{self, Network};
use crate::parse::CtStatus;
use crate::pct::PctTools;
use crate::policy::BindSources;
use crate::sandbox;
use crate::settings::PctSettings;
use crate::staging;
use crate::templates::Templates;
use crate::tty::{self, MasterSocket};
use crate::vmid::Vmid;
use crate::NAME;
use nix::sys::socket::SockType;
use std::os::fd::AsFd;

/// What the backend remembers of a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CtRecord {
    vmid: Vmid,
    /// The template's file name in the template directory.
    template: String,
    started: bool,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    /// The monitor `create` left in the caller's process tree (its pid file's pid).
    #[serde(default)]
    monitor: Option<i32>,
    /// The host uid and gid of the CT's root.
    #[serde(default)]
    owner: Option<(u32, u32)>,
    /// A sandbox's network namespace (its client's path), whose interfaces the CT holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sandbox_netns: Option<PathBuf>,
    /// The sandbox's network keeper (see `crate::sandbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keeper: Option<i32>,
    /// startContainer, poststart and poststop, from the bundle at create.
    #[serde(default, skip_serializing_if = "LaterHooks::is_empty")]
    hooks: LaterHooks,
    /// Set by `delete` before it destroys the CT: from then on the VMID may be free, or
    /// another CT's, and only a delete may act on the record (to finish).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    destroying: bool,
    /// The container's files (init, process file, run directory): per root since roots
    /// may share `files_dir`; absent in records of containers made before, whose files
    /// are `<files_dir>/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files_dir: Option<PathBuf>,
    /// A sandbox's own part of its pod CT's size (see `pod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod_share: Option<pod::Share>,
}

impl CtRecord {
    /// The container's state as runc prints it and as hooks get it on stdin.
    fn state(&self, id: &ContainerId, status: Status, pid: i32) -> State {
        oci_state(
            id,
            status,
            pid,
            (&self.bundle, &self.rootfs),
            &self.created,
            &self.annotations,
        )
    }
}

/// A container's state as runc prints it and as hooks get it on stdin.
fn oci_state(
    id: &ContainerId,
    status: Status,
    pid: i32,
    (bundle, rootfs): (&Path, &Path),
    created: &str,
    annotations: &BTreeMap<String, String>,
) -> State {
    State {
        oci_version: proxcage_core::OCI_VERSION.into(),
        id: id.to_string(),
        pid,
        status,
        bundle: bundle.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        created: created.to_string(),
        owner: owner_name(),
        annotations: annotations.clone(),
    }
}

/// The OWNER of a CT, as runc names the user whose container it is: CTs are made and
/// driven by the user proxcage runs as (root: pct needs it).
fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// The pct backend.
#[derive(Clone, Debug)]
pub struct Pct {
    tools: PctTools,
    root: PathBuf,
    files_root: PathBuf,
    pve_dir: PathBuf,
    lock_dir: PathBuf,
    rootfs_storage: String,
    rootfs_size_gib: u32,
    template_storage: String,
    template_dir: PathBuf,
    range: crate::VmidRange,
    net0: Option<String>,
    policy: ProxmoxPolicy,
    bind_sources: BindSources,
}

/// How long the CT's init may take to reach its monitor after `pct start`, and to take
/// the release after `start` opened the exec FIFO.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an edit of a CT's `.conf` waits for pct's config lock, which pct holds while
/// it works on the CT (a start, a `pct set`).
const CONF_LOCK_WAIT: Duration = Duration::from_secs(120);

/// How much of the root's token names its directory in `files_dir`: roots apart, and
/// the monitor's socket path short (it must fit in 108 bytes).
pub(crate) const FILES_KEY_LEN: usize = 8;

/// The pct backend with its records under `root`; bind mounts of its containers may take
/// their sources only where `bind_sources` allows.
pub fn pct(settings: &PctSettings, root: PathBuf, bind_sources: BindSources) -> Result<Pct> {
    let find = |setting: &Option<PathBuf>, name: &str, package: &'static str, key: &str| {
        process::find_program(
            setting.as_deref().unwrap_or(Path::new(name)),
            package,
            &format!("[backends.pct] {key}"),
        )
    };
    let tools = PctTools {
        pct: find(&settings.pct, "pct", "pve-container", "pct")?,
        pvesh: find(&settings.pvesh, "pvesh", "pve-manager", "pvesh")?,
        lxc_info: find(&settings.lxc_info, "lxc-info", "lxc-pve", "lxc_info")?,
        lxc_path: settings.lxc_path.clone(),
        node: String::new(),
        timeout: Duration::from_secs(settings.timeout_secs.unwrap_or(300)),

        spent: Default::default(),
    };
    let policy = ProxmoxPolicy {
        allow_dropped: settings.allow_dropped.clone(),
        ..ProxmoxPolicy::default()
    };
    Ok(Pct {
        tools,
        root,
        files_root: settings
            .files_dir
            .clone()
            .unwrap_or_else(|| "/var/lib/proxcage/pct".into()),
        pve_dir: settings
            .pve_dir
            .clone()
            .unwrap_or_else(|| "/etc/pve".into()),
        lock_dir: settings
            .lock_dir
            .clone()
            .unwrap_or_else(|| "/run/lock/lxc".into()),
        rootfs_storage: settings
            .rootfs_storage
            .clone()
            .unwrap_or_else(|| "local-lvm".into()),
        rootfs_size_gib: settings.rootfs_size_gib.unwrap_or(4),
        template_storage: settings.template_storage(),
        template_dir: settings.template_dir(),
        range: settings.vmid_range.unwrap_or_default(),
        net0: settings.net0.clone(),
        policy,
        bind_sources,
    })
}

fn input(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Input(Box::new(e))
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| Error::io(op, path, e)
}

/// Keys Proxmox sets itself for every CT, from its own options: `/dev` (autodev and its
/// tmpfs), the console and the ttys (`console`, `tty`, `cmode`). The translation's values
/// for them give way.
const PROXMOX_PROVIDES: &[&str] = &["lxc.autodev", "lxc.console.", "lxc.pty.", "lxc.tty."];

pub fn without_proxmox_keys(config: &LxcConfig) -> LxcConfig {
    let mut out = LxcConfig::new();
    for entry in config.entries() {
        if !PROXMOX_PROVIDES.iter().any(|p| entry.key().starts_with(p)) {
            out.push_entry(entry.clone());
        }
    }
    out
}

/// A root filesystem that is the host's own root: the template would be the whole host.
#[derive(Debug, thiserror::Error)]
#[error("root.path {path} in config.json is the host's root directory: the pct backend packs the root filesystem into a template, and would pack the whole host; give the container a root filesystem of its own")]
struct HostRoot {
    path: String,
}

/// `process.terminal` and `--console-socket` must come together, as runc requires.
#[derive(Debug, thiserror::Error)]
#[error("{}", if *.terminal {
    "process.terminal is true in config.json but no --console-socket was given"
} else {
    "--console-socket was given but process.terminal is not true in config.json"
})]
struct TerminalMismatch {
    terminal: bool,
}

/// The host uid and gid of the CT's root: Proxmox maps an unprivileged CT's root to
/// 100000 unless raw `lxc.idmap` keys say otherwise.
fn root_owner(options: &BTreeMap<String, String>, raw: &LxcConfig) -> (u32, u32) {
    if options.get("unprivileged").map(String::as_str) == Some("0") {
        return (0, 0);
    }
    let mapped = |kind: &str| {
        raw.entries()
            .iter()
            .filter(|e| e.key() == "lxc.idmap")
            .find_map(|e| {
                let fields: Vec<&str> = e.value().split_whitespace().collect();
                match fields.as_slice() {
                    [k, "0", host, _] if *k == kind => host.parse().ok(),
                    _ => None,
                }
            })
            .unwrap_or(100_000)
    };
    (mapped("u"), mapped("g"))
}

/// Whether processes `a` and `b` are in one namespace of `kind` (`net`, `pid`, ...).
fn same_namespace(a: i32, b: i32, kind: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = |pid: i32| {
        fs::metadata(format!("/proc/{pid}/ns/{kind}"))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    matches!((ns(a), ns(b)), (Some(x), Some(y)) if x == y)
}

/// Where a file of the run directory appears inside the CT.
fn inside_path(file: &Path) -> String {
    Path::new(CONTROL_SOCKET_PATH)
        .with_file_name(file.file_name().expect("a file name"))
        .to_string_lossy()
        .into_owned()
}

/// `UID[:GID]` as runc's `exec --user` takes it.
fn parse_user(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// Writes a file only the container's root (and the host's) may read: process files hold
/// the environment, which may hold secrets.
fn write_owned(path: &Path, bytes: &[u8], (uid, gid): (u32, u32)) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        f.write_all(bytes)?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        f.set_permissions(fs::Permissions::from_mode(0o600))
    };
    write().map_err(io_error("cannot write", path))
}

/// The hostname of runc's default spec.
const RUNC_DEFAULT_HOSTNAME: &str = "runc";

/// A DNS name for the CT from the container id: pct's hostname is a DNS name, ids may
/// hold `_`, `+` and `.`.
fn hostname_for(id: &ContainerId) -> String {
    let mut name: String = id
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "proxcage".into()
    } else {
        name
    }
}

impl Pct {
    fn record_path(&self, id: &ContainerId) -> PathBuf {
        self.root.join(format!("{id}.json"))
    }

    /// The container's record, with its VMID's attach lock held (see [`attach`]).
    fn enter(&self, id: &ContainerId) -> Result<(CtRecord, attach::Held)> {
        let mut vmid = self.load(id)?.vmid;
        loop {
            let held = attach::entering(&self.root, vmid, id)?;
            // A delete may have destroyed the CT before the lock was ours.
            let record = self.load(id)?;
            if record.vmid == vmid {
                self.proven(id, &record)?;
                return Ok((record, held));
            }
            vmid = record.vmid;
        }
    }

    fn load(&self, id: &ContainerId) -> Result<CtRecord> {
        let path = self.record_path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { id: id.clone() })
            }
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| Error::CorruptRecord { path, source })
    }

    fn save(&self, id: &ContainerId, record: &CtRecord) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(io_error("cannot create", &self.root))?;
        let path = self.record_path(id);
        let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
        let json = serde_json::to_vec(record)
            .map_err(|e| Error::io("cannot encode", &path, io::Error::other(e)))?;
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("cannot write", &path, e)
        })
    }

    fn records(&self) -> Vec<(ContainerId, CtRecord)> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = ContainerId::new(name.strip_suffix(".json")?).ok()?;
                let record = self.load(&id).ok()?;
                Some((id, record))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// This root's token, or an empty one while no create has made it (no reference or
    /// CT then carries it).
    fn token(&self) -> String {
        identity::read_token(&self.root)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Where a create of this root (its token) puts the files of container `id`: roots
    /// that share `files_dir` each have their own directory in it.
    fn files_dir_for(&self, token: &str, id: &ContainerId) -> PathBuf {
        self.files_root
            .join(token.get(..FILES_KEY_LEN).unwrap_or(token))
            .join(id.as_str())
    }

    /// The files directory of a container with `record`.
    fn files_dir_of(&self, id: &ContainerId, record: &CtRecord) -> PathBuf {
        record
            .files_dir
            .clone()
            .unwrap_or_else(|| self.files_root.join(id.as_str()))
    }

    /// Appends the raw `lxc.*` keys to the CT's `.conf` under pct's config lock, before
    /// any `[snapshot]` section (the pct CLI cannot set raw keys).
    fn write_raw_keys(&self, vmid: Vmid, raw: &LxcConfig) -> Result<()> {
        if raw.entries().is_empty() {
            return Ok(());
        }
        self.edit_conf(vmid, |pve| {
            raw.entries()
                .iter()
                .try_for_each(|entry| pve.push_raw(entry).map_err(input))
        })
    }

    /// Changes the CT's `.conf` under pct's config lock.
    fn edit_conf(&self, vmid: Vmid, edit: impl FnOnce(&mut PveConfig) -> Result<()>) -> Result<()> {
        let lock = self.lock_dir.join(format!("pve-config-{vmid}.lock"));
        let _held: Flock<File> = crate::locks::wait(
            &lock,
            &format!("Proxmox's config lock of CT {vmid}"),
            CONF_LOCK_WAIT,
        )?;
        let conf = self.pve_dir.join("lxc").join(format!("{vmid}.conf"));
        let text = fs::read_to_string(&conf).map_err(io_error("cannot read", &conf))?;
        let mut pve = PveConfig::parse(&text).map_err(input)?;
        edit(&mut pve)?;
        let tmp = conf.with_extension(format!("conf.tmp.{}", std::process::id()));
        fs::write(&tmp, pve.render())
            .and_then(|()| fs::rename(&tmp, &conf))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                Error::io("cannot write", &conf, e)
            })
    }

    /// What the record's VMID holds now: the CT this root made for `id`, or not.
    fn prove(&self, id: &ContainerId, vmid: Vmid) -> Result<Proof> {
        let seen = identity::read(&self.tools, &self.pve_dir, vmid)?;
        let token = identity::read_token(&self.root)?;
        Ok(identity::judge(seen.as_ref(), id, token.as_deref()))
    }

    /// Fails unless the record's VMID still holds the CT this root made for `id`: a stale
    /// record is reported, and the CT that has the VMID now is left alone.
    fn proven(&self, id: &ContainerId, record: &CtRecord) -> Result<()> {
        let vmid = record.vmid;
        let message = if record.destroying {
            format!("a delete of it stopped after it began destroying its CT {vmid}: run 'delete --force {id}' to finish it")
        } else {
            match self.prove(id, vmid)? {
                Proof::Ours => return Ok(()),
                Proof::Gone => format!("its CT {vmid} no longer exists on this node"),
                Proof::Destroyed => format!("its CT {vmid} was left half-destroyed by pct (lock: destroyed): run 'delete --force {id}' to finish it"),
                Proof::Other(what) => format!("its record is stale: VMID {vmid} now holds {what}, which proxcage leaves alone; 'delete --force {id}' forgets the container"),
            }
        };
        Err(Error::Conflict {
            id: id.clone(),
            message,
        })
    }

    fn ct_status(&self, id: &ContainerId, record: &CtRecord) -> Result<(Status, i32)> {
        self.proven(id, record)?;
        self.status_of(id, record)
    }

    /// The status of a CT proven to be the container's.
    fn status_of(&self, id: &ContainerId, record: &CtRecord) -> Result<(Status, i32)> {
        let status = match self.tools.status(record.vmid) {
            Ok(status) => status,
            Err(e) if matches!(e.pct(), Some(PctError::NoSuchCt { .. })) => {
                return Err(Error::Conflict {
                    id: id.clone(),
                    message: format!("its CT {} no longer exists on this node ({e})", record.vmid),
                })
            }
            Err(e) => return Err(e.into()),
        };
        // The CT runs from create on (its init waits on the exec FIFO until start), so a
        // stopped CT is a stopped container, started or not.
        if status == CtStatus::Stopped {
            return Ok((Status::Stopped, 0));
        }
        let running = if record.started {
            Status::Running
        } else {
            Status::Created
        };
        match self.tools.init_pid(record.vmid) {
            // The init exits as soon as it has reported the process's exit: the container
            // is stopped from then on, while the CT winds down.
            Ok(Some(pid)) if record.started && !process::is_running(pid) => {
                Ok((Status::Stopped, 0))
            }
            Ok(Some(pid)) => Ok((running, pid)),
            // It stopped between the two questions.
            Ok(None) => Ok((Status::Stopped, 0)),
            Err(e) => match self.tools.status(record.vmid) {
                Ok(CtStatus::Stopped) => Ok((Status::Stopped, 0)),
                _ => Err(e.into()),
            },
        }
    }

    /// The pid the container shows (`state`, the hooks' state on stdin), the pid file's:
    /// its monitor while it is there (in the caller's process tree, in the CT's
    /// namespaces but the pid namespace); else the CT's init.
    fn shown_pid(record: &CtRecord, init: i32) -> i32 {
        match record.monitor {
            Some(monitor) if init > 0 && same_namespace(monitor, init, "net") => monitor,
            _ => init,
        }
    }

    fn template_in_use(&self, template: &str, except: &ContainerId) -> bool {
        self.records()
            .iter()
            .any(|(id, r)| id != except && r.template == template)
    }

    fn failed(&self, id: &ContainerId, message: String) -> Error {
        Error::Backend {
            backend: NAME.into(),
            command: format!("create {id}"),
            status: "failed".into(),
            code: 1,
            kind: proxcage_core::ErrorKind::Other,
            message,
            source: None,
        }
    }

    fn unsupported(&self, id: &ContainerId, what: &str) -> Error {
        Error::Conflict {
            id: id.clone(),
            message: format!("{what} is not supported by the pct backend"),
        }
    }
}

impl Runtime for Pct {
    fn name(&self) -> &str {
        NAME
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        self.create_ct(req)
    }

    fn start(&self, id: &ContainerId) -> Result<()> {
        if self.is_member(id) {
            return self.start_member(id);
        }
        self.start_ct(id)
    }

    fn state(&self, id: &ContainerId) -> Result<State> {
        if self.is_member(id) {
            return self.state_member(id);
        }
        let record = self.load(id)?;
        let (status, init) = self.ct_status(id, &record)?;
        Ok(record.state(id, status, Self::shown_pid(&record, init)))
    }

    fn kill(&self, req: KillRequest<'_>) -> Result<()> {
        if self.is_member(req.id) {
            return self.kill_member(req);
        }
        self.kill_ct(req)
    }

    fn delete(&self, req: DeleteRequest<'_>) -> Result<()> {
        if self.is_member(req.id) {
            return self.delete_member(req.id, req.force);
        }
        self.delete_ct(req)
    }

    fn run(&self, req: &RunRequest) -> Result<i32> {
        self.run_ct(req)
    }

    fn list(&self) -> Result<Vec<State>> {
        let mut states: Vec<State> = self
            .records()
            .into_iter()
            .filter_map(|(id, _)| self.state(&id).ok())
            .collect();
        states.extend(self.member_states());
        Ok(states)
    }

    fn exec(&self, req: &ExecRequest) -> Result<i32> {
        if self.is_member(req.id()) {
            return self.exec_in_member(req);
        }
        self.exec_in_ct(req)
    }

    fn ps(&self, id: &ContainerId) -> Result<Vec<i32>> {
        if self.is_member(id) {
            return self.ps_member(id);
        }
        self.ps_ct(id)
    }

    fn pause(&self, id: &ContainerId) -> Result<()> {
        Err(self.unsupported(id, "pause"))
    }

    fn resume(&self, id: &ContainerId) -> Result<()> {
        Err(self.unsupported(id, "resume"))
    }

    fn features(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "ociVersionMin": "1.0.0",
            "ociVersionMax": proxcage_core::OCI_VERSION,
        }))
    }

    fn update(&self, req: &UpdateRequest) -> Result<()> {
        if self.is_member(&req.id) {
            return self.update_member(req);
        }
        self.update_ct(req)
    }

    fn events(
        &self,
        req: &EventsRequest,
        receiver: &mut dyn FnMut(Event) -> Result<Flow>,
    ) -> Result<()> {
        self.events_ct(req, receiver)
    }

    fn checkpoint(&self, req: &CheckpointRequest) -> Result<()> {
        Err(self.refuse_checkpoint(req))
    }

    fn restore(&self, req: &RestoreRequest) -> Result<i32> {
        Err(self.refuse_restore(req))
    }
}

impl proxcage_store::Backend for Pct {
    fn held(&self) -> Result<Vec<proxcage_store::Held>> {
        crate::health::held(self)
    }

    fn holds(&self, id: &ContainerId) -> Result<Option<proxcage_store::Held>> {
        crate::health::holds(self, id)
    }

    fn health(
        &self,
        store: &proxcage_store::StateStore,
        _held: &[proxcage_store::Held],
    ) -> Result<Vec<proxcage_core::Finding>> {
        crate::health::check(self, store)
    }

    fn left_by(&self, record: &proxcage_store::Record) -> Result<proxcage_store::Leftovers> {
        crate::health::left_by(self, record)
    }

    fn recover(&self, record: &proxcage_store::Record) -> Result<()> {
        crate::health::recover(self, record)
    }
}

/// What the health checks (health.rs) read of the backend.
impl Pct {
    pub(crate) fn tools(&self) -> &PctTools {
        &self.tools
    }
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
    pub(crate) fn files_root(&self) -> &Path {
        &self.files_root
    }
    /// Where a create of this root puts the files of `id`; `None` while this root has
    /// made no CT (and has no token).
    pub(crate) fn own_files_dir(&self, id: &ContainerId) -> Option<PathBuf> {
        let token = self.token();
        (!token.is_empty()).then(|| self.files_dir_for(&token, id))
    }
    pub(crate) fn template_dir(&self) -> &Path {
        &self.template_dir
    }
    pub(crate) fn lock_dir(&self) -> &Path {
        &self.lock_dir
    }
    pub(crate) fn pve_dir(&self) -> &Path {
        &self.pve_dir
    }
    pub(crate) fn range(&self) -> crate::VmidRange {
        self.range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A started container whose init has exited while pct still calls the CT running
    /// (it is winding down): stopped for `state`, and a `delete` without `--force` stops
    /// what is left of the CT and destroys it.
    #[test]
    fn a_container_whose_init_exited_is_stopped_while_its_ct_winds_down() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            proxcage_test_support::install_script(
                &path,
                &format!(
                    "#!/bin/sh\n[ -n \"$FAKE_PROBE\" ] && exit 0\necho \"{name} $*\" >> {}\n{body}",
                    calls.display()
                ),
            );
            path
        };
        // An init that has exited: a child of ours, reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stopped = dir.path().join("stopped");
        let pct_body = format!(
            "case $1 in\n\
             status) echo 'status: running' ;;\n\
             config) echo 'description: proxcage%20container%20exited'; echo 'tags: proxcage' ;;\n\
             stop) touch {stopped} ;;\n\
             destroy) [ -e {stopped} ] || {{ echo 'unable to destroy CT 100 - container is running' >&2; exit 255; }} ;;\n\
             esac\n",
            stopped = stopped.display()
        );
        let settings = PctSettings {
            pct: Some(script("pct", &pct_body)),
            pvesh: Some(script("pvesh", "")),
            lxc_info: Some(script("lxc-info", &format!("echo {dead}\n"))),
            files_dir: Some(dir.path().join("files")),
            template_dir: Some(dir.path().join("templates")),
            ..PctSettings::default()
        };
        let root = dir.path().join("root");
        fs::create_dir_all(&root).unwrap();
        let backend = pct(&settings, root.clone(), BindSources::default()).unwrap();
        let id = ContainerId::new("exited").unwrap();
        let record = serde_json::json!({
            "vmid": 100, "template": "t.tar.zst", "started": true,
            "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z",
        });
        fs::write(root.join("exited.json"), record.to_string()).unwrap();
        let state = backend.state(&id).unwrap();
        assert_eq!((state.status, state.pid), (Status::Stopped, 0));
        backend
            .delete(DeleteRequest {
                id: &id,
                force: false,
            })
            .unwrap();
        let calls = fs::read_to_string(&calls).unwrap();
        assert!(
            calls.contains("pct stop 100\npct destroy 100"),
            "the CT is stopped, then destroyed: {calls}"
        );
        assert!(!root.join("exited.json").exists());
    }

    #[test]
    fn hostnames_are_dns_names() {
        let id = |s: &str| ContainerId::new(s).unwrap();
        assert_eq!(hostname_for(&id("Web_1+x")), "web-1-x");
        assert_eq!(hostname_for(&id("___")), "proxcage");
        assert_eq!(hostname_for(&id(&"a".repeat(100))).len(), 63);
    }
}
