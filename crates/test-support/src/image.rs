//! What the containerd and podman tests share: the busybox OCI image they import, built
//! once per test process with umoci; commands run with a timeout; and a private mount
//! namespace that keeps the engines' fixed host paths (`/run/containerd/s`, `/run/runc`,
//! `/run/containers`, `/var/lib/containers/cache`, `/var/tmp`) out of the host, plus the
//! sweep that finds and kills whatever an engine left running.

use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proxcage_process::{describe, exit_code, run_captured};

/// The name both engines know the image by after importing [`busybox_image`]'s archive.
pub const IMAGE_REF: &str = "localhost/proxcage-e2e/busybox:latest";

/// How long any one engine command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The busybox image: an OCI image layout and the same layout as an oci-archive tar.
#[derive(Debug)]
pub struct BusyboxImage {
    dir: PathBuf,
    pub layout: PathBuf,
    pub archive: PathBuf,
}

static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
static PAUSE: OnceLock<BusyboxImage> = OnceLock::new();

/// The name of [`pause_image`] after importing its archive.
pub const PAUSE_REF: &str = "localhost/proxcage-e2e/pause:latest";

/// The busybox image (support's busybox rootfs, `sh` as its command, tagged [`IMAGE_REF`]),
/// built on first use and removed when the test process exits.
pub fn busybox_image() -> &'static BusyboxImage {
    IMAGE.get_or_init(|| build_busybox_image(IMAGE_REF, &["sh"]))
}

/// A pod sandbox ("pause") image made here, as no registry can be reached: the busybox
/// image with `sleep infinity` as its command, tagged [`PAUSE_REF`]; removed at exit.
pub fn pause_image() -> &'static BusyboxImage {
    PAUSE.get_or_init(|| build_busybox_image(PAUSE_REF, &["sleep", "infinity"]))
}

/// An image of support's busybox rootfs with `cmd` as its command, tagged `tag`.
fn build_busybox_image(tag: &str, cmd: &[&str]) -> BusyboxImage {
    let umoci = crate::require_tool("umoci", "umoci");
    let tar = crate::require_tool("tar", "tar");
    // Removed by the TempDir if building fails, by `remove_images` at exit if not.
    let tmp = tempfile::Builder::new()
        .prefix("proxcage-e2e-image-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();

    let rootfs = dir.join("rootfs");
    crate::busybox_rootfs(&rootfs);
    let layout = dir.join("oci");
    let build = format!("{}:build", layout.display());
    let umoci_cmd = || Command::new(&umoci);
    run(
        umoci_cmd().arg("init").arg("--layout").arg(&layout),
        COMMAND_TIMEOUT,
    )
    .ok();
    run(
        umoci_cmd().args(["new", "--image", &build]),
        COMMAND_TIMEOUT,
    )
    .ok();
    run(
        umoci_cmd()
            .args(["insert", "--image", &build])
            .arg(&rootfs)
            .arg("/"),
        COMMAND_TIMEOUT,
    )
    .ok();
    let mut config = umoci_cmd();
    config.args(["config", "--image", &build, "--tag", tag]);
    for arg in cmd {
        config.args(["--config.cmd", arg]);
    }
    run(config.args(["--config.env", "PATH=/bin"]), COMMAND_TIMEOUT).ok();
    run(umoci_cmd().args(["rm", "--image", &build]), COMMAND_TIMEOUT).ok();
    run(
        umoci_cmd().arg("gc").arg("--layout").arg(&layout),
        COMMAND_TIMEOUT,
    )
    .ok();
    fs::remove_dir_all(&rootfs).unwrap();
    let archive = dir.join("busybox-oci.tar");
    run(
        Command::new(tar)
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
        COMMAND_TIMEOUT,
    )
    .ok();
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: registering a plain `extern "C" fn` that only touches statics.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(remove_images);
    });
    let _ = tmp.keep();
    BusyboxImage {
        dir,
        layout,
        archive,
    }
}

extern "C" fn remove_images() {
    for image in [IMAGE.get(), PAUSE.get()].into_iter().flatten() {
        let _ = fs::remove_dir_all(&image.dir);
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Ran {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Fails the test unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed: {self}");
        self
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with stdin closed and its output captured. A command that cannot start or
/// runs longer than `timeout` (it is killed) fails the test.
#[track_caller]
pub fn run(cmd: &mut Command, timeout: Duration) -> Ran {
    let command = describe(cmd);
    let out = run_captured(cmd, timeout).unwrap_or_else(|e| panic!("{e}"));
    Ran {
        command,
        code: exit_code(out.status),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `done` every 50 ms until it holds or `timeout` passes; says which.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A private mount namespace, held open by a `sleep` child, in which `/run` and `/var/tmp`
/// are empty tmpfs and `/var/lib` an overlay whose writes land in the sandbox directory. An engine
/// started in it keeps its fixed paths to itself, and every mount it makes (rootfs,
/// shm) disappears with the namespace. The host's other directories (`/tmp` included)
/// are shared, so paths under the test's temp dir mean the same inside and out.
#[derive(Debug)]
pub struct MountSandbox {
    holder: Child,
    nsenter: PathBuf,
    mnt_ns: PathBuf,
}

impl MountSandbox {
    /// Sets the namespace up; `dir` (empty, on a filesystem overlayfs accepts as upper
    /// layer) receives the writes to `/var/lib`.
    pub fn new(dir: &Path) -> Self {
        MountSandbox::with_etc(dir, &[])
    }

    /// As [`MountSandbox::new`]; with `etc_files` (paths relative to `/etc`, contents),
    /// `/etc` is an overlay too, with those files in it: a runtime's fixed config path
    /// (`/etc/proxcage/config.toml`) then means this test's config, for every process an
    /// engine starts, whatever environment it passes.
    pub fn with_etc(dir: &Path, etc_files: &[(&str, &str)]) -> Self {
        let etc_overlay = (!etc_files.is_empty()).then(|| {
            let (upper, work) = (dir.join("etc-upper"), dir.join("etc-work"));
            for (path, text) in etc_files {
                let file = upper.join(path);
                fs::create_dir_all(file.parent().unwrap()).unwrap();
                fs::write(&file, text).unwrap();
            }
            fs::create_dir_all(&work).unwrap();
            CString::new(format!(
                "lowerdir=/etc,upperdir={},workdir={}",
                upper.display(),
                work.display()
            ))
            .unwrap()
        });
        let nsenter = crate::require_tool("nsenter", "util-linux");
        let sleep = crate::require_tool("sleep", "coreutils");
        let (upper, work) = (dir.join("var-lib-upper"), dir.join("var-lib-work"));
        fs::create_dir_all(&upper).unwrap();
        fs::create_dir_all(&work).unwrap();
        let overlay = format!(
            "lowerdir=/var/lib,upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        let overlay = CString::new(overlay).unwrap();
        let mut cmd = Command::new(sleep);
        cmd.arg("infinity");
        // SAFETY: the closure only makes raw syscalls on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::last_os_error())
                    }
                };
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/run".as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=755".as_ptr().cast(),
                ))?;
                check(libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/var/tmp".as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=1777".as_ptr().cast(),
                ))?;
                check(libc::mount(
                    c"overlay".as_ptr(),
                    c"/var/lib".as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    overlay.as_ptr().cast(),
                ))?;
                if let Some(etc) = &etc_overlay {
                    check(libc::mount(
                        c"overlay".as_ptr(),
                        c"/etc".as_ptr(),
                        c"overlay".as_ptr(),
                        0,
                        etc.as_ptr().cast(),
                    ))?;
                }
                // The namespace must not outlive a test process that dies without unwinding.
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))
            });
        }
        let holder = cmd
            .spawn()
            .unwrap_or_else(|e| {
                panic!("setting up a private mount namespace (tmpfs on /run and /var/tmp, overlay on /var/lib) failed: {e}")
            });
        let mnt_ns = PathBuf::from(format!("/proc/{}/ns/mnt", holder.id()));
        MountSandbox {
            holder,
            nsenter,
            mnt_ns,
        }
    }

    /// `program` run inside the namespace. Entering a mount namespace moves the working
    /// directory to its root, so give the command absolute paths.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(&self.nsenter);
        cmd.arg(format!("--mount={}", self.mnt_ns.display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Kills every process still in the namespace (but its holder) or in the cgroup
    /// subtree `cgroup` (e.g. `/ns`; where the engine put its containers) on any
    /// hierarchy after a short grace period, waits until they are gone, removes that
    /// cgroup subtree, and returns one line (pid and command line) per process it had to
    /// kill.
    pub fn sweep(&self, cgroup: &str) -> Vec<String> {
        let mut found = Vec::new();
        let ours = fs::read_link(&self.mnt_ns).ok();
        if ours.is_none() {
            found.push(format!(
                "the sandbox holder {} died early",
                self.holder.id()
            ));
        }
        let holder = self.holder.id();
        let strays = || {
            live_pids()
                .filter(|&pid| pid != holder)
                .filter(|&pid| {
                    ours.is_some() && fs::read_link(format!("/proc/{pid}/ns/mnt")).ok() == ours
                        || in_cgroup(pid, cgroup)
                })
                .collect::<Vec<_>>()
        };
        // Engines finish on their own a little after the last command returns (a shim
        // exits once its task is deleted, conmon once podman's cleanup has run).
        wait_until(Duration::from_secs(5), || strays().is_empty());
        let gone = wait_until(Duration::from_secs(10), || {
            let pids = strays();
            for &pid in &pids {
                let line = format!("{pid} {}", cmdline(pid));
                if !found.contains(&line) {
                    found.push(line);
                }
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            pids.is_empty()
        });
        if !gone {
            found.push(format!("still alive after SIGKILL: {:?}", strays()));
        }
        remove_cgroup_tree(cgroup);
        found
    }
}

impl Drop for MountSandbox {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Pids of processes that are not zombies.
fn live_pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // The state follows the last ')' of `pid (comm) S ...`.
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
                })
                == Some(false)
        })
}

fn in_cgroup(pid: u32, cgroup: &str) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .any(|path| {
            path == cgroup
                || path
                    .strip_prefix(cgroup)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Removes `cgroup` and everything below it on every mounted cgroup hierarchy.
fn remove_cgroup_tree(cgroup: &str) {
    assert!(
        cgroup.starts_with('/') && cgroup.len() > 1,
        "refusing to remove cgroup {cgroup:?}"
    );
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mountinfo.lines() {
        // `... mountpoint options [optional fields] - fstype source super-options`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !matches!(right.split(' ').next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        let Some(mountpoint) = left.split(' ').nth(4) else {
            continue;
        };
        let top = Path::new(mountpoint).join(&cgroup[1..]);
        if top.is_dir() {
            // A cgroup may still count a task that was just killed: retry briefly.
            wait_until(Duration::from_secs(5), || rmdir_tree(&top).is_ok());
        }
    }
}

fn rmdir_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            rmdir_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// What an engine left behind, one line each: the processes [`MountSandbox::sweep`] had
/// to kill (in `sandbox` or under `cgroup`) and the mounts still under `dir`.
pub fn leftovers(sandbox: Option<MountSandbox>, cgroup: &str, dir: &Path) -> Vec<String> {
    let mut problems: Vec<String> = sandbox
        .map(|s| s.sweep(cgroup))
        .unwrap_or_default()
        .into_iter()
        .map(|p| format!("left running: {p}"))
        .collect();
    problems.extend(
        mounts_under(dir)
            .into_iter()
            .map(|m| format!("left mounted: {m}")),
    );
    problems
}

/// Fails the test when something was left behind (`problems`, then `context`), or only
/// prints it when the test is failing already (a panic in a drop would abort).
pub fn report_leftovers(problems: &[String], context: &str) {
    if problems.is_empty() {
        return;
    }
    let report = problems.join("\n");
    if thread::panicking() {
        eprintln!("cleaning up after the failed test:\n{report}");
    } else {
        panic!("the test left things behind:\n{report}{context}");
    }
}

/// Mount points at or under `dir` in this (the host's) mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|mountpoint| Path::new(mountpoint).starts_with(dir))
        .map(str::to_owned)
        .collect()
}

/// Runs `cmd` with a new pseudo-terminal as its controlling terminal and stdio (what
/// script(1) does, without its shell command string); returns what it wrote to the terminal.
pub fn run_in_pty(cmd: &mut Command, timeout: Duration) -> Ran {
    let command = describe(cmd);
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .expect("open /dev/ptmx");
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: plain calls on an open ptmx fd; `name` is a writable buffer of the size passed.
    let slave_path = unsafe {
        assert_eq!(
            libc::grantpt(master.as_raw_fd()),
            0,
            "grantpt: {}",
            io::Error::last_os_error()
        );
        assert_eq!(
            libc::unlockpt(master.as_raw_fd()),
            0,
            "unlockpt: {}",
            io::Error::last_os_error()
        );
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0,
            "ptsname_r"
        );
        std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&slave_path)
        .unwrap();
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // SAFETY: setsid and ioctl are async-signal-safe; stdin is the terminal by now.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{command}: {e}"));
    // Close our copies of the terminal, so reading the master ends when the child is done.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());

    let (tx, rx) = mpsc::channel();
    let mut reader = master;
    thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // The master reads EIO once no process has the terminal open any more.
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(out);
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let out = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    Ran {
        command,
        code: exit_code(status),
        stdout: String::from_utf8_lossy(&out).replace(['\r', '\0'], ""),
        stderr: String::new(),
    }
}
