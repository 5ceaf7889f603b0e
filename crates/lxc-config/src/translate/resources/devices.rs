//! `linux.resources.devices`: the device controller's allow and deny rules.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use proxcage_oci::oci_spec;

use super::{invalid, Cgroup};
use crate::error::TranslateError;

/// runc's devices that are always allowed in the device cgroup (libcontainer's
/// `AllowedDevices`): null, zero, full, tty, random, urandom, ptmx, the pty slaves, and
/// `mknod` of any character or block device.
const DEFAULT_ALLOWED_DEVICES: [&str; 10] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

pub(super) fn apply(
    res: &LinuxResources,
    cgroup: &mut Cgroup<'_, '_>,
) -> Result<(), TranslateError> {
    let devs = res.devices().clone().unwrap_or_default();
    for (i, d) in devs.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let file = if d.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        cgroup.set(&field, file, rule(d, &field)?)?;
    }
    if !devs.is_empty() {
        for allowed in DEFAULT_ALLOWED_DEVICES {
            cgroup.set("linux.resources.devices", "devices.allow", allowed)?;
        }
    }
    Ok(())
}

/// A rule as the device controller writes it: `a`, or `<type> <major>:<minor> <access>`.
fn rule(d: &LinuxDeviceCgroup, field: &str) -> Result<String, TranslateError> {
    let typ = d.typ().unwrap_or(LinuxDeviceType::A);
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(invalid(
            format!("{field}.access"),
            format!("{access:?} is not a combination of r, w, m"),
        ));
    }
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "*".into())
    };
    match typ {
        LinuxDeviceType::A if d.major().is_none() && d.minor().is_none() && access.len() == 3 => {
            Ok("a".to_string())
        }
        LinuxDeviceType::A | LinuxDeviceType::C | LinuxDeviceType::B => Ok(format!(
            "{} {}:{} {access}",
            typ.as_str(),
            num(d.major()),
            num(d.minor())
        )),
        _ => Err(invalid(
            format!("{field}.type"),
            "the device cgroup knows a, c and b",
        )),
    }
}
