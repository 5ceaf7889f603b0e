//! `process.rlimits` as `lxc.prlimit.<name> = soft:hard`.

use std::collections::HashSet;

use oci_spec::runtime::{PosixRlimitType, Process};
use proxcage_oci::oci_spec;

use super::{invalid, Builder};
use crate::error::TranslateError;

pub(super) fn rlimits(b: &mut Builder<'_>, process: &Process) -> Result<(), TranslateError> {
    let mut seen = HashSet::new();
    for (i, limit) in process.rlimits().iter().flatten().enumerate() {
        let field = format!("process.rlimits[{i}]");
        if !seen.insert(rlimit_name(limit.typ())) {
            return Err(invalid(field, format!("{:?} is set twice", limit.typ())));
        }
        if limit.soft() > limit.hard() {
            return Err(invalid(field, "soft is above hard"));
        }
        let value = |v: u64| {
            if v == u64::MAX {
                "unlimited".to_string()
            } else {
                v.to_string()
            }
        };
        b.push(
            &field,
            format!("lxc.prlimit.{}", rlimit_name(limit.typ())),
            format!("{}:{}", value(limit.soft()), value(limit.hard())),
        )?;
    }
    Ok(())
}

fn rlimit_name(t: PosixRlimitType) -> &'static str {
    match t {
        PosixRlimitType::RlimitCpu => "cpu",
        PosixRlimitType::RlimitFsize => "fsize",
        PosixRlimitType::RlimitData => "data",
        PosixRlimitType::RlimitStack => "stack",
        PosixRlimitType::RlimitCore => "core",
        PosixRlimitType::RlimitRss => "rss",
        PosixRlimitType::RlimitNproc => "nproc",
        PosixRlimitType::RlimitNofile => "nofile",
        PosixRlimitType::RlimitMemlock => "memlock",
        PosixRlimitType::RlimitAs => "as",
        PosixRlimitType::RlimitLocks => "locks",
        PosixRlimitType::RlimitSigpending => "sigpending",
        PosixRlimitType::RlimitMsgqueue => "msgqueue",
        PosixRlimitType::RlimitNice => "nice",
        PosixRlimitType::RlimitRtprio => "rtprio",
        PosixRlimitType::RlimitRttime => "rttime",
    }
}
