//! The network of a pct container, end to end against the pct stand-in (test code that
//! follows reference/pct.md, drops `lxc.namespace.*` as Proxmox does, and runs real LXC):
//! a namespace of its own has its loopback up, no network namespace in the spec is the
//! host's network, and namespaces a CT cannot have are refused by their config.json field.

use proxcage_test_support as support;
use std::fs;

use support::netns::{ip, CniLikeNetns};
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

/// Makes the bundle's network namespace the one at `path`.
fn with_network_path(bundle: &std::path::Path, path: &str) {
    edit_config(bundle, |spec| {
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = serde_json::json!(path);
            }
        }
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

/// A network namespace path that is no namespace, or that a CT's user namespace owns
/// (a pod member joining a pct sandbox's CT), is refused before anything is made; the
/// CT whose namespace it was keeps running, untouched.
#[test]
fn a_network_path_that_is_not_a_clients_namespace_is_refused() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let with_netns = |name: &str, path: &str| {
        let bundle = busybox_bundle(p.dir.path(), name, &["true"]);
        with_network_path(&bundle, path);
        p.run(&["create", "--bundle", bundle.to_str().unwrap(), name])
    };
    let out = with_netns("file", "/etc/hostname");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot open the network namespace /etc/hostname"),
        "{err}"
    );

    let pod = busybox_bundle(p.dir.path(), "pod", &["sleep", "1000"]);
    let out = p.run(&["run", "--detach", "--bundle", pod.to_str().unwrap(), "pod"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "pod"])).unwrap();
    let theirs = format!("/proc/{}/ns/net", state["pid"]);
    let out = with_netns("member", &theirs);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "{theirs} is a running process's network namespace"
        )),
        "{err}"
    );
    // The same namespace through a path that is not under /proc: its owner is the CT's
    // user namespace.
    let held = p.dir.path().join("held-netns");
    fs::write(&held, "").unwrap();
    nix::mount::mount(
        Some(theirs.as_str()),
        &held,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let out = with_netns("member2", held.to_str().unwrap());
    nix::mount::umount2(&held, nix::mount::MntFlags::MNT_DETACH).unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "the network namespace {} belongs to another container",
            held.display()
        )),
        "{err}"
    );
    assert_eq!(p.status("pod"), "running");
    p.ok(&["delete", "--force", "pod"]);
    standin.assert_nothing_left(&p);
}

/// A sandbox (a container whose network namespace is a path, as podman's default network
/// and CRI's RunPodSandbox give) becomes a CT of its own whose network is the one the
/// client made: its eth0 with address, route, MTU and MAC, reached from the host, and
/// back in the client's namespace, configured, once the container has ended.
#[test]
fn a_sandboxs_interfaces_move_into_the_ct_and_back() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let net = CniLikeNetns::new();
    let script = "ip -o addr show dev eth0; ip route; cat /sys/class/net/eth0/mtu \
        /sys/class/net/eth0/address; ip -o link show lo; hostname";
    let bundle = busybox_bundle(p.dir.path(), "b", &["sh", "-c", script]);
    with_network_path(&bundle, &net.path());
    edit_config(&bundle, |spec| {
        spec["hostname"] = serde_json::json!("pod-one")
    });
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "sandbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = stdout(&out);
    let subnet = net.subnet;
    assert!(
        seen.contains(&format!("inet 10.213.{subnet}.2/24")),
        "the CT has the sandbox's address:\n{seen}"
    );
    assert!(
        seen.contains(&format!("default via 10.213.{subnet}.1 dev eth0")),
        "and its default route:\n{seen}"
    );
    assert!(
        seen.contains("\n1400\n02:42:0a:d5:00:02\n"),
        "MTU and MAC:\n{seen}"
    );
    assert!(seen.contains(",UP"), "the loopback is up:\n{seen}");
    assert!(seen.ends_with("pod-one\n"), "the pod's hostname:\n{seen}");
    let back = ip(&["-n", &net.name, "-o", "addr", "show", "dev", "eth0"]);
    assert!(
        back.contains(&format!("inet 10.213.{subnet}.2/24")),
        "eth0 is back in the client's namespace with its address: {back}"
    );
    let route = ip(&["-n", &net.name, "route"]);
    assert!(
        route.contains(&format!("default via 10.213.{subnet}.1 dev eth0")),
        "{route}"
    );
    standin.assert_nothing_left(&p);
}

/// The sandbox is reached from the host at its address; killed, its monitor ends only
/// once eth0 is back in the client's namespace (a client's CNI DEL right after the exit
/// finds it), and the delete after that finds nothing more to do.
#[test]
fn a_killed_sandbox_hands_its_interfaces_back_before_its_monitor_exits() {
    use std::io::Read;
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let net = CniLikeNetns::new();
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "while :; do echo hello | nc -l -p 8080; done"],
    );
    with_network_path(&bundle, &net.path());
    let run = p
        .cmd()
        .args([
            "run",
            "--keep",
            "--bundle",
            bundle.to_str().unwrap(),
            "served",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let address = format!("10.213.{}.2:8080", net.subnet);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let said = loop {
        let attempt = std::net::TcpStream::connect_timeout(
            &address.parse().unwrap(),
            std::time::Duration::from_secs(1),
        )
        .and_then(|mut s| {
            let mut text = String::new();
            s.read_to_string(&mut text).map(|_| text)
        });
        match attempt {
            Ok(text) if !text.is_empty() => break text,
            _ if std::time::Instant::now() > deadline => panic!("{address} not reached"),
            _ => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    };
    assert_eq!(said, "hello\n", "the CT answered at the sandbox's address");
    killed_with_eth0_back(&p, &standin, &net, "served", run);
}

/// A running sandbox whose network keeper was killed is reported by `health`: its
/// interfaces would die with the CT instead of going back. The repair leaves a new
/// keeper, which the monitor waits for: killed, the container ends with eth0 back.
#[test]
fn health_reports_and_replaces_a_sandboxs_keeper_that_is_gone() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let net = CniLikeNetns::new();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    with_network_path(&bundle, &net.path());
    let run = p
        .cmd()
        .args(["run", "--keep", "--bundle", bundle.to_str().unwrap(), "pod"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let record_path = p.root.join("backends/pct/pod.json");
    let keeper_of = || -> Option<i32> {
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(&record_path).ok()?).ok()?;
        Some(record["keeper"].as_i64()? as i32)
    };
    assert!(
        support::image::wait_until(std::time::Duration::from_secs(60), || {
            keeper_of().is_some() && p.status("pod") == "running"
        }),
        "the sandbox did not start"
    );
    let healthy = stdout(&p.run(&["health", "--format", "json"]));
    assert!(!healthy.contains("pod-network-keeper-gone"), "{healthy}");
    let keeper = keeper_of().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(support::image::wait_until(
        std::time::Duration::from_secs(10),
        || support::process_gone(keeper.into())
    ));
    let report = stdout(&p.run(&["health", "--format", "json"]));
    assert!(
        report.contains("pod-network-keeper-gone") && report.contains("container pod"),
        "{report}"
    );
    let repaired = p.run(&["health", "--repair"]);
    assert!(
        stdout(&repaired).contains("new network keeper"),
        "{}{}",
        stdout(&repaired),
        stderr(&repaired)
    );
    let after = stdout(&p.run(&["health", "--format", "json"]));
    assert!(!after.contains("pod-network-keeper-gone"), "{after}");
    assert_ne!(keeper_of(), Some(keeper), "the record names the new keeper");
    killed_with_eth0_back(&p, &standin, &net, "pod", run);
}

/// Kills the sandbox `id` that `run` (a `proxcage run --keep`) runs: the run ends with
/// 137 once eth0 is back in the client's namespace with its address; then the delete
/// leaves nothing.
fn killed_with_eth0_back(
    p: &support::Proxcage,
    standin: &PctStandin,
    net: &CniLikeNetns,
    id: &str,
    run: std::process::Child,
) {
    p.ok(&["kill", id, "KILL"]);
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let back = ip(&["-n", &net.name, "-o", "addr", "show", "dev", "eth0"]);
    assert!(
        back.contains(&format!("inet 10.213.{}.2/24", net.subnet)),
        "eth0 is back when the monitor has exited: {back}"
    );
    p.ok(&["delete", id]);
    standin.assert_nothing_left(p);
}

/// A sandbox's create killed after its interfaces moved into the CT (here by its own
/// createRuntime hook, before any record of the CT is written): recovering the
/// interrupted create destroys the CT, and eth0 is back in the client's namespace with
/// its address, for the client's CNI DEL; nothing is left.
#[test]
fn a_sandbox_create_killed_midway_hands_its_interfaces_back_when_recovered() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let net = CniLikeNetns::new();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    with_network_path(&bundle, &net.path());
    edit_config(&bundle, |spec| {
        spec["hooks"] = serde_json::json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $PPID"]}]
        })
    });
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "pod"]);
    assert_eq!(
        out.status.code(),
        None,
        "the create was killed: {}",
        stderr(&out)
    );
    let in_ct = ip(&["-n", &net.name, "-o", "link"]);
    assert!(!in_ct.contains("eth0"), "eth0 was in the CT: {in_ct}");
    let repaired = p.run(&["health", "--repair"]);
    let said = format!("{}{}", stdout(&repaired), stderr(&repaired));
    assert!(said.contains("create-interrupted"), "{said}");
    let subnet = net.subnet;
    let back = || {
        ip(&["-n", &net.name, "-o", "addr", "show"]).contains(&format!("inet 10.213.{subnet}.2/24"))
    };
    assert!(
        support::image::wait_until(std::time::Duration::from_secs(20), back),
        "eth0 is back in the client's namespace"
    );
    let report = p.run(&["health"]);
    assert!(report.status.success(), "{}", stdout(&report));
    standin.assert_nothing_left(&p);
}
