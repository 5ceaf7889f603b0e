//! The rest of `linux`: sysctls, seccomp, the personality and the time offsets, and the
//! fields LXC has no key for.

use oci_spec::runtime::{Linux, LinuxPersonalityDomain};
use proxcage_oci::oci_spec;

use super::{invalid, unsupported, Builder};
use crate::error::TranslateError;
use crate::seccomp;

pub(super) fn rest(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(linux) = b.spec.linux().clone() else {
        return Ok(());
    };
    sysctl(b, &linux)?;
    seccomp_profile(b, &linux)?;
    refuse_unsupported(&linux)?;
    personality(b, &linux)?;
    time_offsets(b, &linux)
}

fn sysctl(b: &mut Builder<'_>, linux: &Linux) -> Result<(), TranslateError> {
    let mut sysctl: Vec<_> = linux
        .sysctl()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    sysctl.sort();
    for (key, value) in sysctl {
        b.push(
            &format!("linux.sysctl.{key}"),
            format!("lxc.sysctl.{key}"),
            value,
        )?;
    }
    Ok(())
}

/// `linux.seccomp` as a profile file in the files directory, named by
/// `lxc.seccomp.profile`.
fn seccomp_profile(b: &mut Builder<'_>, linux: &Linux) -> Result<(), TranslateError> {
    let Some(sec) = linux.seccomp() else {
        return Ok(());
    };
    let text = seccomp::profile(sec)?;
    let path = b.paths.files_dir.join("seccomp");
    let value = path
        .to_str()
        .ok_or_else(|| invalid("linux.seccomp", "the files directory is not UTF-8"))?
        .to_string();
    b.host_file(path, text.into_bytes(), 0o644);
    b.push("linux.seccomp", "lxc.seccomp.profile", value)
}

fn refuse_unsupported(linux: &Linux) -> Result<(), TranslateError> {
    let fields = [
        (
            "linux.mountLabel",
            linux
                .mount_label()
                .as_deref()
                .is_some_and(|l| !l.is_empty()),
            "LXC 5.0 has no key for the mount SELinux label",
        ),
        (
            "linux.intelRdt",
            linux.intel_rdt().is_some(),
            "LXC has no Intel RDT support",
        ),
        (
            "linux.memoryPolicy",
            linux.memory_policy().is_some(),
            "LXC has no NUMA memory policy key",
        ),
        (
            "linux.netDevices",
            linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
            "moving host interfaces in is done by pct netN, not this translation",
        ),
    ];
    match fields.into_iter().find(|(_, set, _)| *set) {
        Some((field, _, reason)) => Err(unsupported(field, reason)),
        None => Ok(()),
    }
}

/// `linux.personality`: the domain as `lxc.arch`; LXC sets no flags.
fn personality(b: &mut Builder<'_>, linux: &Linux) -> Result<(), TranslateError> {
    let Some(p) = linux.personality() else {
        return Ok(());
    };
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(unsupported(
            "linux.personality.flags",
            "LXC sets only the domain (lxc.arch)",
        ));
    }
    let arch = match p.domain() {
        LinuxPersonalityDomain::PerLinux => "linux64",
        LinuxPersonalityDomain::PerLinux32 => "linux32",
    };
    b.push("linux.personality.domain", "lxc.arch", arch)
}

/// `linux.timeOffsets` as `lxc.time.offset.boot` and `lxc.time.offset.monotonic`.
fn time_offsets(b: &mut Builder<'_>, linux: &Linux) -> Result<(), TranslateError> {
    let mut offsets: Vec<_> = linux
        .time_offsets()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    offsets.sort_by(|a, b| a.0.cmp(&b.0));
    for (clock, offset) in offsets {
        let field = format!("linux.timeOffsets.{clock}");
        let key = match clock.as_str() {
            "boottime" => "lxc.time.offset.boot",
            "monotonic" => "lxc.time.offset.monotonic",
            _ => {
                return Err(invalid(
                    field,
                    "the clocks with offsets are boottime and monotonic",
                ))
            }
        };
        let ns = i128::from(offset.secs().unwrap_or(0)) * 1_000_000_000
            + i128::from(offset.nanosecs().unwrap_or(0));
        b.push(&field, key, format!("{ns}ns"))?;
    }
    Ok(())
}
