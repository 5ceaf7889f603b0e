//! The steps after create: `start` (startContainer hooks, the release through the exec
//! FIFO, poststart hooks), `kill`, `delete` (stop, destroy, template and files, poststop
//! hooks), `run` and `ps`.

use super::*;

impl Pct {
    pub(super) fn start_ct(&self, id: &ContainerId) -> Result<()> {
        let mut record = self.load(id)?;
        let (status, init) = self.ct_status(id, &record)?;
        if status != Status::Created || init <= 0 {
            return Err(Error::Conflict {
                id: id.clone(),
                message: format!("cannot start a container that is {status}"),
            });
        }
        let run = RunDir::new(&self.files_dir_of(id, &record));
        let created = record.state(id, Status::Created, Self::shown_pid(&record, init));
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
        // Recorded before the release: a process that runs while its record says
        // `created` would be started a second time by the next `start`, which then waits
        // for an init that is no longer reading the exec FIFO.
        record.started = true;
        self.save(id, &record)?;
        if let Err(message) =
            monitor::release(&run.exec_fifo(), INIT_TIMEOUT, || monitor::gone(init))
        {
            record.started = false;
            if let Err(e) = self.save(id, &record) {
                tracing::warn!("container {id}: cannot record that start failed: {e}");
            }
            return Err(self.failed(id, message));
        }
        // A failed poststart hook is logged; the container runs on (runtime-spec).
        let running = record.state(id, Status::Running, created.pid);
        hooks::run_each_on_host(id, "poststart", &record.hooks.poststart, &running);
        Ok(())
    }

    /// A new network keeper for the running sandbox `id` whose keeper is gone (the repair
    /// of health's `pod-network-keeper-gone`); returns its pid.
    pub(crate) fn replace_keeper(&self, id: &ContainerId) -> Result<i32> {
        let mut record = self.load(id)?;
        self.proven(id, &record)?;
        let conflict = |message: String| Error::Conflict {
            id: id.clone(),
            message,
        };
        let Some(path) = record.sandbox_netns.clone() else {
            return Err(conflict("it is not a pod sandbox".into()));
        };
        if let Some(keeper) = record.keeper {
            if !sandbox::wait_keeper(keeper, Duration::ZERO) {
                return Err(conflict(format!("its network keeper {keeper} still runs")));
            }
        }
        let Some(init) = self.tools.init_pid(record.vmid).map_err(Error::from)? else {
            return Err(conflict(format!("its CT {} is not running", record.vmid)));
        };
        let keeper =
            sandbox::replace_keeper(&path, record.vmid, init, record.monitor).map_err(input)?;
        record.keeper = Some(keeper);
        self.save(id, &record)?;
        Ok(keeper)
    }

    pub(super) fn kill_ct(&self, req: KillRequest<'_>) -> Result<()> {
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

    /// Stops and destroys the CT, then forgets the container. The record is marked
    /// `destroying` before `pct destroy`, and removed before the template and files go:
    /// an interruption leaves either a CT that is still the container's, or a record
    /// that says its VMID may be free (which only a delete acts on, to finish). A VMID
    /// that holds another CT by now is left alone.
    pub(super) fn delete_ct(&self, req: DeleteRequest<'_>) -> Result<()> {
        let id = req.id;
        let mut record = match self.load(id) {
            Err(Error::CorruptRecord { .. }) => return self.delete_unreadable(id, req.force),
            loaded => loaded?,
        };
        let proof = self.prove(id, record.vmid)?;
        self.stop_members_of(id);
        if proof == Proof::Ours {
            self.stop_for_delete(id, &record, req.force)?;
        }
        if !record.destroying {
            record.destroying = true;
            self.save(id, &record)?;
        }
        // The client's CNI DEL, after the delete, must find the sandbox's interfaces back
        // in its namespace.
        if let Some(keeper) = record.keeper {
            if !sandbox::wait_keeper(keeper, Duration::from_secs(30)) {
                tracing::warn!(
                    "container {id}: its network keeper {keeper} did not finish in 30 s"
                );
            }
        }
        // Execs entering the CT finish entering it; later ones find the record gone.
        let destroying = attach::destroying(&self.root, record.vmid, id)?;
        match &proof {
            Proof::Ours => self.destroy_ct(record.vmid)?,
            Proof::Destroyed => {
                self.tools.unlock(record.vmid).map_err(Error::from)?;
                self.destroy_ct(record.vmid)?;
            }
            Proof::Gone => {}
            Proof::Other(what) => tracing::warn!(
                "container {id}: its CT {} is gone and VMID {} now holds {what}: left alone",
                record.vmid,
                record.vmid
            ),
        }
        fs::remove_file(self.record_path(id))
            .map_err(io_error("cannot remove", &self.record_path(id)))?;
        drop(destroying);
        self.forget_template(id, &self.token(), &record.template);
        let _ = staging::remove_files_dir(&self.files_dir_of(id, &record));
        // A failed poststop hook is logged; the delete stands (runtime-spec).
        let stopped = record.state(id, Status::Stopped, 0);
        hooks::run_each_on_host(id, "poststop", &record.hooks.poststop, &stopped);
        Ok(())
    }

    /// Stops the container's CT for its delete: a running container only with `force`
    /// (or when an earlier delete got past that question already).
    fn stop_for_delete(&self, id: &ContainerId, record: &CtRecord, force: bool) -> Result<()> {
        match self.status_of(id, record) {
            Ok((Status::Running, _)) if !force && !record.destroying => Err(Error::Conflict {
                id: id.clone(),
                message: "cannot delete a running container: stop it first, or use --force".into(),
            }),
            Ok((Status::Running | Status::Created, _)) => match self.tools.stop(record.vmid) {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.pct(), Some(PctError::NotRunning { .. })) => Ok(()),
                Err(e) => Err(e.into()),
            },
            // Stopped, or gone meanwhile.
            Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Destroys CT `vmid`, gone already or not. A CT whose container has stopped may still
    /// be winding down, which pct calls running: it is stopped first.
    pub(super) fn destroy_ct(&self, vmid: Vmid) -> Result<()> {
        let gone = |e: &crate::CallError| matches!(e.pct(), Some(PctError::NoSuchCt { .. }));
        match self.tools.destroy(vmid) {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) if matches!(e.pct(), Some(PctError::Running { .. })) => {
                match self.tools.stop(vmid) {
                    Ok(()) => {}
                    Err(e) if matches!(e.pct(), Some(PctError::NotRunning { .. })) => {}
                    Err(e) => return Err(e.into()),
                }
                match self.tools.destroy(vmid) {
                    Err(e) if !gone(&e) => Err(e.into()),
                    _ => Ok(()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the reference of container `id` (of the root with `token`) to its
    /// template, and the template unless another container of any root, or a container
    /// of this root from before references, uses it. A template that cannot be released
    /// now stays for `health` (template-unreferenced) to find.
    pub(super) fn forget_template(&self, id: &ContainerId, token: &str, template: &str) {
        let templates = Templates::new(&self.template_dir);
        if let Err(e) =
            templates.release(template, token, id, || self.template_in_use(template, id))
        {
            tracing::warn!("container {id}: template {template} left: {e}");
        }
    }

    /// create and start; then, unless detached, wait for the monitor (this process's
    /// child) as a shim would, passing on the signals this process gets, and delete the
    /// container unless `--keep`.
    pub(super) fn run_ct(&self, req: &RunRequest) -> Result<i32> {
        let id = req.create.id();
        let terminal = req
            .create
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
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
        let monitor = if self.is_member(id) {
            Some(self.load_member(id)?.waiter)
        } else {
            self.load(id)?.monitor
        };
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

    pub(super) fn ps_ct(&self, id: &ContainerId) -> Result<Vec<i32>> {
        let record = self.load(id)?;
        match self.ct_status(id, &record)? {
            (Status::Running, pid) if pid > 0 => {
                let mut pids =
                    process::pids_in_pid_namespace_of(pid).map_err(|message| Error::Conflict {
                        id: id.clone(),
                        message,
                    })?;
                // `state`'s pid, the monitor, stands for the container in the caller's
                // process tree: listed with the processes of the CT's pid namespace.
                let shown = Self::shown_pid(&record, pid);
                if shown != pid {
                    pids.push(shown);
                    pids.sort_unstable();
                }
                Ok(pids)
            }
            _ => Ok(Vec::new()),
        }
    }
}
