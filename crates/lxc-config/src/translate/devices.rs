//! `linux.devices`: nodes made on the host in the files directory and bind-mounted into the
//! container, each allowed in the device cgroup.

use oci_spec::runtime::LinuxDeviceType;
use proxcage_oci::oci_spec;

use super::{invalid, unsupported, Builder, DeviceNode};
use crate::error::TranslateError;
use crate::mounts::resolve_in_rootfs;

pub(super) fn devices(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let devices = b
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for (i, dev) in devices.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let kind = match dev.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => "char",
            LinuxDeviceType::B => "block",
            LinuxDeviceType::P => {
                return Err(unsupported(
                    format!("{field}.type"),
                    "LXC cannot create a FIFO in the container's /dev",
                ))
            }
            LinuxDeviceType::A => {
                return Err(invalid(format!("{field}.type"), "`a` is not a device type"))
            }
        };
        let (Ok(major), Ok(minor)) = (u64::try_from(dev.major()), u64::try_from(dev.minor()))
        else {
            return Err(invalid(
                format!("{field}.major"),
                "a device number is not negative",
            ));
        };
        // The node is made by prepare() in the files directory and bind-mounted: it needs
        // no udev-style /dev/char on the host, and it gets the spec's mode and owner.
        let source = b.paths.files_dir.join("dev").join(i.to_string());
        b.nodes.push(DeviceNode {
            path: source.clone(),
            block: kind == "block",
            major,
            minor,
            mode: dev.file_mode().unwrap_or(0o666) & 0o7777,
            uid: dev.uid().unwrap_or(0),
            gid: dev.gid().unwrap_or(0),
        });
        let dest = dev.path();
        if !dest.starts_with("/dev/") {
            return Err(invalid(
                format!("{field}.path"),
                format!("{} is not under /dev", dest.display()),
            ));
        }
        let target = resolve_in_rootfs(&b.paths.rootfs, dest, &format!("{field}.path"))?;
        b.mount_entry(
            &field,
            &source,
            &target,
            "none",
            &["bind".to_string()],
            false,
        )?;
        let letter = if kind == "char" { "c" } else { "b" };
        b.push(
            &field,
            "lxc.cgroup2.devices.allow",
            format!("{letter} {}:{} rwm", dev.major(), dev.minor()),
        )?;
    }
    Ok(())
}
