//! Containers routed to the jail backend, through the engine as the CLI and embedders
//! use it, with the ocijail stand-in (ocijail's command line and answers, without jails):
//! a `[[route]]` rule and the `io.proxcage.backend` annotation send containers there, and
//! the `[security]` policy decides which `org.freebsd.*` annotations (jail parameters) a
//! bundle may carry, before anything is made.

use std::fs;
use std::path::PathBuf;

use proxcage_core::{ContainerId, DeleteRequest, ErrorKind, Runtime, Status};
use proxcage_engine::{Config, Engine, Registry};
use proxcage_oci::Bundle;
use proxcage_test_support::ocijail::OcijailStandin;

struct Host {
    dir: tempfile::TempDir,
    ocijail: OcijailStandin,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let ocijail = OcijailStandin::install(&dir.path().join("bin"));
        Host { dir, ocijail }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Containers whose id starts with `j-` go to jails; `security` is the `[security]`
    /// table's body.
    fn engine(&self, security: &str) -> Engine {
        let text = format!(
            "default_backend = \"runc\"\n[[route]]\nbackend = \"jail\"\nid = \"j-*\"\n[backends.jail]\nbinary = \"{}\"\n[security]\n{security}\n",
            self.ocijail.binary().display()
        );
        let registry = Registry::builtin();
        let config = Config::parse(&text, &self.path("config.toml"), &registry).unwrap();
        Engine::builder(self.path("state"))
            .config(config)
            .registry(registry)
            .build()
            .unwrap()
    }

    fn bundle(&self, name: &str, annotations: serde_json::Value) -> Bundle {
        let dir = self.path(name);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["/bin/sh"]},
            "annotations": annotations,
        });
        fs::write(dir.join("config.json"), config.to_string()).unwrap();
        Bundle::load(&dir).unwrap()
    }
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

#[test]
fn a_route_and_the_annotation_send_containers_to_jails() {
    let host = Host::new();
    let engine = host.engine("");
    let plain = host.bundle("plain", serde_json::json!({}));
    engine.create(&plain.create_request(id("j-1"))).unwrap();
    let annotated = host.bundle(
        "annotated",
        serde_json::json!({"io.proxcage.backend": "jail"}),
    );
    engine
        .create(&annotated.create_request(id("other")))
        .unwrap();
    for c in ["j-1", "other"] {
        assert_eq!(engine.record(&id(c)).unwrap().backend(), "jail", "{c}");
        assert_eq!(engine.state(&id(c)).unwrap().status, Status::Created, "{c}");
    }
    let listed = engine.list().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(host.ocijail.subcommands()[..2], ["create", "create"]);
    for c in ["j-1", "other"] {
        engine
            .delete(DeleteRequest {
                id: &id(c),
                force: false,
            })
            .unwrap();
    }
    assert!(engine.list().unwrap().is_empty());
    let jail_root = host.path("state/backends/jail");
    let left: Vec<_> = fs::read_dir(&jail_root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".jid")
        .collect();
    assert!(left.is_empty(), "left in the jail backend's root: {left:?}");
}

#[test]
fn the_policy_decides_which_jail_parameters_annotations_may_set() {
    let host = Host::new();
    let engine = host.engine("jail_annotations = [\"org.freebsd.jail.vnet\"]");

    // Allowed: passed through to ocijail, which read it from config.json.
    let vnet = host.bundle("vnet", serde_json::json!({"org.freebsd.jail.vnet": "new"}));
    engine.create(&vnet.create_request(id("j-vnet"))).unwrap();
    let state = engine.state(&id("j-vnet")).unwrap();
    assert_eq!(state.annotations["org.freebsd.jail.vnet"], "new");
    engine
        .delete(DeleteRequest {
            id: &id("j-vnet"),
            force: true,
        })
        .unwrap();

    // Not allowed: refused before ocijail is asked, nothing recorded.
    let calls_before = host.ocijail.calls().len();
    let mount = host.bundle(
        "mount",
        serde_json::json!({"org.freebsd.jail.vnet": "new", "org.freebsd.jail.allow.mount": "true"}),
    );
    let err = engine
        .create(&mount.create_request(id("j-mount")))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "container j-mount: the annotation org.freebsd.jail.allow.mount=\"true\" in {}/config.json sets a jail parameter the [security] policy of {} does not let annotations set: jail_annotations allows \"org.freebsd.jail.vnet\"; remove the annotation, or add it to jail_annotations",
            host.path("mount").display(),
            host.path("config.toml").display()
        )
    );
    assert_eq!(
        host.ocijail.calls().len(),
        calls_before,
        "ocijail was asked"
    );
    assert_eq!(
        engine.record(&id("j-mount")).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // org.freebsd.parentJail nests the jail in another: a jail parameter like the others.
    let nested = host.bundle(
        "nested",
        serde_json::json!({"org.freebsd.parentJail": "outer"}),
    );
    let err = engine
        .create(&nested.create_request(id("j-nested")))
        .unwrap_err();
    assert!(err.to_string().contains("org.freebsd.parentJail"), "{err}");

    // `[]`: no annotation may set one; unset: any may (as ocijail alone).
    let none = host.engine("jail_annotations = []");
    let err = none.create(&vnet.create_request(id("j-none"))).unwrap_err();
    assert!(
        err.to_string().contains("jail_annotations allows none"),
        "{err}"
    );
    let any = host.engine("");
    any.create(&mount.create_request(id("j-any"))).unwrap();
    assert_eq!(
        any.state(&id("j-any")).unwrap().annotations["org.freebsd.jail.allow.mount"],
        "true"
    );
    any.delete(DeleteRequest {
        id: &id("j-any"),
        force: true,
    })
    .unwrap();
}

#[test]
fn a_policy_naming_something_ocijail_does_not_read_is_a_config_error() {
    let host = Host::new();
    let text = "[security]\njail_annotations = [\"io.example.vnet\"]\n";
    let registry = Registry::builtin();
    let config = Config::parse(text, &host.path("config.toml"), &registry).unwrap();
    let err = config.router(&registry).unwrap_err().to_string();
    assert!(
        err.contains(&host.path("config.toml").display().to_string())
            && err.contains("\"io.example.vnet\" is not an annotation ocijail reads")
            && err.contains("\"org.freebsd.\""),
        "{err}"
    );
}
