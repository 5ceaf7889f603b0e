//! proxcage-delegate: a [`Runtime`] that hands each request to an OCI runtime binary
//! speaking runc's command line. The runc and crun backends are this, configured.
//!
//! Requests that carry the container's stdio (`create`, `run`, `exec`) run the binary with
//! the caller's stdin, stdout, stderr and inherited fds, so pipes, `--preserve-fds`,
//! `LISTEN_FDS` and the console socket reach the container exactly as if the caller had
//! run the binary itself. The other requests capture its output. Either way the binary
//! logs to a private in-memory file, so its error message is known precisely, even when
//! its stderr belongs to the container.
//!
//! ```no_run
//! use proxcage_core::{ContainerId, Runtime};
//! use proxcage_delegate::Delegate;
//!
//! let runc = Delegate::new("runc", "/usr/sbin/runc", "/run/proxcage/backends/runc");
//! let state = runc.state(&ContainerId::new("web-1")?)?;
//! println!("{}", state.status);
//! # Ok::<(), proxcage_core::Error>(())
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod health;
mod resources;

use proxcage_core::{
    CheckpointRequest, ContainerId, CreateRequest, DeleteRequest, Error, ErrorKind, Event,
    EventsRequest, ExecRequest, Flow, KillRequest, RestoreRequest, Result, RunRequest, Runtime,
    State, UpdateRequest,
};
use proxcage_process::{self as process, Output};

/// How long a request that should finish on its own may take before the binary is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs in the forked child right before exec: for setup the binary needs in its own
/// process, such as a private mount namespace. Only async-signal-safe calls are allowed.
pub type PreExec = fn() -> io::Result<()>;

/// The global flags of the proxcage invocation that a delegated binary gets too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerFlags {
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// `--rootless true|false|auto`, passed on as given.
    pub rootless: Option<String>,
    pub debug: bool,
}

impl CallerFlags {
    /// The flags in runc's spelling, which crun shares.
    pub fn args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        if self.debug {
            args.push("--debug".into());
        }
        if self.systemd_cgroup {
            args.push("--systemd-cgroup".into());
        }
        if let Some(value) = &self.rootless {
            args.push(format!("--rootless={value}").into());
        }
        args
    }
}

/// The oldest version of the binary `proxcage health` accepts without a warning, and
/// what the warning tells the operator to do.
#[derive(Clone, Debug)]
struct Oldest {
    version: (u32, u32, u32),
    /// `None`: upgrade the Debian package named as the backend.
    upgrade: Option<String>,
}

/// An OCI runtime binary with runc's command line.
#[derive(Clone)]
pub struct Delegate {
    name: String,
    binary: PathBuf,
    root: PathBuf,
    global_args: Vec<OsString>,
    timeout: Duration,
    pre_exec: Option<PreExec>,
    oldest: Oldest,
    logs_warnings_as_errors: bool,
}

impl fmt::Debug for Delegate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delegate")
            .field("name", &self.name)
            .field("binary", &self.binary)
            .field("root", &self.root)
            .field("global_args", &self.global_args)
            .field("timeout", &self.timeout)
            .field("pre_exec", &self.pre_exec.is_some())
            .field("oldest", &self.oldest)
            .field("logs_warnings_as_errors", &self.logs_warnings_as_errors)
            .finish()
    }
}

impl Delegate {
    /// `binary` should be a located, absolute path (see [`process::find_program`]); `root`
    /// is passed as `--root`, so the binary keeps its state apart from any other user's.
    pub fn new(
        name: impl Into<String>,
        binary: impl Into<PathBuf>,
        root: impl Into<PathBuf>,
    ) -> Self {
        Delegate {
            name: name.into(),
            binary: binary.into(),
            root: root.into(),
            global_args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            pre_exec: None,
            // The oldest runc and crun proxcage is tested with.
            oldest: Oldest {
                version: (1, 0, 0),
                upgrade: None,
            },
            logs_warnings_as_errors: false,
        }
    }

    /// For a binary that writes its warnings to the log as `"level":"error"` lines too
    /// (ocijail): a run that exits 0 succeeded, whatever the log holds. Without this, an
    /// error line in the log is a failure even with exit code 0, as the code of `run` and
    /// `exec` is the container process's, not the binary's.
    pub fn logs_warnings_as_errors(mut self) -> Self {
        self.logs_warnings_as_errors = true;
        self
    }

    /// The oldest `version` of the binary `proxcage health` accepts without a warning
    /// (default 1.0.0, for runc and crun), and what its warning says to do (default:
    /// upgrade the Debian package named as the backend).
    pub fn oldest_version(mut self, version: (u32, u32, u32), upgrade: impl Into<String>) -> Self {
        self.oldest = Oldest {
            version,
            upgrade: Some(upgrade.into()),
        };
        self
    }

    /// A global flag given before every subcommand (`--systemd-cgroup`,
    /// `--cgroup-manager=disabled`).
    pub fn global_arg(mut self, arg: impl Into<OsString>) -> Self {
        self.global_args.push(arg.into());
        self
    }

    pub fn global_args(mut self, args: impl IntoIterator<Item = OsString>) -> Self {
        self.global_args.extend(args);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn pre_exec(mut self, hook: PreExec) -> Self {
        self.pre_exec = Some(hook);
        self
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The binary's `--version` output.
    pub fn version(&self) -> Result<String> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--version");
        let out = process::run_captured(&mut cmd, self.timeout)?;
        self.check(&cmd, &out, None)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a subcommand with captured output and returns its stdout; fails with the
    /// binary's own message when it fails.
    pub fn captured<I, S>(&self, args: I) -> Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.captured_with(args, None)
    }

    /// [`Delegate::captured`] for a subcommand that can wait on something that will never
    /// happen: `give_up` is asked every `every` while it runs, and an error from it kills
    /// the binary and is returned in place of its result.
    pub fn captured_watched<I, S>(
        &self,
        args: I,
        every: Duration,
        give_up: &mut dyn FnMut() -> Option<Error>,
    ) -> Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.captured_with(args, Some((every, give_up)))
    }

    fn captured_with<I, S>(
        &self,
        args: I,
        watch: Option<(Duration, &mut dyn FnMut() -> Option<Error>)>,
    ) -> Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let log = BinaryLog::new(&self.root)?;
        let mut cmd = self.command(&log);
        cmd.args(args);
        let out = match watch {
            None => process::run_captured(&mut cmd, self.timeout)?,
            Some((every, give_up)) => {
                process::run_captured_watched(&mut cmd, self.timeout, every, give_up)?
            }
        };
        self.check(&cmd, &out, Some(&log))?;
        Ok(out.stdout)
    }

    /// Runs a subcommand with the caller's stdio. `Ok(code)` when the binary did its work
    /// (for `run` and `exec`, `code` is the container process's exit code); an error when
    /// the binary itself reported one.
    fn inherited(&self, args: Vec<OsString>, timeout: Option<Duration>) -> Result<i32> {
        self.inherited_status(args, timeout).map(|(code, _)| code)
    }

    /// [`Delegate::inherited`], with how the binary ended for messages.
    fn inherited_status(
        &self,
        args: Vec<OsString>,
        timeout: Option<Duration>,
    ) -> Result<(i32, String)> {
        let log = BinaryLog::new(&self.root)?;
        let mut cmd = self.command(&log);
        cmd.args(args);
        let status = if self.pre_exec.is_some() {
            process::run_inherited(&mut cmd, timeout)?
        } else {
            process::run_inherited_plain(&mut cmd, timeout)?
        };
        let code = process::exit_code(status);
        match log.last_error() {
            // Its warnings, not an error: a binary that failed does not exit 0.
            Some(_) if code == 0 && self.logs_warnings_as_errors => {
                Ok((code, process::describe_status(status)))
            }
            Some(message) => {
                Err(self.failure(&cmd, code, process::describe_status(status), message))
            }
            None => Ok((code, process::describe_status(status))),
        }
    }

    fn command(&self, log: &BinaryLog) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(log.path())
            .arg("--log-format")
            .arg("json")
            .args(&self.global_args);
        if let Some(hook) = self.pre_exec {
            // SAFETY: PreExec's contract is async-signal-safety.
            unsafe {
                cmd.pre_exec(hook);
            }
        }
        cmd
    }

    fn check(&self, cmd: &Command, out: &Output, log: Option<&BinaryLog>) -> Result<()> {
        if out.status.success() {
            return Ok(());
        }
        let message = log
            .and_then(BinaryLog::last_error)
            .or_else(|| last_line(&out.stderr))
            .unwrap_or_else(|| "it printed no error message".to_string());
        Err(self.failure(
            cmd,
            process::exit_code(out.status),
            process::describe_status(out.status),
            message,
        ))
    }

    fn failure(&self, cmd: &Command, code: i32, status: String, message: String) -> Error {
        Error::Backend {
            backend: self.name.clone(),
            command: process::describe(cmd),
            status,
            code,
            kind: kind_of(&message),
            message,
            source: None,
        }
    }

    /// runc and crun keep each container in `<root>/<id>/`. When a request about `id`
    /// failed and that directory is gone, the container does not exist, whatever words
    /// the binary chose (crun's are "error opening file .../status").
    pub fn about<T>(&self, id: &ContainerId, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::Backend { .. }) if !self.root.join(id.as_str()).exists() => {
                Err(Error::NotFound { id: id.clone() })
            }
            other => other,
        }
    }

    /// Parses a state document and makes `rootfs` absolute (crun echoes `root.path` as
    /// written in config.json, often relative to the bundle).
    fn normalize(mut state: State) -> State {
        if state.rootfs.is_relative() && !state.rootfs.as_os_str().is_empty() {
            state.rootfs = state.bundle.join(&state.rootfs);
        }
        if state.oci_version.is_empty() {
            state.oci_version = proxcage_core::OCI_VERSION.to_string();
        }
        state
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::Backend {
            backend: self.name.clone(),
            command: format!("{} {what}", self.binary.display()),
            status: "exit status 0".into(),
            code: 1,
            kind: ErrorKind::Other,
            message: format!(
                "unreadable output ({e}): {}",
                String::from_utf8_lossy(bytes)
            ),
            source: Some(Box::new(e)),
        })
    }
}

fn last_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

fn id_arg(id: &ContainerId) -> OsString {
    OsString::from(id.as_str())
}

fn push_path(args: &mut Vec<OsString>, flag: &str, value: &Option<PathBuf>) {
    if let Some(v) = value {
        args.push(flag.into());
        args.push(v.into());
    }
}

fn create_args(req: &CreateRequest, args: &mut Vec<OsString>) {
    args.push("--bundle".into());
    args.push(req.bundle.clone().into());
    push_path(args, "--pid-file", &req.pid_file);
    push_path(args, "--console-socket", &req.console_socket);
    push_path(args, "--pidfd-socket", &req.pidfd_socket);
    if req.preserve_fds > 0 {
        args.push(format!("--preserve-fds={}", req.preserve_fds).into());
    }
    if req.no_pivot {
        args.push("--no-pivot".into());
    }
    if req.no_new_keyring {
        args.push("--no-new-keyring".into());
    }
}

impl Runtime for Delegate {
    fn name(&self) -> &str {
        &self.name
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        let mut args = vec![OsString::from("create")];
        create_args(req, &mut args);
        args.push(id_arg(req.id()));
        match self.inherited_status(args, Some(self.timeout))? {
            (0, _) => Ok(()),
            (code, status) => Err(Error::Backend {
                backend: self.name.clone(),
                command: format!("{} create {}", self.binary.display(), req.id()),
                status,
                code,
                kind: ErrorKind::Other,
                message: "it failed without an error message".into(),
                source: None,
            }),
        }
    }

    fn start(&self, id: &ContainerId) -> Result<()> {
        self.about(id, self.captured(["start", id.as_str()]).map(drop))
    }

    fn state(&self, id: &ContainerId) -> Result<State> {
        let out = self.about(id, self.captured(["state", id.as_str()]))?;
        self.parse::<State>("state", &out).map(Self::normalize)
    }

    fn kill(&self, req: KillRequest<'_>) -> Result<()> {
        let signal = req.signal.number().to_string();
        let mut args = vec!["kill"];
        if req.all {
            args.push("--all");
        }
        args.extend([req.id.as_str(), signal.as_str()]);
        self.about(req.id, self.captured(args).map(drop))
            .map_err(not_running_in_runc_words)
    }

    fn delete(&self, req: DeleteRequest<'_>) -> Result<()> {
        let mut args = vec!["delete"];
        if req.force {
            args.push("--force");
        }
        args.push(req.id.as_str());
        self.about(req.id, self.captured(args).map(drop))
            .map_err(not_stopped_says_what_to_do)
    }

    fn run(&self, req: &RunRequest) -> Result<i32> {
        let mut args = vec![OsString::from("run")];
        create_args(&req.create, &mut args);
        for (set, flag) in [
            (req.detach, "--detach"),
            (req.keep, "--keep"),
            (req.no_subreaper, "--no-subreaper"),
        ] {
            if set {
                args.push(flag.into());
            }
        }
        args.push(id_arg(req.create.id()));
        // A detached run returns once the container started; a foreground one lasts as
        // long as the container.
        let timeout = req.detach.then_some(self.timeout);
        let wants_terminal = req
            .create
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        self.inherited(args, timeout)
            .map_err(|e| match wants_terminal {
                true => no_terminal_says_what_to_do(e),
                false => e,
            })
    }

    fn list(&self) -> Result<Vec<State>> {
        let out = self.captured(["list", "--format", "json"])?;
        let states: Option<Vec<State>> = self.parse("list", &out)?;
        Ok(states
            .unwrap_or_default()
            .into_iter()
            .map(Self::normalize)
            .collect())
    }

    fn exec(&self, req: &ExecRequest) -> Result<i32> {
        let mut args: Vec<OsString> = vec!["exec".into()];
        push_path(&mut args, "--process", &req.process_file);
        push_path(&mut args, "--console-socket", &req.console_socket);
        push_path(&mut args, "--pidfd-socket", &req.pidfd_socket);
        push_path(&mut args, "--pid-file", &req.pid_file);
        let mut flag = |name: &str, value: &str| {
            args.push(name.into());
            args.push(value.into());
        };
        if let Some(cwd) = &req.cwd {
            flag("--cwd", cwd);
        }
        for env in &req.env {
            flag("--env", env);
        }
        if let Some(user) = &req.user {
            flag("--user", user);
        }
        for gid in &req.additional_gids {
            flag("--additional-gids", &gid.to_string());
        }
        for cap in &req.caps {
            flag("--cap", cap);
        }
        if let Some(profile) = &req.apparmor {
            flag("--apparmor", profile);
        }
        if let Some(label) = &req.process_label {
            flag("--process-label", label);
        }
        if let Some(cgroup) = &req.cgroup {
            flag("--cgroup", cgroup);
        }
        for (set, name) in [
            (req.tty, "--tty"),
            (req.detach, "--detach"),
            (req.no_new_privs, "--no-new-privs"),
            (req.ignore_paused, "--ignore-paused"),
        ] {
            if set {
                args.push(name.into());
            }
        }
        if req.preserve_fds > 0 {
            args.push(format!("--preserve-fds={}", req.preserve_fds).into());
        }
        args.push(id_arg(req.id()));
        if req.process_file.is_none() {
            args.extend(req.args.iter().map(OsString::from));
        }
        let timeout = req.detach.then_some(self.timeout);
        let code = self.about(req.id(), self.inherited(args, timeout))?;
        // crun reports an exec into a container deleted meanwhile on its stderr only
        // ("error opening file .../status"), not in the log: a failure with the
        // container's directory gone is the container not existing, whatever it said.
        if code != 0 && !self.root.join(req.id().as_str()).exists() {
            return Err(Error::NotFound {
                id: req.id().clone(),
            });
        }
        Ok(code)
    }

    fn ps(&self, id: &ContainerId) -> Result<Vec<i32>> {
        let out = self.about(id, self.captured(["ps", "--format", "json", id.as_str()]))?;
        let pids: Option<Vec<i32>> = self.parse("ps", &out)?;
        Ok(pids.unwrap_or_default())
    }

    fn pause(&self, id: &ContainerId) -> Result<()> {
        self.about(id, self.captured(["pause", id.as_str()]).map(drop))
    }

    fn resume(&self, id: &ContainerId) -> Result<()> {
        self.about(id, self.captured(["resume", id.as_str()]).map(drop))
    }

    fn features(&self) -> Result<serde_json::Value> {
        let out = self.captured(["features"])?;
        self.parse("features", &out)
    }

    fn update(&self, req: &UpdateRequest) -> Result<()> {
        self.update_resources(req)
    }

    fn events(
        &self,
        req: &EventsRequest,
        receiver: &mut dyn FnMut(Event) -> Result<Flow>,
    ) -> Result<()> {
        self.binary_events(req, receiver)
    }

    fn checkpoint(&self, req: &CheckpointRequest) -> Result<()> {
        self.binary_checkpoint(req)
    }

    fn restore(&self, req: &RestoreRequest) -> Result<i32> {
        self.binary_restore(req)
    }
}

impl proxcage_store::Backend for Delegate {
    fn held(&self) -> Result<Vec<proxcage_store::Held>> {
        health::held(self)
    }

    fn holds(&self, id: &ContainerId) -> Result<Option<proxcage_store::Held>> {
        Ok(health::holds(self, id))
    }

    fn health(
        &self,
        store: &proxcage_store::StateStore,
        held: &[proxcage_store::Held],
    ) -> Result<Vec<proxcage_core::Finding>> {
        health::check(self, store, held)
    }

    fn left_by(&self, record: &proxcage_store::Record) -> Result<proxcage_store::Leftovers> {
        Ok(health::left_by(self, record))
    }
}

/// A file handed to the binary by its path: the log it writes (JSON lines), the
/// resources it reads. On Linux an in-memory file, reached through
/// `/proc/<our pid>/fd/N`: our descriptor stays close-on-exec, so nothing of it leaks into
/// the container. Elsewhere (FreeBSD has no such path) a file of our own in the backend's
/// root, removed when done.
struct ScratchFile {
    file: File,
    path: PathBuf,
    remove: bool,
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl ScratchFile {
    #[cfg(not(target_os = "linux"))]
    fn new(dir: &Path, name: &std::ffi::CStr) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = name.to_string_lossy();
        let path = dir.join(format!(".{name}.{}.{n}", std::process::id()));
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                    .open(&path)
            })
            .map(|file| ScratchFile {
                file,
                path: path.clone(),
                remove: true,
            })
            .map_err(|e| Error::io("cannot create", &path, e))
    }

    #[cfg(target_os = "linux")]
    fn new(_dir: &Path, name: &std::ffi::CStr) -> Result<Self> {
        use std::os::fd::AsRawFd;
        let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| Error::io("cannot create an in-memory file", "memfd", e.into()))?;
        let file = File::from(fd);
        let path = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            file.as_raw_fd()
        ));
        Ok(ScratchFile {
            file,
            path,
            remove: false,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// The file the binary logs to.
struct BinaryLog(ScratchFile);

impl BinaryLog {
    fn new(dir: &Path) -> Result<Self> {
        ScratchFile::new(dir, c"proxcage-backend-log").map(BinaryLog)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// The message of the last `"level":"error"` line (runc and crun both write them).
    fn last_error(&self) -> Option<String> {
        let mut file = &self.0.file;
        let mut text = String::new();
        file.rewind().ok()?;
        file.read_to_string(&mut text).ok()?;
        text.lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|entry| entry["level"] == "error")
            .and_then(|entry| entry["msg"].as_str().map(str::to_string))
    }
}

/// A failure of the binary told in runc's `words`, which containerd's shim and podman
/// look for: they lead, the binary's own words follow in parentheses. Other errors, and
/// messages that hold the words already, stay as they are.
pub fn in_runc_words(mut e: Error, words: &str) -> Error {
    if let Error::Backend { message, .. } = &mut e {
        if !message.contains(words) {
            *message = format!("{words} ({message})");
        }
    }
    e
}

/// A kill of a stopped container: runc says "container not running", crun "kill
/// container: No such process".
fn not_running_in_runc_words(e: Error) -> Error {
    match e.kind() {
        ErrorKind::NotRunning => in_runc_words(e, "container not running"),
        _ => e,
    }
}

/// A failure of the binary whose message holds one of `words`, followed by `what_to_do`.
pub fn with_hint(mut e: Error, words: &[&str], what_to_do: &str) -> Error {
    if let Error::Backend { message, .. } = &mut e {
        if words.iter().any(|w| message.contains(w)) {
            message.push_str(": ");
            message.push_str(what_to_do);
        }
    }
    e
}

/// A delete of a running container, refused (runc: "cannot delete container X that is
/// not stopped: running"; crun: "the container `X` is not in `created` or `stopped`
/// state"): the message says what to do.
fn not_stopped_says_what_to_do(e: Error) -> Error {
    with_hint(
        e,
        &["not stopped", "`stopped` state"],
        "stop it first ('kill'), or use 'delete --force'",
    )
}

/// A `run` of a spec that asks for a terminal, from a process that has none (runc: "open
/// /dev/tty: no such device or address", crun: "tcgetattr: Inappropriate ioctl for
/// device"): the message says what to do.
fn no_terminal_says_what_to_do(e: Error) -> Error {
    with_hint(
        e,
        &["/dev/tty", "tcgetattr"],
        "config.json asks for a terminal (process.terminal is true) and this proxcage has none: run it from a terminal, pass --console-socket, or set process.terminal to false",
    )
}

/// The class of a failure of runc or crun, from its own words: the two share them for the
/// classes callers match on ("does not exist", "container not running"), and crun says
/// "No such process" for a kill of a stopped container.
fn kind_of(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    if m.contains("does not exist") || m.contains("no such container") {
        ErrorKind::NotFound
    } else if m.contains("not running")
        || m.contains("process already finished")
        || m.contains("no such process")
    {
        ErrorKind::NotRunning
    } else if m.contains("already exists") {
        ErrorKind::AlreadyExists
    } else {
        ErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn runc_and_crun_words_give_the_class() {
        assert_eq!(
            kind_of("container \"x\" does not exist"),
            ErrorKind::NotFound
        );
        assert_eq!(kind_of("container not running"), ErrorKind::NotRunning);
        assert_eq!(
            kind_of("kill container: No such process"),
            ErrorKind::NotRunning
        );
        assert_eq!(kind_of("container with id exists: x"), ErrorKind::Other);
    }

    #[test]
    fn the_log_yields_the_last_error_message() {
        let log = BinaryLog::new(Path::new("/nonexistent")).unwrap();
        let mut f = File::options().append(true).open(log.path()).unwrap();
        writeln!(f, r#"{{"level":"warning","msg":"w","time":"t"}}"#).unwrap();
        writeln!(f, r#"{{"level":"error","msg":"first","time":"t"}}"#).unwrap();
        writeln!(
            f,
            r#"{{"msg":"container not running","level":"error","time":"t"}}"#
        )
        .unwrap();
        assert_eq!(log.last_error().as_deref(), Some("container not running"));
    }

    #[test]
    fn a_failing_binary_is_reported_with_its_message() {
        // A stand-in binary that writes a runc-style error line to the --log file.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-runc");
        std::fs::write(
            &fake,
            "#!/bin/sh\nwhile [ \"$1\" != --log ]; do shift; done\nprintf '{\"level\":\"error\",\"msg\":\"container does not exist\"}\\n' >> \"$2\"\necho 'container does not exist' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let root = dir.path().join("root");
        let d = Delegate::new("fake", &fake, &root);
        let id = ContainerId::new("x").unwrap();
        // The binary keeps x in <root>/x: its own words are passed on.
        std::fs::create_dir_all(root.join("x")).unwrap();
        let err = d.state(&id).unwrap_err();
        assert_eq!(err.kind(), proxcage_core::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(
            text.starts_with("fake: ")
                && text.contains("state x")
                && text.ends_with("container does not exist"),
            "{text}"
        );
        // Without <root>/x the container does not exist, whatever the binary said.
        std::fs::remove_dir(root.join("x")).unwrap();
        let err = d
            .kill(KillRequest {
                id: &id,
                signal: proxcage_core::Signal::KILL,
                all: false,
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "container x does not exist");
    }

    #[test]
    fn relative_rootfs_is_made_absolute() {
        let state: State = serde_json::from_str(
            r#"{"ociVersion":"1.0.0","id":"c","pid":1,"status":"created","bundle":"/b","rootfs":"rootfs","created":"t","owner":""}"#,
        )
        .unwrap();
        assert_eq!(Delegate::normalize(state).rootfs, Path::new("/b/rootfs"));
    }
}
