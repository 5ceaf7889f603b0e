//! Containers of a pod on pct run inside the pod's CT, end to end against the pct
//! stand-in (test code that follows reference/pct.md and runs real LXC): a CRI-shaped
//! sandbox becomes a CT; its app container is a nested container in that CT (the CT's
//! network, its own mount and pid namespaces, its own rootfs), not a CT of its own.

use proxcage_test_support as support;
use std::fs;
use std::path::{Path, PathBuf};

use support::netns::CniLikeNetns;
use support::pct::{proxcage_for, proxcage_with_config, stderr, stdout, PctStandin};
use support::{busybox_bundle, edit_config, Proxcage};

/// A CRI sandbox bundle (pause-like: sleeps) in the network namespace `netns`.
fn sandbox_bundle(p: &Proxcage, id: &str, netns: &str) -> PathBuf {
    let bundle = busybox_bundle(p.dir.path(), id, &["sleep", "1000"]);
    edit_config(&bundle, |spec| {
        spec["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-id": id,
        });
        spec["hostname"] = serde_json::json!("pod-one");
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = serde_json::json!(netns);
            }
        }
    });
    bundle
}

/// A CRI app container bundle of the sandbox `sandbox` (whose state pid is `pid`): it
/// joins the sandbox's network, ipc and uts namespaces by `/proc/PID/ns/*`, as
/// containerd writes it.
fn app_bundle(p: &Proxcage, name: &str, sandbox: &str, pid: i64, args: &[&str]) -> PathBuf {
    let bundle = busybox_bundle(p.dir.path(), name, args);
    fs::write(bundle.join("rootfs/marker"), format!("rootfs of {name}\n")).unwrap();
    edit_config(&bundle, |spec| {
        spec["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": sandbox,
        });
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            let typ = ns["type"].as_str().unwrap().to_string();
            let kind = match typ.as_str() {
                "network" => "net",
                "ipc" => "ipc",
                "uts" => "uts",
                _ => continue,
            };
            ns["path"] = serde_json::json!(format!("/proc/{pid}/ns/{kind}"));
        }
    });
    bundle
}

fn state(p: &Proxcage, id: &str) -> serde_json::Value {
    serde_json::from_str(&p.ok(&["state", id])).unwrap()
}

fn ns_of(pid: i64, kind: &str) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap()
}

/// Mounts under `dir` in the host's mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    support::image::mounts_under(dir)
}

/// A CRI-shaped sandbox running on pct: its CT's init and its `state` pid, on a
/// CNI-like network.
struct Pod {
    p: Proxcage,
    net: CniLikeNetns,
    /// The sandbox's `state` pid, whose namespaces app containers name.
    pid: i64,
    /// The pod CT's init (host pid).
    init: i64,
    /// `pct list` with the pod's CT alone.
    cts: String,
    standin: PctStandin,
}

impl Pod {
    fn new() -> Pod {
        let standin = PctStandin::new();
        let p = proxcage_for(&standin);
        let net = CniLikeNetns::new();
        let sandbox = sandbox_bundle(&p, "pod", &net.path());
        let bundle = sandbox.to_str().unwrap();
        p.ok(&["run", "--detach", "--bundle", bundle, "pod"]);
        let pid = state(&p, "pod")["pid"].as_i64().unwrap();
        let cts = standin.pct_ok(&["list"]);
        let vmid: u32 = cts
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("one CT: {cts}"));
        let init = standin.lxc_pid(vmid).expect("the pod CT's init");
        Pod {
            p,
            net,
            pid,
            init,
            cts,
            standin,
        }
    }

    /// The pod CT's VMID.
    fn vmid(&self) -> u32 {
        self.cts
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("the pod's CT")
    }

    /// An app container bundle of this pod.
    fn app(&self, name: &str, args: &[&str]) -> PathBuf {
        app_bundle(&self.p, name, "pod", self.pid, args)
    }

    /// Deletes the sandbox and checks that nothing is left.
    fn finish(self) {
        self.p.ok(&["delete", "--force", "pod"]);
        assert_eq!(mounts_under(self.p.dir.path()), Vec::<String>::new());
        self.standin.assert_nothing_left(&self.p);
    }
}

/// The files directory of container `id` (`<files_dir>/<root's>/<id>`), if there is one.
fn files_of(pod: &Pod, id: &str) -> Option<PathBuf> {
    fs::read_dir(pod.standin.dir.path().join("files"))
        .ok()?
        .flatten()
        .map(|root| root.path().join(id))
        .find(|dir| dir.exists())
}

/// The member's cgroup directory in the pids hierarchy, below the CT init's.
fn pids_cgroup(init: i64, id: &str) -> PathBuf {
    let cgroup = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let path = cgroup
        .lines()
        .find_map(|l| l.split_once(":pids:").map(|(_, path)| path.to_string()))
        .expect("a pids cgroup");
    Path::new("/sys/fs/cgroup/pids")
        .join(path.trim_start_matches('/'))
        .join(format!("proxcage-{id}"))
}

/// A long-running member: created and started (not a CT of its own), in the CT's
/// network, user and uts namespaces with its own mount and pid namespaces and a cgroup
/// below the CT's, under its seccomp filter; known to `health`; `exec` enters it, `ps`
/// lists it, `kill` and `delete` end it.
#[test]
fn a_pods_app_container_runs_nested_in_the_sandboxs_ct() {
    let pod = Pod::new();
    let p = &pod.p;
    let app = pod.app("app", &["sleep", "1000"]);
    edit_config(&app, |spec| {
        spec["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let out = p.run(&["create", "--bundle", app.to_str().unwrap(), "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        pod.standin.pct_ok(&["list"]),
        pod.cts,
        "the member is no CT of its own"
    );
    let created = state(p, "app");
    assert_eq!(created["status"], "created");
    p.ok(&["start", "app"]);
    let running = state(p, "app");
    assert_eq!(running["status"], "running");
    let member = running["pid"].as_i64().unwrap();
    assert_eq!(
        ns_of(member, "net"),
        ns_of(pod.init, "net"),
        "the member is in the CT's network namespace"
    );
    assert_eq!(ns_of(member, "user"), ns_of(pod.init, "user"));
    assert_eq!(ns_of(member, "uts"), ns_of(pod.init, "uts"));
    assert_ne!(
        ns_of(member, "mnt"),
        ns_of(pod.init, "mnt"),
        "its own mounts"
    );
    assert_ne!(ns_of(member, "pid"), ns_of(pod.init, "pid"), "its own pids");
    let cgroups = fs::read_to_string(format!("/proc/{member}/cgroup")).unwrap();
    let ct_cgroups = fs::read_to_string(format!("/proc/{}/cgroup", pod.init)).unwrap();
    for (line, ct_line) in cgroups.lines().zip(ct_cgroups.lines()) {
        assert_eq!(
            line,
            format!("{}/proxcage-app", ct_line.trim_end_matches('/')),
            "a cgroup below the CT's:\n{cgroups}"
        );
    }
    let status = fs::read_to_string(format!("/proc/{member}/status")).unwrap();
    assert!(
        status.contains("NSpid:")
            && status
                .lines()
                .any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1")),
        "PID 1 of its pid namespace, nested in the CT's:\n{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("100000")),
        "the CT's root (host uid 100000):\n{status}"
    );
    assert!(
        status.lines().any(|l| l == "Seccomp:\t2"),
        "under its seccomp filter:\n{status}"
    );
    let health = p.run(&["health", "--format", "json"]);
    let report = stdout(&health);
    assert!(
        report.contains("\"healthy\": true") && !report.contains("\"app\""),
        "health knows the member:\n{report}{}",
        stderr(&health)
    );
    let seen = p.ok(&[
        "exec",
        "app",
        "sh",
        "-c",
        "cat /marker; hostname; ip -o addr show dev eth0; ls -ln /marker; \
         mkdir /dev/shm/d 2>/dev/null; echo mkdir $?",
    ]);
    assert!(
        seen.ends_with("mkdir 1\n"),
        "the exec is under the member's filter:\n{seen}"
    );
    assert!(
        seen.starts_with("rootfs of app\n"),
        "exec runs in the member's rootfs:\n{seen}"
    );
    assert!(seen.contains("pod-one\n"), "the pod's hostname:\n{seen}");
    assert!(
        seen.contains(&format!("inet 10.213.{}.2/24", pod.net.subnet)),
        "the pod's address:\n{seen}"
    );
    let owner: Vec<&str> = seen
        .lines()
        .find(|l| l.ends_with("/marker"))
        .map(|l| l.split_whitespace().skip(2).take(2).collect())
        .unwrap_or_default();
    assert_eq!(
        owner,
        ["0", "0"],
        "the rootfs is idmapped: root's files are the member's root's:\n{seen}"
    );
    let pids: Vec<i64> = p
        .ok(&["ps", "--format", "json", "app"])
        .trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    assert!(pids.contains(&member), "ps lists the member: {pids:?}");

    p.ok(&["kill", "app", "KILL"]);
    assert!(support::image::wait_until(
        std::time::Duration::from_secs(10),
        || state(p, "app")["status"] == "stopped"
    ));
    p.ok(&["delete", "app"]);
    assert!(support::process_gone(member));

    pod.finish();
}

/// A member that exits: its status reaches `run`; it ran in its own rootfs, the CT's
/// network and as PID 1 of its pid namespace, as the spec's user with its cwd, env,
/// rlimits and sysctls, and read a bind from a 0700 directory. Its seccomp filter compares arguments.
#[test]
fn a_members_process_exit_status_and_filter() {
    let pod = Pod::new();
    let p = &pod.p;
    let once = pod.app(
        "once",
        &[
            "sh",
            "-c",
            "cat /marker; readlink /proc/self/ns/net; echo pid $$; id; ulimit -n; \
             cat /proc/sys/net/ipv4/ip_unprivileged_port_start; \
             cat /etc/kubelet-hosts; pwd; echo $GREETING; exit 3",
        ],
    );
    // A bind source under a 0700 directory (as kubelet's and podman's are), the user,
    // groups, cwd, env and an rlimit of the spec.
    let hidden = p.dir.path().join("hidden");
    fs::create_dir(&hidden).unwrap();
    fs::set_permissions(&hidden, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    fs::write(hidden.join("hosts"), "10.0.0.1 from-the-host\n").unwrap();
    edit_config(&once, |spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/etc/kubelet-hosts", "type": "bind",
                "source": hidden.join("hosts"), "options": ["rbind", "ro"]
            }));
        spec["process"]["user"] =
            serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [20]});
        spec["process"]["cwd"] = serde_json::json!("/dev");
        spec["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("GREETING=hello member"));
        spec["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
        spec["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_unprivileged_port_start": "80"});
    });
    let out = p.run(&["run", "--bundle", once.to_str().unwrap(), "once"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.starts_with("rootfs of once\n"), "{said}");
    assert!(
        said.contains("uid=1000 gid=1000 groups=20"),
        "the spec's user:\n{said}"
    );
    assert!(
        said.ends_with("256\n80\n10.0.0.1 from-the-host\n/dev\nhello member\n"),
        "rlimit, sysctl, the 0700 bind, cwd, env:\n{said}"
    );
    assert!(
        said.contains(&format!("{}\n", ns_of(pod.init, "net").display())),
        "the CT's network namespace:\n{said}"
    );
    assert!(
        said.contains("pid 1\n"),
        "PID 1 of its own pid namespace:\n{said}"
    );

    // linux.seccomp: mkdir is refused with EPERM, chmod to 0777 (an argument compared)
    // with EACCES, anything else is allowed.
    let filtered = pod.app(
        "filtered",
                &[
            "sh",
            "-c",
            "mkdir /dev/shm/d; echo mkdir $?; touch /dev/shm/f; chmod 755 /dev/shm/f; echo 755 $?; \
             chmod 777 /dev/shm/f; echo 777 $?",
        ],
    );
    edit_config(&filtered, |spec| {
        let mode = |n: &str, index: u32| {
            serde_json::json!({"names": [n], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                "args": [{"index": index, "value": 0o777, "op": "SCMP_CMP_EQ"}]})
        };
        spec["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                mode("chmod", 1), mode("fchmodat", 2), mode("fchmodat2", 2)
            ]
        });
    });
    let out = p.run(&["run", "--bundle", filtered.to_str().unwrap(), "filtered"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    let err = stderr(&out);
    assert!(
        said.contains("mkdir 1\n") && err.contains("Operation not permitted"),
        "{said}{err}"
    );
    assert!(said.contains("755 0\n"), "{said}{err}");
    assert!(
        said.contains("777 1\n") && err.contains("Permission denied"),
        "{said}{err}"
    );

    pod.finish();
}

/// A member that shares its pod's pid namespace (`shareProcessNamespace`, podman's
/// `--share pid`: a pid namespace path) is in the CT's, beside the sandbox's process;
/// `ps` lists its processes (from its cgroup) and `kill --all` reaches them.
#[test]
fn a_member_can_share_the_pods_pid_namespace() {
    let pod = Pod::new();
    let p = &pod.p;
    let app = pod.app("shared", &["sh", "-c", "sleep 1000 & sleep 1000"]);
    edit_config(&app, |spec| {
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = serde_json::json!(format!("/proc/{}/ns/pid", pod.pid));
            }
        }
    });
    p.ok(&[
        "run",
        "--detach",
        "--bundle",
        app.to_str().unwrap(),
        "shared",
    ]);
    let member = state(p, "shared")["pid"].as_i64().unwrap();
    assert_eq!(
        ns_of(member, "pid"),
        ns_of(pod.init, "pid"),
        "the CT's pids"
    );
    let listed = p.ok(&["ps", "--format", "json", "shared"]);
    let pids: Vec<i64> = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        pids.len(),
        2,
        "the shell and its background sleep: {listed}"
    );
    assert!(pids.contains(&member), "{listed}");
    assert!(!pids.contains(&pod.init), "not the pod's init: {listed}");
    p.ok(&["kill", "--all", "shared", "KILL"]);
    for pid in pids {
        assert!(support::image::wait_until(
            std::time::Duration::from_secs(10),
            || support::process_gone(pid)
        ));
    }
    p.ok(&["delete", "shared"]);
    pod.finish();
}

/// A mount destination through an absolute symlink planted in the member's rootfs
/// resolves inside the rootfs, never on the host.
#[test]
fn a_members_mount_through_a_planted_symlink_stays_inside() {
    let pod = Pod::new();
    let p = &pod.p;
    let outside = p.dir.path().join("outside");
    let app = pod.app("planted", &["true"]);
    std::os::unix::fs::symlink(&outside, app.join("rootfs/evil")).unwrap();
    edit_config(&app, |spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"
            }));
    });
    let out = p.run(&["run", "--bundle", app.to_str().unwrap(), "planted"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!outside.exists(), "the mount point was made on the host");
    let inside = app.join("rootfs").join(outside.strip_prefix("/").unwrap());
    assert!(
        inside.join("sub").is_dir(),
        "{} was not made",
        inside.display()
    );
    pod.finish();
}

/// A rootfs that is an overlay mount (containerd's and podman's snapshots), which takes
/// no idmapping itself: the member gets an overlay of its idmapped layers, writes to it
/// as its root, and the files land in the upper layer owned by the host's root.
#[test]
fn a_members_overlay_rootfs_is_made_of_idmapped_layers() {
    let pod = Pod::new();
    let p = &pod.p;
    let app = pod.app(
        "layered",
        &[
            "sh",
            "-c",
            "cat /marker && mkdir -p /www && echo written > /www/x && cat /www/x && ls -ln /www",
        ],
    );
    edit_config(&app, |spec| {
        spec["root"]["readonly"] = serde_json::json!(false)
    });
    let layers = p.dir.path().join("layers");
    for dir in ["upper", "work", "merged"] {
        fs::create_dir_all(layers.join(dir)).unwrap();
    }
    let lower = app.join("rootfs");
    let merged = layers.join("merged");
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        layers.join("upper").display(),
        layers.join("work").display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .unwrap();
    edit_config(&app, |spec| {
        spec["root"]["path"] = serde_json::json!(merged)
    });
    let out = p.run(&["run", "--bundle", app.to_str().unwrap(), "layered"]);
    nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = stdout(&out);
    assert!(said.starts_with("rootfs of layered\nwritten\n"), "{said}");
    assert!(
        said.contains(" 0        0 "),
        "the member's root owns what it wrote:\n{said}"
    );
    let written = layers.join("upper/www/x");
    assert_eq!(fs::read_to_string(&written).unwrap(), "written\n");
    let meta = fs::metadata(&written).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta)
        ),
        (0, 0),
        "on the host, the file is root's"
    );
    pod.finish();
}

/// A terminal: `run` of a terminal member, and `exec --tty` into a running member.
#[test]
fn a_member_has_a_terminal() {
    let pod = Pod::new();
    let p = &pod.p;
    let app = pod.app("app", &["sleep", "1000"]);
    p.ok(&["run", "--detach", "--bundle", app.to_str().unwrap(), "app"]);
    let tty = pod.app(
        "tty",
        &["sh", "-c", "tty; test -t 0 && echo stdin-is-a-tty; exit 4"],
    );
    edit_config(&tty, |spec| {
        spec["process"]["terminal"] = serde_json::json!(true)
    });
    let ran = support::image::run_in_pty(
        p.cmd()
            .args(["run", "--bundle", tty.to_str().unwrap(), "tty"]),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(ran.code, 4, "{ran:?}");
    assert!(
        ran.stdout.contains("/dev/pts/0") && ran.stdout.contains("stdin-is-a-tty"),
        "a terminal of the member's own devpts:\n{ran:?}"
    );
    let ran = support::image::run_in_pty(
        p.cmd()
            .args(["exec", "--tty", "app", "sh", "-c", "tty; cat /marker"]),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout.contains("/dev/pts/") && ran.stdout.contains("rootfs of app"),
        "{ran:?}"
    );

    p.ok(&["delete", "--force", "app"]);
    pod.finish();
}

/// A member whose set-up fails (a filesystem type the kernel does not have) is not
/// created, and leaves no record, files, cgroup or process.
#[test]
fn a_failed_member_create_leaves_nothing() {
    let pod = Pod::new();
    let p = &pod.p;
    let broken = pod.app("broken", &["true"]);
    edit_config(&broken, |spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/data", "type": "nosuchfs", "source": "none"
            }));
    });
    let out = p.run(&["create", "--bundle", broken.to_str().unwrap(), "broken"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("mounting nosuchfs on /data"), "{err}");
    assert!(!p.ok(&["list", "-q"]).contains("broken"));
    assert_eq!(files_of(&pod, "broken"), None, "files are left");
    let member_cgroup = pids_cgroup(pod.init, "broken");
    assert!(
        !member_cgroup.exists(),
        "{} is left",
        member_cgroup.display()
    );
    let leftover = std::process::Command::new("pgrep")
        .args(["-f", "broken/config.json|proxcage.*broken"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&leftover.stdout).trim().is_empty(),
        "processes left"
    );

    pod.finish();
}

/// A member create killed after the member was made (by its own createRuntime hook,
/// before its record is written): `health --repair` recovers the create, and no waiter,
/// member process, cgroup or file is left.
#[test]
fn a_member_create_killed_midway_is_recovered() {
    let pod = Pod::new();
    let p = &pod.p;
    let app = pod.app("killed", &["sleep", "1000"]);
    edit_config(&app, |spec| {
        spec["hooks"] = serde_json::json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $PPID"]}]
        })
    });
    let out = p.run(&["create", "--bundle", app.to_str().unwrap(), "killed"]);
    assert_eq!(
        out.status.code(),
        None,
        "the create was killed: {}",
        stderr(&out)
    );
    let cgroup = pids_cgroup(pod.init, "killed");
    let member: Vec<i64> = fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(
        !member.is_empty(),
        "the member was made: {}",
        cgroup.display()
    );
    // The waiter left in the caller's tree waits in the member's mount point.
    let mountpoint = files_of(&pod, "killed").expect("its files").join("root");
    let waiters: Vec<i64> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid: &i64| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == mountpoint)
        })
        .collect();
    assert!(!waiters.is_empty(), "the waiter was left");
    let member: Vec<i64> = member.into_iter().chain(waiters).collect();
    let repaired = p.run(&["health", "--repair"]);
    let said = format!("{}{}", stdout(&repaired), stderr(&repaired));
    assert!(said.contains("create-interrupted"), "{said}");
    for pid in member {
        assert!(
            support::image::wait_until(std::time::Duration::from_secs(10), || {
                support::process_gone(pid)
            }),
            "process {pid} of the member is left"
        );
    }
    assert!(!cgroup.exists(), "{} is left", cgroup.display());
    let report = p.run(&["health"]);
    assert!(report.status.success(), "{}", stdout(&report));
    pod.finish();
}

/// A member left running when its sandbox is deleted is stopped first, as containerd
/// stops a pod's containers before its sandbox; its record stays for its own delete.
#[test]
fn deleting_the_sandbox_stops_its_members() {
    let pod = Pod::new();
    let p = &pod.p;
    let left = pod.app("left", &["sleep", "1000"]);
    p.ok(&[
        "run",
        "--detach",
        "--bundle",
        left.to_str().unwrap(),
        "left",
    ]);
    let left_pid = state(p, "left")["pid"].as_i64().unwrap();
    // A member created, never started: its waiter ends with it (the CT's stop does not
    // wait for it).
    let created = pod.app("created", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", created.to_str().unwrap(), "created"]);
    p.ok(&["delete", "--force", "pod"]);
    assert!(
        support::process_gone(left_pid),
        "the member stopped with its pod"
    );
    assert_eq!(state(p, "left")["status"], "stopped");
    assert_eq!(state(p, "created")["status"], "stopped");
    p.ok(&["delete", "left"]);
    p.ok(&["delete", "created"]);
    assert_eq!(mounts_under(p.dir.path()), Vec::<String>::new());
    pod.standin.assert_nothing_left(p);
}

/// A podman pod's member carries no CRI annotation: it joins the infra container's ipc
/// and uts namespaces by `/proc/PID/ns/*` and its network by the client's path. Routed
/// by default to runc, it follows its sandbox to pct and runs nested in the pod's CT.
#[test]
fn a_member_by_namespace_paths_follows_its_sandbox_to_pct() {
    support::require_tool("runc", "runc");
    let standin = PctStandin::new();
    let config = standin.proxcage_config().replace(
        "default_backend = \"pct\"",
        "default_backend = \"runc\"\n\n[[route]]\nbackend = \"pct\"\nid = \"infra\"",
    );
    let p = proxcage_with_config(&standin, &config);
    let net = CniLikeNetns::new();
    let infra = busybox_bundle(p.dir.path(), "infra", &["sleep", "1000"]);
    edit_config(&infra, |spec| {
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = serde_json::json!(net.path());
            }
        }
    });
    p.ok(&[
        "run",
        "--detach",
        "--bundle",
        infra.to_str().unwrap(),
        "infra",
    ]);
    assert_eq!(p.backend_of("infra"), "pct");
    let pid = state(&p, "infra")["pid"].as_i64().unwrap();
    let member = busybox_bundle(
        p.dir.path(),
        "member",
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/net; hostname; echo pid $$",
        ],
    );
    edit_config(&member, |spec| {
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            match ns["type"].as_str().unwrap() {
                "network" => ns["path"] = serde_json::json!(net.path()),
                "ipc" => ns["path"] = serde_json::json!(format!("/proc/{pid}/ns/ipc")),
                "uts" => ns["path"] = serde_json::json!(format!("/proc/{pid}/ns/uts")),
                _ => {}
            }
        }
    });
    let out = p.run(&[
        "run",
        "--keep",
        "--bundle",
        member.to_str().unwrap(),
        "member",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        p.backend_of("member"),
        "pct",
        "the member follows its sandbox"
    );
    let said = stdout(&out);
    assert!(
        said.starts_with(&format!("{}\n", ns_of(pid, "net").display())),
        "the pod CT's network:\n{said}"
    );
    assert!(said.ends_with("pid 1\n"), "{said}");
    p.ok(&["delete", "member"]);
    p.ok(&["delete", "--force", "infra"]);
    standin.assert_nothing_left(&p);
}

/// The pod CT's `memory`, `swap` and `cpulimit` in `pct config`.
fn pod_size(pod: &Pod) -> (String, String, String) {
    let vmid = pod.vmid();
    let config = pod.standin.pct_ok(&["config", &vmid.to_string()]);
    let option = |key: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in\n{config}"))
            .to_string()
    };
    (option("memory"), option("swap"), option("cpulimit"))
}

/// [`pod_size`], checked against the running CT's cgroup (its memory limit and CPU
/// quota), where `pct set` applied it. (At `pct start` the stand-in writes cgroup2 keys,
/// which this host's v1 memory and cpu controllers do not take.)
fn live_pod_size(pod: &Pod) -> (String, String, String) {
    let (memory, swap, cpulimit) = pod_size(pod);
    let mib: u64 = memory.parse().unwrap();
    let quota = match cpulimit.parse::<f64>().unwrap() {
        0.0 => "-1".to_string(),
        cpus => ((cpus * 100_000.0) as u64).to_string(),
    };
    support::assert_cgroup(
        pod.init,
        &[
            ("memory", "memory.limit_in_bytes", &(mib << 20).to_string()),
            ("cpu", "cpu.cfs_quota_us", &quota),
        ],
    );
    (memory, swap, cpulimit)
}

/// The memory limit and CPU quota of the member `id`'s own cgroup.
fn member_limits(pod: &Pod, id: &str, memory: u64, quota: &str) {
    let pid = state(&pod.p, id)["pid"].as_i64().unwrap();
    support::assert_cgroup(
        pid,
        &[
            ("memory", "memory.limit_in_bytes", &memory.to_string()),
            ("cpu", "cpu.cfs_quota_us", quota),
        ],
    );
}

/// The host's memory and swap in MiB, as `/proc/meminfo` gives them.
fn host_memory() -> (String, String) {
    let info = fs::read_to_string("/proc/meminfo").unwrap();
    let mib = |key: &str| {
        let kib: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        (kib / 1024).to_string()
    };
    (mib("MemTotal:"), mib("SwapTotal:"))
}

/// A member with memory and CPU limits.
fn limited_app(pod: &Pod, name: &str, memory: i64, quota: i64) -> PathBuf {
    let app = pod.app(name, &["sleep", "1000"]);
    edit_config(&app, |spec| {
        spec["linux"]["resources"]["memory"] = serde_json::json!({"limit": memory, "swap": memory});
        spec["linux"]["resources"]["cpu"] =
            serde_json::json!({"quota": quota, "period": 100000, "shares": 512});
    });
    app
}

/// The pod CT is sized for the pod: the sum of its containers' limits when each has one,
/// the host's memory (and no CPU limit) otherwise; a sandbox without limits does not get
/// Proxmox's default 512 MiB. Members made, updated and deleted resize the running CT.
#[test]
fn the_pod_ct_is_the_sum_of_its_containers_limits() {
    let pod = Pod::new();
    let p = &pod.p;
    let (host_mib, host_swap) = host_memory();
    let unbounded = (host_mib, host_swap, "0".to_string());
    assert_eq!(pod_size(&pod), unbounded, "a sandbox without limits");

    let a = limited_app(&pod, "a", 128 << 20, 50_000);
    p.ok(&["create", "--bundle", a.to_str().unwrap(), "a"]);
    let b = limited_app(&pod, "b", 64 << 20, 25_000);
    p.ok(&["run", "--detach", "--bundle", b.to_str().unwrap(), "b"]);
    assert_eq!(
        live_pod_size(&pod),
        ("192".into(), "0".into(), "0.75".into()),
        "two members with limits"
    );
    // Each member's own cgroup, below the CT's, holds its own limits.
    member_limits(&pod, "a", 128 << 20, "50000");
    member_limits(&pod, "b", 64 << 20, "25000");

    let update = p.dir.path().join("update.json");
    fs::write(
        &update,
        r#"{"memory":{"limit":268435456,"swap":268435456},"cpu":{"quota":100000,"period":100000}}"#,
    )
    .unwrap();
    p.ok(&["update", "--resources", update.to_str().unwrap(), "b"]);
    assert_eq!(
        live_pod_size(&pod),
        ("384".into(), "0".into(), "1.5".into()),
        "b updated"
    );
    member_limits(&pod, "b", 256 << 20, "100000");
    let refused = p.run(&["update", "--pids-limit", "10", "b"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("the pids limit"),
        "{}",
        stderr(&refused)
    );

    p.ok(&["delete", "--force", "a"]);
    assert_eq!(
        live_pod_size(&pod),
        ("256".into(), "0".into(), "1".into()),
        "a deleted"
    );

    let free = pod.app("free", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", free.to_str().unwrap(), "free"]);
    assert_eq!(live_pod_size(&pod), unbounded, "a member without a limit");
    p.ok(&["delete", "--force", "free"]);
    assert_eq!(live_pod_size(&pod), ("256".into(), "0".into(), "1".into()));
    p.ok(&["delete", "--force", "b"]);
    assert_eq!(live_pod_size(&pod), unbounded, "no member left");
    pod.finish();
}

/// Members whose pod is gone (its CT stopped and destroyed by hand, one member running,
/// one created): the stop does not hang on the created one, whose waiter ends; `health`
/// reports both (`pod-member-orphaned`) beside the sandbox's `ct-gone`, and `--repair`
/// forgets them: their records, files and cgroups go.
#[test]
fn members_whose_pod_is_gone_are_reported_and_forgotten() {
    let pod = Pod::new();
    let p = &pod.p;
    let running = pod.app("running", &["sleep", "1000"]);
    p.ok(&[
        "run",
        "--detach",
        "--bundle",
        running.to_str().unwrap(),
        "running",
    ]);
    let waiting = pod.app("waiting", &["sleep", "1000"]);
    let pid_file = p.dir.path().join("waiting.pid");
    p.ok(&[
        "create",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--bundle",
        waiting.to_str().unwrap(),
        "waiting",
    ]);
    let waiter: i64 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cgroups = [
        pids_cgroup(pod.init, "running"),
        pids_cgroup(pod.init, "waiting"),
    ];
    let vmid = pod.vmid().to_string();
    pod.standin.pct_ok(&["stop", &vmid]);
    pod.standin.pct_ok(&["destroy", &vmid]);

    let report = p.run(&["health"]);
    let said = stdout(&report);
    assert!(!report.status.success(), "{said}");
    for id in ["running", "waiting"] {
        assert!(
            said.lines().any(
                |l| l.contains("pod-member-orphaned") && l.contains(&format!("container {id}"))
            ),
            "{id} is reported:\n{said}"
        );
    }
    // The created member's waiter reaped what the CT's end killed (else the CT's init
    // could not end, and `pct stop` hung) and ended with it.
    assert!(
        support::image::wait_until(std::time::Duration::from_secs(10), || {
            support::process_gone(waiter)
        }),
        "the waiter {waiter} is left"
    );

    let repaired = p.run(&["health", "--repair"]);
    let said = format!("{}{}", stdout(&repaired), stderr(&repaired));
    assert!(said.contains("forgot container waiting"), "{said}");
    for cgroup in &cgroups {
        assert!(!cgroup.exists(), "{} is left", cgroup.display());
    }
    assert_eq!(files_of(&pod, "running"), None, "files are left");
    assert_eq!(files_of(&pod, "waiting"), None, "files are left");
    assert_eq!(p.ok(&["list", "-q"]).trim(), "", "containers are left");
    let report = p.run(&["health"]);
    assert!(report.status.success(), "{}", stdout(&report));
    assert_eq!(mounts_under(p.dir.path()), Vec::<String>::new());
    pod.standin.assert_nothing_left(p);
}
