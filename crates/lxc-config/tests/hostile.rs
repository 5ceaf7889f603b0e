//! Hostile specs against the OCI -> LXC translation: mount targets that climb out of the
//! rootfs (directly or through a planted symlink) and a spec with 100,000 mounts.

use std::fs;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use proxcage_lxc_config::oci_spec::runtime::Spec;
use proxcage_lxc_config::{from_oci, ResolvedPaths};
use proxcage_oci::Bundle;
use serde_json::{json, Value};

fn bundle(config: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("rootfs/etc")).unwrap();
    fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(config).unwrap(),
    )
    .unwrap();
    dir
}

fn spec_with_mounts(mounts: Value) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh"]},
        "mounts": mounts,
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    })
}

fn translate_error(dir: &std::path::Path) -> String {
    let bundle = Bundle::load(dir).unwrap();
    let paths = ResolvedPaths::from_bundle(&bundle, dir.join("files"));
    match from_oci(bundle.spec(), &paths) {
        Ok(_) => panic!("the translation must be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_mount_destination_climbing_out_of_the_rootfs_is_refused() {
    let dir = bundle(&spec_with_mounts(json!([
        {"destination": "/../../etc", "type": "bind", "source": "/tmp", "options": ["rbind"]}
    ])));
    assert_eq!(
        translate_error(dir.path()),
        "mounts[0].destination: /../../etc leaves the container's root filesystem"
    );
}

#[test]
fn a_mount_destination_through_a_planted_symlink_stays_inside() {
    // rootfs/evil -> ../../../.. : LXC would follow it on the host; the translation
    // resolves it inside the rootfs and refuses to climb above it.
    let dir = bundle(&spec_with_mounts(json!([
        {"destination": "/evil/etc", "type": "bind", "source": "/tmp", "options": ["rbind"]}
    ])));
    symlink("../../../..", dir.path().join("rootfs/evil")).unwrap();
    assert_eq!(
        translate_error(dir.path()),
        "mounts[0].destination: /evil/etc leaves the container's root filesystem"
    );

    // An absolute link restarts at the rootfs, never at the host's /.
    fs::remove_file(dir.path().join("rootfs/evil")).unwrap();
    symlink("/etc", dir.path().join("rootfs/evil")).unwrap();
    let bundle = Bundle::load(dir.path()).unwrap();
    let paths = ResolvedPaths::from_bundle(&bundle, dir.path().join("files"));
    let config = from_oci(bundle.spec(), &paths).unwrap().config().render();
    let entry = config
        .lines()
        .find(|l| l.starts_with("lxc.mount.entry = /tmp "))
        .unwrap_or_else(|| panic!("no entry for the mount in:\n{config}"));
    assert!(
        entry.starts_with("lxc.mount.entry = /tmp etc/etc "),
        "{entry}"
    );
}

#[test]
fn a_hundred_thousand_mounts_translate_in_bounded_time() {
    let mounts: Vec<Value> = (0..100_000)
        .map(|i| json!({"destination": format!("/m{i}"), "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]}))
        .collect();
    let dir = bundle(&spec_with_mounts(json!(mounts)));
    let start = Instant::now();
    let bundle = Bundle::load(dir.path()).unwrap();
    let spec: &Spec = bundle.spec();
    let paths = ResolvedPaths::from_bundle(&bundle, dir.path().join("files"));
    let translation = from_oci(spec, &paths).unwrap();
    let took = start.elapsed();
    let entries = translation
        .config()
        .entries()
        .iter()
        .filter(|e| e.key() == "lxc.mount.entry")
        .count();
    assert!(entries >= 100_000, "{entries}");
    assert!(
        took < Duration::from_secs(30),
        "100,000 mounts took {took:?} to load and translate"
    );
}

#[test]
fn annotations_never_become_lxc_keys() {
    // The [security] policy has no raw-LXC-key switch because no annotation is ever
    // translated: keys that look like LXC's, or like a raw-key feature, change nothing.
    let mut spec = spec_with_mounts(json!([]));
    spec["annotations"] = json!({
        "lxc.hook.pre-start": "/bin/evil",
        "lxc.apparmor.profile": "unconfined",
        "lxc.cap.keep": "sys_admin",
        "lxc.mount.entry": "/ host none bind 0 0",
        "io.proxcage.lxc.raw": "lxc.hook.mount = /bin/evil",
        "org.linuxcontainers.lxc.raw": "lxc.hook.mount = /bin/evil",
    });
    let dir = bundle(&spec);
    let plain = bundle(&spec_with_mounts(json!([])));
    let render = |dir: &std::path::Path| {
        let bundle = Bundle::load(dir).unwrap();
        let paths = ResolvedPaths::from_bundle(&bundle, dir.join("files"));
        from_oci(bundle.spec(), &paths)
            .unwrap()
            .config()
            .render()
            .replace(dir.to_str().unwrap(), "$DIR")
    };
    let with = render(dir.path());
    assert!(
        !with.contains("/bin/evil") && !with.contains("sys_admin"),
        "{with}"
    );
    assert_eq!(with, render(plain.path()));
}
