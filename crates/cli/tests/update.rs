//! `update`, `events`, `checkpoint` and `restore` on every backend: a running container's
//! memory and CPU limits changed and read back from its cgroup files (and, for pct, from
//! `pct config`), `events --stats` following an allocation, an OOM kill seen as an `oom`
//! event; crun with cgroup_manager = "disabled" refusing what needs a cgroup.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use proxcage_test_support as support;
use support::pct::{proxcage_for, PctStandin};
use support::{assert_cgroup, busybox_bundle, require_root, require_tool, Proxcage};

const SLEEPER: &[&str] = &["sh", "-c", "while :; do sleep 1; done"];
/// Holds 48 MiB (dd's buffer, filled from /dev/zero) for 6 seconds: dd blocks writing to
/// a pipe nobody reads until `sleep` exits.
const HOG: &str = "dd if=/dev/zero bs=48M count=1 | sleep 6";

fn pid_of(p: &Proxcage, id: &str) -> i64 {
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", id])).unwrap();
    state["pid"].as_i64().unwrap()
}

fn stats(p: &Proxcage, id: &str) -> serde_json::Value {
    let line = p.ok(&["events", "--stats", id]);
    let event: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["id"].as_str()),
        (Some("stats"), Some(id)),
        "{line}"
    );
    event["data"].clone()
}

fn memory_usage(p: &Proxcage, id: &str) -> u64 {
    stats(p, id)["memory"]["usage"]["usage"]
        .as_u64()
        .unwrap_or(0)
}

/// `events --stats` follows an allocation of 48 MiB inside the container.
fn stats_follow_an_allocation(p: &Proxcage, id: &str) {
    let before = memory_usage(p, id);
    p.ok(&["exec", "-d", id, "sh", "-c", HOG]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = memory_usage(p, id);
        if now >= before + (40 << 20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "memory usage stayed at {now} (before: {before})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let data = stats(p, id);
    assert!(data["pids"]["current"].as_u64().unwrap() >= 3, "{data}");
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap() > 0,
        "{data}"
    );
    // And goes back down when the allocation is freed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while memory_usage(p, id) > before + (20 << 20) {
        assert!(
            Instant::now() < deadline,
            "memory usage did not go back down"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// With a 32 MiB limit (no swap), a 64 MiB allocation is OOM-killed and the event
/// stream says so; the container's init lives on.
fn an_oom_kill_is_an_event(p: &Proxcage, id: &str) {
    let mut events = p
        .cmd()
        .args(["events", "--interval", "1s", id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = events.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The stream is running once its first stats event arrives.
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no first event");
    assert!(first.contains(r#""type":"stats""#), "{first}");
    let hog = p.run(&[
        "exec",
        id,
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_ne!(
        hog.status.code(),
        Some(0),
        "a 64 MiB dd under 32 MiB was not killed"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let oom = loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.contains(r#""type":"oom""#) => break line,
            Ok(line) => seen.push(line),
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "no oom event; events: {seen:?}");
    };
    let _ = events.kill();
    let _ = events.wait();
    assert_eq!(oom, format!(r#"{{"type":"oom","id":"{id}"}}"#));
    assert_eq!(p.status(id), "running");
}

fn run_sleeper(p: &Proxcage, id: &str) {
    let bundle = busybox_bundle(p.dir.path(), id, SLEEPER);
    p.ok(&["run", "-d", "--bundle", bundle.to_str().unwrap(), id]);
}

#[test]
fn runc_update_changes_the_cgroup_and_events_follow_it() {
    require_root();
    require_tool("runc", "runc");
    let p = Proxcage::with_default("runc");
    run_sleeper(&p, "u1");
    let pid = pid_of(&p, "u1");
    p.ok(&[
        "update",
        "--memory",
        "256m",
        "--memory-swap",
        "512m",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "--cpu-share",
        "512",
        "--pids-limit",
        "50",
        "u1",
    ]);
    assert_cgroup(
        pid,
        &[
            ("memory", "memory.limit_in_bytes", "268435456"),
            ("memory", "memory.memsw.limit_in_bytes", "536870912"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
            ("cpu", "cpu.shares", "512"),
            ("pids", "pids.max", "50"),
        ],
    );
    // containerd's shim: LinuxResources JSON on stdin.
    let mut child = p
        .cmd()
        .args(["update", "--resources", "-", "u1"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"memory":{"limit":201326592,"swap":201326592},"cpu":{"quota":25000,"period":100000}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_cgroup(
        pid,
        &[
            ("memory", "memory.limit_in_bytes", "201326592"),
            ("cpu", "cpu.cfs_quota_us", "25000"),
        ],
    );
    assert_eq!(stats(&p, "u1")["memory"]["usage"]["limit"], 201_326_592);

    stats_follow_an_allocation(&p, "u1");
    p.ok(&["update", "--memory", "32m", "--memory-swap", "32m", "u1"]);
    an_oom_kill_is_an_event(&p, "u1");
    p.ok(&["delete", "--force", "u1"]);
}

#[test]
fn crun_without_cgroups_refuses_update_and_events_and_says_why() {
    require_root();
    require_tool("crun", "crun");
    let p = Proxcage::with_default("crun");
    run_sleeper(&p, "u2");
    for args in [
        &["update", "--memory", "256m", "u2"][..],
        &["events", "--stats", "u2"],
    ] {
        let out = p.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("needs the container's cgroup")
                && err.contains("cgroup_manager = \"disabled\""),
            "{args:?}: {err}"
        );
    }
    p.ok(&["delete", "--force", "u2"]);
}

#[test]
fn pct_update_is_pct_set_live_plus_the_cgroup_and_events_read_the_ct() {
    require_root();
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    run_sleeper(&p, "u3");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.root.join("backends/pct/u3.json")).unwrap())
            .unwrap();
    let vmid = record["vmid"].as_u64().unwrap().to_string();
    // The CT's init (state's pid is the monitor beside the CT, in the caller's cgroup).
    let pid = standin
        .lxc_pid(vmid.parse().unwrap())
        .expect("the CT's init runs");
    p.ok(&[
        "update",
        "--memory",
        "256m",
        "--memory-swap",
        "384m",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "--cpu-share",
        "1024",
        "--pids-limit",
        "40",
        "u3",
    ]);
    let config = standin.pct_ok(&["config", &vmid]);
    for line in [
        "memory: 256",
        "swap: 128",
        "cpulimit: 0.5",
        "cpuunits: 39",
        "lxc.cgroup2.pids.max: 40",
    ] {
        assert!(
            config.lines().any(|l| l == line),
            "{line:?} missing in pct config:\n{config}"
        );
    }
    // Applied live, by the stand-in's pct set (memory, cpu) and by proxcage (pids).
    assert_cgroup(
        pid,
        &[
            ("memory", "memory.limit_in_bytes", "268435456"),
            ("memory", "memory.memsw.limit_in_bytes", "402653184"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
            ("pids", "pids.max", "40"),
        ],
    );
    assert_eq!(stats(&p, "u3")["pids"]["limit"], 40);
    // What a CT cannot have is refused by name, and nothing changes.
    let out = p.run(&["update", "--memory", "-1", "u3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("memory limit -1"),
        "{err}"
    );
    assert!(standin
        .pct_ok(&["config", &vmid])
        .lines()
        .any(|l| l == "memory: 256"));

    stats_follow_an_allocation(&p, "u3");
    p.ok(&["update", "--memory", "32m", "--memory-swap", "32m", "u3"]);
    an_oom_kill_is_an_event(&p, "u3");

    let out = p.run(&["checkpoint", "--image-path", "/tmp/x", "u3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Proxmox CTs are not checkpointed"),
        "{err}"
    );
    p.ok(&["delete", "--force", "u3"]);
    standin.assert_nothing_left(&p);
}

/// `checkpoint` reaches runc and crun as the caller wrote it: their own answer comes back
/// (runc needs `criu`; Debian's crun 1.8.1 is built without CRIU support).
#[test]
fn checkpoint_is_passed_to_runc_and_crun() {
    require_root();
    for backend in ["runc", "crun"] {
        require_tool(backend, backend);
        let p = Proxcage::with_default(backend);
        let id = format!("cp-{backend}");
        run_sleeper(&p, &id);
        let images = p.dir.path().join("images");
        let out = p.run(&[
            "checkpoint",
            "--image-path",
            images.to_str().unwrap(),
            "--leave-running",
            &id,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        let images = format!(
            "checkpoint --image-path={} --leave-running {id}",
            images.display()
        );
        match backend {
            // Where criu is installed the checkpoint is made; else runc says it needs it.
            "runc" => assert!(
                out.status.success() || (err.contains(&images) && err.contains("\"criu\"")),
                "{err}"
            ),
            _ => assert!(
                err.contains(&images) && err.ends_with("unknown command checkpoint\n"),
                "{err}"
            ),
        }
        p.ok(&["delete", "--force", &id]);
    }
}

/// What `update` reads from others: a resources file that is not LinuxResources JSON, one
/// that never ends, a size runc would not read. Refused before any backend is asked.
#[test]
fn bad_resources_are_refused_naming_the_input() {
    require_root();
    let p = Proxcage::with_default("runc");
    let bad = p.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"memory":{"limit":"lots"}}"#).unwrap();
    let out = p.run(&["update", "-r", bad.to_str().unwrap(), "c1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the resources file {} is not LinuxResources JSON: invalid type",
            bad.display()
        )),
        "{err}"
    );
    let out = p.run(&["update", "-r", "/dev/zero", "c1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the resources file /dev/zero is larger than 1048576 bytes"),
        "{err}"
    );
    let out = p.run(&["update", "--memory", "12q", "c1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid size \"12q\": unknown unit \"q\""),
        "{err}"
    );
}
