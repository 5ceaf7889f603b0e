//! The crun backend against a stand-in crun that records its argv: how the settings
//! shape crun's command line, and what the backend does itself when crun runs without
//! cgroups (finds and signals the container's processes by its pid namespace, refuses
//! pause and resume with what to configure instead).

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use proxcage_backend_crun::{crun, CgroupManager, Crun, CrunSettings};
use proxcage_core::{ContainerId, KillRequest, Runtime, Signal};
use proxcage_delegate::CallerFlags;
use proxcage_test_support::install_script;

/// Records each call's argv in `calls` (one arg a line, `---` after each call); `state`
/// prints the file `state`, `--version` the file `version`; `start` sleeps as many
/// seconds as the file `start-sleeps` says, if there is one; `features` fails, as crun
/// 1.8.1 has no such command.
const FAKE: &str = r#"#!/bin/sh
[ -n "$FAKE_PROBE" ] && exit 0
d=$(dirname "$0")
printf '%s\n' "$@" >> "$d/calls"
echo --- >> "$d/calls"
log=
while [ $# -gt 0 ]; do
    case "$1" in
        --log) log=$2; shift 2 ;;
        --root|--log-format) shift 2 ;;
        --version) cat "$d/version"; exit 0 ;;
        -*) shift ;;
        *) break ;;
    esac
done
case "$1" in
    state) cat "$d/state" ;;
    start) [ -f "$d/start-sleeps" ] && exec sleep "$(cat "$d/start-sleeps")" ;;
    features) echo '{"level":"error","msg":"unknown command features","time":"t"}' >> "$log"; exit 1 ;;
esac
exit 0
"#;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        install_script(&dir.path().join("crun"), FAKE);
        Fake { dir }
    }

    fn backend(&self, cgroup_manager: Option<CgroupManager>, flags: &CallerFlags) -> Crun {
        let settings = CrunSettings {
            binary: Some(self.dir.path().join("crun")),
            cgroup_manager,
            ..Default::default()
        };
        crun(&settings, self.dir.path().join("root"), flags).unwrap()
    }

    fn set(&self, name: &str, text: &str) {
        fs::write(self.dir.path().join(name), text).unwrap();
    }

    /// The state crun reports for container `c`, with its init at `pid`.
    fn set_state(&self, pid: i32) {
        self.set(
            "state",
            &format!(
                r#"{{"ociVersion":"1.0.0","id":"c","pid":{pid},"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"t","owner":""}}"#
            ),
        );
    }

    /// Each call's argv after the `--root R --log L --log-format json` every call starts with.
    fn calls(&self) -> Vec<Vec<String>> {
        let text = fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
        text.split_terminator("---\n")
            .filter(|call| *call != "--version\n")
            .map(|call| call.lines().skip(6).map(str::to_string).collect())
            .collect()
    }
}

fn id() -> ContainerId {
    ContainerId::new("c").unwrap()
}

#[test]
fn a_configured_cgroup_manager_replaces_the_callers_systemd_cgroup() {
    let flags = CallerFlags {
        systemd_cgroup: true,
        debug: true,
        ..Default::default()
    };
    for (manager, expected) in [
        (Some(CgroupManager::Systemd), "--cgroup-manager=systemd"),
        (Some(CgroupManager::Cgroupfs), "--cgroup-manager=cgroupfs"),
        (Some(CgroupManager::Disabled), "--cgroup-manager=disabled"),
        (None, "--systemd-cgroup"),
    ] {
        let fake = Fake::new();
        fake.backend(manager, &flags).start(&id()).unwrap();
        let calls = fake.calls();
        let argv = calls.last().unwrap();
        let mut want = vec![expected, "--debug", "start", "c"];
        if manager.is_none() {
            want = vec!["--debug", expected, "start", "c"];
        }
        assert_eq!(argv, &want, "{manager:?}");
    }
}

#[test]
fn without_cgroups_pause_and_resume_say_what_to_configure() {
    let fake = Fake::new();
    let backend = fake.backend(Some(CgroupManager::Disabled), &CallerFlags::default());
    for (what, err) in [
        ("pause", backend.pause(&id()).unwrap_err()),
        ("resume", backend.resume(&id()).unwrap_err()),
    ] {
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("container c: {what} needs the container's cgroup"))
                && text.contains("cgroup_manager = \"disabled\"")
                && text.contains("[backends.crun] cgroup_manager"),
            "{text}"
        );
    }
    assert!(
        fake.calls().is_empty(),
        "crun was called: {:?}",
        fake.calls()
    );

    // With cgroups, crun does it.
    let fake = Fake::new();
    let backend = fake.backend(Some(CgroupManager::Cgroupfs), &CallerFlags::default());
    backend.pause(&id()).unwrap();
    backend.resume(&id()).unwrap();
    assert_eq!(
        fake.calls(),
        [
            vec!["--cgroup-manager=cgroupfs", "pause", "c"],
            vec!["--cgroup-manager=cgroupfs", "resume", "c"],
        ]
    );
}

#[test]
fn features_fall_back_to_what_crun_version_says() {
    let fake = Fake::new();
    fake.set(
        "version",
        "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n",
    );
    let features = fake
        .backend(None, &CallerFlags::default())
        .features()
        .unwrap();
    assert_eq!(features["ociVersionMin"], "1.0.0");
    assert_eq!(features["ociVersionMax"], "1.0.0");
    let hooks = features["hooks"].as_array().unwrap();
    assert!(hooks.iter().any(|h| h == "createRuntime"), "{features}");
}

/// `unshare --pid --fork sleep 60`, and the host pid of the sleep (pid 1 of its namespace).
// The caller waits for the child it gets.
#[allow(clippy::zombie_processes)]
fn process_in_own_pid_namespace() -> (Child, i32) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it makes a pid namespace); run it as root, e.g. `sudo scripts/test.sh`"
    );
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "sleep", "60"])
        .spawn()
        .expect("unshare is not installed: apt-get install -y util-linux");
    let children = PathBuf::from(format!("/proc/{0}/task/{0}/children", child.id()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(&children).unwrap_or_default();
        if let Some(pid) = text.split_whitespace().next() {
            return (child, pid.parse().unwrap());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unshare started no child");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn without_cgroups_ps_and_kill_all_use_the_containers_pid_namespace() {
    let (mut unshare, init) = process_in_own_pid_namespace();
    let fake = Fake::new();
    let backend = fake.backend(Some(CgroupManager::Disabled), &CallerFlags::default());
    fake.set_state(init);
    assert_eq!(backend.ps(&id()).unwrap(), [init]);
    backend
        .kill(KillRequest {
            id: &id(),
            signal: Signal::KILL,
            all: true,
        })
        .unwrap();
    let status = unshare.wait().unwrap();
    assert!(!status.success(), "unshare: {status}");
    // crun was only asked for the state: the signals were proxcage's own.
    assert!(
        fake.calls().iter().all(|argv| argv[1] == "state"),
        "{:?}",
        fake.calls()
    );

    // A stopped container (pid 0) has no processes.
    fake.set_state(0);
    assert!(backend.ps(&id()).unwrap().is_empty());
    // One in the host's pid namespace cannot be told apart from the host.
    fake.set_state(std::process::id() as i32);
    let err = backend.ps(&id()).unwrap_err();
    assert!(
        err.to_string()
            .contains("shares the host's pid namespace and has no cgroup"),
        "{err}"
    );
}

#[test]
fn with_cgroups_kill_all_goes_to_crun() {
    let fake = Fake::new();
    let backend = fake.backend(Some(CgroupManager::Cgroupfs), &CallerFlags::default());
    backend
        .kill(KillRequest {
            id: &id(),
            signal: Signal::TERM,
            all: true,
        })
        .unwrap();
    assert_eq!(
        fake.calls(),
        [vec![
            "--cgroup-manager=cgroupfs",
            "kill",
            "--all",
            "c",
            "15"
        ]]
    );
}

/// crun's start waits until the container's process opens exec.fifo, and one that died
/// first (killed, perhaps not yet reaped) never will. The backend gives up on crun when
/// that process is a zombie or gone, and says why; a live one is waited for.
#[test]
fn a_start_waiting_on_a_dead_process_gives_up_on_crun() {
    let fake = Fake::new();
    let backend = fake.backend(Some(CgroupManager::Disabled), &CallerFlags::default());
    fake.set("start-sleeps", "600");
    // A zombie: a child of this test that exited and is not reaped yet.
    let mut child = Command::new("true").spawn().unwrap();
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&stat).unwrap().contains(") Z ") {
        assert!(Instant::now() < deadline, "`true` did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    fake.set_state(child.id() as i32);
    let err = backend.start(&id()).unwrap_err();
    assert!(
        err.to_string()
            .contains("container c: cannot start it: the container process is already dead"),
        "{err}"
    );
    child.wait().unwrap();
    // Reaped, or stopped as crun reports it (pid 0): the same.
    fake.set_state(child.id() as i32);
    let err = backend.start(&id()).unwrap_err();
    assert!(err.to_string().contains("already dead"), "{err}");
    fake.set_state(0);
    let err = backend.start(&id()).unwrap_err();
    assert!(err.to_string().contains("already dead"), "{err}");
    // No crun start outlived its give-up: the fake's sleep is crun's own process.
    let left = Command::new("pgrep")
        .args(["-f", "^sleep 600$"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "{:?}", left);

    // A live process: a slow start is a slow start.
    fake.set("start-sleeps", "0.5");
    fake.set_state(std::process::id() as i32);
    backend.start(&id()).unwrap();
}
