//! `create`: everything is checked before anything is made; then the init and process
//! files, the template (packed once per rootfs content), a VMID and `pct create`, the raw
//! `lxc.*` keys, the monitor and `pct start`, the hooks and the record. Each step that
//! makes something arms a guard that undoes it if a later step fails; the guards undo in
//! the reverse order of the steps.

use super::*;

/// Undoes one step of a create when dropped, unless the create got through ([`Undo::keep`]).
pub(super) struct Undo<F: FnOnce()> {
    undo: Option<F>,
}

impl<F: FnOnce()> Undo<F> {
    pub(super) fn new(undo: F) -> Self {
        Undo { undo: Some(undo) }
    }

    pub(super) fn keep(mut self) {
        self.undo = None;
    }
}

impl<F: FnOnce()> Drop for Undo<F> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            undo();
        }
    }
}

/// What a bundle becomes, checked before anything is made.
struct Plan {
    bundle: Bundle,
    translation: proxcage_lxc_config::Translation,
    proxmox: proxcage_lxc_config::ProxmoxConfig,
    /// The host uid and gid of the CT's root.
    owner: (u32, u32),
    files_dir: PathBuf,
    network: Network,
    /// A sandbox's network namespace, open, with its path.
    sandbox: Option<(File, PathBuf)>,
    /// Bind sources the CT's root cannot reach, staged under `files_dir`.
    stages: Vec<staging::Stage>,
    /// `process.oomScoreAdj`, written from the host (see [`applied_from_the_host`]).
    oom_score_adj: Option<String>,
    /// This root's token, for the CT's description.
    root_token: String,
    /// A sandbox's own part of its pod CT's size, and the CT's size from it.
    pod: Option<(pod::Share, Vec<(String, String)>)>,
}

/// What Proxmox drops but the host can apply: `lxc.proc.oom_score_adj`
/// (`process.oomScoreAdj`) is taken out of `config` and returned, to be written into the
/// CT's init before `start`, so that the process it starts inherits it.
fn applied_from_the_host(config: &LxcConfig) -> (LxcConfig, Option<String>) {
    let oom = config.get("lxc.proc.oom_score_adj").map(str::to_string);
    let rest = config
        .entries()
        .iter()
        .filter(|e| e.key() != "lxc.proc.oom_score_adj")
        .cloned()
        .collect();
    (rest, oom)
}

/// Where a create's time went, for `--debug`.
#[derive(Default)]
struct Timing {
    packing: Duration,
    waiting: Duration,
    hooks: Duration,
}

impl Pct {
    pub(super) fn create_ct(&self, req: &CreateRequest) -> Result<()> {
        let id = req.id();
        if self.record_path(id).exists() || self.is_member(id) {
            return Err(Error::AlreadyExists { id: id.clone() });
        }
        if let Some(sandbox) = self.sandbox_of(&req.spec)? {
            return self.create_member(req, sandbox);
        }
        let started = Instant::now();
        self.tools.take_spent();
        let plan = self.plan(req)?;
        let mut timing = Timing::default();

        // Nothing is held across the steps: the template is this create's by its
        // reference (see `crate::templates`), and `pct create` claims the VMID, racing
        // other proxcage processes as it races other nodes (see `crate::alloc`).
        let files = self.write_files(&plan)?;
        let (template, template_undo) = self.template(&plan, id, &mut timing)?;
        let (vmid, ct) = self.make_ct(id, &plan, &template)?;
        let (monitor, booted) = self.boot(req, &plan, vmid, &mut timing)?;
        if let Some(pid_file) = &req.pid_file {
            process::write_pid_file(pid_file, monitor.pid)?;
        }
        let record = Self::new_record(&plan, vmid, &template, &monitor);
        let hooks_started = Instant::now();
        let state = record.state(id, Status::Creating, monitor.pid);
        let hooks = plan.translation.runtime_hooks();
        hooks::run_on_host("createRuntime", &hooks.create_runtime, &state)
            .and_then(|()| hooks::run_on_host("createContainer", &hooks.create_container, &state))
            .map_err(|message| self.failed(id, message))?;
        timing.hooks = hooks_started.elapsed();
        self.save(id, &record)?;
        booted.keep();
        ct.keep();
        template_undo.keep();
        files.keep();
        self.log_timing(id, started.elapsed(), &timing);
        Ok(())
    }

    /// Checks everything that can be checked before anything is made, on the spec the
    /// caller loaded (and routed by): config.json is not read again.
    fn plan(&self, req: &CreateRequest) -> Result<Plan> {
        let id = req.id();
        let mut spec = (*req.spec).clone();
        let network = network::plan(&mut spec).map_err(input)?;
        let sandbox = match &network {
            Network::Sandbox { path, field } => {
                Some((self.sandbox_netns(path, field)?, path.clone()))
            }
            _ => None,
        };
        let bundle = Bundle::from_spec(&req.bundle, spec).map_err(input)?;
        if bundle
            .rootfs()
            .canonicalize()
            .is_ok_and(|p| p == Path::new("/"))
        {
            return Err(input(HostRoot {
                path: bundle.rootfs().display().to_string(),
            }));
        }
        self.bind_sources.check(id, &bundle)?;
        let root_token = identity::root_token(&self.root)?;
        let files_dir = self.files_dir_for(&root_token, id);
        let translation = from_oci(
            bundle.spec(),
            &ResolvedPaths::from_bundle(&bundle, &files_dir).monitored(),
        )
        .map_err(input)?;
        let terminal = bundle.spec().process().as_ref().and_then(|p| p.terminal()) == Some(true);
        if terminal != req.console_socket.is_some() {
            return Err(input(TerminalMismatch { terminal }));
        }
        let (config, oom_score_adj) = applied_from_the_host(translation.config());
        let mut proxmox =
            split_for_proxmox(&without_proxmox_keys(&config), &self.policy).map_err(input)?;
        if network == Network::Own && self.net0.is_some() {
            // Proxmox's net0 is the CT's network: its own `lxc.net.0.*` keys, not the
            // translation's empty namespace.
            proxmox.raw = proxmox
                .raw
                .entries()
                .iter()
                .filter(|e| !e.key().starts_with("lxc.net."))
                .cloned()
                .collect();
        }
        let owner = root_owner(&proxmox.options, &proxmox.raw);
        crate::idmap::idmap_rw_binds(id, &mut proxmox, owner)?;
        let pod = match &sandbox {
            Some(_) => {
                let own = pod::Share::of_spec(bundle.spec());
                let size = pod::size(&own, &[], pod::Host::read()?);
                Some((own, size))
            }
            None => None,
        };
        let stages = staging::plan(
            &mut proxmox.raw,
            &files_dir,
            owner,
            &self.policy.rootfs_mount,
        );
        Ok(Plan {
            root_token,
            bundle,
            translation,
            proxmox,
            owner,
            files_dir,
            network,
            sandbox,
            stages,
            oom_score_adj,
            pod,
        })
    }

    /// The sandbox's network namespace, open; one that is already the network of
    /// another pct container of this root is that pod's, refused.
    fn sandbox_netns(&self, path: &Path, field: &str) -> Result<File> {
        let netns = sandbox::open(path, field).map_err(input)?;
        let this = sandbox::identity(path);
        for (owner, record) in self.records() {
            if let Some(theirs) = &record.sandbox_netns {
                if this.is_some() && sandbox::identity(theirs) == this {
                    return Err(input(sandbox::SandboxError::Taken {
                        field: field.into(),
                        path: path.into(),
                        owner: owner.to_string(),
                    }));
                }
            }
        }
        Ok(netns)
    }

    /// The init and the process file, bind-mounted into the CT.
    fn write_files(&self, plan: &Plan) -> Result<Undo<impl FnOnce()>> {
        let dir = plan.files_dir.clone();
        let undo = Undo::new(move || {
            let _ = staging::remove_files_dir(&dir);
        });
        plan.translation.prepare().map_err(io_error(
            "cannot write the container's files to",
            &plan.files_dir,
        ))?;
        staging::mount_all(&plan.stages, &plan.files_dir)
            .map_err(io_error("cannot stage a bind source in", &plan.files_dir))?;
        // The process file holds the environment: for the CT's root only.
        let process_file = plan.files_dir.join("process");
        let contents = fs::read(&process_file).map_err(io_error("cannot read", &process_file))?;
        write_owned(&process_file, &contents, plan.owner)?;
        Ok(undo)
    }

    /// The rootfs packed as a template, or the one of the same content already there,
    /// with this create's reference to it (removed, and the template with the last one,
    /// if the create fails).
    fn template(
        &self,
        plan: &Plan,
        id: &ContainerId,
        timing: &mut Timing,
    ) -> Result<(proxcage_oci::template::Template, Undo<impl FnOnce() + '_>)> {
        let packing = Instant::now();
        let templates = Templates::new(&self.template_dir);
        let template = templates.pack_and_refer(plan.bundle.rootfs(), &plan.root_token, id)?;
        timing.packing = packing.elapsed();
        let (name, token, id) = (template.file_name(), plan.root_token.clone(), id.clone());
        let undo = Undo::new(move || self.forget_template(&id, &token, &name));
        Ok((template, undo))
    }

    /// A VMID and `pct create`, then the raw `lxc.*` keys in the CT's `.conf`.
    fn make_ct(
        &self,
        id: &ContainerId,
        plan: &Plan,
        template: &proxcage_oci::template::Template,
    ) -> Result<(Vmid, Undo<impl FnOnce() + '_>)> {
        let volume = format!("{}:vztmpl/{}", self.template_storage, template.file_name());
        let options = self.ct_options(id, plan, &template.file_name());
        let vmid = allocate(
            self.range,
            |want| self.tools.next_id(want),
            |vmid| self.tools.create(vmid, &volume, &options),
        )
        .map_err(Error::from)?;
        let undo = Undo::new(move || {
            if let Err(e) = self.tools.destroy(vmid) {
                tracing::warn!("undoing the create: pct destroy {vmid}: {e}");
            }
        });
        self.write_raw_keys(vmid, &plan.proxmox.raw)?;
        Ok((vmid, undo))
    }

    /// `pct create`'s options: those of the translation, and proxcage's own.
    fn ct_options(&self, id: &ContainerId, plan: &Plan, template: &str) -> Vec<(String, String)> {
        let mut options: BTreeMap<String, String> = plan.proxmox.options.clone();
        // A pod's CT is sized for the whole pod (see `pod`), not for its sandbox alone,
        // and never gets Proxmox's default 512 MiB, which would cap unlimited containers.
        if let Some((_, size)) = &plan.pod {
            options.extend(size.iter().cloned());
        }
        options.insert("ostype".into(), "unmanaged".into());
        options
            .entry("unprivileged".into())
            .or_insert_with(|| "1".into());
        // runc's default spec (what `proxcage spec` writes) names every container "runc",
        // which is no name to find a CT by in Proxmox: such a CT is named after its id.
        if options.get("hostname").map(String::as_str) == Some(RUNC_DEFAULT_HOSTNAME) {
            options.remove("hostname");
        }
        options
            .entry("hostname".into())
            .or_insert_with(|| hostname_for(id));
        let mut rootfs = format!("{}:{}", self.rootfs_storage, self.rootfs_size_gib);
        if plan.proxmox.rootfs_readonly {
            rootfs.push_str(",ro=1");
        }
        options.insert("rootfs".into(), rootfs);
        options.insert("tags".into(), "proxcage".into());
        options.insert(
            "description".into(),
            identity::description(id, &plan.root_token, template),
        );
        if let (Some(net0), Network::Own) = (&self.net0, &plan.network) {
            options.insert("net0".into(), net0.clone());
        }
        options.into_iter().collect()
    }

    /// The monitor listens before the CT starts; the CT's init reaches it, takes the
    /// caller's stdio (or hands over its terminal) and blocks until `start`. The guard
    /// kills the monitor, then stops the CT.
    fn boot(
        &self,
        req: &CreateRequest,
        plan: &Plan,
        vmid: Vmid,
        timing: &mut Timing,
    ) -> Result<(Booted, Undo<impl FnOnce() + '_>)> {
        let id = req.id();
        let run = RunDir::new(&plan.files_dir);
        let hold = match plan.sandbox {
            Some(_) => Some(
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| self.failed(id, format!("cannot make the hold pipe: {e}")))?,
            ),
            None => None,
        };
        let mut monitor = monitor::spawn(&Launch {
            init: &plan.files_dir.join("init"),
            run: &run,
            owner: plan.owner,
            nfds: 3 + req.preserve_fds,
            console_socket: req.console_socket.as_deref(),
            hold: hold.as_ref().map(|(read, _)| read.as_fd()),
        })
        .map_err(|e| self.failed(id, format!("cannot start the monitor: {e}")))?;
        let pid = monitor.pid;
        let undo = Undo::new(move || {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            if let Err(e) = self.tools.stop(vmid) {
                tracing::warn!("undoing the create: pct stop {vmid}: {e}");
            }
        });
        self.tools.start(vmid).map_err(Error::from)?;
        let init = self.tools.init_pid(vmid).map_err(Error::from)?;
        let waiting = Instant::now();
        monitor
            .wait_ready(INIT_TIMEOUT, || init.is_none_or(monitor::gone))
            .map_err(|message| self.failed(id, message))?;
        timing.waiting = waiting.elapsed();
        if let (Some(adj), Some(init)) = (&plan.oom_score_adj, init) {
            let path = format!("/proc/{init}/oom_score_adj");
            fs::write(&path, adj).map_err(|e| {
                self.failed(
                    id,
                    format!("cannot set process.oomScoreAdj {adj} on the CT's init ({path}): {e}"),
                )
            })?;
        }
        let keeper = match (&plan.sandbox, hold, init) {
            (Some((netns, path)), Some((_, write)), Some(init)) => {
                Some(sandbox::join(netns, path, vmid, init, write).map_err(input)?)
            }
            _ => None,
        };
        Ok((Booted { pid, keeper }, undo))
    }

    fn new_record(
        plan: &Plan,
        vmid: Vmid,
        template: &proxcage_oci::template::Template,
        monitor: &Booted,
    ) -> CtRecord {
        let hooks = plan.translation.runtime_hooks();
        CtRecord {
            vmid,
            template: template.file_name(),
            started: false,
            bundle: plan.bundle.dir().to_path_buf(),
            rootfs: plan.bundle.rootfs().to_path_buf(),
            created: proxcage_store::now_rfc3339(),
            annotations: plan.bundle.annotations(),
            monitor: Some(monitor.pid),
            owner: Some(plan.owner),
            sandbox_netns: plan.sandbox.as_ref().map(|(_, path)| path.clone()),
            keeper: monitor.keeper,
            hooks: LaterHooks {
                start_container: hooks.start_container.clone(),
                poststart: hooks.poststart.clone(),
                poststop: hooks.poststop.clone(),
            },
            destroying: false,
            files_dir: Some(plan.files_dir.clone()),
            pod_share: plan.pod.as_ref().map(|(share, _)| share.clone()),
        }
    }

    fn log_timing(&self, id: &ContainerId, total: Duration, timing: &Timing) {
        let tools = self.tools.take_spent();
        let own = total.saturating_sub(tools + timing.packing + timing.waiting + timing.hooks);
        tracing::debug!(
            "container {id}: created in {} ms: pct, pvesh and lxc-info {} ms, packing {} ms, \
             the CT's init reaching its monitor {} ms, hooks {} ms, proxcage itself {} ms",
            total.as_millis(),
            tools.as_millis(),
            timing.packing.as_millis(),
            timing.waiting.as_millis(),
            timing.hooks.as_millis(),
            own.as_millis(),
        );
    }
}

/// The monitor `create` left in the caller's process tree (in the CT's namespaces but
/// the pid namespace), and a sandbox's network keeper.
struct Booted {
    pid: i32,
    keeper: Option<i32>,
}
