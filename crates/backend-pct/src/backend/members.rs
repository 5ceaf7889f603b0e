//! Containers of a pct pod, nested in the pod's CT (see `crate::member`): their record,
//! create and the lifecycle. A member's record is `<root>/members/<id>.json`.

use super::*;
use crate::member::{self, MemberError};
use proxcage_lxc_config::oci_spec::runtime::{LinuxNamespaceType, Spec};
use proxcage_process::cgroup::Cgroups;

/// What the backend remembers of a member.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct MemberRecord {
    /// The pod's sandbox, a container of this root with a CT.
    pub(super) sandbox: String,
    vmid: Vmid,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    /// The host-side process that waits for the member (the pid file's).
    pub(super) waiter: i32,
    /// The member's process (host pid) and when it started (clock ticks after boot).
    member: i32,
    member_started: Option<i64>,
    started: bool,
    own_pid_ns: bool,
    owner: (u32, u32),
    /// The member's files (init, process file, exec FIFO, mount point).
    files_dir: PathBuf,
    cgroups: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "LaterHooks::is_empty")]
    hooks: LaterHooks,
    /// Its part of the pod CT's size.
    #[serde(default)]
    pub(super) share: pod::Share,
}

impl MemberRecord {
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

    /// Whether the member's process is still the one `create` made, and runs.
    fn alive(&self) -> bool {
        process::is_running(self.member)
            && process::started_at(self.member as u32) == self.member_started
    }

    fn status(&self) -> (Status, i32) {
        match (self.alive(), self.started) {
            (true, true) => (Status::Running, self.member),
            (true, false) => (Status::Created, self.member),
            (false, _) => (Status::Stopped, 0),
        }
    }
}

/// The kinds of namespace a member may name by path: its pod's.
const SHARED: [(LinuxNamespaceType, &str); 3] = [
    (LinuxNamespaceType::Network, "net"),
    (LinuxNamespaceType::Ipc, "ipc"),
    (LinuxNamespaceType::Uts, "uts"),
];

impl Pct {
    pub(crate) fn member_path(&self, id: &ContainerId) -> PathBuf {
        self.root.join("members").join(format!("{id}.json"))
    }

    /// Whether `id` is a member this backend has a record of.
    pub(crate) fn is_member(&self, id: &ContainerId) -> bool {
        self.member_path(id).exists()
    }

    pub(super) fn load_member(&self, id: &ContainerId) -> Result<MemberRecord> {
        let path = self.member_path(id);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound { id: id.clone() },
            _ => Error::io("cannot read", &path, e),
        })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::CorruptRecord { path, source })
    }

    fn save_member(&self, id: &ContainerId, record: &MemberRecord) -> Result<()> {
        let path = self.member_path(id);
        let dir = self.root.join("members");
        fs::create_dir_all(&dir).map_err(io_error("cannot create", &dir))?;
        let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
        let json = serde_json::to_vec(record)
            .map_err(|e| Error::io("cannot encode", &path, io::Error::other(e)))?;
        fs::write(&tmp, json)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                Error::io("cannot write", &path, e)
            })
    }

    pub(super) fn members(&self) -> Vec<(ContainerId, MemberRecord)> {
        let Ok(entries) = fs::read_dir(self.root.join("members")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = ContainerId::new(name.strip_suffix(".json")?).ok()?;
                let record = self.load_member(&id).ok()?;
                Some((id, record))
            })
            .collect()
    }

    /// The pct sandbox of this root whose member `spec` is: named by CRI's annotations,
    /// or a sandbox (a CT holding its client's network) whose namespaces the spec's paths are (its monitor is in the CT's network, ipc
    /// and uts namespaces).
    pub(super) fn sandbox_of(&self, spec: &Spec) -> Result<Option<(ContainerId, CtRecord)>> {
        let annotations = spec.annotations().clone().unwrap_or_default();
        if annotations
            .get("io.kubernetes.cri.container-type")
            .map(String::as_str)
            == Some("container")
        {
            if let Some(sandbox) = annotations
                .get("io.kubernetes.cri.sandbox-id")
                .and_then(|s| ContainerId::new(s).ok())
            {
                if self.record_path(&sandbox).exists() {
                    let record = self.load(&sandbox)?;
                    return Ok(Some((sandbox, record)));
                }
            }
        }
        let paths: Vec<(&str, (u64, u64))> = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .filter_map(|ns| {
                let kind = SHARED.iter().find(|(t, _)| *t == ns.typ())?.1;
                Some((kind, sandbox::identity(ns.path().as_ref()?)?))
            })
            .collect();
        if paths.is_empty() {
            return Ok(None);
        }
        Ok(self.records().into_iter().find(|(_, record)| {
            let Some(monitor) = record.monitor.filter(|_| !record.destroying) else {
                return false;
            };
            // Only a pod's CT takes members: a sandbox's, whose network its client made.
            if record.sandbox_netns.is_none() {
                return false;
            }
            paths.iter().any(|(kind, path)| {
                sandbox::identity(Path::new(&format!("/proc/{monitor}/ns/{kind}"))) == Some(*path)
            })
        }))
    }

    /// `create` of a member of the pod whose sandbox is `sandbox`.
    pub(super) fn create_member(
        &self,
        req: &CreateRequest,
        sandbox: (ContainerId, CtRecord),
    ) -> Result<()> {
        let id = req.id();
        let (sandbox_id, sandbox) = sandbox;
        let (bundle, terminal, init) = self.check_member(req, &sandbox_id, &sandbox)?;
        let owner = sandbox.owner.unwrap_or((100_000, 100_000));
        let files_dir = self.files_dir_for(&identity::root_token(&self.root)?, id);
        let dir = files_dir.clone();
        let files = create::Undo::new(move || {
            let _ = fs::remove_dir_all(&dir);
        });
        let hooks = Self::member_files(&bundle, &files_dir, owner)?;
        let limits = member::make_cgroups(init, id.as_str()).map_err(input)?;
        let cgroups = limits.dirs();
        let made = cgroups.clone();
        let cgroups_undo = create::Undo::new(move || member::remove_cgroups(&made));
        let spawned = member::launch(
            &member::Request {
                bundle: &bundle,
                init,
                files_dir: &files_dir,
                cgroups: &cgroups,
                preserve_fds: req.preserve_fds,
                terminal,
                owner,
            },
            INIT_TIMEOUT,
        )
        .map_err(|message| self.failed(id, message))?;
        let waiter = spawned.waiter;
        let spawned_undo = create::Undo::new(move || {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(waiter),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(waiter), None);
        });
        let record = MemberRecord {
            share: pod::Share::of_spec(bundle.spec()),
            sandbox: sandbox_id.to_string(),
            vmid: sandbox.vmid,
            bundle: bundle.dir().to_path_buf(),
            rootfs: bundle.rootfs().to_path_buf(),
            created: proxcage_store::now_rfc3339(),
            annotations: bundle.annotations(),
            waiter,
            member: spawned.member,
            member_started: process::started_at(spawned.member as u32),
            started: false,
            own_pid_ns: !same_namespace(spawned.member, init, "pid"),
            owner,
            files_dir: files_dir.clone(),
            cgroups: cgroups.clone(),
            hooks: LaterHooks {
                start_container: Vec::new(),
                poststart: hooks.poststart.clone(),
                poststop: hooks.poststop.clone(),
            },
        };
        self.hand_over(req, &bundle, &spawned)?;
        let state = record.state(id, Status::Creating, spawned.member);
        hooks::run_on_host("createRuntime", &hooks.create_runtime, &state)
            .and_then(|()| hooks::run_on_host("createContainer", &hooks.create_container, &state))
            .map_err(|message| self.failed(id, message))?;
        self.join_pod(id, (&sandbox_id, &sandbox), &record, limits)?;
        spawned_undo.keep();
        cgroups_undo.keep();
        files.keep();
        Ok(())
    }

    /// The pod CT grows before the member may run, then the member's own limits go below
    /// it (a v1 CPU quota above its parent's is refused); the record is saved under the
    /// pod's lock, so that the next resize counts it.
    fn join_pod(
        &self,
        id: &ContainerId,
        (sandbox_id, sandbox): (&ContainerId, &CtRecord),
        record: &MemberRecord,
        limits: Cgroups,
    ) -> Result<()> {
        let _pod = self.pod_lock(sandbox_id, sandbox)?;
        self.resize_pod(sandbox_id, sandbox, Some(&record.share))?;
        let resized = create::Undo::new(|| {
            if let Err(e) = self.resize_pod(sandbox_id, sandbox, None) {
                tracing::warn!(
                    "undoing the create: resizing the pod CT {}: {e}",
                    sandbox.vmid
                );
            }
        });
        self.limit_member(id, &limits, &record.share)?;
        self.save_member(id, record)?;
        resized.keep();
        Ok(())
    }

    /// What is checked before a member is made: the bundle (with whether its process has
    /// a terminal) and the pod CT's init (host pid).
    fn check_member(
        &self,
        req: &CreateRequest,
        sandbox_id: &ContainerId,
        sandbox: &CtRecord,
    ) -> Result<(Bundle, bool, i32)> {
        let bundle = Bundle::from_spec(&req.bundle, (*req.spec).clone()).map_err(input)?;
        let terminal = bundle.spec().process().as_ref().and_then(|p| p.terminal()) == Some(true);
        if terminal != req.console_socket.is_some() {
            return Err(input(TerminalMismatch { terminal }));
        }
        member::refuse_unsupported(bundle.spec()).map_err(input)?;
        self.bind_sources.check(req.id(), &bundle)?;
        match self.tools.init_pid(sandbox.vmid).map_err(Error::from)? {
            Some(init) => Ok((bundle, terminal, init)),
            None => Err(input(MemberError::SandboxDown {
                sandbox: sandbox_id.to_string(),
                vmid: sandbox.vmid,
            })),
        }
    }

    /// The member's init, process file (for the CT's root) and seccomp filter in its files
    /// directory, from the spec's translation as for a monitored CT (whose init becomes
    /// the user itself, and whose hooks proxcage runs), its seccomp filter aside: the
    /// member's is its own, not LXC's profile. The init runs unmonitored: it execs the
    /// process in place. Returns the hooks.
    fn member_files(
        bundle: &Bundle,
        files_dir: &Path,
        owner: (u32, u32),
    ) -> Result<proxcage_lxc_config::RuntimeHooks> {
        let mut spec = bundle.spec().clone();
        if let Some(linux) = spec.linux_mut() {
            linux.set_seccomp(None);
        }
        let paths = ResolvedPaths::from_bundle(bundle, files_dir).monitored();
        let translation = from_oci(&spec, &paths).map_err(input)?;
        translation
            .prepare()
            .map_err(io_error("cannot write the container's files to", files_dir))?;
        let process_file = files_dir.join("process");
        let contents = fs::read(&process_file).map_err(io_error("cannot read", &process_file))?;
        let mut process = ProcessFile::decode(&contents).map_err(input)?;
        process.monitored = false;
        process.terminal = false;
        write_owned(&process_file, &process.encode().map_err(input)?, owner)?;
        member::keep_seccomp(bundle.spec(), files_dir)
            .map_err(io_error("cannot write the seccomp filter to", files_dir))?;
        Ok(translation.runtime_hooks().clone())
    }

    /// What the caller gets of a ready member: `oomScoreAdj` set from the host, the
    /// terminal on its console socket, the waiter in the pid file.
    fn hand_over(
        &self,
        req: &CreateRequest,
        bundle: &Bundle,
        spawned: &member::Spawned,
    ) -> Result<()> {
        let id = req.id();
        let adj = bundle
            .spec()
            .process()
            .as_ref()
            .and_then(|p| p.oom_score_adj());
        if let Some(adj) = adj {
            let path = format!("/proc/{}/oom_score_adj", spawned.member);
            fs::write(&path, adj.to_string()).map_err(|e| {
                self.failed(
                    id,
                    format!("cannot set process.oomScoreAdj {adj} on the member ({path}): {e}"),
                )
            })?;
        }
        if let (Some(console), Some(master)) = (&req.console_socket, &spawned.master) {
            tty::send_to_console(console, master).map_err(|m| self.failed(id, m))?;
        }
        if let Some(pid_file) = &req.pid_file {
            process::write_pid_file(pid_file, spawned.waiter)?;
        }
        Ok(())
    }

    pub(super) fn start_member(&self, id: &ContainerId) -> Result<()> {
        let mut record = self.load_member(id)?;
        let (status, pid) = record.status();
        if status != Status::Created {
            return Err(Error::Conflict {
                id: id.clone(),
                message: format!("cannot start a container that is {status}"),
            });
        }
        let fifo = record.files_dir.join("exec.fifo");
        let waiter = record.waiter;
        monitor::release(&fifo, INIT_TIMEOUT, || monitor::gone(waiter))
            .map_err(|message| self.failed(id, message))?;
        record.started = true;
        self.save_member(id, &record)?;
        let running = record.state(id, Status::Running, pid);
        hooks::run_each_on_host(id, "poststart", &record.hooks.poststart, &running);
        Ok(())
    }

    pub(super) fn state_member(&self, id: &ContainerId) -> Result<State> {
        let record = self.load_member(id)?;
        let (status, pid) = record.status();
        Ok(record.state(id, status, pid))
    }

    /// The member's processes (host pids): its pid namespace's, or its cgroup's when it
    /// shares the pod's pid namespace.
    fn member_pids(&self, id: &ContainerId, record: &MemberRecord) -> Result<Vec<i32>> {
        if record.own_pid_ns {
            return process::pids_in_pid_namespace_of(record.member).map_err(|message| {
                Error::Conflict {
                    id: id.clone(),
                    message,
                }
            });
        }
        let procs = record
            .cgroups
            .first()
            .map(|d| fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default())
            .unwrap_or_default();
        let mut pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
        // The intermediate that waits for the member is no process of the container.
        pids.retain(|&p| p == record.member || !member::children(p).contains(&record.member));
        pids.sort_unstable();
        Ok(pids)
    }

    pub(super) fn kill_member(&self, req: KillRequest<'_>) -> Result<()> {
        let record = self.load_member(req.id)?;
        let (status, pid) = record.status();
        if !matches!(status, Status::Running | Status::Created) {
            return Err(Error::Conflict {
                id: req.id.clone(),
                message: "container not running".into(),
            });
        }
        let pids = if req.all {
            self.member_pids(req.id, &record)?
        } else {
            vec![pid]
        };
        process::signal_each(req.id, &pids, req.signal)
    }

    pub(super) fn ps_member(&self, id: &ContainerId) -> Result<Vec<i32>> {
        let record = self.load_member(id)?;
        match record.status() {
            (Status::Running, _) => self.member_pids(id, &record),
            _ => Ok(Vec::new()),
        }
    }

    /// Kills the member's processes and waits (up to 10 s) until they are gone.
    fn stop_member(&self, id: &ContainerId, record: &MemberRecord) {
        if !record.alive() {
            return;
        }
        let pids = self
            .member_pids(id, record)
            .unwrap_or_else(|_| vec![record.member]);
        let _ = process::signal_each(
            id,
            &pids,
            proxcage_core::Signal::from_number(libc::SIGKILL).expect("SIGKILL is a signal"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while record.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn delete_member(&self, id: &ContainerId, force: bool) -> Result<()> {
        let record = self.load_member(id)?;
        if record.status().0 == Status::Running && !force {
            return Err(Error::Conflict {
                id: id.clone(),
                message: "cannot delete a running container: stop it first, or use --force".into(),
            });
        }
        self.stop_member(id, &record);
        if !record.started && !monitor::gone(record.waiter) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(record.waiter),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        member::remove_cgroups(&record.cgroups);
        self.forget_member(id, &record)?;
        // The directory goes with the last member (another's record keeps it: ENOTEMPTY).
        let _ = fs::remove_dir(self.root.join("members"));
        let _ = fs::remove_dir_all(&record.files_dir);
        let stopped = record.state(id, Status::Stopped, 0);
        hooks::run_each_on_host(id, "poststop", &record.hooks.poststop, &stopped);
        Ok(())
    }

    /// `update` of a member: its memory, swap and CPU limits and shares are its part of
    /// the pod CT's size, which is set again. What else runc's `update` changes has no
    /// place in the pod CT (its cgroup is the pod's, not the member's): refused, naming
    /// it, before anything changes.
    pub(super) fn update_member(&self, req: &UpdateRequest) -> Result<()> {
        let id = &req.id;
        let mut record = self.load_member(id)?;
        if !matches!(record.status().0, Status::Running | Status::Created) {
            return Err(Error::Conflict {
                id: id.clone(),
                message: "container not running: update changes a running container".into(),
            });
        }
        if let Some(what) = pod::not_a_pod_size(req) {
            return Err(Error::Conflict {
                id: id.clone(),
                message: format!("the pct backend cannot change {what} of a container of a pct pod: only its memory, swap and CPU limits and CPU shares, which size the pod's CT; nothing was changed"),
            });
        }
        let sandbox_id = ContainerId::new(&record.sandbox).map_err(input)?;
        let sandbox = self.load(&sandbox_id)?;
        let _pod = self.pod_lock(&sandbox_id, &sandbox)?;
        let (_, pid) = record.status();
        let cgroups = Cgroups::of_pid(pid)
            .map_err(|e| self.failed(id, format!("cannot find its cgroups: {e}")))?;
        let before = record.clone();
        record.share = record.share.updated(Some(&req.resources));
        self.save_member(id, &record)?;
        // The CT first, then the member's cgroup below it (see join_pod).
        let done = self
            .resize_pod(&sandbox_id, &sandbox, None)
            .and_then(|()| self.limit_member(id, &cgroups, &record.share));
        if let Err(e) = done {
            self.save_member(id, &before)?;
            let _ = self.resize_pod(&sandbox_id, &sandbox, None);
            let _ = self.limit_member(id, &cgroups, &before.share);
            return Err(e);
        }
        Ok(())
    }

    /// Writes the member's own limits into its cgroups.
    fn limit_member(&self, id: &ContainerId, cgroups: &Cgroups, share: &pod::Share) -> Result<()> {
        for write in share.cgroup_writes() {
            write
                .apply(cgroups)
                .map_err(|e| self.failed(id, format!("cannot write its cgroup limit: {e}")))?;
        }
        Ok(())
    }

    /// Removes the member's record, and shrinks its pod CT (if the pod is still there) to
    /// the containers left.
    fn forget_member(&self, id: &ContainerId, record: &MemberRecord) -> Result<()> {
        let path = self.member_path(id);
        let sandbox = ContainerId::new(&record.sandbox)
            .ok()
            .and_then(|s| Some((self.load(&s).ok()?, s)));
        let Some((sandbox, sandbox_id)) = sandbox else {
            return fs::remove_file(&path).map_err(io_error("cannot remove", &path));
        };
        let _pod = self.pod_lock(&sandbox_id, &sandbox)?;
        fs::remove_file(&path).map_err(io_error("cannot remove", &path))?;
        if let Err(e) = self.resize_pod(&sandbox_id, &sandbox, None) {
            // The member is gone; the CT keeps its size until the next resize.
            tracing::warn!(
                "container {id}: deleted, but its pod CT {} was not resized: {e}",
                sandbox.vmid
            );
        }
        Ok(())
    }

    /// Before the sandbox `id`'s CT stops: its members are stopped first (as containerd
    /// stops a pod's containers before its sandbox); their records stay, stopped, for the
    /// client's deletes.
    pub(super) fn stop_members_of(&self, id: &ContainerId) {
        for (member, record) in self.members() {
            if record.sandbox == id.as_str() {
                self.stop_member(&member, &record);
                member::remove_cgroups(&record.cgroups);
            }
        }
    }

    pub(super) fn member_states(&self) -> Vec<State> {
        self.members()
            .into_iter()
            .map(|(id, record)| {
                let (status, pid) = record.status();
                record.state(&id, status, pid)
            })
            .collect()
    }

    pub(super) fn exec_in_member(&self, req: &ExecRequest) -> Result<i32> {
        let id = req.id();
        self.refuse_exec_options(req)?;
        let given = req
            .process_file
            .as_deref()
            .map(exec::read_process_file)
            .transpose()?;
        let record = self.load_member(id)?;
        if record.status().0 != Status::Running {
            return Err(Error::Conflict {
                id: id.clone(),
                message: "container not running".into(),
            });
        }
        let files_dir = record.files_dir.clone();
        let mut process = self.exec_process(req, given, &files_dir)?;
        // The terminal is made before proxcage-init runs (`crate::member`), not by it.
        let terminal = process
            .terminal
            .then(|| process.user.as_ref().map_or((0, 0), |u| (u.uid, u.gid)));
        process.terminal = false;
        if terminal.is_some() && req.detach && req.console_socket.is_none() {
            return Err(Error::Conflict {
                id: id.clone(),
                message: "a detached exec with a terminal needs --console-socket".into(),
            });
        }
        let file = files_dir.join(format!(
            "exec-{}-{}.process",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        write_owned(&file, &process.encode().map_err(input)?, record.owner)?;
        let procs: Vec<PathBuf> = record
            .cgroups
            .iter()
            .map(|d| d.join("cgroup.procs"))
            .collect();
        let (waiter, master) =
            match member::exec(record.member, &files_dir, &file, &procs, terminal) {
                Ok(spawned) => spawned,
                Err(message) => {
                    let _ = fs::remove_file(&file);
                    return Err(self.failed(id, message));
                }
            };
        match (master, &req.console_socket) {
            (Some(master), Some(console)) => {
                tty::send_to_console(console, &master).map_err(|m| self.failed(id, m))?
            }
            (Some(master), None) => tty::relay(master),
            (None, _) => {}
        }
        if req.detach {
            if let Some(pid_file) = &req.pid_file {
                process::write_pid_file(pid_file, waiter)?;
            }
            return Ok(0);
        }
        let code = process::wait_child_relaying(waiter);
        let _ = fs::remove_file(&file);
        code
    }

    /// Why the pod of member `id` is gone, if it is: its sandbox has no record of this
    /// root any more, or the sandbox's CT is not among `on_node` (for `health`).
    pub(crate) fn pod_gone(
        &self,
        id: &ContainerId,
        on_node: &std::collections::BTreeSet<Vmid>,
    ) -> Option<String> {
        let record = self.load_member(id).ok()?;
        let sandbox = ContainerId::new(&record.sandbox).ok();
        match sandbox.and_then(|s| self.load(&s).ok()) {
            None => Some(format!(
                "its pod's sandbox {} has no record any more",
                record.sandbox
            )),
            Some(sandbox) if !on_node.contains(&sandbox.vmid) => Some(format!(
                "the CT {} of its pod's sandbox {} is gone",
                sandbox.vmid, record.sandbox
            )),
            Some(_) => None,
        }
    }

    /// The ids of this root's members.
    pub(crate) fn member_ids(&self) -> Vec<ContainerId> {
        self.members().into_iter().map(|(id, _)| id).collect()
    }

    /// What the backend holds of its members, for `health`: a member whose sandbox is
    /// still a container of this root is vouched for; one whose sandbox is gone is not.
    pub(crate) fn members_held(&self) -> Vec<proxcage_store::Held> {
        self.members()
            .into_iter()
            .map(|(id, record)| self.member_held(id, &record))
            .collect()
    }

    pub(crate) fn member_holds(&self, id: &ContainerId) -> Option<proxcage_store::Held> {
        let record = self.load_member(id).ok()?;
        Some(self.member_held(id.clone(), &record))
    }

    fn member_held(&self, id: ContainerId, record: &MemberRecord) -> proxcage_store::Held {
        let location = self.member_path(&id).display().to_string();
        let sandbox_there = ContainerId::new(&record.sandbox)
            .is_ok_and(|sandbox| self.record_path(&sandbox).exists());
        if !sandbox_there {
            return proxcage_store::Held {
                id,
                location,
                what: format!(
                    "a member of the pod {}, whose sandbox is gone",
                    record.sandbox
                ),
                record: None,
            };
        }
        let (status, _) = record.status();
        proxcage_store::Held {
            record: Some(proxcage_store::Record::restored(
                id.clone(),
                NAME,
                record.bundle.clone(),
                record.created.clone(),
            )),
            what: format!(
                "a member of the pod {} in CT {} ({status})",
                record.sandbox, record.vmid
            ),
            id,
            location,
        }
    }
}
