//! The pct backend end to end: proxcage -> the pct stand-in (test code that follows
//! reference/pct.md and runs real LXC containers, daemonised) -> LXC.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::pct::PctStandin;
use support::{busybox_bundle, edit_config, Proxcage};

/// proxcage routed to the pct backend, configured for `standin`'s paths.
fn proxcage_for(standin: &PctStandin) -> Proxcage {
    let root = standin.root.display();
    let config = format!(
        r#"
default_backend = "pct"

[backends.pct]
pct = "{bin}/pct"
pvesh = "{bin}/pvesh"
lxc_path = "{root}/var/lib/lxc"
pve_dir = "{root}/etc/pve"
lock_dir = "{root}/run/lock/lxc"
template_dir = "{root}/var/lib/vz/template/cache"
files_dir = "{files}"
allow_dropped = ["lxc.no_new_privs"]
"#,
        bin = standin.bin_dir.display(),
        files = standin.dir.path().join("files").display(),
    );
    let mut p = Proxcage::new(&config);
    p.env.push(("PCT_STANDIN_ROOT".into(), standin.root.clone()));
    // Unprivileged CTs (uid 100000) reach bind-mount sources in the bundles here.
    fs::set_permissions(p.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn vmid_of(p: &Proxcage, id: &str) -> u32 {
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(p.root.join("backends/pct").join(format!("{id}.json"))).unwrap()).unwrap();
    record["vmid"].as_u64().unwrap() as u32
}

fn console_log(standin: &PctStandin, vmid: u32) -> String {
    fs::read_to_string(standin.lxcpath().join(vmid.to_string()).join("console.log")).unwrap_or_default()
}

fn nothing_left(p: &Proxcage, standin: &PctStandin) {
    assert_eq!(p.ok(&["list", "-q"]), "");
    assert_eq!(standin.pct_ok(&["list"]), "", "a CT is left");
    let templates: Vec<_> = fs::read_dir(standin.template_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(templates.is_empty(), "templates left: {templates:?}");
    let records = p.root.join("backends/pct");
    if records.exists() {
        let left: Vec<_> = fs::read_dir(&records)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "vmid.lock")
            .collect();
        assert!(left.is_empty(), "backend records left: {left:?}");
    }
    let files = standin.dir.path().join("files");
    if files.exists() {
        assert_eq!(fs::read_dir(&files).unwrap().count(), 0, "files left in {}", files.display());
    }
}

#[test]
fn a_busybox_bundle_becomes_a_running_ct_and_goes_away() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", "echo 'hello from pct' \"$0\"; exec sleep 1000", "arg 0"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "web-1"]);
    assert_eq!(p.status("web-1"), "created");
    let vmid = vmid_of(&p, "web-1");
    // runc's default spec: hostname "runc", a read-only root.
    let conf = fs::read_to_string(standin.conf_path(vmid)).unwrap();
    assert!(conf.contains(",ro=1"), "{conf}");
    for want in ["ostype: unmanaged", "unprivileged: 1", "tags: proxcage", "hostname: runc", "lxc.init.cmd: /.proxcage/init"] {
        assert!(conf.contains(want), "{want:?} missing from\n{conf}");
    }

    p.ok(&["start", "web-1"]);
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "web-1"])).unwrap();
    assert_eq!(state["status"], "running");
    let pid = state["pid"].as_i64().unwrap();
    assert_eq!(Some(pid), standin.lxc_pid(vmid), "state reports the CT init's host pid");
    wait_until("the container's output", || console_log(&standin, vmid).contains("hello from pct arg 0"));
    let pids: Vec<i64> = serde_json::from_str(&p.ok(&["ps", "--format", "json", "web-1"])).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");

    let out = p.run(&["exec", "web-1", "sh", "-c", "echo inside; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "inside\n");

    let listed: serde_json::Value = serde_json::from_str(&p.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(listed[0]["backend"], "pct");

    p.ok(&["kill", "web-1", "KILL"]);
    wait_until("the CT to stop", || p.status("web-1") == "stopped");
    p.ok(&["delete", "web-1"]);
    assert!(!standin.conf_path(vmid).exists());
    nothing_left(&p, &standin);
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
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "mounts"]);
    p.ok(&["start", "mounts"]);
    let vmid = vmid_of(&p, "mounts");
    wait_until("the mount report", || console_log(&standin, vmid).contains("/scratch"));
    let log = console_log(&standin, vmid);
    assert!(log.contains("from the host"), "{log}");
    assert!(log.contains("data-readonly"), "the read-only bind refused writes:\n{log}");
    assert!(log.contains("shared-writable"), "{log}");
    assert!(log.contains("tmpfs /scratch tmpfs") && log.contains("size=16384k"), "{log}");
    assert_eq!(fs::read_to_string(shared.join("out")).unwrap(), "written\n");
    assert!(!data.join("new").exists());
    p.ok(&["delete", "--force", "mounts"]);
    nothing_left(&p, &standin);
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
    assert!(err.contains("storage 'local' does not support container directories"), "{err}");
    assert!(err.contains("rootfs_storage"), "the error says what to set: {err}");
    nothing_left(&p, &standin);
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
            s.spawn(move || p.ok(&["create", "--bundle", bundle.to_str().unwrap(), &format!("par-{i}")]));
        }
    });
    let mut vmids: Vec<u32> = (0..16).map(|i| vmid_of(&p, &format!("par-{i}"))).collect();
    vmids.sort();
    vmids.dedup();
    assert_eq!(vmids.len(), 16, "{vmids:?}");
    let templates = fs::read_dir(standin.template_dir()).unwrap().count();
    assert_eq!(templates, 1, "one rootfs, one template");
    for i in 0..15 {
        p.ok(&["delete", &format!("par-{i}")]);
    }
    assert_eq!(fs::read_dir(standin.template_dir()).unwrap().count(), 1, "still used by par-15");
    p.ok(&["delete", "par-15"]);
    nothing_left(&p, &standin);
}

#[test]
fn a_vmid_another_node_takes_between_nextid_and_create_is_retried() {
    let standin = PctStandin::new();
    let mut p = proxcage_for(&standin);
    // "Another node" creates CT 100 after our nextid answered 100: a pvesh that answers
    // 100 once, whatever is free, then defers to the stand-in's.
    let other = standin.busybox_template("other.tar.zst", |_| {});
    standin.pct_ok(&["create", "100", &other, "--rootfs", "local-lvm:1", "--ostype", "unmanaged"]);
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
    let config = fs::read_to_string(&p.config)
        .unwrap()
        .replace(&format!("pvesh = \"{}/pvesh\"", standin.bin_dir.display()), &format!("pvesh = \"{}\"", racy.display()));
    fs::write(&p.config, config).unwrap();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "racer"]);
    assert!(marker.exists(), "the racy answer was given");
    assert_eq!(vmid_of(&p, "racer"), 101);
    p.ok(&["delete", "racer"]);
    standin.pct_ok(&["destroy", "100", "--purge", "1"]);
    fs::remove_file(standin.template_dir().join("other.tar.zst")).unwrap();
    p.env.clear();
    p.env.push(("PCT_STANDIN_ROOT".into(), standin.root.clone()));
    nothing_left(&p, &standin);
}

#[test]
fn a_ct_destroyed_behind_proxcages_back_is_reported_and_deleted() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "gone"]);
    let vmid = vmid_of(&p, "gone");
    standin.pct_ok(&["destroy", &vmid.to_string(), "--purge", "1"]);
    let out = p.run(&["state", "gone"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("its CT {vmid} no longer exists")), "{err}");
    p.ok(&["delete", "gone"]);
    nothing_left(&p, &standin);
}
