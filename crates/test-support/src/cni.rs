//! A CNI network of a test's own for the engines' CNI plugins (Debian's
//! containernetworking-plugins): a bridge, subnet and IPAM state no other test shares, and
//! the check that CNI DEL removed everything CNI ADD made.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use proxcage_process::run_captured;

use crate::image::{wait_until, MountSandbox, COMMAND_TIMEOUT};

/// Where Debian's containernetworking-plugins puts the plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// A CNI network (bridge, host-local subnet, portmap, firewall, tuning) as podman's
/// default one is, with a bridge name, subnet and IPAM state of the test's own. The
/// bridge goes on drop; what CNI DEL must remove is checked by
/// [`CniNetwork::assert_clean`].
#[derive(Debug)]
pub struct CniNetwork {
    /// The directory holding the network's conflist (an engine's CNI config dir).
    pub dir: PathBuf,
    pub name: String,
    pub bridge: String,
    /// `10.215.N.`: the subnet is `10.215.N.0/24`.
    pub prefix: String,
    /// A host port for `-p` no other test uses.
    pub host_port: u16,
}

impl CniNetwork {
    /// Writes the network's conflist into `dir`; fails naming the package when the CNI
    /// plugins, `ip` or `iptables-save` are missing.
    pub fn new(dir: &Path) -> Self {
        crate::require_tool("ip", "iproute2");
        crate::require_tool("iptables-save", "iptables");
        for plugin in [
            "bridge",
            "host-local",
            "loopback",
            "portmap",
            "firewall",
            "tuning",
        ] {
            assert!(
                Path::new(CNI_BIN_DIR).join(plugin).exists(),
                "the CNI plugin {CNI_BIN_DIR}/{plugin} is missing: install the Debian package 'containernetworking-plugins'"
            );
        }
        let n = crate::unique();
        let pid = std::process::id() as usize;
        let slot = (pid * 13 + n) % 250 + 1;
        let net = CniNetwork {
            dir: dir.to_path_buf(),
            name: format!("pxc-{pid}-{n}"),
            bridge: format!("pxcbr{}x{n}", pid % 100_000),
            prefix: format!("10.215.{slot}."),
            host_port: 20_000 + ((pid * 31 + n) % 20_000) as u16,
        };
        fs::create_dir_all(dir).unwrap();
        let conflist = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": net.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": net.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "ranges": [[{
                            "subnet": format!("{}0/24", net.prefix),
                            "gateway": format!("{}1", net.prefix),
                        }]],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "firewall"},
                {"type": "tuning"},
            ],
        });
        fs::write(
            dir.join(format!("{}.conflist", net.name)),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .unwrap();
        net
    }

    /// iptables rules (nat and filter) that name this network's subnet.
    pub fn rules(&self) -> Vec<String> {
        let out = Command::new("iptables-save")
            .output()
            .expect("iptables-save");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&self.prefix))
            .map(str::to_string)
            .collect()
    }

    /// Interfaces still enslaved to the bridge (the host ends of containers' veths).
    pub fn ports(&self) -> String {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Fails unless CNI DEL removed everything CNI ADD made for the test's containers:
    /// NAT and filter rules, the host ends of veths, the network namespaces the engine
    /// made in `sandbox`'s `/run/netns`.
    #[track_caller]
    pub fn assert_clean(&self, sandbox: &MountSandbox) {
        let clean = wait_until(Duration::from_secs(10), || {
            self.rules().is_empty() && self.ports().is_empty()
        });
        assert!(
            clean,
            "CNI left rules {:?} and interfaces {:?}",
            self.rules(),
            self.ports()
        );
        let ls = crate::require_tool("ls", "coreutils");
        let ran = run_captured(
            sandbox.command(&ls).args(["-A", "/run/netns"]),
            COMMAND_TIMEOUT,
        )
        .expect("ls /run/netns");
        assert_eq!(
            String::from_utf8_lossy(&ran.stdout),
            "",
            "network namespaces left in the engine's /run/netns"
        );
    }
}

impl Drop for CniNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}
