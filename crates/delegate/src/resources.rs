//! `update`, `events`, `checkpoint` and `restore` handed to the binary.
//!
//! The resources go to `update --resources FILE` as LinuxResources JSON, from an
//! in-memory file: runc and crun 1.8.1 both read a file (crun 1.8.1 has no `-` for
//! stdin), and the JSON carries every field the flags can (the flags are runc's, and
//! crun 1.8.1 lacks some).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use proxcage_core::{
    CheckpointRequest, Error, Event, EventsRequest, Flow, RestoreRequest, Result, UpdateRequest,
};
use proxcage_process as process;

use crate::{id_arg, push_path, Delegate, ScratchFile};

impl Delegate {
    pub(crate) fn update_resources(&self, req: &UpdateRequest) -> Result<()> {
        let json = serde_json::to_vec(&req.resources).map_err(|e| Error::Input(Box::new(e)))?;
        let file = ScratchFile::new(&self.root, c"proxcage-resources")?;
        (&file.file)
            .write_all(&json)
            .map_err(|e| Error::io("cannot write", file.path(), e))?;
        let args: Vec<OsString> = vec![
            "update".into(),
            "--resources".into(),
            file.path().into(),
            id_arg(&req.id),
        ];
        self.about(&req.id, self.captured(args).map(drop))?;
        // With --resources the binary ignores every flag: the RDT schemata go alone.
        let mut rdt: Vec<OsString> = vec!["update".into()];
        for (flag, value) in [
            ("--l3-cache-schema", &req.l3_cache_schema),
            ("--mem-bw-schema", &req.mem_bw_schema),
        ] {
            if let Some(value) = value {
                rdt.push(format!("{flag}={value}").into());
            }
        }
        if rdt.len() > 1 {
            rdt.push(id_arg(&req.id));
            self.about(&req.id, self.captured(rdt).map(drop))?;
        }
        Ok(())
    }

    /// `events --stats` once, or the stream of `events --interval`, each line handed to
    /// `receiver`; the binary is stopped when the receiver says so.
    pub(crate) fn binary_events(
        &self,
        req: &EventsRequest,
        receiver: &mut dyn FnMut(Event) -> Result<Flow>,
    ) -> Result<()> {
        if req.stats_only {
            let out = self.about(
                &req.id,
                self.captured(["events", "--stats", req.id.as_str()]),
            )?;
            let event: Event = self.parse("events --stats", &out)?;
            return receiver(event).map(drop);
        }
        let log = crate::BinaryLog::new(&self.root)?;
        let mut cmd = self.command(&log);
        cmd.arg("events")
            .arg(format!("--interval={}ms", req.interval.as_millis().max(1)))
            .arg(req.id.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            command: process::describe(&cmd),
            source,
        })?;
        let stdout = child.stdout.take();
        let mut outcome = Ok(());
        for line in stdout
            .map(BufReader::new)
            .into_iter()
            .flat_map(|r| r.lines())
        {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let event = match self.parse::<Event>("events", line.as_bytes()) {
                Ok(event) => event,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            };
            match receiver(event) {
                Ok(Flow::Continue) => {}
                other => {
                    outcome = other.map(drop);
                    break;
                }
            }
        }
        let _ = child.kill();
        let status = child.wait().map_err(|source| Error::Spawn {
            command: process::describe(&cmd),
            source,
        })?;
        outcome?;
        match log.last_error() {
            Some(message) if !status.success() => self.about(
                &req.id,
                Err(self.failure(
                    &cmd,
                    process::exit_code(status),
                    process::describe_status(status),
                    message,
                )),
            ),
            _ => Ok(()),
        }
    }

    pub(crate) fn binary_checkpoint(&self, req: &CheckpointRequest) -> Result<()> {
        let mut args: Vec<OsString> = vec!["checkpoint".into()];
        args.extend(req.criu_args.iter().map(OsString::from));
        args.push(id_arg(&req.id));
        self.about(&req.id, self.captured(args).map(drop))
    }

    /// With the caller's stdio, as `run`: the restored process's stdio is the caller's.
    pub(crate) fn binary_restore(&self, req: &RestoreRequest) -> Result<i32> {
        let mut args: Vec<OsString> = vec!["restore".into(), "--bundle".into()];
        args.push(req.bundle.clone().into());
        push_path(&mut args, "--pid-file", &req.pid_file);
        push_path(&mut args, "--console-socket", &req.console_socket);
        if req.detach {
            args.push("--detach".into());
        }
        args.extend(req.criu_args.iter().map(OsString::from));
        args.push(id_arg(&req.id));
        let timeout = req.detach.then_some(self.timeout);
        self.inherited(args, timeout)
    }
}
