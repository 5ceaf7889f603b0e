//! The network of a pct container, end to end against the pct stand-in (test code that
//! follows reference/pct.md, drops `lxc.namespace.*` as Proxmox does, and runs real LXC):
//! a namespace of its own has its loopback up, no network namespace in the spec is the
//! host's network, and namespaces a CT cannot have are refused by their config.json field.

use proxcage_test_support as support;
use std::fs;

use support::pct::{proxcage_for, stderr, stdout, PctStandin};
use support::{busybox_bundle, edit_config};

/// Removes the namespace of `typ` from the bundle's spec.
fn without_namespace(bundle: &std::path::Path, typ: &str) {
    edit_config(bundle, |spec| {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|ns| ns["type"] != typ);
    });
}

#[test]
fn a_network_namespace_of_its_own_has_the_loopback_up() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["ip", "-o", "link", "show"]);
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "lo-up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let links = stdout(&out);
    let lo = links
        .lines()
        .find(|l| l.contains(": lo:"))
        .unwrap_or_else(|| panic!("no lo in the CT:\n{links}"));
    assert!(lo.contains(",UP"), "the CT's loopback is down: {lo}");
    assert_eq!(links.lines().count(), 1, "only the loopback: {links}");
    standin.assert_nothing_left(&p);
}

/// `podman run --network host`, `hostNetwork: true`: the CT is in the host's network
/// namespace, with the host's /sys (sysfs cannot be mounted there by the CT).
#[test]
fn no_network_namespace_in_the_spec_is_the_hosts_network() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "readlink /proc/self/ns/net; ls /sys/class/net"],
    );
    without_namespace(&bundle, "network");
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "host-net"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let host_ns = fs::read_link("/proc/self/ns/net").unwrap();
    let mut host_links: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host_links.sort();
    let seen = stdout(&out);
    let mut lines = seen.lines();
    assert_eq!(
        lines.next(),
        Some(host_ns.to_str().unwrap()),
        "the CT's network namespace is the host's:\n{seen}"
    );
    let ct_links: Vec<&str> = lines.collect();
    assert!(
        host_links.iter().any(|l| l == "lo") && ct_links.contains(&"lo"),
        "the CT sees the host's interfaces in /sys: {ct_links:?}"
    );
    standin.assert_nothing_left(&p);
}

/// A namespace joined by path, or the host's pid namespace, is refused before anything
/// is made, naming the config.json field; `allow_dropped` is never the advice.
#[test]
fn namespaces_a_ct_cannot_have_are_refused_by_field() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    edit_config(&bundle, |spec| {
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "ipc" {
                ns["path"] = serde_json::json!("/proc/1/ns/ipc");
            }
        }
    });
    let index = {
        let spec: serde_json::Value =
            serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
        spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .position(|ns| ns["type"] == "ipc")
            .unwrap()
    };
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "joins"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "linux.namespaces[{index}].path: a Proxmox CT cannot join the ipc namespace /proc/1/ns/ipc"
        )),
        "{err}"
    );
    assert!(!err.contains("allow_dropped"), "{err}");

    let bundle = busybox_bundle(p.dir.path(), "c", &["true"]);
    without_namespace(&bundle, "pid");
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "host-pid"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("linux.namespaces: no pid namespace is listed"),
        "{err}"
    );
    standin.assert_nothing_left(&p);
}
