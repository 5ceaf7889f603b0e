//! A network namespace made as CNI's bridge plugin makes a pod's, for tests of sandboxes.

/// A network namespace made the way CNI's bridge plugin makes a pod's: a veth pair whose
/// host end has the gateway address, the other end `eth0` in the namespace with an
/// address, an MTU, a MAC and a default route. Removed on drop.
#[derive(Debug)]
pub struct CniLikeNetns {
    pub name: String,
    pub host_end: String,
    pub subnet: u8,
}

/// Runs `ip` with `args`; fails the test unless it succeeds; returns stdout.
pub fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip (package iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl CniLikeNetns {
    // Not a Default: it makes a namespace and interfaces on the host.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        crate::require_tool("ip", "iproute2");
        let n = (std::process::id() as usize * 7 + crate::unique()) % 200;
        let name = format!("pxc-test-{}-{}", std::process::id(), crate::unique());
        let host_end = format!("pxv{}h{n}", std::process::id() % 10000);
        let subnet = 20 + n as u8;
        let net = CniLikeNetns {
            name,
            host_end,
            subnet,
        };
        let (ns, host) = (net.name.as_str(), net.host_end.as_str());
        ip(&["netns", "add", ns]);
        ip(&[
            "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ip(&["addr", "add", &format!("10.213.{subnet}.1/24"), "dev", host]);
        ip(&["link", "set", host, "up"]);
        ip(&[
            "-n",
            ns,
            "link",
            "set",
            "eth0",
            "mtu",
            "1400",
            "address",
            "02:42:0a:d5:00:02",
        ]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("10.213.{subnet}.2/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        ip(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &format!("10.213.{subnet}.1"),
        ]);
        net
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for CniLikeNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_end])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
