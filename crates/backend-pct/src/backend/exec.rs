//! `exec`: a process in a running CT through `pct exec`, started by proxcage-init from a
//! process file, with the caller's stdio or a terminal made inside the CT.

use super::*;

/// An exec's process file in the CT's run directory, and the `pct exec` that runs it.
struct Prepared {
    file: PathBuf,
    cmd: std::process::Command,
    /// The socket the process sends its terminal master to, with `terminal`.
    terminal: Option<MasterSocket>,
}

impl Pct {
    pub(super) fn exec_in_ct(&self, req: &ExecRequest) -> Result<i32> {
        let id = req.id();
        self.refuse_exec_options(req)?;
        let given = req
            .process_file
            .as_deref()
            .map(read_process_file)
            .transpose()?;
        let (record, entering) = self.enter(id)?;
        let prepared = self.prepare_exec(req, given, &record)?;
        match prepared.terminal {
            None => self.exec_plain(req, &record, prepared.file, prepared.cmd, entering),
            Some(socket) => self.exec_terminal(req, prepared.file, prepared.cmd, socket, entering),
        }
    }

    /// Refuses what an exec cannot do on pct.
    pub(super) fn refuse_exec_options(&self, req: &ExecRequest) -> Result<()> {
        let unsupported = [
            (req.preserve_fds > 0, "exec --preserve-fds"),
            (!req.caps.is_empty(), "exec --cap"),
            (req.apparmor.is_some(), "exec --apparmor"),
            (req.process_label.is_some(), "exec --process-label"),
            (req.cgroup.is_some(), "exec --cgroup"),
        ];
        match unsupported.iter().find(|(set, _)| *set) {
            Some((_, what)) => Err(self.unsupported(req.id(), what)),
            None => Ok(()),
        }
    }

    /// Writes the process file (and, for a terminal, listens on the socket its master
    /// comes back on) and builds the `pct exec` command.
    fn prepare_exec(
        &self,
        req: &ExecRequest,
        given: Option<Process>,
        record: &CtRecord,
    ) -> Result<Prepared> {
        let id = req.id();
        let owner = record.owner.unwrap_or((0, 0));
        let files_dir = self.files_dir_of(id, record);
        let process = self.exec_process(req, given, &files_dir)?;
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
        Ok(Prepared {
            file,
            cmd: self.tools.exec_command(record.vmid, &argv),
            terminal,
        })
    }

    /// The process with the caller's stdio. The CT is entered once the process has opened
    /// its process file there: the attach lock goes then.
    fn exec_plain(
        &self,
        req: &ExecRequest,
        record: &CtRecord,
        file: PathBuf,
        mut cmd: std::process::Command,
        entering: attach::Held,
    ) -> Result<i32> {
        let id = req.id();
        let opened = attach::Opened::watch(&file);
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
        let status = process::run_inherited_plain_then(&mut cmd, None, |pid| entered(pid.as_raw()));
        let _ = fs::remove_file(&file);
        Ok(process::exit_code(status?))
    }

    /// The process with a terminal made inside the CT: its master goes to the console
    /// socket, or is relayed to this process's terminal.
    fn exec_terminal(
        &self,
        req: &ExecRequest,
        file: PathBuf,
        mut cmd: std::process::Command,
        socket: MasterSocket,
        entering: attach::Held,
    ) -> Result<i32> {
        let id = req.id();
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

    /// What an exec runs: `--process` as given, or the container's own process with the
    /// arguments, `--env` and `--cwd` of the command line (as runc does).
    pub(super) fn exec_process(
        &self,
        req: &ExecRequest,
        given: Option<Process>,
        files_dir: &Path,
    ) -> Result<ProcessFile> {
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
        let mut process = match given {
            Some(p) => process_as_given(&p, req.tty),
            None => process_from_args(req, own)?,
        };
        if let Some(user) = &mut process.user {
            user.drop_bounding = drop_bounding;
        }
        process.capabilities = capabilities;
        // `pct exec` starts the process as root without groups: nothing to switch unless
        // the user differs or the init must drop what it kept to switch.
        process.user = process.user.filter(|u| *u != User::default());
        Ok(process)
    }
}

/// The `--process` file: read with a bound and only if it is a regular file (a FIFO or a
/// device would hang or never end), before the exec holds anything.
pub(super) fn read_process_file(path: &Path) -> Result<Process> {
    let bytes = proxcage_oci::read_untrusted(path, PROCESS_FILE_LIMIT).map_err(input)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::io(
            "cannot parse",
            path,
            io::Error::new(io::ErrorKind::InvalidData, e),
        )
    })
}

/// A process.json is at most what a config.json may be.
const PROCESS_FILE_LIMIT: u64 = proxcage_oci::CONFIG_SIZE_LIMIT;

fn process_as_given(p: &Process, tty: bool) -> ProcessFile {
    ProcessFile {
        args: p.args().clone().unwrap_or_default(),
        env: p.env().clone().unwrap_or_default(),
        cwd: p.cwd().to_string_lossy().into_owned(),
        umask: None,
        no_new_privileges: p.no_new_privileges() == Some(true),
        monitored: false,
        terminal: p.terminal() == Some(true) || tty,
        user: Some(User {
            uid: p.user().uid(),
            gid: p.user().gid(),
            additional_gids: p.user().additional_gids().clone().unwrap_or_default(),
            drop_bounding: Vec::new(),
        }),
        capabilities: None,
    }
}

/// The container's own process with exec's arguments, `--env`, `--cwd`, `--user` and
/// `--additional-gids`.
fn process_from_args(req: &ExecRequest, own: ProcessFile) -> Result<ProcessFile> {
    let mut env = own.env;
    for var in &req.env {
        let name = var.split('=').next().unwrap_or(var);
        env.retain(|e| e.split('=').next() != Some(name));
        env.push(var.clone());
    }
    let (uid, gid) = match req.user.as_deref() {
        None => own.user.as_ref().map_or((0, 0), |u| (u.uid, u.gid)),
        Some(user) => parse_user(user).ok_or_else(|| Error::Conflict {
            id: req.id().clone(),
            message: format!("exec --user {user:?}: expected UID[:GID]"),
        })?,
    };
    // runc's rule: without --user, the container's own user, groups included.
    let additional_gids = match (&req.user, &own.user) {
        (None, Some(own)) if req.additional_gids.is_empty() => own.additional_gids.clone(),
        _ => req.additional_gids.clone(),
    };
    Ok(ProcessFile {
        args: req.args.clone(),
        env,
        cwd: req.cwd.clone().unwrap_or(own.cwd),
        umask: None,
        no_new_privileges: own.no_new_privileges || req.no_new_privs,
        monitored: false,
        terminal: req.tty,
        user: Some(User {
            uid,
            gid,
            additional_gids,
            drop_bounding: Vec::new(),
        }),
        capabilities: None,
    })
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
