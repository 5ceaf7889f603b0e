//! The delegate against a stand-in binary that records its argv and answers as told: the
//! command line each request becomes (what runc and crun see), how the binary's output
//! and failures come back, and the health checks of the binary and the backend's root.

use std::fs;
use std::path::{Path, PathBuf};

use proxcage_core::{
    ContainerId, CreateRequest, DeleteRequest, ErrorKind, ExecRequest, RunRequest, Runtime,
    Severity,
};
use proxcage_delegate::{CallerFlags, Delegate};
use proxcage_store::{Backend, Record, StateStore};
use proxcage_test_support::install_script;

/// Records each call's argv in `calls` (one arg a line, `---` after each call). Answers
/// `--version` with the file `version`; a subcommand `C` prints `out.C`, logs the text of
/// `fail.C` as a runc-style error line and exits 1, or exits with the code in `exit.C`.
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
        --version) [ -f "$d/version" ] || exit 3; cat "$d/version"; exit 0 ;;
        -*) shift ;;
        *) break ;;
    esac
done
[ "$1" = update ] && [ "$2" = --resources ] && cat "$3" > "$d/resources"
if [ -f "$d/fail.$1" ]; then
    printf '{"level":"error","msg":"%s","time":"t"}\n' "$(cat "$d/fail.$1")" >> "$log"
    exit 1
fi
[ -f "$d/out.$1" ] && cat "$d/out.$1"
[ -f "$d/exit.$1" ] && exit "$(cat "$d/exit.$1")"
exit 0
"#;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        install_script(&dir.path().join("fake-runc"), FAKE);
        fs::create_dir(dir.path().join("root")).unwrap();
        Fake { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn delegate(&self) -> Delegate {
        Delegate::new("fake", self.path("fake-runc"), self.root())
    }

    fn set(&self, name: &str, text: &str) {
        fs::write(self.path(name), text).unwrap();
    }

    /// Each call's argv without the global flags every call starts with (`--version`, which
    /// runs without them, left out).
    fn calls(&self) -> Vec<Vec<String>> {
        let text = fs::read_to_string(self.path("calls")).unwrap_or_default();
        let root = self.root().display().to_string();
        text.split_terminator("---\n")
            .filter(|call| *call != "--version\n")
            .map(|call| {
                let argv: Vec<String> = call.lines().map(str::to_string).collect();
                assert_eq!(argv[..2], ["--root", root.as_str()], "{argv:?}");
                assert_eq!(argv[2], "--log", "{argv:?}");
                assert!(argv[3].starts_with("/proc/"), "{argv:?}");
                assert_eq!(argv[4..6], ["--log-format", "json"], "{argv:?}");
                argv[6..].to_vec()
            })
            .collect()
    }

    fn last_call(&self) -> Vec<String> {
        self.calls().pop().expect("the binary was not called")
    }
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn caller_flags_are_passed_in_runcs_spelling_before_the_subcommand() {
    let flags = CallerFlags {
        systemd_cgroup: true,
        rootless: Some("auto".into()),
        debug: true,
    };
    assert_eq!(
        flags.args(),
        ["--debug", "--systemd-cgroup", "--rootless=auto"].map(std::ffi::OsString::from)
    );
    assert!(CallerFlags::default().args().is_empty());

    let fake = Fake::new();
    let d = fake
        .delegate()
        .global_arg("--cgroup-manager=disabled")
        .global_args(flags.args());
    d.start(&id("c1")).unwrap();
    assert_eq!(
        fake.last_call(),
        strings(&[
            "--cgroup-manager=disabled",
            "--debug",
            "--systemd-cgroup",
            "--rootless=auto",
            "start",
            "c1"
        ])
    );
}

#[test]
fn create_passes_every_option_of_the_request() {
    let fake = Fake::new();
    let mut req = CreateRequest::new(id("web-1"), "/bundles/web", Default::default());
    fake.delegate().create(&req).unwrap();
    assert_eq!(
        fake.last_call(),
        strings(&["create", "--bundle", "/bundles/web", "web-1"])
    );

    req.pid_file = Some("/run/web.pid".into());
    req.console_socket = Some("/run/console.sock".into());
    req.pidfd_socket = Some("/run/pidfd.sock".into());
    req.preserve_fds = 2;
    req.no_pivot = true;
    req.no_new_keyring = true;
    fake.delegate().create(&req).unwrap();
    assert_eq!(
        fake.last_call(),
        strings(&[
            "create",
            "--bundle",
            "/bundles/web",
            "--pid-file",
            "/run/web.pid",
            "--console-socket",
            "/run/console.sock",
            "--pidfd-socket",
            "/run/pidfd.sock",
            "--preserve-fds=2",
            "--no-pivot",
            "--no-new-keyring",
            "web-1"
        ])
    );
}

#[test]
fn a_create_that_fails_silently_reports_its_exit_code() {
    let fake = Fake::new();
    fake.set("exit.create", "5");
    let err = fake
        .delegate()
        .create(&CreateRequest::new(id("web-1"), "/b", Default::default()))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("create web-1")
            && text.contains("exit status 5")
            && text.contains("it failed without an error message"),
        "{text}"
    );
}

#[test]
fn a_create_that_fails_reports_the_binarys_own_message() {
    let fake = Fake::new();
    fake.set("fail.create", "cannot allocate tty");
    let err = fake
        .delegate()
        .create(&CreateRequest::new(id("web-1"), "/b", Default::default()))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("fake: ") && text.ends_with("cannot allocate tty"),
        "{text}"
    );
}

#[test]
fn run_passes_its_flags_and_returns_the_containers_exit_code() {
    let fake = Fake::new();
    fake.set("exit.run", "7");
    let req = RunRequest {
        create: CreateRequest::new(id("job"), "/b", Default::default()),
        detach: false,
        keep: true,
        no_subreaper: true,
    };
    assert_eq!(fake.delegate().run(&req).unwrap(), 7);
    assert_eq!(
        fake.last_call(),
        strings(&["run", "--bundle", "/b", "--keep", "--no-subreaper", "job"])
    );
    let req = RunRequest {
        detach: true,
        keep: false,
        no_subreaper: false,
        ..req
    };
    fs::remove_file(fake.path("exit.run")).unwrap();
    assert_eq!(fake.delegate().run(&req).unwrap(), 0);
    assert_eq!(
        fake.last_call(),
        strings(&["run", "--bundle", "/b", "--detach", "job"])
    );
}

#[test]
fn exec_passes_every_option_of_the_request() {
    let fake = Fake::new();
    let mut req = ExecRequest::new(id("web-1"));
    req.args = strings(&["sh", "-c", "echo a  b"]);
    req.console_socket = Some("/run/console.sock".into());
    req.pidfd_socket = Some("/run/pidfd.sock".into());
    req.pid_file = Some("/run/exec.pid".into());
    req.cwd = Some("/work".into());
    req.env = strings(&["A=1", "B=two words"]);
    req.user = Some("1000:1000".into());
    req.additional_gids = vec![10, 20];
    req.caps = strings(&["CAP_NET_ADMIN"]);
    req.apparmor = Some("unconfined".into());
    req.process_label = Some("system_u:system_r:container_t".into());
    req.cgroup = Some("sub".into());
    req.tty = true;
    req.detach = true;
    req.no_new_privs = true;
    req.ignore_paused = true;
    req.preserve_fds = 1;
    assert_eq!(fake.delegate().exec(&req).unwrap(), 0);
    assert_eq!(
        fake.last_call(),
        strings(&[
            "exec",
            "--console-socket",
            "/run/console.sock",
            "--pidfd-socket",
            "/run/pidfd.sock",
            "--pid-file",
            "/run/exec.pid",
            "--cwd",
            "/work",
            "--env",
            "A=1",
            "--env",
            "B=two words",
            "--user",
            "1000:1000",
            "--additional-gids",
            "10",
            "--additional-gids",
            "20",
            "--cap",
            "CAP_NET_ADMIN",
            "--apparmor",
            "unconfined",
            "--process-label",
            "system_u:system_r:container_t",
            "--cgroup",
            "sub",
            "--tty",
            "--detach",
            "--no-new-privs",
            "--ignore-paused",
            "--preserve-fds=1",
            "web-1",
            "sh",
            "-c",
            "echo a  b"
        ])
    );
}

#[test]
fn exec_from_a_process_file_ignores_the_arguments_and_returns_the_exit_code() {
    let fake = Fake::new();
    fake.set("exit.exec", "42");
    // The binary keeps web-1 in <root>/web-1.
    fs::create_dir(fake.root().join("web-1")).unwrap();
    let mut req = ExecRequest::new(id("web-1"));
    req.process_file = Some("/tmp/process.json".into());
    req.args = strings(&["ignored"]);
    assert_eq!(fake.delegate().exec(&req).unwrap(), 42);
    assert_eq!(
        fake.last_call(),
        strings(&["exec", "--process", "/tmp/process.json", "web-1"])
    );
    // A failed exec whose container's directory is gone: the container does not exist.
    fs::remove_dir(fake.root().join("web-1")).unwrap();
    let err = fake.delegate().exec(&req).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.to_string(), "container web-1 does not exist");
}

#[test]
fn kill_delete_pause_and_resume_name_the_container() {
    let fake = Fake::new();
    let d = fake.delegate();
    let c = id("c");
    d.kill(proxcage_core::KillRequest {
        id: &c,
        signal: proxcage_core::Signal::TERM,
        all: true,
    })
    .unwrap();
    d.delete(DeleteRequest {
        id: &c,
        force: true,
    })
    .unwrap();
    d.delete(DeleteRequest {
        id: &c,
        force: false,
    })
    .unwrap();
    d.pause(&c).unwrap();
    d.resume(&c).unwrap();
    assert_eq!(
        fake.calls(),
        [
            strings(&["kill", "--all", "c", "15"]),
            strings(&["delete", "--force", "c"]),
            strings(&["delete", "c"]),
            strings(&["pause", "c"]),
            strings(&["resume", "c"]),
        ]
    );
}

#[test]
fn a_request_about_a_container_the_binary_does_not_have_is_not_found() {
    let fake = Fake::new();
    fake.set("fail.pause", "container not running");
    let err = fake.delegate().pause(&id("gone")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.to_string(), "container gone does not exist");
    // With its directory under the root, the binary's own words come through.
    fs::create_dir(fake.root().join("there")).unwrap();
    let err = fake.delegate().pause(&id("there")).unwrap_err();
    assert!(err.to_string().ends_with("container not running"), "{err}");
}

#[test]
fn unreadable_output_is_an_error_naming_the_command_and_quoting_it() {
    let fake = Fake::new();
    fake.set("out.state", "state: running\n");
    let err = fake.delegate().state(&id("c")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("fake-runc state")
            && text.contains("unreadable output")
            && text.contains("state: running"),
        "{text}"
    );
    fake.set("out.ps", "[1, two]");
    let err = fake.delegate().ps(&id("c")).unwrap_err();
    assert!(err.to_string().contains("fake-runc ps"), "{err}");
}

#[test]
fn list_ps_and_features_parse_the_binarys_json() {
    let fake = Fake::new();
    let d = fake.delegate();
    // runc prints `null` for no containers and no processes.
    fake.set("out.list", "null");
    fake.set("out.ps", "null");
    assert!(d.list().unwrap().is_empty());
    assert!(d.ps(&id("c")).unwrap().is_empty());
    fake.set(
        "out.list",
        r#"[{"ociVersion":"","id":"c","pid":12,"status":"running","bundle":"/b","rootfs":"rootfs","created":"t","owner":""}]"#,
    );
    fake.set("out.ps", "[12, 13]");
    let listed = d.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].rootfs, Path::new("/b/rootfs"));
    assert_eq!(listed[0].oci_version, proxcage_core::OCI_VERSION);
    assert_eq!(d.ps(&id("c")).unwrap(), [12, 13]);
    fake.set("out.features", r#"{"ociVersionMax":"1.1.0"}"#);
    assert_eq!(d.features().unwrap()["ociVersionMax"], "1.1.0");
    assert_eq!(
        fake.calls(),
        [
            strings(&["list", "--format", "json"]),
            strings(&["ps", "--format", "json", "c"]),
            strings(&["list", "--format", "json"]),
            strings(&["ps", "--format", "json", "c"]),
            strings(&["features"]),
        ]
    );
}

fn health_of(fake: &Fake, store: &StateStore) -> Vec<proxcage_core::Finding> {
    let backend: std::sync::Arc<dyn Backend> = std::sync::Arc::new(fake.delegate());
    proxcage_store::health::reconcile(store, &backend).unwrap()
}

#[test]
fn health_warns_about_an_old_or_unreadable_version_and_fails_on_a_broken_binary() {
    let fake = Fake::new();
    let store = StateStore::open(fake.path("store")).unwrap();
    fake.set("version", "fake version 1.1.5\ncommit: x\n");
    assert!(health_of(&fake, &store).is_empty());

    fake.set("version", "fake version 0.9.1\n");
    let findings = health_of(&fake, &store);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind(), "backend-version");
    assert_eq!(findings[0].severity(), Severity::Warning);
    assert!(
        findings[0]
            .message()
            .contains("fake 0.9.1 is older than 1.0.0")
            && findings[0]
                .message()
                .contains("upgrade the Debian package 'fake'"),
        "{}",
        findings[0].message()
    );

    fake.set("version", "unknown build\n");
    let findings = health_of(&fake, &store);
    assert_eq!(findings[0].severity(), Severity::Warning);
    assert!(
        findings[0]
            .message()
            .ends_with("--version printed no version proxcage can read: \"unknown build\""),
        "{}",
        findings[0].message()
    );

    fs::remove_file(fake.path("version")).unwrap();
    let findings = health_of(&fake, &store);
    assert_eq!(findings[0].kind(), "backend-version");
    assert_eq!(findings[0].severity(), Severity::Error);
    assert!(
        findings[0].message().contains("--version failed")
            && findings[0].message().contains("exit status 3"),
        "{}",
        findings[0].message()
    );
}

#[test]
fn health_finds_containers_without_a_record_and_repairs_them() {
    let fake = Fake::new();
    fake.set("version", "fake version 1.1.5\n");
    let store = StateStore::open(fake.path("store")).unwrap();
    // One the binary can describe (its record is written back), one it cannot (deleted).
    fs::create_dir(fake.root().join("known-to-fake")).unwrap();
    fs::create_dir(fake.root().join("half")).unwrap();
    fs::create_dir(fake.root().join("not an id!")).unwrap();
    let script = fs::read_to_string(fake.path("fake-runc")).unwrap();
    let answer = r#"[ "$1" = state ] && [ "$2" = known-to-fake ] && { echo '{"ociVersion":"1.0.2","id":"known-to-fake","pid":0,"status":"stopped","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":""}'; exit 0; }"#;
    install_script(
        &fake.path("fake-runc"),
        &script.replace(
            "if [ -f \"$d/fail.$1\" ]",
            &format!("{answer}\nif [ -f \"$d/fail.$1\" ]"),
        ),
    );
    fake.set("fail.state", "container does not exist");

    let mut findings = health_of(&fake, &store);
    let kinds: Vec<(&str, &str)> = findings.iter().map(|f| (f.kind(), f.object())).collect();
    assert_eq!(
        kinds,
        [
            ("container-half-created", "container half"),
            ("record-missing", "container known-to-fake"),
        ]
    );
    assert!(
        findings[0].message().ends_with("container does not exist"),
        "{}",
        findings[0].message()
    );
    assert_eq!(findings[0].repair(), Some("fake delete --force"));
    assert!(
        findings[1].message().contains("(stopped)"),
        "{}",
        findings[1].message()
    );

    assert_eq!(
        findings[0].run_repair().unwrap().unwrap(),
        "deleted container half from fake"
    );
    assert_eq!(fake.last_call(), strings(&["delete", "--force", "half"]));
    findings[1].run_repair().unwrap().unwrap();
    let record: Record = store.read(&id("known-to-fake")).unwrap().unwrap();
    assert_eq!(record.backend(), "fake");
    assert_eq!(record.bundle(), Path::new("/b"));
}

#[test]
fn update_hands_the_resources_as_a_file_and_the_rdt_schemata_apart() {
    let fake = Fake::new();
    let json = r#"{"memory":{"limit":268435456},"cpu":{"quota":50000,"period":100000}}"#;
    let mut req = proxcage_core::UpdateRequest::new(id("c1"), serde_json::from_str(json).unwrap());
    req.l3_cache_schema = Some("L3:0=f".into());
    fake.delegate().update(&req).unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0][0..2], strings(&["update", "--resources"]));
    assert!(calls[0][2].starts_with("/proc/"), "{calls:?}");
    assert_eq!(calls[0][3], "c1");
    assert_eq!(
        calls[1],
        strings(&["update", "--l3-cache-schema=L3:0=f", "c1"])
    );
    let given: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fake.path("resources")).unwrap()).unwrap();
    assert_eq!(
        given,
        serde_json::from_str::<serde_json::Value>(json).unwrap()
    );
}

#[test]
fn events_lines_reach_the_receiver_until_it_stops() {
    let fake = Fake::new();
    fake.set(
        "out.events",
        "{\"type\":\"stats\",\"id\":\"c1\",\"data\":{\"pids\":{\"current\":1}}}\n{\"type\":\"oom\",\"id\":\"c1\"}\n{\"type\":\"stats\",\"id\":\"c1\"}\n",
    );
    let req = proxcage_core::EventsRequest {
        id: id("c1"),
        interval: std::time::Duration::from_secs(2),
        stats_only: false,
    };
    let mut seen = Vec::new();
    fake.delegate()
        .events(&req, &mut |event| {
            seen.push(event.kind.clone());
            Ok(if event.kind == "oom" {
                proxcage_core::Flow::Stop
            } else {
                proxcage_core::Flow::Continue
            })
        })
        .unwrap();
    assert_eq!(seen, ["stats", "oom"]);
    assert_eq!(
        fake.last_call(),
        strings(&["events", "--interval=2000ms", "c1"])
    );
}
