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
    process, ContainerId, CreateRequest, DeleteRequest, Error, ExecRequest, KillRequest, Result,
    RunRequest, Runtime, State, Status,
};
use proxcage_lxc_config::{
    from_oci, split_for_proxmox, LxcConfig, ProxmoxPolicy, PveConfig, ResolvedPaths,
};
use proxcage_oci::template::{pack_rootfs, PackOptions};
use proxcage_oci::Bundle;
use serde::{Deserialize, Serialize};

use crate::alloc::allocate;
use crate::error::PctError;
use crate::parse::CtStatus;
use crate::pct::PctTools;
use crate::settings::PctSettings;
use crate::vmid::Vmid;
use crate::NAME;

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
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
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
        Ok(match status {
            CtStatus::Running => (
                Status::Running,
                self.tools.init_pid(record.vmid)?.unwrap_or(0),
            ),
            CtStatus::Stopped if record.started => (Status::Stopped, 0),
            CtStatus::Stopped => (Status::Created, 0),
        })
    }

    fn template_in_use(&self, template: &str, except: &ContainerId) -> bool {
        self.records()
            .iter()
            .any(|(id, r)| id != except && r.template == template)
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
        if req.console_socket.is_some() {
            return Err(self.unsupported(id, "a terminal (--console-socket)"));
        }
        if self.record_path(id).exists() {
            return Err(Error::AlreadyExists { id: id.clone() });
        }
        // Everything that can be checked is checked before anything is made.
        let bundle = Bundle::load(&req.bundle).map_err(input)?;
        let files_dir = self.files_root.join(id.as_str());
        let translation = from_oci(
            bundle.spec(),
            &ResolvedPaths::from_bundle(&bundle, &files_dir),
        )
        .map_err(input)?;
        let proxmox = split_for_proxmox(&without_proxmox_keys(translation.config()), &self.policy)
            .map_err(input)?;

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
        };
        translation.prepare().map_err(io_error(
            "cannot write the container's files to",
            &files_dir,
        ))?;
        let template = pack_rootfs(bundle.rootfs(), &self.template_dir, &PackOptions::default())
            .map_err(input)?;
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
        let spec_annotations = bundle.annotations();
        self.save(
            id,
            &CtRecord {
                vmid,
                template: template.file_name(),
                started: false,
                bundle: bundle.dir().to_path_buf(),
                rootfs: bundle.rootfs().to_path_buf(),
                created: proxcage_core::store::now_rfc3339(),
                annotations: spec_annotations,
            },
        )?;
        undo.vmid = None;
        undo.template = None;
        undo.files_dir = None;
        drop(undo);
        drop(held);
        Ok(())
    }

    fn start(&self, id: &ContainerId) -> Result<()> {
        let mut record = self.load(id)?;
        let (status, _) = self.ct_status(id, &record)?;
        if status != Status::Created {
            return Err(Error::Conflict {
                id: id.clone(),
                message: format!("cannot start a container that is {status}"),
            });
        }
        self.tools.start(record.vmid).map_err(Error::from)?;
        record.started = true;
        self.save(id, &record)
    }

    fn state(&self, id: &ContainerId) -> Result<State> {
        let record = self.load(id)?;
        let (status, pid) = self.ct_status(id, &record)?;
        Ok(State {
            oci_version: proxcage_core::OCI_VERSION.into(),
            id: id.to_string(),
            pid,
            status,
            bundle: record.bundle,
            rootfs: record.rootfs,
            created: record.created,
            owner: String::new(),
            annotations: record.annotations,
        })
    }

    fn kill(&self, req: KillRequest<'_>) -> Result<()> {
        let record = self.load(req.id)?;
        let (status, pid) = self.ct_status(req.id, &record)?;
        if status != Status::Running || pid <= 0 {
            return Err(Error::Conflict {
                id: req.id.clone(),
                message: "container not running".into(),
            });
        }
        let pids = if req.all {
            process::pids_in_pid_namespace_of(pid).map_err(|message| Error::Conflict {
                id: req.id.clone(),
                message,
            })?
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
            Ok((Status::Running, _)) => match self.tools.stop(record.vmid) {
                Ok(()) => {}
                Err(e) if matches!(e.pct(), Some(PctError::NotRunning { .. })) => {}
                Err(e) => return Err(e.into()),
            },
            Ok(_) => {}
            // The CT is gone already (destroyed by hand): forget the rest.
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        match self.tools.destroy(record.vmid) {
            Ok(()) => {}
            Err(e) if matches!(e.pct(), Some(PctError::NoSuchCt { .. })) => {}
            Err(e) => return Err(e.into()),
        }
        let _held = Self::flock(&self.root.join("vmid.lock"), Duration::from_secs(300))?;
        if !self.template_in_use(&record.template, id) {
            let _ = fs::remove_file(self.template_dir.join(&record.template));
        }
        let _ = fs::remove_dir_all(self.files_root.join(id.as_str()));
        fs::remove_file(self.record_path(id))
            .map_err(io_error("cannot remove", &self.record_path(id)))
    }

    fn run(&self, req: &RunRequest) -> Result<i32> {
        Err(self.unsupported(req.create.id(), "run (use create and start)"))
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
            (req.process_file.is_some(), "exec --process"),
            (req.detach, "exec --detach"),
            (req.tty, "exec --tty"),
            (req.cwd.is_some(), "exec --cwd"),
            (!req.env.is_empty(), "exec --env"),
            (req.user.is_some(), "exec --user"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(self.unsupported(id, what));
        }
        let record = self.load(id)?;
        let mut cmd = self.tools.exec_command(record.vmid, &req.args);
        let status = process::run_inherited(&mut cmd, None)?;
        Ok(process::exit_code(status))
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

    fn health(&self, store: &proxcage_core::StateStore) -> Result<Vec<proxcage_core::Finding>> {
        crate::health::check(self, store)
    }

    fn recover(&self, record: &proxcage_core::Record) -> Result<()> {
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
