//! `linux.cgroupsPath` as `lxc.cgroup.dir`, and `linux.resources` as `lxc.cgroup2.*` keys:
//! one module per cgroup v2 controller, each a [`Controller`] that writes its interface
//! files through [`Cgroup`].

mod cpu;
mod devices;
mod hugetlb;
mod io;
mod memory;
mod network;
mod pids;
mod rdma;
mod unified;

use oci_spec::runtime::{Linux, LinuxResources};
use proxcage_oci::oci_spec;

use super::{invalid, unsupported, Builder};
use crate::error::TranslateError;

/// One controller: the `lxc.cgroup2.*` keys it writes for `linux.resources`, or an error
/// naming the field it cannot express.
type Controller = fn(&LinuxResources, &mut Cgroup<'_, '_>) -> Result<(), TranslateError>;

/// The controllers, in the order their keys are written.
const CONTROLLERS: [Controller; 9] = [
    devices::apply,
    memory::apply,
    cpu::apply,
    pids::apply,
    io::apply,
    hugetlb::apply,
    network::apply,
    rdma::apply,
    unified::apply,
];

/// What a controller may write: cgroup v2 interface files, as `lxc.cgroup2.<file>`.
struct Cgroup<'b, 'a> {
    builder: &'b mut Builder<'a>,
}

impl Cgroup<'_, '_> {
    /// `lxc.cgroup2.<file> = value`, for the spec's `field`.
    fn set(
        &mut self,
        field: &str,
        file: &str,
        value: impl Into<String>,
    ) -> Result<(), TranslateError> {
        self.builder
            .push(field, format!("lxc.cgroup2.{file}"), value)
    }
}

/// A limit where a negative number means none: `max`.
fn max_or(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

pub(super) fn resources(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(linux) = b.spec.linux().clone() else {
        return Ok(());
    };
    cgroups_path(b, &linux)?;
    let Some(res) = linux.resources().clone() else {
        return Ok(());
    };
    let mut cgroup = Cgroup { builder: b };
    CONTROLLERS
        .iter()
        .try_for_each(|controller| controller(&res, &mut cgroup))
}

fn cgroups_path(b: &mut Builder<'_>, linux: &Linux) -> Result<(), TranslateError> {
    let Some(path) = linux.cgroups_path() else {
        return Ok(());
    };
    let text = path
        .to_str()
        .ok_or_else(|| invalid("linux.cgroupsPath", "not UTF-8"))?;
    if text.contains(':') && !text.starts_with('/') {
        return Err(unsupported(
            "linux.cgroupsPath",
            format!("{text:?} is a systemd slice:prefix:name path; LXC takes a cgroup directory"),
        ));
    }
    let dir = text.trim_matches('/');
    if dir.split('/').any(|c| c == "..") {
        return Err(invalid(
            "linux.cgroupsPath",
            format!("{text:?} contains `..`"),
        ));
    }
    if !dir.is_empty() {
        b.push("linux.cgroupsPath", "lxc.cgroup.dir", dir)?;
    }
    Ok(())
}
