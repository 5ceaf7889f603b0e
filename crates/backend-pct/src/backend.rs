//! The pct backend: an OCI bundle becomes a Proxmox container.
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

use nix::fcntl::{Flock, FlockArg};
use proxcage_core::{
    ContainerId, CreateRequest, DeleteRequest, Error, ExecRequest, KillRequest, Result, RunRequest,
    Runtime, State, Status,
};
use proxcage_lxc_config::init::INIT_PATH;
use proxcage_lxc_config::oci_spec::runtime::Process;
use proxcage_lxc_config::{
    from_oci, split_for_proxmox, LxcConfig, ProcessFile, ProxmoxPolicy, PveConfig, ResolvedPaths,
    User, CONTROL_SOCKET_PATH,
};
use proxcage_oci::template::{pack_rootfs, PackOptions};
use proxcage_oci::Bundle;
use proxcage_process as process;
use serde::{Deserialize, Serialize};

use crate::alloc::allocate;
use crate::attach;
use crate::error::PctError;
use crate::hooks::{self, LaterHooks};
use crate::monitor::{self, Launch, RunDir};
use crate::parse::CtStatus;
use crate::pct::PctTools;
use crate::settings::PctSettings;
use crate::tty::{self, MasterSocket};
use crate::vmid::Vmid;
use crate::NAME;
use nix::sys::socket::SockType;

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
    /// startContainer, poststart and poststop, from the bundle at create.
    #[serde(default, skip_serializing_if = "LaterHooks::is_empty")]
    hooks: LaterHooks,
}

impl CtRecord {
    /// The container's state as runc prints it and as hooks get it on stdin.
    fn state(&self, id: &ContainerId, status: Status, pid: i32) -> State {
        State {
            oci_version: proxcage_core::OCI_VERSION.into(),
            id: id.to_string(),
            pid,
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: String::new(),
            annotations: self.annotations.clone(),
        }
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
}

/// How long the CT's init may take to reach its monitor after `pct start`, and to take
/// the release after `start` opened the exec FIFO.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The pct backend with its records under `root`.
pub fn pct(settings: &PctSettings, root: PathBuf) -> Result<Pct> {
    let find = |setting: &Option<PathBuf>, name: &str, package: &'static str| {
        process::find_program(setting.as_deref().unwrap_or(Path::new(name)), package)
    };
    let tools = PctTools {
        pct: find(&settings.pct, "pct", "pve-container")?,
        pvesh: find(&settings.pvesh, "pvesh", "pve-manager")?,
        lxc_info: find(&settings.lxc_info, "lxc-info", "lxc-pve")?,
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
        template_storage: settings
            .template_storage
            .clone()
            .unwrap_or_else(|| "local".into()),
        template_dir: settings
            .template_dir
            .clone()
            .unwrap_or_else(|| "/var/lib/vz/template/cache".into()),
        range: settings.vmid_range.unwrap_or_default(),
        net0: settings.net0.clone(),
        policy,
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

/// Removes the process files that detached execs left (`exec-*.process`, read by their
/// init the moment it starts) once they are ten minutes old.
fn sweep_exec_files(run: &Path) {
    let Ok(entries) = fs::read_dir(run) else {
        return;
    };
    let old = |entry: &fs::DirEntry| {
        entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600))
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("exec-") && name.ends_with(".process") && old(&entry) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

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

/// Steps of a create to undo if a later one fails, last first.
struct Undo<'a> {
    pct: &'a Pct,
    files_dir: Option<PathBuf>,
    template: Option<PathBuf>,
    vmid: Option<Vmid>,
    started: bool,
    monitor: Option<i32>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.monitor {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let (true, Some(vmid)) = (self.started, self.vmid) {
            if let Err(e) = self.pct.tools.stop(vmid) {
                tracing::warn!("undoing the create: pct stop {vmid}: {e}");
            }
        }
        if let Some(vmid) = self.vmid {
            if let Err(e) = self.pct.tools.destroy(vmid) {
                tracing::warn!("undoing the create: pct destroy {vmid}: {e}");
            }
        }
        if let Some(template) = &self.template {
            let _ = fs::remove_file(template);
        }
        if let Some(dir) = &self.files_dir {
            let _ = fs::remove_dir_all(dir);
        }
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

    /// Holds an exclusive flock on `path` (created if needed) until dropped.
    pub(crate) fn flock(path: &Path, timeout: Duration) -> Result<Flock<File>> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error("cannot create", parent))?;
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_error("cannot open the lock", path))?;
        let deadline = Instant::now() + timeout;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((back, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = back;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((_, e)) => return Err(Error::io("cannot lock", path, e.into())),
            }
        }
    }

    /// Appends the raw `lxc.*` keys to the CT's `.conf` under pct's config lock, before
    /// any `[snapshot]` section (the pct CLI cannot set raw keys).
    fn write_raw_keys(&self, vmid: Vmid, raw: &LxcConfig) -> Result<()> {
        if raw.entries().is_empty() {
            return Ok(());
        }
        let lock = self.lock_dir.join(format!("pve-config-{vmid}.lock"));
        let _held = Self::flock(&lock, Duration::from_secs(10))?;
        let conf = self.pve_dir.join("lxc").join(format!("{vmid}.conf"));
        let text = fs::read_to_string(&conf).map_err(io_error("cannot read", &conf))?;
        let mut pve = PveConfig::parse(&text).map_err(input)?;
        for entry in raw.entries() {
            pve.push_raw(entry).map_err(input)?;
        }
        let tmp = conf.with_extension(format!("conf.tmp.{}", std::process::id()));
        fs::write(&tmp, pve.render())
            .and_then(|()| fs::rename(&tmp, &conf))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                Error::io("cannot write", &conf, e)
            })
    }

    fn ct_status(&self, id: &ContainerId, record: &CtRecord) -> Result<(Status, i32)> {
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
            Ok(Some(pid)) => Ok((running, pid)),
            // It stopped between the two questions.
            Ok(None) => Ok((Status::Stopped, 0)),
            Err(e) => match self.tools.status(record.vmid) {
                Ok(CtStatus::Stopped) => Ok((Status::Stopped, 0)),
                _ => Err(e.into()),
            },
        }
    }

    fn template_in_use(&self, template: &str, except: &ContainerId) -> bool {
        self.records()
            .iter()
            .any(|(id, r)| id != except && r.template == template)
    }

    /// What an exec runs: `--process` as given, or the container's own process with the
    /// arguments, `--env` and `--cwd` of the command line (as runc does).
    fn exec_process(&self, req: &ExecRequest, files_dir: &Path) -> Result<ProcessFile> {
        let id = req.id();
        let path = files_dir.join("process");
        let own = fs::read(&path)
            .map_err(io_error("cannot read", &path))
            .and_then(|b| ProcessFile::decode(&b).map_err(input))?;
        // What the container's init kept only to switch users, an exec drops as well.
        let drop_bounding = own
            .user
            .as_ref()
            .map(|u| u.drop_bounding.clone())
            .unwrap_or_default();
        // And it gets the container process's capability sets, as with `runc exec`.
        let capabilities = own.capabilities;
        let (args, env, cwd, user, no_new_privileges, terminal) = match &req.process_file {
            Some(path) => {
                let bytes = fs::read(path).map_err(io_error("cannot read", path))?;
                let p: Process = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::io(
                        "cannot parse",
                        path,
                        io::Error::new(io::ErrorKind::InvalidData, e),
                    )
                })?;
                let user = User {
                    uid: p.user().uid(),
                    gid: p.user().gid(),
                    additional_gids: p.user().additional_gids().clone().unwrap_or_default(),
                    drop_bounding,
                };
                (
                    p.args().clone().unwrap_or_default(),
                    p.env().clone().unwrap_or_default(),
                    p.cwd().to_string_lossy().into_owned(),
                    user,
                    p.no_new_privileges() == Some(true),
                    p.terminal() == Some(true) || req.tty,
                )
            }
            None => {
                let mut env = own.env;
                for var in &req.env {
                    let name = var.split('=').next().unwrap_or(var);
                    env.retain(|e| e.split('=').next() != Some(name));
                    env.push(var.clone());
                }
                let (uid, gid) = match req.user.as_deref() {
                    None => own.user.as_ref().map_or((0, 0), |u| (u.uid, u.gid)),
                    Some(user) => parse_user(user).ok_or_else(|| Error::Conflict {
                        id: id.clone(),
                        message: format!("exec --user {user:?}: expected UID[:GID]"),
                    })?,
                };
                // runc's rule: without --user, the container's own user, groups included.
                let additional_gids = match (&req.user, &own.user) {
                    (None, Some(own)) if req.additional_gids.is_empty() => {
                        own.additional_gids.clone()
                    }
                    _ => req.additional_gids.clone(),
                };
                let user = User {
                    uid,
                    gid,
                    additional_gids,
                    drop_bounding,
                };
                let cwd = req.cwd.clone().unwrap_or(own.cwd);
                let nnp = own.no_new_privileges || req.no_new_privs;
                (req.args.clone(), env, cwd, user, nnp, req.tty)
            }
        };
        Ok(ProcessFile {
            args,
            env,
            cwd,
            umask: None,
            no_new_privileges,
            monitored: false,
            terminal,
            // `pct exec` starts the process as root without groups: nothing to switch
            // unless the user differs or the init must drop what it kept to switch.
            user: (user != User::default()).then_some(user),
            capabilities,
        })
    }

    fn failed(&self, id: &ContainerId, message: String) -> Error {
        Error::Backend {
            backend: NAME.into(),
            command: format!("create {id}"),
            status: "failed".into(),
            code: 1,
            message,
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
        let id = req.id();
        if self.record_path(id).exists() {
            return Err(Error::AlreadyExists { id: id.clone() });
        }
        let started = Instant::now();
        self.tools.take_spent();
        // Everything that can be checked is checked before anything is made.
        let bundle = Bundle::load(&req.bundle).map_err(input)?;
        let files_dir = self.files_root.join(id.as_str());
        let translation = from_oci(
            bundle.spec(),
            &ResolvedPaths::from_bundle(&bundle, &files_dir).monitored(),
        )
        .map_err(input)?;
        let terminal = bundle.spec().process().as_ref().and_then(|p| p.terminal()) == Some(true);
        if terminal != req.console_socket.is_some() {
            return Err(input(TerminalMismatch { terminal }));
        }
        let proxmox = split_for_proxmox(&without_proxmox_keys(translation.config()), &self.policy)
            .map_err(input)?;
        let owner = root_owner(&proxmox.options, &proxmox.raw);

        // Templates are shared by content and VMIDs are taken one at a time: both under
        // the backend's lock, so a delete never removes a template a create is about to
        // use, and proxcage processes on this node never race each other for a VMID
        // (other nodes race through pct create itself). Declared before `undo`, the lock
        // is released after an undo has run.
        let held = Self::flock(&self.root.join("vmid.lock"), Duration::from_secs(300))?;
        let mut undo = Undo {
            pct: self,
            files_dir: Some(files_dir.clone()),
            template: None,
            vmid: None,
            started: false,
            monitor: None,
        };
        translation.prepare().map_err(io_error(
            "cannot write the container's files to",
            &files_dir,
        ))?;
        // The process file holds the environment: for the CT's root only.
        let process_file = files_dir.join("process");
        let contents = fs::read(&process_file).map_err(io_error("cannot read", &process_file))?;
        write_owned(&process_file, &contents, owner)?;
        let packing = Instant::now();
        let template = pack_rootfs(bundle.rootfs(), &self.template_dir, &PackOptions::default())
            .map_err(input)?;
        let packing = packing.elapsed();
        if !template.reused() {
            undo.template = Some(template.path().to_path_buf());
        }
        let volume = format!("{}:vztmpl/{}", self.template_storage, template.file_name());

        let mut options: BTreeMap<String, String> = proxmox.options.clone();
        options.insert("ostype".into(), "unmanaged".into());
        options
            .entry("unprivileged".into())
            .or_insert_with(|| "1".into());
        options
            .entry("hostname".into())
            .or_insert_with(|| hostname_for(id));
        let mut rootfs = format!("{}:{}", self.rootfs_storage, self.rootfs_size_gib);
        if proxmox.rootfs_readonly {
            rootfs.push_str(",ro=1");
        }
        options.insert("rootfs".into(), rootfs);
        options.insert("tags".into(), "proxcage".into());
        options.insert("description".into(), format!("proxcage container {id}"));
        if let Some(net0) = &self.net0 {
            options.insert("net0".into(), net0.clone());
        }
        let options: Vec<(String, String)> = options.into_iter().collect();
        let vmid = allocate(
            self.range,
            |want| self.tools.next_id(want),
            |vmid| self.tools.create(vmid, &volume, &options),
        )
        .map_err(Error::from)?;
        undo.vmid = Some(vmid);
        self.write_raw_keys(vmid, &proxmox.raw)?;

        // The monitor listens before the CT starts; the CT's init reaches it, takes the
        // caller's stdio (or hands over its terminal) and blocks until `start`.
        let run = RunDir::new(&files_dir);
        let mut monitor = monitor::spawn(&Launch {
            init: &files_dir.join("init"),
            run: &run,
            owner,
            nfds: 3 + req.preserve_fds,
            console_socket: req.console_socket.as_deref(),
        })
        .map_err(|e| self.failed(id, format!("cannot start the monitor: {e}")))?;
        undo.monitor = Some(monitor.pid);
        undo.started = true;
        self.tools.start(vmid).map_err(Error::from)?;
        let init = self.tools.init_pid(vmid).map_err(Error::from)?;
        let waiting = Instant::now();
        monitor
            .wait_ready(INIT_TIMEOUT, || init.is_none_or(monitor::gone))
            .map_err(|message| self.failed(id, message))?;
        let waiting = waiting.elapsed();
        if let Some(pid_file) = &req.pid_file {
            process::write_pid_file(pid_file, monitor.pid)?;
        }
        let hooks = translation.runtime_hooks();
        let record = CtRecord {
            vmid,
            template: template.file_name(),
            started: false,
            bundle: bundle.dir().to_path_buf(),
            rootfs: bundle.rootfs().to_path_buf(),
            created: proxcage_store::now_rfc3339(),
            annotations: bundle.annotations(),
            monitor: Some(monitor.pid),
            owner: Some(owner),
            hooks: LaterHooks {
                start_container: hooks.start_container.clone(),
                poststart: hooks.poststart.clone(),
                poststop: hooks.poststop.clone(),
            },
        };
        let state = record.state(id, Status::Creating, init.unwrap_or(0));
        let hooks_started = Instant::now();
        hooks::run_on_host("createRuntime", &hooks.create_runtime, &state)
            .and_then(|()| hooks::run_on_host("createContainer", &hooks.create_container, &state))
            .map_err(|message| self.failed(id, message))?;
        let in_hooks = hooks_started.elapsed();
        self.save(id, &record)?;
        let total = started.elapsed();
        let tools = self.tools.take_spent();
        tracing::debug!(
            "container {id}: created in {} ms: pct, pvesh and lxc-info {} ms, packing {} ms, \
             the CT's init reaching its monitor {} ms, hooks {} ms, proxcage itself {} ms",
            total.as_millis(),
            tools.as_millis(),
            packing.as_millis(),
            waiting.as_millis(),
            in_hooks.as_millis(),
            total
                .saturating_sub(tools + packing + waiting + in_hooks)
                .as_millis(),
        );
        undo.vmid = None;
        undo.template = None;
        undo.files_dir = None;
        undo.monitor = None;
        undo.started = false;
        drop(undo);
        drop(held);
        Ok(())
    }

    fn start(&self, id: &ContainerId) -> Result<()> {
        let mut record = self.load(id)?;
        let (status, init) = self.ct_status(id, &record)?;
        if status != Status::Created || init <= 0 {
            return Err(Error::Conflict {
                id: id.clone(),
                message: format!("cannot start a container that is {status}"),
            });
        }
        let run = RunDir::new(&self.files_root.join(id.as_str()));
        let created = record.state(id, Status::Created, init);
        for (i, hook) in record.hooks.start_container.iter().enumerate() {
            let file = run
                .path()
                .join(format!("hook-{}-{i}.process", std::process::id()));
            let bytes = hooks::inside_process(hook).encode().map_err(input)?;
            write_owned(&file, &bytes, record.owner.unwrap_or((0, 0)))?;
            let argv = [INIT_PATH.to_string(), inside_path(&file)];
            let ran = hooks::run_inside(
                "startContainer",
                hook,
                &created,
                self.tools.exec_command(record.vmid, &argv),
            );
            let _ = fs::remove_file(&file);
            ran.map_err(|message| self.failed(id, message))?;
        }
        monitor::release(&run.exec_fifo(), INIT_TIMEOUT, || monitor::gone(init))
            .map_err(|message| self.failed(id, message))?;
        record.started = true;
        self.save(id, &record)?;
        // A failed poststart hook is logged; the container runs on (runtime-spec).
        let running = record.state(id, Status::Running, init);
        hooks::run_each_on_host(id, "poststart", &record.hooks.poststart, &running);
        Ok(())
    }

    fn state(&self, id: &ContainerId) -> Result<State> {
        let record = self.load(id)?;
        let (status, pid) = self.ct_status(id, &record)?;
        Ok(record.state(id, status, pid))
    }

    fn kill(&self, req: KillRequest<'_>) -> Result<()> {
        let record = self.load(req.id)?;
        let (status, pid) = self.ct_status(req.id, &record)?;
        if !matches!(status, Status::Running | Status::Created) || pid <= 0 {
            return Err(Error::Conflict {
                id: req.id.clone(),
                message: "container not running".into(),
            });
        }
        let pids = if req.all {
            let mut pids =
                process::pids_in_pid_namespace_of(pid).map_err(|message| Error::Conflict {
                    id: req.id.clone(),
                    message,
                })?;
            // The init passes every signal but SIGKILL on to the process, which gets it
            // directly here: once is enough.
            if req.signal.number() != libc::SIGKILL && pids.len() > 1 {
                pids.retain(|&p| p != pid);
            }
            pids
        } else {
            vec![pid]
        };
        process::signal_each(req.id, &pids, req.signal)
    }

    fn delete(&self, req: DeleteRequest<'_>) -> Result<()> {
        let id = req.id;
        let record = self.load(id)?;
        match self.ct_status(id, &record) {
            Ok((Status::Running, _)) if !req.force => {
                return Err(Error::Conflict {
                    id: id.clone(),
                    message: "cannot delete a running container: stop it first, or use --force"
                        .into(),
                })
            }
            Ok((Status::Running | Status::Created, _)) => match self.tools.stop(record.vmid) {
                Ok(()) => {}
                Err(e) if matches!(e.pct(), Some(PctError::NotRunning { .. })) => {}
                Err(e) => return Err(e.into()),
            },
            Ok(_) => {}
            // The CT is gone already (destroyed by hand): forget the rest.
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        // Execs entering the CT finish entering it; later ones find the record gone.
        let destroying = attach::destroying(&self.root, record.vmid, id)?;
        match self.tools.destroy(record.vmid) {
            Ok(()) => {}
            Err(e) if matches!(e.pct(), Some(PctError::NoSuchCt { .. })) => {}
            Err(e) => return Err(e.into()),
        }
        let held = Self::flock(&self.root.join("vmid.lock"), Duration::from_secs(300))?;
        if !self.template_in_use(&record.template, id) {
            let _ = fs::remove_file(self.template_dir.join(&record.template));
        }
        let _ = fs::remove_dir_all(self.files_root.join(id.as_str()));
        fs::remove_file(self.record_path(id))
            .map_err(io_error("cannot remove", &self.record_path(id)))?;
        drop(held);
        drop(destroying);
        // A failed poststop hook is logged; the delete stands (runtime-spec).
        let stopped = record.state(id, Status::Stopped, 0);
        hooks::run_each_on_host(id, "poststop", &record.hooks.poststop, &stopped);
        Ok(())
    }

    /// create and start; then, unless detached, wait for the monitor (this process's
    /// child) as a shim would, passing on the signals this process gets, and delete the
    /// container unless `--keep`.
    fn run(&self, req: &RunRequest) -> Result<i32> {
        let id = req.create.id();
        let terminal = Bundle::load(&req.create.bundle)
            .ok()
            .and_then(|b| b.spec().process().as_ref().and_then(|p| p.terminal()))
            == Some(true);
        // A terminal process without a console socket gets this process's terminal, as
        // with `runc run`: the monitor sends the master here.
        let mut create = req.create.clone();
        let console = if terminal && create.console_socket.is_none() {
            if req.detach {
                return Err(Error::Conflict {
                    id: id.clone(),
                    message: "a detached run of a terminal process needs --console-socket".into(),
                });
            }
            fs::create_dir_all(&self.root).map_err(io_error("cannot create", &self.root))?;
            let path = self.root.join(format!("{id}.console"));
            let socket = MasterSocket::listen(&path, SockType::Stream, (0, 0))
                .map_err(io_error("cannot listen on", &path))?;
            create.console_socket = Some(path);
            Some(socket)
        } else {
            None
        };
        self.create(&create)?;
        let forget = || {
            if let Err(e) = self.delete(DeleteRequest { id, force: true }) {
                tracing::warn!("container {id}: {e}");
            }
        };
        let master = match console.map(|s| s.receive(INIT_TIMEOUT, || false)) {
            Some(Err(message)) => {
                forget();
                return Err(self.failed(id, message));
            }
            Some(Ok(master)) => Some(master),
            None => None,
        };
        let monitor = self.load(id)?.monitor;
        if let Err(e) = self.start(id) {
            forget();
            return Err(e);
        }
        if req.detach {
            return Ok(0);
        }
        let Some(monitor) = monitor else {
            return Err(self.failed(id, "create recorded no monitor".into()));
        };
        if let Some(master) = master {
            tty::relay(master);
        }
        let code = process::wait_child_relaying(monitor)?;
        if !req.keep {
            self.delete(DeleteRequest { id, force: true })?;
        }
        Ok(code)
    }

    fn list(&self) -> Result<Vec<State>> {
        Ok(self
            .records()
            .into_iter()
            .filter_map(|(id, _)| self.state(&id).ok())
            .collect())
    }

    fn exec(&self, req: &ExecRequest) -> Result<i32> {
        let id = req.id();
        let unsupported = [
            (req.preserve_fds > 0, "exec --preserve-fds"),
            (!req.caps.is_empty(), "exec --cap"),
            (req.apparmor.is_some(), "exec --apparmor"),
            (req.process_label.is_some(), "exec --process-label"),
            (req.cgroup.is_some(), "exec --cgroup"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(self.unsupported(id, what));
        }
        let (record, entering) = self.enter(id)?;
        let owner = record.owner.unwrap_or((0, 0));
        let files_dir = self.files_root.join(id.as_str());
        let process = self.exec_process(req, &files_dir)?;
        if process.terminal && req.detach && req.console_socket.is_none() {
            return Err(Error::Conflict {
                id: id.clone(),
                message: "a detached exec with a terminal needs --console-socket".into(),
            });
        }
        let run = RunDir::new(&files_dir);
        sweep_exec_files(run.path());
        let name = format!(
            "exec-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let file = run.path().join(format!("{name}.process"));
        let bytes = process.encode().map_err(input)?;
        write_owned(&file, &bytes, owner)?;
        let mut argv = vec![INIT_PATH.to_string(), inside_path(&file)];
        let terminal = if process.terminal {
            let path = run.path().join(format!("{name}.tty"));
            let socket = MasterSocket::listen(&path, SockType::SeqPacket, owner)
                .map_err(io_error("cannot listen on", &path))?;
            argv.push(inside_path(&path));
            Some(socket)
        } else {
            None
        };
        let mut cmd = self.tools.exec_command(record.vmid, &argv);
        let Some(socket) = terminal else {
            let opened = attach::Opened::watch(&file);
            // The CT is entered once the process has opened its process file there.
            let entered = |pid: i32| {
                let waiting = Instant::now();
                let opened = opened.wait(INIT_TIMEOUT, || !process::is_running(pid));
                drop(entering);
                tracing::debug!(
                    "container {id}: exec {} CT {} after {} µs",
                    if opened { "entered" } else { "did not enter" },
                    record.vmid,
                    waiting.elapsed().as_micros()
                );
            };
            if req.detach {
                let child = cmd
                    .spawn()
                    .map_err(|e| Error::io("cannot run", &self.tools.pct, e))?;
                entered(child.id() as i32);
                if let Some(pid_file) = &req.pid_file {
                    process::write_pid_file(pid_file, child.id() as i32)?;
                }
                return Ok(0);
            }
            let status =
                process::run_inherited_plain_then(&mut cmd, None, |pid| entered(pid.as_raw()));
            let _ = fs::remove_file(&file);
            return Ok(process::exit_code(status?));
        };
        // The terminal is the process's stdio; lxc-attach must not make one of its own
        // from a caller's terminal, nor read the caller's input.
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io("cannot run", &self.tools.pct, e))?;
        let master = socket.receive(INIT_TIMEOUT, || !matches!(child.try_wait(), Ok(None)));
        // The process sends its terminal after it has read its process file: the CT is
        // entered.
        drop(entering);
        let _ = fs::remove_file(&file);
        drop(socket);
        let master = match master {
            Ok(master) => master,
            Err(message) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.failed(id, message));
            }
        };
        match &req.console_socket {
            Some(console) => {
                tty::send_to_console(console, &master).map_err(|m| self.failed(id, m))?;
                drop(master);
                if req.detach {
                    if let Some(pid_file) = &req.pid_file {
                        process::write_pid_file(pid_file, child.id() as i32)?;
                    }
                    return Ok(0);
                }
            }
            None => tty::relay(master),
        }
        process::wait_child_relaying(child.id() as i32)
    }

    fn ps(&self, id: &ContainerId) -> Result<Vec<i32>> {
        let record = self.load(id)?;
        match self.ct_status(id, &record)? {
            (Status::Running, pid) if pid > 0 => {
                process::pids_in_pid_namespace_of(pid).map_err(|message| Error::Conflict {
                    id: id.clone(),
                    message,
                })
            }
            _ => Ok(Vec::new()),
        }
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
}

impl proxcage_store::Backend for Pct {
    fn health(&self, store: &proxcage_store::StateStore) -> Result<Vec<proxcage_core::Finding>> {
        crate::health::check(self, store)
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

    #[test]
    fn hostnames_are_dns_names() {
        let id = |s: &str| ContainerId::new(s).unwrap();
        assert_eq!(hostname_for(&id("Web_1+x")), "web-1-x");
        assert_eq!(hostname_for(&id("___")), "proxcage");
        assert_eq!(hostname_for(&id(&"a".repeat(100))).len(), 63);
    }
}
