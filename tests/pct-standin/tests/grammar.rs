//! The stand-in's command-line grammar, parameter checks and outputs that need neither
//! root nor LXC. (Having an integration test also makes `cargo test --workspace` build
//! the `pct-standin` binary that the root package's `tests/pct_standin.rs` drives.)

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Output};

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in ["pct", "pvesh"] {
            symlink(env!("CARGO_BIN_EXE_pct-standin"), dir.path().join(name)).unwrap();
        }
        Node { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(self.dir.path().join(tool))
            .env("PCT_STANDIN_ROOT", self.root())
            .args(args)
            .output()
            .unwrap()
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_empty_node() {
    let node = Node::new();
    let list = node.run("pct", &["list"]);
    assert!(list.status.success());
    assert_eq!(out(&list), "", "nothing at all, not even the header");
    assert_eq!(
        out(&node.run("pvesh", &["get", "/cluster/nextid"])),
        "100\n"
    );
    assert_eq!(
        out(&node.run(
            "pvesh",
            &["get", "/cluster/nextid", "--output-format", "json"]
        )),
        "\"100\"\n"
    );
    assert!(node.root().join("etc/pve/storage.cfg").exists());
    assert_eq!(
        std::fs::read_link(node.root().join("etc/pve/lxc")).unwrap(),
        PathBuf::from("nodes/pve/lxc")
    );
}

#[test]
fn nextid_skips_containers_and_vms() {
    let node = Node::new();
    node.run("pct", &["list"]);
    std::fs::write(
        node.root().join("etc/pve/nodes/pve/lxc/100.conf"),
        "memory: 512\n",
    )
    .unwrap();
    std::fs::write(
        node.root().join("etc/pve/qemu-server/101.conf"),
        "memory: 512\n",
    )
    .unwrap();
    assert_eq!(
        out(&node.run("pvesh", &["get", "/cluster/nextid"])),
        "102\n"
    );
    let taken = node.run("pvesh", &["get", "/cluster/nextid", "--vmid", "101"]);
    assert_eq!(taken.status.code(), Some(255));
    assert!(err(&taken)
        .starts_with("400 Parameter verification failed.\nvmid: VM 101 already exists\n"));
}

#[test]
fn parameter_errors_exit_255_with_the_usage() {
    let node = Node::new();
    let o = node.run("pct", &["create", "99", "local:vztmpl/x.tar.zst"]);
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        err(&o),
        "400 Parameter verification failed.\nvmid: invalid format - value does not look like a valid VM ID\npct create <vmid> <ostemplate> [OPTIONS]\n"
    );
    assert_eq!(out(&o), "");
    let o = node.run("pct", &["destroy", "--force", "100"]);
    assert_eq!(
        err(&o),
        "400 not enough arguments\npct destroy <vmid> [OPTIONS]\n"
    );
    let o = node.run("pct", &["exec", "100", "cmd", "-x"]);
    assert_eq!(
        err(&o),
        "Unknown option: x\n400 unable to parse option\npct exec <vmid> [<extra-args>] [OPTIONS]\n"
    );
    let o = node.run("pct", &["status", "100", "200"]);
    assert_eq!(
        err(&o),
        "400 too many arguments\npct status <vmid> [OPTIONS]\n"
    );
    let o = node.run(
        "pct",
        &[
            "create",
            "100",
            "local:vztmpl/x.tar.zst",
            "--rootfs",
            "local-lvm:1,foo=1",
        ],
    );
    assert!(err(&o).contains(
        "rootfs: invalid format - format error\nrootfs.foo: property is not defined in schema and the schema does not allow additional properties\n"
    ), "{}", err(&o));
}

#[test]
fn missing_configs_and_storages() {
    let node = Node::new();
    for cmd in [
        "status", "config", "start", "stop", "destroy", "set", "unlock",
    ] {
        let o = node.run("pct", &[cmd, "123"]);
        assert_eq!(o.status.code(), Some(255), "{cmd}");
        assert_eq!(
            err(&o),
            "Configuration file 'nodes/pve/lxc/123.conf' does not exist\n",
            "{cmd}"
        );
    }
    let o = node.run("pct", &["create", "100", "local:vztmpl/x.tar.zst"]);
    assert_eq!(
        err(&o),
        "400 Parameter verification failed.\nstorage: storage 'local' does not support container directories\npct create <vmid> <ostemplate> [OPTIONS]\n"
    );
    let o = node.run("pct", &["create", "100", "nope:vztmpl/x.tar.zst"]);
    assert_eq!(err(&o), "storage 'nope' does not exist\n");
    assert!(!node.root().join("etc/pve/nodes/pve/lxc/100.conf").exists());
}

#[test]
fn config_prints_sorted_keys_then_raw_keys() {
    let node = Node::new();
    node.run("pct", &["list"]);
    std::fs::write(
        node.root().join("etc/pve/nodes/pve/lxc/100.conf"),
        "#first%3A line\n#second\nswap: 0\nlxc.init.cmd: /bin/sh\narch: amd64\nlxc.mount.entry = /a b none bind 0 0\nmemory: 64\n\n[snap]\nmemory: 32\n",
    )
    .unwrap();
    let o = node.run("pct", &["config", "100"]);
    assert_eq!(
        out(&o),
        "arch: amd64\ndescription: first%3A line%0Asecond%0A\nmemory: 64\nswap: 0\nlxc.init.cmd: /bin/sh\nlxc.mount.entry: /a b none bind 0 0\n"
    );
    let o = node.run("pct", &["set", "100", "--memory", "128"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        std::fs::read_to_string(node.root().join("etc/pve/nodes/pve/lxc/100.conf")).unwrap(),
        "#first%3A line\n#second\narch: amd64\nmemory: 128\nswap: 0\nlxc.init.cmd: /bin/sh\nlxc.mount.entry: /a b none bind 0 0\n\n[snap]\nmemory: 32\n"
    );
    let o = node.run("pct", &["set", "100", "--delete", "memory"]);
    assert_eq!(err(&o), "unable to delete required option 'memory'\n");
    let o = node.run("pct", &["set", "100", "--unprivileged", "0"]);
    assert_eq!(
        err(&o),
        "unable to modify read-only option: 'unprivileged'\n"
    );
}

#[test]
fn refuses_to_run_without_a_root() {
    let o = Command::new(env!("CARGO_BIN_EXE_pct-standin"))
        .env_remove("PCT_STANDIN_ROOT")
        .arg("cleanup")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255));
    assert!(err(&o).contains("PCT_STANDIN_ROOT is not set"));
}
