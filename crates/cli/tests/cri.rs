//! Kubernetes' way in: containerd 1.6's CRI plugin, driven through the CRI's gRPC API as
//! kubelet drives it, runs pods with the runtime under test as its one runtime
//! (`support::cri`: a private containerd, a CNI bridge network and subnet of the test's
//! own, a sandbox image made here). Two pods, each with an app container serving HTTP:
//! the app has the IP CRI reports, reaches the other pod, ExecSync, ContainerStatus, stop
//! and remove of containers and pods work, and nothing is left: no pods, containers,
//! CNI rules, veths, network namespaces, processes, mounts or cgroups.
//!
//! The scenario runs against plain runc as well: that proves the test right.

use proxcage_test_support as support;
use std::path::PathBuf;

use support::cri::api::{ContainerState, PodSandboxState};
use support::cri::{Cri, Pod};
use support::pct::PctStandin;

/// The app: serves its pod's hostname over HTTP on port 8080 and exits 42 on SIGTERM.
const APP: &str = "mkdir -p /www; hostname > /www/index.html; trap 'exit 42' TERM; \
                   httpd -f -p 8080 -h /www & wait";

fn runc() -> PathBuf {
    support::require_tool("runc", "runc")
}

/// A pod with its app container started.
struct App {
    pod: Pod,
    name: String,
    container: String,
    ip: String,
}

fn start_app(cri: &Cri, name: &str) -> App {
    let pod = cri.run_pod(name);
    let ip = cri.pod_ip(&pod);
    assert!(
        ip.starts_with(&cri.network.prefix),
        "CRI reports pod {name}'s IP as {ip:?}, not one of the network {}0/24",
        cri.network.prefix
    );
    let container = cri.create_container(&pod, "app", &["sh", "-c", APP]);
    cri.start_container(&container);
    App {
        pod,
        name: name.to_string(),
        container,
        ip,
    }
}

/// ExecSync of `cmd` in `app`, which must exit 0; its stdout.
#[track_caller]
fn exec_ok(cri: &Cri, app: &App, cmd: &[&str]) -> String {
    let got = cri.exec_sync(&app.container, cmd);
    let (out, err) = (
        String::from_utf8_lossy(&got.stdout),
        String::from_utf8_lossy(&got.stderr),
    );
    assert_eq!(
        got.exit_code, 0,
        "ExecSync {cmd:?} in {}:\nstdout: {out}\nstderr: {err}",
        app.name
    );
    out.into_owned()
}

/// `app` fetches `http://<other's IP>:8080/` until it answers (the server may still be
/// starting) and gets the other pod's hostname.
#[track_caller]
fn assert_reaches(cri: &Cri, app: &App, other: &App) {
    let url = format!("http://{}:8080/", other.ip);
    // Debian's static busybox wget crashes with -T: ExecSync's timeout bounds it instead.
    let fetch =
        format!("for i in $(seq 50); do wget -q -O - {url} && exit 0; sleep 0.2; done; exit 1");
    let got = exec_ok(cri, app, &["sh", "-c", &fetch]);
    assert_eq!(
        got.trim(),
        other.name,
        "{} fetching {url} (pod {})",
        app.name,
        other.name
    );
}

/// The whole scenario on `cri`: two pods, their apps, ExecSync, HTTP between the pods,
/// ContainerStatus, StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox.
/// With `standin`, each pod is one CT there, its app inside it.
fn two_pods(cri: Cri, standin: Option<&PctStandin>) {
    let apps = [start_app(&cri, "pod-a"), start_app(&cri, "pod-b")];
    assert_ne!(apps[0].ip, apps[1].ip, "two pods, one IP");
    if let Some(standin) = standin {
        let cts = standin.pct_ok(&["list"]);
        let running = cts.lines().filter(|l| l.contains(" running ")).count();
        assert_eq!(running, 2, "one running CT per pod, none per app:\n{cts}");
    }

    for app in &apps {
        let status = cri.container_status(&app.container);
        assert_eq!(
            status.state,
            ContainerState::ContainerRunning as i32,
            "ContainerStatus of {}'s app: {status:?}",
            app.name
        );
        assert!(status.started_at > 0, "no start time: {status:?}");
        let addr = exec_ok(
            &cri,
            app,
            &["ip", "-o", "-4", "addr", "show", "dev", "eth0"],
        );
        assert!(
            addr.contains(&format!("inet {}/24", app.ip)),
            "the app of {} has not the IP CRI reports ({}):\n{addr}",
            app.name,
            app.ip
        );
        assert_eq!(exec_ok(&cri, app, &["hostname"]).trim(), app.name);
    }
    assert_reaches(&cri, &apps[0], &apps[1]);
    assert_reaches(&cri, &apps[1], &apps[0]);

    // ExecSync hands back stdout, stderr and the exit code apart.
    let got = cri.exec_sync(
        &apps[0].container,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(
        (got.exit_code, got.stdout.as_slice(), got.stderr.as_slice()),
        (3, &b"out\n"[..], &b"err\n"[..]),
        "ExecSync's exit code, stdout and stderr"
    );

    for app in &apps {
        cri.stop_container(&app.container, 10);
        let status = cri.container_status(&app.container);
        assert_eq!(
            (status.state, status.exit_code),
            (ContainerState::ContainerExited as i32, 42),
            "the app of {} after StopContainer (SIGTERM: exit 42): {status:?}",
            app.name
        );
        assert!(status.finished_at >= status.started_at, "{status:?}");
        cri.remove_container(&app.container);
    }
    assert_eq!(cri.container_ids(), Vec::<String>::new(), "containers left");
    for app in &apps {
        cri.stop_pod(&app.pod);
        let status = cri.pod_status(&app.pod);
        assert_eq!(
            status.state,
            PodSandboxState::SandboxNotready as i32,
            "pod {} after StopPodSandbox: {status:?}",
            app.name
        );
        cri.remove_pod(&app.pod);
    }
    cri.assert_nothing_left();
}

// ---- tests ----------------------------------------------------------------------------

#[test]
fn cri_two_pods_with_runc() {
    two_pods(Cri::start(&runc(), ""), None);
}

#[test]
fn cri_two_pods_with_proxcage_routed_to_runc() {
    let config = support::host_config_routing_to("runc");
    two_pods(Cri::start(&support::proxcage_bin(), &config), None);
}

#[test]
fn cri_two_pods_with_proxcage_routed_to_crun() {
    support::require_tool("crun", "crun");
    let config = support::host_config_routing_to("crun");
    two_pods(Cri::start(&support::proxcage_bin(), &config), None);
}

// ---- pct ------------------------------------------------------------------------------

/// Each pod a CT on the pct stand-in (test code, not Proxmox), holding the interfaces
/// CNI made; its app container a member running nested inside that CT, its rootfs an
/// overlay of containerd's snapshot layers idmapped to the CT.
#[test]
fn cri_two_pods_with_pct() {
    let standin = PctStandin::new();
    two_pods(Cri::start_pct(&standin), Some(&standin));
    standin.assert_no_ct();
}
