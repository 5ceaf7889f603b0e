//! The `[security]` policy holds for an embedder as for the CLI, and on the one parse of
//! config.json: what was routed and checked is what the backend acts on.
//!
//! The pct tools are small recording stand-ins here: `pvesh` hands out VMID 100, `pct`
//! writes its argv to a file and refuses `create`, so a create goes as far as the CT's
//! options and no further.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proxcage_core::{ContainerId, ErrorKind, Runtime};
use proxcage_engine::{Config, Engine, Registry};
use proxcage_oci::Bundle;

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let host = Host {
            dir: tempfile::tempdir().unwrap(),
        };
        for sub in ["allowed/data", "files", "templates", "bin", "root"] {
            fs::create_dir_all(host.path(sub)).unwrap();
        }
        let log = host.path("pct.argv");
        host.tool("pvesh", "#!/bin/sh\necho 100\n");
        host.tool(
            "pct",
            &format!(
                "#!/bin/sh\necho \"$@\" >> {}\necho \"storage 'nowhere' does not exist\" >&2\nexit 1\n",
                log.display()
            ),
        );
        host.tool("lxc-info", "#!/bin/sh\nexit 1\n");
        host
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn tool(&self, name: &str, script: &str) {
        let path = self.path("bin").join(name);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A config routing every container to pct through the stand-in tools, with bind
    /// sources limited to `allowed/`.
    fn engine(&self) -> Engine {
        let text = format!(
            r#"
default_backend = "pct"
[backends.pct]
pct = "{bin}/pct"
pvesh = "{bin}/pvesh"
lxc_info = "{bin}/lxc-info"
files_dir = "{files}"
template_dir = "{templates}"
pve_dir = "{root}"
lock_dir = "{root}"
[security]
pct_bind_sources = ["{allowed}"]
"#,
            bin = self.path("bin").display(),
            files = self.path("files").display(),
            templates = self.path("templates").display(),
            root = self.path("root").display(),
            allowed = self.path("allowed").display(),
        );
        let registry = Registry::builtin();
        let config = Config::parse(&text, &self.path("config.toml"), &registry).unwrap();
        Engine::builder(self.path("state"))
            .config(config)
            .registry(registry)
            .build()
            .unwrap()
    }

    /// A bundle whose one mount binds `source` at /data.
    fn bundle(&self, name: &str, source: &Path) -> PathBuf {
        let dir = self.path(name);
        fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
        fs::write(dir.join("rootfs/bin/sh"), b"").unwrap();
        write_config(&dir, source);
        dir
    }

    fn pct_calls(&self) -> String {
        fs::read_to_string(self.path("pct.argv")).unwrap_or_default()
    }

    fn assert_nothing_left(&self, engine: &Engine) {
        assert!(engine.list().unwrap().is_empty(), "a record was left");
        // The root's own directory in `files` and the templates' references directory
        // stay, empty.
        for dir in ["files", "templates"] {
            let left: Vec<_> = fs::read_dir(self.path(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| !fs::read_dir(p).is_ok_and(|mut d| d.next().is_none()))
                .collect();
            assert!(left.is_empty(), "{dir} holds {left:?}");
        }
    }
}

/// A read-only bind stays a Proxmox mount point (`--mpN`), where pct's command line shows
/// its source; a read-write one becomes an idmapped raw entry.
fn write_config(bundle: &Path, source: &Path) {
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["/bin/sh"]},
        "mounts": [{"destination": "/data", "type": "bind", "source": source, "options": ["rbind", "ro"]}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]},
    });
    fs::write(bundle.join("config.json"), config.to_string()).unwrap();
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

#[test]
fn an_embedders_pct_create_with_a_source_outside_the_policy_is_refused() {
    let host = Host::new();
    let engine = host.engine();
    let bundle = Bundle::load(host.bundle("b", Path::new("/etc"))).unwrap();
    let err = engine.create(&bundle.create_request(id("c1"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("mounts[0].source /etc")
            && message.contains("pct_bind_sources allows")
            && message.contains(&host.path("config.toml").display().to_string()),
        "{message}"
    );
    assert_eq!(host.pct_calls(), "", "pct was called for a refused bundle");
    host.assert_nothing_left(&engine);

    // The backend alone, as an embedder may build it, holds the same line.
    let pct = proxcage_backend_pct::pct(
        &engine.config().settings("pct").unwrap(),
        host.path("state/backends/pct"),
        proxcage_backend_pct::BindSources::new(
            Some(vec![host.path("allowed")]),
            host.path("config.toml"),
        ),
    )
    .unwrap();
    let err = pct.create(&bundle.create_request(id("c2"))).unwrap_err();
    assert!(err.to_string().contains("mounts[0].source /etc"), "{err}");
    assert_eq!(host.pct_calls(), "");
}

#[test]
fn a_config_json_rewritten_after_the_load_changes_nothing() {
    let host = Host::new();
    let engine = host.engine();
    let allowed = host.path("allowed/data");

    // Loaded with an allowed source, then rewritten to bind /etc: the CT gets the source
    // that was checked.
    let dir = host.bundle("swapped", &allowed);
    let bundle = Bundle::load(&dir).unwrap();
    write_config(&dir, Path::new("/etc"));
    let err = engine.create(&bundle.create_request(id("c1"))).unwrap_err();
    assert!(err.to_string().contains("storage 'nowhere'"), "{err}");
    let calls = host.pct_calls();
    assert!(
        calls.contains(&format!("{},mp=/data", allowed.display())) && !calls.contains("/etc"),
        "pct create got: {calls}"
    );
    host.assert_nothing_left(&engine);

    // Loaded with /etc, then rewritten to an allowed source: still refused.
    let dir = host.bundle("sneaky", Path::new("/etc"));
    let bundle = Bundle::load(&dir).unwrap();
    write_config(&dir, &allowed);
    let err = engine.create(&bundle.create_request(id("c2"))).unwrap_err();
    assert!(err.to_string().contains("mounts[0].source /etc"), "{err}");
    host.assert_nothing_left(&engine);
}

/// Issue 22 item 6: an overlay whose options name host directories became a raw
/// `lxc.mount.entry` past the policy; it is refused before pct runs.
#[test]
fn an_overlay_naming_host_directories_is_under_the_policy() {
    let host = Host::new();
    let engine = host.engine();
    let dir = host.bundle("b", &host.path("allowed/data"));
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    config["mounts"] = serde_json::json!([{
        "destination": "/o", "type": "overlay", "source": "overlay",
        "options": ["lowerdir=/etc:/root"],
    }]);
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let bundle = Bundle::load(&dir).unwrap();
    let err = engine.create(&bundle.create_request(id("o1"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("mounts[0].options lowerdir= /etc"),
        "{err}"
    );
    assert_eq!(host.pct_calls(), "", "pct was called for a refused bundle");
    host.assert_nothing_left(&engine);
}
