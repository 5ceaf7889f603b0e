//! The jail backend against the ocijail stand-in (ocijail's command line and answers,
//! without jails; it records every argv): the command line of a whole lifecycle, what
//! ocijail lacks refused before it is asked, ocijail's own errors passed on, and health.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proxcage_backend_jail::{jail, Jail, JailSettings};
use proxcage_core::{
    ContainerId, CreateRequest, DeleteRequest, ErrorKind, ExecRequest, KillRequest, RunRequest,
    Runtime, Severity, Signal, Status,
};
use proxcage_delegate::CallerFlags;
use proxcage_store::{Backend, StateStore};
use proxcage_test_support::ocijail::OcijailStandin;

struct Host {
    dir: tempfile::TempDir,
    ocijail: OcijailStandin,
}

impl Host {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ocijail = OcijailStandin::install(&dir.path().join("bin"));
        Host { dir, ocijail }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn backend(&self, flags: &CallerFlags) -> Jail {
        let settings = JailSettings {
            binary: Some(self.ocijail.binary()),
            ..Default::default()
        };
        jail(&settings, self.root(), flags, Path::new("/c.toml")).unwrap()
    }

    /// A bundle with an empty rootfs and `annotations`, as a create request for `id`.
    fn request(&self, name: &str, annotations: serde_json::Value) -> CreateRequest {
        let bundle = self.path(&format!("bundle-{name}"));
        fs::create_dir_all(bundle.join("rootfs")).unwrap();
        let _ = fs::remove_file(bundle.join("config.json"));
        proxcage_oci::write_default_spec(&bundle, false).unwrap();
        let config = bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
        spec["annotations"] = annotations;
        fs::write(&config, spec.to_string()).unwrap();
        proxcage_oci::Bundle::load(&bundle)
            .unwrap()
            .create_request(id(name))
    }

    /// Each call's argv after the global flags every call starts with, which are checked:
    /// `--root <root> --log <file> --log-format json`, and nothing of runc's besides.
    fn calls(&self) -> Vec<Vec<String>> {
        let root = self.root().display().to_string();
        self.ocijail
            .calls()
            .into_iter()
            .map(|argv| {
                assert_eq!(argv[..2], ["--root", root.as_str()], "{argv:?}");
                assert_eq!(argv[2], "--log", "{argv:?}");
                assert_eq!(argv[4..6], ["--log-format", "json"], "{argv:?}");
                argv[6..].to_vec()
            })
            .collect()
    }

    fn last_call(&self) -> Vec<String> {
        self.calls().pop().expect("ocijail was not called")
    }
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn wait_for_status(backend: &Jail, id: &ContainerId, want: Status) -> proxcage_core::State {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = backend.state(id).unwrap();
        if state.status == want || Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_whole_lifecycle_in_ocijails_command_line() {
    let host = Host::new();
    // runc's global flags ocijail has not are left out, not passed on to fail there.
    let flags = CallerFlags {
        systemd_cgroup: true,
        rootless: Some("auto".into()),
        debug: true,
    };
    let backend = host.backend(&flags);
    let c = id("c1");
    let mut req = host.request(
        "c1",
        serde_json::json!({"org.freebsd.jail.vnet": "new", "org.freebsd.jail.allow.mlock": "true"}),
    );
    let pid_file = host.path("c1.pid");
    req.pid_file = Some(pid_file.clone());
    req.no_pivot = true;
    req.no_new_keyring = true;
    backend.create(&req).unwrap();
    let bundle = req.bundle.display().to_string();
    let pid_path = pid_file.display().to_string();
    assert_eq!(
        host.last_call(),
        strings(&["create", "--bundle", &bundle, "--pid-file", &pid_path, "c1"])
    );
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();

    // ocijail's state, completed: the annotations it read from config.json and the jid.
    let state = backend.state(&c).unwrap();
    assert_eq!(host.last_call(), strings(&["state", "c1"]));
    assert_eq!((state.status, state.pid), (Status::Created, pid));
    assert_eq!(state.annotations["org.freebsd.jail.vnet"], "new");
    assert_eq!(state.annotations["org.freebsd.jail.allow.mlock"], "true");
    assert_eq!(state.annotations["org.freebsd.jail.jid"], "1");
    assert!(
        time::OffsetDateTime::parse(
            &state.created,
            &time::format_description::well_known::Rfc3339
        )
        .is_ok(),
        "created: {:?}",
        state.created
    );

    backend.start(&c).unwrap();
    assert_eq!(host.last_call(), strings(&["start", "c1"]));
    assert_eq!(backend.state(&c).unwrap().status, Status::Running);

    // exec runs the process file's process and returns its exit code.
    let process = host.path("process.json");
    fs::write(
        &process,
        r#"{"cwd":"/","args":["sh","-c","exit 7"],"env":["PATH=/usr/bin:/bin"]}"#,
    )
    .unwrap();
    let mut exec = ExecRequest::new(c.clone());
    exec.process_file = Some(process.clone());
    assert_eq!(backend.exec(&exec).unwrap(), 7);
    let process_path = process.display().to_string();
    assert_eq!(
        host.last_call(),
        strings(&["exec", "--process", &process_path, "c1"])
    );

    backend
        .kill(KillRequest {
            id: &c,
            signal: Signal::KILL,
            all: true,
        })
        .unwrap();
    assert_eq!(host.last_call(), strings(&["kill", "--all", "c1", "9"]));
    let state = wait_for_status(&backend, &c, Status::Stopped);
    assert_eq!((state.status, state.pid), (Status::Stopped, 0));

    let listed = backend.list().unwrap();
    assert_eq!(host.last_call(), strings(&["list", "--format", "json"]));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].id.as_str(), listed[0].status),
        ("c1", Status::Stopped)
    );
    assert!(!listed[0].created.is_empty(), "{listed:?}");

    backend
        .delete(DeleteRequest {
            id: &c,
            force: false,
        })
        .unwrap();
    assert_eq!(host.last_call(), strings(&["delete", "c1"]));
    assert!(!host.root().join("c1").exists());
    assert_eq!(backend.list().unwrap(), Vec::new());
    assert_eq!(backend.features().unwrap()["ociVersionMax"], "1.2.0");
    assert_eq!(host.last_call(), strings(&["features"]));
}

#[test]
fn run_detached_is_create_then_start_and_delete_force_ends_it() {
    let host = Host::new();
    let backend = host.backend(&CallerFlags::default());
    let run = RunRequest {
        create: host.request("r1", serde_json::json!({})),
        detach: true,
        keep: false,
        no_subreaper: false,
    };
    assert_eq!(backend.run(&run).unwrap(), 0);
    let bundle = run.create.bundle.display().to_string();
    assert_eq!(
        host.calls(),
        [
            strings(&["create", "--bundle", &bundle, "r1"]),
            strings(&["start", "r1"])
        ]
    );
    let c = id("r1");
    assert_eq!(backend.state(&c).unwrap().status, Status::Running);
    // ocijail's own refusal, in its words.
    let err = backend
        .delete(DeleteRequest {
            id: &c,
            force: false,
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("jail: ")
            && err.ends_with(
                "delete: container not in \"stopped\" or \"created\" state (currently \"running\")"
            ),
        "{err}"
    );
    backend
        .delete(DeleteRequest {
            id: &c,
            force: true,
        })
        .unwrap();
    assert_eq!(host.last_call(), strings(&["delete", "--force", "r1"]));
    assert!(!host.root().join("r1").exists());
}

#[test]
fn what_ocijail_lacks_is_refused_naming_the_backend_before_ocijail_is_asked() {
    let host = Host::new();
    let backend = host.backend(&CallerFlags::default());
    let c = id("c1");
    let process = host.path("process.json");
    fs::write(&process, r#"{"cwd":"/","args":["true"]}"#).unwrap();
    let with_process = |change: &dyn Fn(&mut ExecRequest)| {
        let mut req = ExecRequest::new(c.clone());
        req.process_file = Some(process.clone());
        change(&mut req);
        req
    };
    let mut inline = ExecRequest::new(c.clone());
    inline.args = strings(&["sh"]);
    let mut pidfd = host.request("c1", serde_json::json!({}));
    pidfd.pidfd_socket = Some(host.path("pidfd.sock"));
    let foreground = RunRequest {
        create: host.request("c1", serde_json::json!({})),
        detach: false,
        keep: false,
        no_subreaper: false,
    };
    let update = proxcage_core::UpdateRequest::new(c.clone(), Default::default());
    let events = proxcage_core::EventsRequest {
        id: c.clone(),
        interval: std::time::Duration::from_secs(5),
        stats_only: true,
    };
    let checkpoint = proxcage_core::CheckpointRequest {
        id: c.clone(),
        criu_args: Vec::new(),
    };
    let refusals = [
        (
            "pause",
            backend.pause(&c).unwrap_err(),
            "has no pause or resume command",
        ),
        ("update", backend.update(&update).unwrap_err(), "rctl(8)"),
        (
            "events",
            backend
                .events(&events, &mut |_| Ok(proxcage_core::Flow::Continue))
                .unwrap_err(),
            "has no update or events command",
        ),
        (
            "checkpoint",
            backend.checkpoint(&checkpoint).unwrap_err(),
            "has no checkpoint or restore command",
        ),
        (
            "resume",
            backend.resume(&c).unwrap_err(),
            "has no pause or resume command",
        ),
        (
            "list the container's processes",
            backend.ps(&c).unwrap_err(),
            "ps -J <jid>",
        ),
        (
            "run a container in the foreground",
            backend.run(&foreground).unwrap_err(),
            "use run --detach, or create and start",
        ),
        (
            "exec a command given on the command line",
            backend.exec(&inline).unwrap_err(),
            "pass --process FILE",
        ),
        (
            "exec with --cwd",
            backend
                .exec(&with_process(&|r| r.cwd = Some("/tmp".into())))
                .unwrap_err(),
            "into the --process file",
        ),
        (
            "exec with --env",
            backend
                .exec(&with_process(&|r| r.env = strings(&["A=1"])))
                .unwrap_err(),
            "into the --process file",
        ),
        (
            "exec with --user",
            backend
                .exec(&with_process(&|r| r.user = Some("1000".into())))
                .unwrap_err(),
            "into the --process file",
        ),
        (
            "exec with --cap",
            backend
                .exec(&with_process(&|r| r.caps = strings(&["CAP_KILL"])))
                .unwrap_err(),
            "into the --process file",
        ),
        (
            "exec with --apparmor",
            backend
                .exec(&with_process(&|r| r.apparmor = Some("p".into())))
                .unwrap_err(),
            "leave it out",
        ),
        (
            "create with --pidfd-socket",
            backend.create(&pidfd).unwrap_err(),
            "FreeBSD has no pidfds",
        ),
    ];
    for (what, err, says) in refusals {
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "container c1: the jail backend cannot {what}: ocijail, which it drives, "
            )) && text.contains(says),
            "{what}: {text}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}");
    }
    assert_eq!(host.calls(), Vec::<Vec<String>>::new(), "ocijail was asked");

    // ocijail makes jails as root: a rootless caller is told so at once.
    let settings = JailSettings {
        binary: Some(host.ocijail.binary()),
        ..Default::default()
    };
    let rootless = CallerFlags {
        rootless: Some("true".into()),
        ..Default::default()
    };
    let err = jail(&settings, host.root(), &rootless, Path::new("/c.toml")).unwrap_err();
    assert!(
        err.to_string().contains("ocijail makes jails as root only"),
        "{err}"
    );
}

#[test]
fn ocijails_own_errors_come_back_in_its_words_and_leave_nothing() {
    let host = Host::new();
    let backend = host.backend(&CallerFlags::default());
    // ocijail refuses a jail parameter value it does not know; its message is passed on.
    let bad = host.request("bad", serde_json::json!({"org.freebsd.jail.vnet": "bogus"}));
    let err = backend.create(&bad).unwrap_err();
    assert!(
        err.to_string().starts_with("jail: ")
            && err
                .to_string()
                .ends_with("bad value for org.freebsd.jail.vnet: bogus"),
        "{err}"
    );
    assert!(!host.root().join("bad").exists());

    // An allow.* parameter ocijail does not know it ignores, with a warning it logs as it
    // logs errors: the create succeeded, and is not taken for a failure.
    let odd = host.request(
        "odd",
        serde_json::json!({"org.freebsd.jail.allow.bogus": "true"}),
    );
    backend.create(&odd).unwrap();
    let c = id("odd");
    backend.start(&c).unwrap();
    let err = backend.start(&c).unwrap_err().to_string();
    assert!(
        err.ends_with("start: container not in \"created\" state (currently \"running\")"),
        "{err}"
    );
    backend
        .delete(DeleteRequest {
            id: &c,
            force: true,
        })
        .unwrap();

    // A container ocijail does not have is runc's "does not exist".
    let err = backend.state(&id("nope")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "container nope does not exist");
    let err = backend
        .kill(KillRequest {
            id: &id("nope"),
            signal: Signal::TERM,
            all: false,
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn health_checks_ocijail_and_its_version() {
    let host = Host::new();
    let backend = host.backend(&CallerFlags::default());
    let store = StateStore::open(host.path("state")).unwrap();
    let version_findings = |backend: &Jail| -> Vec<proxcage_core::Finding> {
        backend
            .health(&store, &[])
            .unwrap()
            .into_iter()
            .filter(|f| f.kind() == "backend-version")
            .collect()
    };
    // The version the stand-in's source has: no finding.
    assert!(version_findings(&backend).is_empty());

    host.ocijail.set_version("ocijail version 0.4.1\n");
    let findings = version_findings(&backend);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].severity(), Severity::Warning);
    assert_eq!(
        findings[0].message(),
        "jail 0.4.1 is older than 0.5.0, the oldest proxcage supports: upgrade ocijail (pkg upgrade ocijail): older ones lack the features command and the org.freebsd.jail.allow.* annotations"
    );

    fs::remove_file(host.ocijail.binary()).unwrap();
    let findings = version_findings(&backend);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].severity(), Severity::Error);
    assert!(
        findings[0].message().contains("--version failed"),
        "{findings:?}"
    );
}
