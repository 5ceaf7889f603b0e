//! The pct backend end to end: proxcage -> the pct stand-in (test code that follows
//! reference/pct.md and runs real LXC containers, daemonised) -> LXC.

use proxcage_test_support as support;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::image::{run, run_in_pty};
use support::pct::{proxcage_for, vmid_of, PctStandin};
use support::{busybox_bundle, edit_config, Proxcage};

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes this test process the subreaper of the monitors that `proxcage create` leaves,
/// as containerd's shim and conmon are, so a test can wait for one.
fn become_subreaper() {
    // SAFETY: prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(ret, 0, "PR_SET_CHILD_SUBREAPER");
}

/// A pct container made by `create`, with the stdio its process got from that command.
struct Created {
    out: PathBuf,
    err: PathBuf,
    /// The pid in `--pid-file` and in `state`: the monitor.
    monitor: i32,
}

impl Created {
    fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap()
    }

    /// Waits for the monitor (this process must be its subreaper) and returns its exit
    /// code, which is the container process's.
    fn wait(&self) -> i32 {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let pid = nix::unistd::Pid::from_raw(self.monitor);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid on the monitor") {
                WaitStatus::Exited(_, code) => return code,
                WaitStatus::Signaled(_, signal, _) => return 128 + signal as i32,
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "the monitor did not exit within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `proxcage create --pid-file` with stdin from `input` and stdout/stderr into files.
fn create(p: &Proxcage, bundle: &Path, id: &str, input: &str) -> Created {
    let base = p.dir.path().join(format!("ct-{id}"));
    let (stdin, out, err, pid_file) = (
        base.with_extension("stdin"),
        base.with_extension("stdout"),
        base.with_extension("stderr"),
        base.with_extension("pid"),
    );
    fs::write(&stdin, input).unwrap();
    let mut child = p
        .cmd()
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(id)
        .stdin(fs::File::open(&stdin).unwrap())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("proxcage create {id} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let created = Created {
        out,
        err,
        monitor: 0,
    };
    assert!(
        status.success(),
        "proxcage create {id}: {status}\n{}",
        created.stderr()
    );
    let pid = fs::read_to_string(&pid_file).unwrap();
    Created {
        monitor: pid
            .parse()
            .unwrap_or_else(|_| panic!("pid file holds {pid:?}")),
        ..created
    }
}

#[test]
fn a_busybox_bundle_becomes_a_running_ct_and_goes_away() {
    become_subreaper();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let script = "echo 'hello from pct' \"$0\"; echo err >&2; read line; echo \"read $line\"; \
                  trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.1; done";
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", script, "arg 0"]);
    let ct = create(&p, &bundle, "web-1", "line one\n");

    // created means created: the CT runs, its init waits before the process.
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "web-1"])).unwrap();
    assert_eq!(state["status"], "created");
    let vmid = vmid_of(&p, "web-1");
    let pid = state["pid"].as_i64().unwrap();
    assert_eq!(pid, i64::from(ct.monitor), "state and the pid file agree");
    let init = standin.lxc_pid(vmid).expect("the CT's init");
    // Not the pid namespace: the monitor, in the caller's process tree, is not in it.
    for ns in ["net", "ipc", "uts", "mnt", "user", "cgroup"] {
        let link = |pid: i64| fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(
            link(pid),
            link(init),
            "/proc/<state's pid>/ns/{ns} is the container's"
        );
    }
    let monitor_parent = fs::read_to_string(format!("/proc/{}/stat", ct.monitor)).unwrap();
    let ppid: u32 = monitor_parent
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ppid,
        std::process::id(),
        "the monitor is reparented to the subreaper"
    );
    assert_eq!(ct.stdout(), "", "nothing ran before start");

    // runc's default spec: a read-only root, and hostname "runc", which every such CT
    // would share in Proxmox: the CT is named after the container id instead.
    let conf = fs::read_to_string(standin.conf_path(vmid)).unwrap();
    assert!(conf.contains(",ro=1"), "{conf}");
    assert!(!conf.contains("hostname: runc"), "{conf}");
    for want in [
        "ostype: unmanaged",
        "unprivileged: 1",
        "tags: proxcage",
        "hostname: web-1",
        "lxc.init.cmd: /.proxcage/init",
    ] {
        assert!(conf.contains(want), "{want:?} missing from\n{conf}");
    }

    p.ok(&["start", "web-1"]);
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "web-1"])).unwrap();
    assert_eq!(state["status"], "running");
    assert_eq!(state["pid"].as_i64(), Some(pid));
    wait_until("the container's output", || {
        ct.stdout().ends_with("ready\n")
    });
    assert_eq!(
        ct.stdout(),
        "hello from pct arg 0\nread line one\nready\n",
        "the process has create's stdin and stdout"
    );
    assert_eq!(ct.stderr(), "err\n", "the process has create's stderr");
    let pids: Vec<i64> = serde_json::from_str(&p.ok(&["ps", "--format", "json", "web-1"])).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");

    let out = p.run(&["exec", "web-1", "sh", "-c", "echo inside; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "inside\n");
    // noNewPrivileges (runc's default) holds for the container's process: proxcage-init
    // sets it, since Proxmox drops lxc.no_new_privs.
    let out = p.run(&[
        "exec",
        "web-1",
        "sh",
        "-c",
        "grep NoNewPrivs /proc/[0-9]*/status | cut -f2 | sort -u",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");

    let listed: serde_json::Value =
        serde_json::from_str(&p.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(listed[0]["backend"], "pct");

    // The init passes SIGTERM on; the monitor exits with the process's status.
    p.ok(&["kill", "web-1", "TERM"]);
    assert_eq!(ct.wait(), 42);
    assert!(ct.stdout().ends_with("got TERM\n"), "{}", ct.stdout());
    wait_until("the CT to stop", || p.status("web-1") == "stopped");
    p.ok(&["delete", "web-1"]);
    assert!(!standin.conf_path(vmid).exists());
    standin.assert_nothing_left(&p);
}

/// The monitor's exit status for a process killed by a signal is 128 + signal, and a
/// signal sent to the monitor itself reaches the process.
#[test]
fn the_monitor_relays_signals_and_reports_a_killed_process() {
    become_subreaper();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let ct = create(&p, &bundle, "relay", "");
    p.ok(&["start", "relay"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ct.monitor),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    assert_eq!(ct.wait(), 128 + libc::SIGUSR1);
    wait_until("the CT to stop", || p.status("relay") == "stopped");
    p.ok(&["delete", "relay"]);

    // SIGKILL to the container's init leaves it no word: the monitor says 137.
    let ct = create(&p, &bundle, "killed", "");
    p.ok(&["start", "killed"]);
    p.ok(&["kill", "killed", "KILL"]);
    assert_eq!(ct.wait(), 137);
    p.ok(&["delete", "killed"]);

    // kill --all reaches the process (once: the init is left out, it would pass it on).
    let ct = create(&p, &bundle, "all", "");
    p.ok(&["start", "all"]);
    p.ok(&["kill", "--all", "all", "TERM"]);
    assert_eq!(ct.wait(), 128 + libc::SIGTERM);
    p.ok(&["delete", "all"]);
    standin.assert_nothing_left(&p);
}

/// Killing the monitor does not touch the container: it keeps running and every command
/// still works.
#[test]
fn a_killed_monitor_leaves_the_container_running() {
    become_subreaper();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "while :; do sleep 0.1; done"],
    );
    let ct = create(&p, &bundle, "orphan", "");
    p.ok(&["start", "orphan"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ct.monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(ct.wait(), 128 + libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.status("orphan"), "running");
    let out = p.run(&["exec", "orphan", "echo", "still here"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");
    p.ok(&["kill", "orphan", "KILL"]);
    wait_until("the CT to stop", || p.status("orphan") == "stopped");
    p.ok(&["delete", "orphan"]);
    standin.assert_nothing_left(&p);
}

/// `pct exec` enters whichever CT has the VMID when it gets there (pct's own start-up
/// takes a few hundred ms on Proxmox; the stand-in is made to take 3 s). A delete that
/// overtakes an exec waits for it, so the create after it, which gets the freed VMID,
/// never has another container's exec enter its CT: the exec fails because its own
/// container stopped.
#[test]
fn an_exec_overtaken_by_a_delete_does_not_enter_the_ct_that_gets_the_vmid() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let bundle = bundle.to_str().unwrap();
    p.ok(&["create", "--bundle", bundle, "old"]);
    p.ok(&["start", "old"]);
    let vmid = vmid_of(&p, "old");
    let exec = std::thread::scope(|s| {
        let exec = s.spawn(|| {
            let mut cmd = p.cmd();
            cmd.env("PCT_STANDIN_EXEC_DELAY_MS", "3000")
                .args(["exec", "old", "true"]);
            support::run_with_files(&mut cmd, &p.dir.path().join("exec"))
        });
        wait_until("pct exec to start", || pct_exec_running(vmid));
        p.ok(&["delete", "--force", "old"]);
        p.ok(&["create", "--bundle", bundle, "new"]);
        assert_eq!(
            vmid_of(&p, "new"),
            vmid,
            "the new container has the freed VMID"
        );
        p.ok(&["start", "new"]);
        exec.join().unwrap()
    });
    let err = String::from_utf8_lossy(&exec.stderr);
    assert!(
        !exec.status.success() && err.contains(&format!("container '{vmid}' not running")),
        "the exec of a container deleted under it: {} {err}",
        exec.status
    );
    assert!(!err.contains("process file"), "{err}");
    assert_eq!(p.status("new"), "running");
    p.ok(&["delete", "--force", "new"]);
    standin.assert_nothing_left(&p);
}

/// Whether a `pct exec <vmid>` process runs.
fn pct_exec_running(vmid: u32) -> bool {
    let want = format!("exec\0{vmid}\0");
    fs::read_dir("/proc").unwrap().flatten().any(|e| {
        fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.split('\0')
                .next()
                .is_some_and(|argv0| argv0.ends_with("/pct"))
                && c.contains(&want)
        })
    })
}

/// A created container that is never started goes with `delete` (no --force, as runc).
/// Once the monitor has reported the process's exit, the container is stopped for every
/// command: `state` says so and a `delete` without `--force` works at once, while the
/// CT may still be winding down (containerd deletes right after the exit).
#[test]
fn a_container_whose_process_exited_is_stopped_at_once() {
    become_subreaper();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", "exit 3"]);
    for round in 0..10 {
        let id = format!("exited-{round}");
        let ct = create(&p, &bundle, &id, "");
        p.ok(&["start", &id]);
        // The moment the monitor exits, as a shim sees it.
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(ct.monitor), None);
        assert!(
            matches!(status, Ok(nix::sys::wait::WaitStatus::Exited(_, 3))),
            "{status:?}"
        );
        let out = p.run(&["delete", &id]);
        assert!(
            out.status.success(),
            "round {round}: delete right after the exit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    standin.assert_nothing_left(&p);
}

/// A hostname of the spec's own (not runc's default) names the CT.
#[test]
fn the_specs_own_hostname_names_the_ct() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    edit_config(&bundle, |spec| spec["hostname"] = "db-primary".into());
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "named"]);
    let conf = fs::read_to_string(standin.conf_path(vmid_of(&p, "named"))).unwrap();
    assert!(conf.contains("hostname: db-primary\n"), "{conf}");
    p.ok(&["delete", "named"]);
    standin.assert_nothing_left(&p);
}

#[test]
fn a_created_container_is_deleted_without_force() {
    become_subreaper();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", "echo never"]);
    let ct = create(&p, &bundle, "unstarted", "");
    assert_eq!(p.status("unstarted"), "created");
    p.ok(&["delete", "unstarted"]);
    assert_eq!(ct.wait(), 137, "the monitor ends with the CT");
    assert_eq!(ct.stdout(), "");
    standin.assert_nothing_left(&p);
}

/// `start` records that it started the process before it lets it run: when the record
/// cannot be written (a read-only state root), the process stays held and the container
/// stays `created`, and a later `start` runs it once.
#[test]
fn a_start_that_cannot_record_itself_does_not_release_the_process() {
    become_subreaper();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", "echo ran"]);
    let ct = create(&p, &bundle, "ro-state", "");
    let records = p.root.join("backends/pct");
    let read_only = ReadOnly::new(&records);
    let out = p.cmd().args(["start", "ro-state"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "start with a read-only state root");
    assert!(
        err.contains(&records.display().to_string()) && err.contains("Read-only file system"),
        "the error names the record and the problem: {err}"
    );
    assert_eq!(p.status("ro-state"), "created");
    // The init would have run `echo` at once had it been released.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(ct.stdout(), "", "the process ran although start failed");
    drop(read_only);
    p.ok(&["start", "ro-state"]);
    assert_eq!(ct.wait(), 0);
    assert_eq!(ct.stdout(), "ran\n");
    p.ok(&["delete", "ro-state"]);
    standin.assert_nothing_left(&p);
}

/// A read-only bind mount of a directory over itself, undone when dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        use nix::mount::{mount, MsFlags};
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        let guard = ReadOnly(dir.to_path_buf());
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, dir, None::<&str>, flags, None::<&str>).unwrap();
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// What LXC under pct cannot do is refused with an error naming it, before anything is
/// touched; a running CT is deleted only with --force.
#[test]
fn what_the_pct_backend_cannot_do_is_refused_by_name() {
    become_subreaper();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "while :; do sleep 1; done"],
    );
    let ct = create(&p, &bundle, "limits", "");
    p.ok(&["start", "limits"]);
    let refused = |args: &[&str], want: &str| {
        let out = p.run(args);
        let err = support::pct::stderr(&out);
        assert!(
            !out.status.success() && err.contains(want),
            "proxcage {}: {}\n{err}",
            args.join(" "),
            out.status
        );
    };
    refused(
        &["pause", "limits"],
        "container limits: pause is not supported by the pct backend",
    );
    refused(
        &["resume", "limits"],
        "container limits: resume is not supported by the pct backend",
    );
    refused(
        &["exec", "--cap", "CAP_SYS_ADMIN", "limits", "true"],
        "exec --cap is not supported by the pct backend",
    );
    refused(
        &["exec", "--user", "nobody", "limits", "true"],
        "exec --user \"nobody\": expected UID[:GID]",
    );
    refused(
        &["delete", "limits"],
        "cannot delete a running container: stop it first, or use --force",
    );
    assert_eq!(
        p.status("limits"),
        "running",
        "a refusal changed the container"
    );
    // --env replaces the container's variable of that name, as runc's does.
    assert_eq!(
        p.ok(&[
            "exec",
            "--env",
            "PATH=/bin",
            "--env",
            "GREETING=hi",
            "limits",
            "sh",
            "-c",
            "echo $GREETING; env | grep -c ^PATH=",
        ]),
        "hi\n1\n"
    );
    p.ok(&["delete", "--force", "limits"]);
    assert_eq!(ct.wait(), 137, "the monitor ends with the CT");
    standin.assert_nothing_left(&p);
}

/// Every OCI hook fires once, in runtime-spec's order, with the container's state on
/// stdin: createRuntime and createContainer at create, startContainer inside the CT at
/// start before the process, poststart before start returns, poststop at delete.
#[test]
fn hooks_fire_in_order_with_the_state_on_stdin() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let shared = p.dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let log = shared.join("hooks.log");
    fs::write(&log, "").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o666)).unwrap();
    // Each hook appends one line: its name, then the state it read, on one line.
    let hook = |name: &str, log: &Path| {
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("printf '%s %s\\n' \"$0\" \"$(cat)\" >> {}", log.display()), name],
            "env": ["HOOK=1"],
        })
    };
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &[
            "sh",
            "-c",
            "echo process >> /shared/hooks.log; exec sleep 1000",
        ],
    );
    edit_config(&bundle, |spec| {
        spec["mounts"].as_array_mut().unwrap().push(serde_json::json!(
            {"destination": "/shared", "type": "bind", "source": shared, "options": ["rbind", "rw"]}
        ));
        spec["hooks"] = serde_json::json!({
            "createRuntime": [hook("createRuntime", &log)],
            "createContainer": [hook("createContainer", &log)],
            "startContainer": [hook("startContainer", Path::new("/shared/hooks.log"))],
            "poststart": [hook("poststart", &log)],
            "poststop": [hook("poststop", &log)],
        });
    });
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "hooked"]);
    // Every hook reads the pid `state` shows (the pid file's).
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "hooked"])).unwrap();
    let shown = state["pid"].as_i64().unwrap();
    p.ok(&["start", "hooked"]);
    wait_until("the process", || {
        fs::read_to_string(&log).unwrap().contains("process")
    });
    p.ok(&["delete", "--force", "hooked"]);

    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let names: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    // The process runs from the release on: before or after poststart, which runs after
    // it started and before `start` returns.
    let hooks: Vec<&str> = names.iter().copied().filter(|n| *n != "process").collect();
    assert_eq!(
        hooks,
        [
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(
        at("startContainer") < at("process") && at("process") < at("poststop"),
        "{text}"
    );
    let state = |name: &str| -> serde_json::Value {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        serde_json::from_str(&line[name.len() + 1..])
            .unwrap_or_else(|e| panic!("{name}: {e}: {line}"))
    };
    for (name, status, pid) in [
        ("createRuntime", "creating", shown),
        ("createContainer", "creating", shown),
        ("startContainer", "created", shown),
        ("poststart", "running", shown),
        ("poststop", "stopped", 0),
    ] {
        let s = state(name);
        assert_eq!(s["id"], "hooked", "{name}: {s}");
        assert_eq!(s["status"], status, "{name}: {s}");
        assert_eq!(s["pid"].as_i64(), Some(pid), "{name}: {s}");
        assert_eq!(s["bundle"], bundle.to_str().unwrap(), "{name}: {s}");
    }
    standin.assert_nothing_left(&p);
}

/// A failing createRuntime hook fails the create with what the hook said, and leaves
/// nothing behind; a failing poststart hook does not stop the container.
#[test]
fn a_failing_create_hook_undoes_the_create() {
    become_subreaper();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    edit_config(&bundle, |spec| {
        spec["hooks"] = serde_json::json!({"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo no GPU here >&2; exit 3"]}
        ]});
    });
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "hookfail"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("createRuntime hook /bin/sh failed") && err.contains("no GPU here"),
        "{err}"
    );
    standin.assert_nothing_left(&p);

    edit_config(&bundle, |spec| {
        spec["hooks"] = serde_json::json!({"poststart": [{"path": "/bin/false"}]});
    });
    let ct = create(&p, &bundle, "poststart", "");
    let out = p.run(&["start", "poststart"]);
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("poststart hook /bin/false failed"));
    assert_eq!(p.status("poststart"), "running");
    p.ok(&["delete", "--force", "poststart"]);
    assert_eq!(ct.wait(), 137);
    standin.assert_nothing_left(&p);
}

/// A process with a non-root user: the init reaches its monitor as root, then becomes
/// the user with its groups and exactly the spec's bounding set; exec takes the container's
/// user, or `--user`.
#[test]
fn a_non_root_process_gets_its_user_groups_and_bounding_set() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let status = "id; grep -E 'CapEff|CapBnd' /proc/self/status";
    let bundle = busybox_bundle(
        p.dir.path(),
        "u",
        &["sh", "-c", &format!("{status}; exec sleep 1000")],
    );
    edit_config(&bundle, |spec| {
        spec["process"]["user"] =
            serde_json::json!({"uid": 1000, "gid": 100, "additionalGids": [4, 27]});
        // runc's default effective and permitted sets stay: as with runc, a non-root
        // process keeps none of them across its exec.
        let caps = &mut spec["process"]["capabilities"];
        caps.as_object_mut().unwrap().remove("ambient");
        caps.as_object_mut().unwrap().remove("inheritable");
    });
    let ct = create(&p, &bundle, "user", "");
    p.ok(&["start", "user"]);
    wait_until("the process", || ct.stdout().contains("CapBnd"));
    // runc's default bounding set: audit_write (29), kill (5), net_bind_service (10).
    let bounding = "CapBnd:\t0000000020000420";
    assert_eq!(
        ct.stdout(),
        format!("uid=1000 gid=100 groups=4,27\nCapEff:\t0000000000000000\n{bounding}\n")
    );
    let out = p.run(&["exec", "user", "sh", "-c", status]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("uid=1000 gid=100 groups=4,27\nCapEff:\t0000000000000000\n{bounding}\n")
    );
    let out = p.run(&["exec", "--user", "0:0", "user", "sh", "-c", status]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("uid=0(root) gid=0(root)\nCapEff:\t0000000020000420\n{bounding}\n")
    );
    p.ok(&["delete", "--force", "user"]);
    standin.assert_nothing_left(&p);
}

/// Without a console socket, a terminal is this process's: `run` of a terminal process
/// and `exec -t` relay between proxcage's terminal and the CT's, as runc does.
#[test]
fn run_and_exec_with_a_terminal_use_proxcages_own() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let script = "tty; test -t 0 && echo stdin-is-a-tty; exit 4";
    let has_terminal = |out: &str| out.contains("/dev/pts/") && out.contains("stdin-is-a-tty");
    let bundle = busybox_bundle(p.dir.path(), "t", &["sh", "-c", script]);
    edit_config(&bundle, |spec| spec["process"]["terminal"] = true.into());
    let ran = run_in_pty(
        p.cmd()
            .args(["run", "--bundle", bundle.to_str().unwrap(), "tty-run"]),
        Duration::from_secs(60),
    );
    assert!(has_terminal(&ran.stdout), "{ran}");
    assert_eq!(ran.code, 4, "{ran}");

    let bundle = busybox_bundle(p.dir.path(), "s", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "tty-exec"]);
    p.ok(&["start", "tty-exec"]);
    let ran = run_in_pty(
        p.cmd().args(["exec", "-t", "tty-exec", "sh", "-c", script]),
        Duration::from_secs(60),
    );
    assert!(has_terminal(&ran.stdout), "{ran}");
    assert_eq!(ran.code, 4, "{ran}");
    let out = p.run(&["exec", "--detach", "-t", "tty-exec", "true"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs --console-socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.ok(&["delete", "--force", "tty-exec"]);
    standin.assert_nothing_left(&p);
}

/// `run` in the foreground: the process has run's stdio, run exits with its status, and
/// the container is gone afterwards.
#[test]
fn run_passes_stdio_and_the_exit_code_and_cleans_up() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "echo ran; echo oops >&2; exit 9"],
    );
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "fg"]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    standin.assert_nothing_left(&p);
}

#[test]
fn bind_mounts_and_a_tmpfs_reach_the_ct() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let data = p.dir.path().join("data");
    let shared = p.dir.path().join("shared");
    for dir in [&data, &shared] {
        fs::create_dir(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::write(data.join("file"), "from the host\n").unwrap();
    let script = "cat /data/file; \
        if touch /data/new 2>/dev/null; then echo data-writable; else echo data-readonly; fi; \
        echo written > /shared/out && echo shared-writable; \
        grep ' /scratch ' /proc/mounts; \
        exec sleep 1000";
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", script]);
    edit_config(&bundle, |spec| {
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "ro"]}));
        mounts.push(serde_json::json!({"destination": "/shared", "type": "bind", "source": shared, "options": ["rbind", "rw"]}));
        mounts.push(serde_json::json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=16m", "mode=1777"]}));
    });
    let ct = create(&p, &bundle, "mounts", "");
    p.ok(&["start", "mounts"]);
    wait_until("the mount report", || ct.stdout().contains("/scratch"));
    let log = ct.stdout();
    assert!(log.contains("from the host"), "{log}");
    assert!(
        log.contains("data-readonly"),
        "the read-only bind refused writes:\n{log}"
    );
    assert!(log.contains("shared-writable"), "{log}");
    assert!(
        log.contains("tmpfs /scratch tmpfs") && log.contains("size=16384k"),
        "{log}"
    );
    assert_eq!(fs::read_to_string(shared.join("out")).unwrap(), "written\n");
    assert!(!data.join("new").exists());
    p.ok(&["delete", "--force", "mounts"]);
    standin.assert_nothing_left(&p);
}

#[test]
fn a_failed_create_leaves_nothing_behind() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    // A storage without container directories: pct create fails after the template.
    let config = fs::read_to_string(&p.config).unwrap() + "rootfs_storage = \"local\"\n";
    fs::write(&p.config, config).unwrap();
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "broken"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("storage 'local' does not support container directories"),
        "{err}"
    );
    assert!(
        err.contains("rootfs_storage"),
        "the error says what to set: {err}"
    );
    standin.assert_nothing_left(&p);
    assert!(!Path::new(&standin.conf_path(100)).exists());
}

#[test]
fn sixteen_parallel_creates_get_distinct_vmids_and_share_one_template() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    std::thread::scope(|s| {
        for i in 0..16 {
            let (p, bundle) = (&p, &bundle);
            s.spawn(move || {
                p.ok(&[
                    "create",
                    "--bundle",
                    bundle.to_str().unwrap(),
                    &format!("par-{i}"),
                ])
            });
        }
    });
    let mut vmids: Vec<u32> = (0..16).map(|i| vmid_of(&p, &format!("par-{i}"))).collect();
    vmids.sort();
    vmids.dedup();
    assert_eq!(vmids.len(), 16, "{vmids:?}");
    let templates = standin.templates().len();
    assert_eq!(templates, 1, "one rootfs, one template");
    for i in 0..15 {
        p.ok(&["delete", &format!("par-{i}")]);
    }
    assert_eq!(standin.templates().len(), 1, "still used by par-15");
    p.ok(&["delete", "par-15"]);
    standin.assert_nothing_left(&p);
}

#[test]
fn a_vmid_another_node_takes_between_nextid_and_create_is_retried() {
    let standin = PctStandin::new();
    let mut p = proxcage_for(&standin);
    // "Another node" creates CT 100 after our nextid answered 100: a pvesh that answers
    // 100 once, whatever is free, then defers to the stand-in's.
    let other = standin.busybox_template("other.tar.zst", |_| {});
    standin.pct_ok(&[
        "create",
        "100",
        &other,
        "--rootfs",
        "local-lvm:1",
        "--ostype",
        "unmanaged",
    ]);
    let racy = p.dir.path().join("racy-pvesh");
    let marker = p.dir.path().join("answered");
    fs::write(
        &racy,
        format!(
            "#!/bin/sh\nif [ ! -e {marker} ]; then : > {marker}; echo 100; exit 0; fi\nexec {real} \"$@\"\n",
            marker = marker.display(),
            real = standin.bin_dir.join("pvesh").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&racy, fs::Permissions::from_mode(0o755)).unwrap();
    let config = fs::read_to_string(&p.config).unwrap().replace(
        &format!("pvesh = \"{}/pvesh\"", standin.bin_dir.display()),
        &format!("pvesh = \"{}\"", racy.display()),
    );
    fs::write(&p.config, config).unwrap();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "racer"]);
    assert!(marker.exists(), "the racy answer was given");
    assert_eq!(vmid_of(&p, "racer"), 101);
    p.ok(&["delete", "racer"]);
    standin.pct_ok(&["destroy", "100", "--purge", "1"]);
    fs::remove_file(standin.template_dir().join("other.tar.zst")).unwrap();
    p.env.clear();
    p.env
        .push(("PCT_STANDIN_ROOT".into(), standin.root.clone()));
    standin.assert_nothing_left(&p);
}

#[test]
fn a_ct_destroyed_behind_proxcages_back_is_reported_and_deleted() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "gone"]);
    let vmid = vmid_of(&p, "gone");
    // A created CT runs (its init waits for start): destroying it takes --force.
    standin.pct_ok(&["destroy", &vmid.to_string(), "--force", "1", "--purge", "1"]);
    let out = p.run(&["state", "gone"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("its CT {vmid} no longer exists")),
        "{err}"
    );
    p.ok(&["delete", "gone"]);
    standin.assert_nothing_left(&p);
}

/// A create that fails at the template step or at the `.conf` write (after `pct create`
/// succeeded) undoes everything: no CT, no template, no files, no record.
#[test]
fn a_create_failing_at_the_template_or_the_conf_write_leaves_nothing() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let base = fs::read_to_string(&p.config).unwrap();

    // The template directory is missing: packing fails before any CT exists.
    let missing = p.dir.path().join("no-such-template-dir");
    let config = base.replace(
        &format!("template_dir = \"{}\"", standin.template_dir().display()),
        &format!("template_dir = \"{}\"", missing.display()),
    );
    fs::write(&p.config, config).unwrap();
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "t1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(missing.to_str().unwrap()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    standin.assert_nothing_left(&p);

    // The cluster file system is elsewhere than configured: pct create works, the raw
    // keys cannot be written, and the CT is destroyed again.
    let wrong = p.dir.path().join("not-etc-pve");
    let config = base.replace(
        &format!("pve_dir = \"{}/etc/pve\"", standin.root.display()),
        &format!("pve_dir = \"{}\"", wrong.display()),
    );
    fs::write(&p.config, config).unwrap();
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "t2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}/lxc/100.conf", wrong.display())),
        "{err}"
    );
    assert!(
        !standin.conf_path(100).exists(),
        "CT 100 was destroyed again"
    );
    standin.assert_nothing_left(&p);
}

/// Every pct failure of the reference, produced by the stand-in, read back by the pct
/// backend's tool layer as the typed error whose text tells the operator what to do.
#[test]
fn every_pct_error_becomes_its_typed_error() {
    use proxcage_backend_pct::{PctError, PctTools, Vmid};

    let standin = PctStandin::new();
    // The tools get the stand-in's root through wrappers: the environment is per process.
    let wrap = |tool: &str| {
        let path = standin.dir.path().join(format!("with-root-{tool}"));
        fs::write(
            &path,
            format!(
                "#!/bin/sh\nPCT_STANDIN_ROOT={} exec {} \"$@\"\n",
                standin.root.display(),
                standin.bin_dir.join(tool).display()
            ),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let tools = PctTools {
        pct: wrap("pct"),
        pvesh: wrap("pvesh"),
        lxc_info: support::require_tool("lxc-info", "lxc"),
        lxc_path: Some(standin.lxcpath()),
        node: "pve".into(),
        timeout: Duration::from_secs(60),

        spent: Default::default(),
    };
    let v = |n: u32| Vmid::new(n).unwrap();
    let template = standin.busybox_template("bb.tar.zst", |_| {});
    let opts = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut o = vec![
            ("rootfs".to_string(), "local-lvm:1".to_string()),
            ("ostype".into(), "unmanaged".into()),
        ];
        o.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        o
    };
    let err = |r: Result<(), proxcage_backend_pct::CallError>| -> PctError {
        r.expect_err("pct should have refused")
            .pct()
            .cloned()
            .expect("a pct error")
    };

    assert!(
        matches!(err(tools.start(v(150))), PctError::NoSuchCt { ref vmid, .. } if vmid == "150")
    );
    tools
        .create(
            v(100),
            &template,
            &opts(&[("entrypoint", "/bin/sh /start.sh")]),
        )
        .unwrap();
    assert!(matches!(
        err(tools.create(v(100), &template, &opts(&[]))),
        PctError::VmidTakenByCt { .. }
    ));
    fs::create_dir_all(standin.root.join("etc/pve/qemu-server")).unwrap();
    fs::write(
        standin.root.join("etc/pve/qemu-server/105.conf"),
        "memory: 512\n",
    )
    .unwrap();
    let vm = err(tools.create(v(105), &template, &opts(&[])));
    assert!(matches!(vm, PctError::VmidTakenByVm { .. }), "{vm:?}");
    assert!(
        vm.to_string()
            .contains("VMID 105 is already used by a QEMU VM"),
        "{vm}"
    );
    let e = tools.next_id(Some(v(105))).unwrap_err();
    assert!(
        matches!(e.pct(), Some(PctError::VmidTakenByVm { .. })),
        "{e}"
    );
    let missing = err(tools.create(v(101), "local:vztmpl/missing.tar.zst", &opts(&[])));
    assert!(
        missing
            .to_string()
            .starts_with("template local:vztmpl/missing.tar.zst not found"),
        "{missing}"
    );
    assert!(matches!(
        err(tools.create(
            v(101),
            &template,
            &[
                ("rootfs".into(), "nosuch:1".into()),
                ("ostype".into(), "unmanaged".into())
            ]
        )),
        PctError::NoStorage { .. }
    ));
    let rootdir = err(tools.create(
        v(101),
        &template,
        &[
            ("rootfs".into(), "local:1".into()),
            ("ostype".into(), "unmanaged".into()),
        ],
    ));
    assert!(matches!(rootdir, PctError::NoRootdir { .. }), "{rootdir:?}");
    assert!(matches!(
        err(tools.create(v(101), "not a volume", &opts(&[]))),
        PctError::BadVolume { .. } | PctError::Parameters { .. }
    ));
    assert!(matches!(
        err(tools.create(
            v(101),
            &template,
            &[("rootfs".into(), "local-lvm:1".into())]
        )),
        PctError::NoDistro
    ));
    let params = err(tools.create(v(101), &template, &opts(&[("memory", "8")])));
    assert!(
        matches!(params, PctError::Parameters { ref details } if details.contains("memory")),
        "{params:?}"
    );

    assert!(matches!(
        err(tools.stop(v(100))),
        PctError::NotRunning { .. }
    ));
    tools.start(v(100)).unwrap();
    assert!(matches!(
        err(tools.start(v(100))),
        PctError::AlreadyRunning { .. }
    ));
    assert!(matches!(
        err(tools.destroy(v(100))),
        PctError::Running { .. }
    ));
    assert!(tools.init_pid(v(100)).unwrap().is_some());
    tools.stop(v(100)).unwrap();

    let conf = standin.conf_path(100);
    let text = fs::read_to_string(&conf).unwrap();
    fs::write(&conf, format!("{text}lock: backup\n")).unwrap();
    let locked = err(tools.start(v(100)));
    assert_eq!(
        locked.to_string(),
        "CT 100 is locked (backup): wait for the backup to finish, or run 'pct unlock 100' if none is running"
    );
    fs::write(&conf, format!("{text}protection: 1\n")).unwrap();
    assert!(matches!(
        err(tools.destroy(v(100))),
        PctError::Protected { .. }
    ));
    fs::write(&conf, text).unwrap();
    tools.destroy(v(100)).unwrap();

    // An init that exits at once: the start fails with pct's startup error.
    tools
        .create(v(102), &template, &opts(&[("entrypoint", "/bin/true")]))
        .unwrap();
    assert!(matches!(
        err(tools.start(v(102))),
        PctError::StartFailed { .. }
    ));
    tools.destroy(v(102)).unwrap();
}

#[test]
fn lxc_config_shows_the_translation_and_what_proxmox_would_drop() {
    let p = Proxcage::new("");
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", "echo 'a b'"]);
    let lxc = p.ok(&["lxc-config", "--bundle", bundle.to_str().unwrap()]);
    assert!(lxc.contains("lxc.init.cmd = /.proxcage/init\n"), "{lxc}");
    // runc's default spec (no_new_privs included, which the init sets) is fine for Proxmox.
    let conf = p.ok(&[
        "lxc-config",
        "--bundle",
        bundle.to_str().unwrap(),
        "--proxmox",
        "--id",
        "web",
    ]);
    assert!(
        conf.contains("hostname: runc\n") && conf.contains("lxc.init.cmd: /.proxcage/init\n"),
        "{conf}"
    );
    assert!(conf.contains("/var/lib/proxcage/pct/web/init"), "{conf}");
    // oom_score_adj becomes lxc.proc.oom_score_adj, which Proxmox drops: named, with the way out.
    edit_config(&bundle, |spec| spec["process"]["oomScoreAdj"] = 100.into());
    let out = p.run(&[
        "lxc-config",
        "--bundle",
        bundle.to_str().unwrap(),
        "--proxmox",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lxc.proc.oom_score_adj") && err.contains("allow_dropped"),
        "{err}"
    );
}

/// Every set of `process.capabilities` the way runtime-tools' bundles have them (all the
/// same): the init sets the inheritable set and raises the ambient capabilities, for root
/// and, after the user switch, for another user, as runc does; an exec gets the same.
#[test]
fn inheritable_and_ambient_capabilities_reach_the_process() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let status = "id -u; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status";
    // chown (0), kill (5), net_bind_service (10).
    let caps = serde_json::json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for (id, uid) in [("caps-root", 0), ("caps-user", 1000)] {
        let bundle = busybox_bundle(
            p.dir.path(),
            id,
            &["sh", "-c", &format!("{status}; exec sleep 1000")],
        );
        edit_config(&bundle, |spec| {
            spec["process"]["user"] = serde_json::json!({"uid": uid, "gid": uid});
            for set in [
                "bounding",
                "effective",
                "permitted",
                "inheritable",
                "ambient",
            ] {
                spec["process"]["capabilities"][set] = caps.clone();
            }
        });
        let want = format!(
            "{uid}\nCapInh:\t0000000000000421\nCapPrm:\t0000000000000421\n\
             CapEff:\t0000000000000421\nCapBnd:\t0000000000000421\nCapAmb:\t0000000000000421\n"
        );
        let ct = create(&p, &bundle, id, "");
        p.ok(&["start", id]);
        wait_until("the process", || ct.stdout().contains("CapAmb"));
        assert_eq!(ct.stdout(), want, "{id}");
        let out = p.run(&["exec", id, "sh", "-c", status]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "exec in {id}");
        p.ok(&["delete", "--force", id]);
    }
    standin.assert_nothing_left(&p);
}

/// A seccomp rule whose action is the default action (runtime-tools' bundles have them):
/// libseccomp refuses to add it and LXC would not start the CT; it is left out, as runc
/// and crun leave it out, and the other rules hold.
#[test]
fn a_seccomp_rule_that_does_what_the_default_does_is_left_out() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "mkdir /tmp/x; echo done; exec sleep 1000"],
    );
    edit_config(&bundle, |spec| {
        spec["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        });
    });
    let ct = create(&p, &bundle, "seccomp", "");
    p.ok(&["start", "seccomp"]);
    wait_until("the process", || ct.stdout().contains("done"));
    assert!(
        ct.stderr().contains("Function not implemented"),
        "mkdir got ENOSYS from the filter: {}",
        ct.stderr()
    );
    p.ok(&["delete", "--force", "seccomp"]);
    standin.assert_nothing_left(&p);
}

/// A failing poststart or poststop hook is logged, and the hooks after it still run
/// (runtime-spec); `start` and `delete` succeed.
#[test]
fn every_poststart_and_poststop_hook_runs_past_a_failing_one() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let log = p.dir.path().join("hooks.log");
    let hook =
        |script: String| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]});
    let append = |name: &str| hook(format!("echo {name} >> {}", log.display()));
    let failing = |name: &str| hook(format!("echo {name} refuses >&2; exit 3"));
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    edit_config(&bundle, |spec| {
        spec["hooks"] = serde_json::json!({
            "poststart": [failing("first-poststart"), append("poststart")],
            "poststop": [failing("first-poststop"), append("poststop")],
        });
    });
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "hooks"]);
    let out = p.run(&["start", "hooks"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("first-poststart refuses"), "{err}");
    let out = p.run(&["delete", "--force", "hooks"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("first-poststop refuses"), "{err}");
    assert_eq!(fs::read_to_string(&log).unwrap(), "poststart\npoststop\n");
    standin.assert_nothing_left(&p);
}

/// A masked or read-only path that is a FIFO or a device node in the rootfs: LXC opens
/// what it mounts over, and on a FIFO it blocks until pct's timeout (then the CT could
/// not even be stopped). `create` refuses such a path at once, by name, and leaves nothing.
#[test]
fn a_masked_or_read_only_fifo_is_refused_at_create_and_nothing_is_left() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let rootfs = bundle.join("rootfs");
    nix::unistd::mkfifo(
        &rootfs.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &rootfs.join("chardev"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        0,
    )
    .unwrap();
    let original = fs::read(bundle.join("config.json")).unwrap();
    for (list, path, what) in [
        ("maskedPaths", "/fifo", "a FIFO"),
        ("readonlyPaths", "/fifo", "a FIFO"),
        ("maskedPaths", "/chardev", "a character device"),
    ] {
        fs::write(bundle.join("config.json"), &original).unwrap();
        let mut index = 0;
        edit_config(&bundle, |spec| {
            let paths = spec["linux"][list].as_array_mut().unwrap();
            index = paths.len();
            paths.push(path.into());
        });
        let mut cmd = p.cmd();
        cmd.args(["create", "--bundle", bundle.to_str().unwrap(), "special"]);
        let ran = run(&mut cmd, Duration::from_secs(60));
        assert_eq!(ran.code, 1, "{ran}");
        let field = format!("linux.{list}[{index}]");
        assert!(
            ran.stderr.contains(&field) && ran.stderr.contains(&format!("{path} is {what}")),
            "{ran}"
        );
        standin.assert_nothing_left(&p);
    }
}

/// No CT is less confined than Proxmox confines its own: without
/// `process.apparmorProfile` nothing is written, and the CT gets Proxmox's generated
/// profile (pve-container's `make_apparmor_config`); a named profile is applied as named,
/// and replaces Proxmox's.
#[test]
fn a_ct_gets_proxmoxs_apparmor_profile_unless_the_spec_names_one() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let profile_lines = |vmid: u32| -> Vec<String> {
        let config = standin.lxcpath().join(vmid.to_string()).join("config");
        fs::read_to_string(config)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("lxc.apparmor."))
            .map(str::to_string)
            .collect()
    };
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "default"]);
    let vmid = vmid_of(&p, "default");
    let conf = fs::read_to_string(standin.conf_path(vmid)).unwrap();
    assert!(!conf.contains("lxc.apparmor"), "{conf}");
    assert_eq!(
        profile_lines(vmid),
        [
            "lxc.apparmor.profile = generated",
            "lxc.apparmor.raw = allow mqueue,",
            "lxc.apparmor.raw = deny mount -> /proc/,",
            "lxc.apparmor.raw = deny mount -> /sys/,",
        ]
    );
    p.ok(&["delete", "--force", "default"]);

    edit_config(&bundle, |spec| {
        spec["process"]["apparmorProfile"] = "lxc-container-default-cgns".into();
    });
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "named"]);
    let vmid = vmid_of(&p, "named");
    let conf = fs::read_to_string(standin.conf_path(vmid)).unwrap();
    assert!(
        conf.contains("\nlxc.apparmor.profile: lxc-container-default-cgns\n"),
        "{conf}"
    );
    assert_eq!(
        profile_lines(vmid),
        ["lxc.apparmor.profile = lxc-container-default-cgns"]
    );
    p.ok(&["delete", "--force", "named"]);
    standin.assert_nothing_left(&p);
}

/// The capability keys proxcage writes hold whatever LXC's common.conf (which Proxmox
/// includes for every CT) dropped: an empty `lxc.cap.drop` comes before `lxc.cap.keep`.
/// Shown on a privileged CT, whose drop list no userns.conf clears: LXC refuses a keep
/// list next to a drop list.
#[test]
fn the_keep_list_holds_after_the_drop_list_of_common_conf() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let conf = p.ok(&[
        "lxc-config",
        "--bundle",
        bundle.to_str().unwrap(),
        "--proxmox",
        "--id",
        "keep",
    ]);
    let caps: Vec<&str> = conf.lines().filter(|l| l.starts_with("lxc.cap.")).collect();
    assert_eq!(
        caps,
        [
            "lxc.cap.drop:",
            "lxc.cap.keep: audit_write kill net_bind_service"
        ]
    );
    let template = standin.busybox_template("keep.tar.zst", |_| {});
    let vmid = standin.pvesh_ok(&["get", "/cluster/nextid"]);
    let vmid = vmid.trim();
    standin.pct_ok(&[
        "create",
        vmid,
        &template,
        "--rootfs",
        "local-lvm:1",
        "--ostype",
        "unmanaged",
        "--unprivileged",
        "0",
    ]);
    let conf_path = standin.conf_path(vmid.parse().unwrap());
    let mut text = fs::read_to_string(&conf_path).unwrap();
    text.push_str("lxc.init.cmd: /bin/sh /start.sh\n");
    for line in &caps {
        text.push_str(line);
        text.push('\n');
    }
    fs::write(&conf_path, text).unwrap();
    standin.pct_ok(&["start", vmid]);
    let bounding = standin.pct_ok(&["exec", vmid, "--", "grep", "CapBnd", "/proc/1/status"]);
    // audit_write (29), kill (5), net_bind_service (10).
    assert_eq!(bounding, "CapBnd:\t0000000020000420\n");
    standin.pct_ok(&["stop", vmid]);
    standin.pct_ok(&["destroy", vmid]);
    standin.assert_no_ct();
}

/// A read-only root with none of the mount points (an image FROM scratch: no /proc, /sys,
/// /dev, nor the mounts' destinations) runs: they are made before the rootfs is packed,
/// as runc makes them before it makes the root read-only.
#[test]
fn a_read_only_root_without_mount_points_runs() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let script = "ls -d /proc/self /sys/kernel /dev/null /scratch; \
                  if touch /x 2>/dev/null; then echo root-writable; fi";
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", script]);
    let rootfs = bundle.join("rootfs");
    for entry in fs::read_dir(&rootfs).unwrap() {
        let path = entry.unwrap().path();
        if !path.ends_with("bin") {
            fs::remove_dir_all(&path)
                .or_else(|_| fs::remove_file(&path))
                .unwrap();
        }
    }
    edit_config(&bundle, |spec| {
        assert_eq!(spec["root"]["readonly"], true, "runc's default spec");
        spec["mounts"].as_array_mut().unwrap().push(serde_json::json!(
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
        ));
    });
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "scratch"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/dev/null\n/proc/self\n/scratch\n/sys/kernel\n"
    );
    standin.assert_nothing_left(&p);
}

/// A read-write bind of a host directory that only the host's root may write to is
/// writable by the unprivileged CT's root, as it is under runc: it is an idmapped bind,
/// and what the container writes is the host root's. On a filesystem that takes no
/// idmapping (ramfs) it stays a plain mount point, and create says it cannot be written.
#[test]
fn a_read_write_bind_is_writable_by_the_unprivileged_root() {
    use std::os::unix::fs::MetadataExt;
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let open = standin.dir.path().join("open");
    let ramfs = standin.dir.path().join("ramfs");
    for dir in [&open, &ramfs] {
        fs::create_dir(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mounted = support::Mounted::new("ramfs", &ramfs);
    let script = "echo written > /open/out && stat -c '%u %g' /open/out; \
                  if echo x > /ramfs/out 2>/dev/null; then echo ramfs-writable; fi";
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", script]);
    edit_config(&bundle, |spec| {
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/open", "type": "bind", "source": open, "options": ["rbind", "rw"]}));
        mounts.push(serde_json::json!({"destination": "/ramfs", "type": "bind", "source": ramfs, "options": ["rbind", "rw"]}));
    });
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "binds"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0 0\n", "{stderr}");
    let written = open.join("out");
    assert_eq!(fs::read_to_string(&written).unwrap(), "written\n");
    let meta = fs::metadata(&written).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "the host root's file");
    assert!(
        stderr.contains("cannot write to the read-write mount /ramfs"),
        "create names the mount it cannot make writable: {stderr}"
    );
    drop(mounted);
    standin.assert_nothing_left(&p);
}

/// The spec's own uid and gid mappings are the CT's: Proxmox writes its default idmap only
/// when the `.conf` has no `lxc.idmap` of its own (pve-container's update_lxc_config).
#[test]
fn the_specs_id_mappings_replace_proxmoxs_default() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map"],
    );
    edit_config(&bundle, |spec| {
        let linux = &mut spec["linux"];
        linux["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        linux["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        linux["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    });
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "mapped"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let maps: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(
        maps,
        [["0", "200000", "65536"], ["0", "300000", "65536"]],
        "the spec's mappings, and no other"
    );
    standin.assert_nothing_left(&p);
}

/// podman and containerd name containers with 64 hex digits: the monitor's socket in the
/// container's files directory is then longer than a socket address may be, and must
/// still be made.
#[test]
fn a_container_with_a_64_character_id_runs() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let id = "f5c3e479506d607da0c8fca732b8f7b4a0c2b7f4aa955ea96b08e914bcb9ee3f";
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["run", "-d", "--bundle", bundle.to_str().unwrap(), id]);
    assert_eq!(p.status(id), "running");
    p.ok(&["delete", "--force", id]);
    standin.assert_nothing_left(&p);
}

/// `process.oomScoreAdj` (which Kubernetes sets on every container) is dropped by
/// Proxmox as a raw key, and applied from the host instead: the process has it.
#[test]
fn oom_score_adj_is_applied_from_the_host() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["cat", "/proc/self/oom_score_adj"]);
    edit_config(&bundle, |spec| spec["process"]["oomScoreAdj"] = 100.into());
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "oom"]);
    assert!(out.status.success(), "{}", support::pct::stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "100\n");
}

/// Issue 22 item 7: `exec --process` naming a FIFO or `/dev/zero` fails at once (before
/// the exec holds the attach lock, so nothing is left waiting), and a delete right after
/// it works.
#[test]
fn an_exec_process_file_that_is_a_fifo_or_a_device_fails_at_once() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "x"]);
    p.ok(&["start", "x"]);
    let fifo = p.dir.path().join("process.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for (file, what) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        let mut cmd = p.cmd();
        cmd.args(["exec", "--process"]).arg(file).arg("x");
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("exec --process {} still runs after 20 s", file.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "exec --process {}", file.display());
        assert!(err.contains(what), "{err}");
    }
    let started = Instant::now();
    p.ok(&["delete", "--force", "x"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the delete waited {:?} for a lock",
        started.elapsed()
    );
    standin.assert_nothing_left(&p);
}

/// Issue 22 item 5: an allowed bind source swapped for a link to `/etc` after the check
/// (by a container whose root owns the directory above it) never exposes `/etc`. A loop
/// swaps the source between its directory and the link while 6 creates run; no CT ever
/// sees the host's `/etc`, and the creates are refused, naming the writable directory (or
/// the link, when the check met it).
#[test]
fn a_bind_source_swapped_for_a_link_after_the_check_never_exposes_the_host() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let allowed = p.dir.path().join("allowed");
    let shared = allowed.join("shared");
    fs::create_dir_all(shared.join("data.dir")).unwrap();
    fs::write(shared.join("data.dir/marker"), "data\n").unwrap();
    std::os::unix::fs::symlink("/etc", shared.join("data.link")).unwrap();
    fs::rename(shared.join("data.dir"), shared.join("data")).unwrap();
    // A container's root (uid 100000) owns it: one with it mounted could do the swap.
    std::os::unix::fs::chown(&shared, Some(100_000), Some(100_000)).unwrap();
    let mut config = fs::read_to_string(&p.config).unwrap();
    config.push_str(&format!(
        "\n[security]\npct_bind_sources = [\"{}\"]\n",
        allowed.display()
    ));
    fs::write(&p.config, config).unwrap();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    edit_config(&bundle, |c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/d", "type": "bind",
            "source": shared.join("data"), "options": ["rbind", "ro"],
        }));
    });
    let stop = AtomicBool::new(false);
    let (mut refused, mut exposed, mut other) = (0, Vec::new(), Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            // data is the directory or the link, swapped by renames.
            let (data, dir, link) = (
                shared.join("data"),
                shared.join("data.dir"),
                shared.join("data.link"),
            );
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::rename(&data, &dir);
                let _ = fs::rename(&link, &data);
                std::thread::sleep(Duration::from_millis(3));
                let _ = fs::rename(&data, &link);
                let _ = fs::rename(&dir, &data);
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        for i in 0..6 {
            let id = format!("swap-{i}");
            let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if !out.status.success() {
                // Caught as the link it was at the check, or for the directory above it.
                if err.contains("which others than root may write")
                    || err.contains("(really /etc) in")
                {
                    refused += 1;
                } else {
                    other.push(err);
                }
                continue;
            }
            let seen = p.run(&["exec", &id, "ls", "/d"]);
            let listing = String::from_utf8_lossy(&seen.stdout).into_owned();
            if listing.contains("passwd") {
                exposed.push(id.clone());
            }
            p.ok(&["delete", "--force", &id]);
        }
        stop.store(true, Ordering::Relaxed);
    });
    std::os::unix::fs::chown(&shared, Some(0), Some(0)).unwrap();
    assert_eq!(exposed, Vec::<String>::new(), "CTs saw the host's /etc");
    assert_eq!(other, Vec::<String>::new(), "creates failed otherwise");
    assert_eq!(refused, 6, "every create is refused up front");
    standin.assert_nothing_left(&p);
}

/// `root.path: "/"` would pack the whole host into a template: refused at once, by name,
/// with no template, CT or record made.
#[test]
fn the_hosts_root_as_root_path_is_refused_before_anything_is_packed() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    edit_config(&bundle, |spec| spec["root"]["path"] = "/".into());
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "host"]);
    let err = support::pct::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("root.path / in config.json is the host's root directory"),
        "{err}"
    );
    assert_eq!(standin.templates().len(), 0, "a template was packed");
    standin.assert_nothing_left(&p);
}
