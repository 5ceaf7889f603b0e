//! `update`, `events`, `checkpoint` and `restore`: the requests, and the event and stats
//! documents in runc's JSON shapes (`runc events` prints them; monitoring reads them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::id::ContainerId;

/// `update`: change a running container's resources. Fields of `resources` that are unset
/// stay as they are (runc's rule for `--resources` and the flags alike).
#[derive(Clone, Debug)]
pub struct UpdateRequest {
    pub id: ContainerId,
    pub resources: LinuxResources,
    /// Intel RDT schemata (runc's `--l3-cache-schema`, `--mem-bw-schema`).
    pub l3_cache_schema: Option<String>,
    pub mem_bw_schema: Option<String>,
}

impl UpdateRequest {
    pub fn new(id: ContainerId, resources: LinuxResources) -> Self {
        UpdateRequest {
            id,
            resources,
            l3_cache_schema: None,
            mem_bw_schema: None,
        }
    }
}

/// `events`: one stats event (`stats_only`), or a stream of stats every `interval` and
/// `oom` events as they happen, until the container stops or the receiver stops it.
#[derive(Clone, Debug)]
pub struct EventsRequest {
    pub id: ContainerId,
    pub interval: Duration,
    pub stats_only: bool,
}

/// What an events receiver says after each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// One line of `runc events`: `{"type":"stats","id":"c1","data":{...}}`, or
/// `{"type":"oom","id":"c1"}`. `data` is kept as JSON so fields a backend's runtime
/// reports beyond [`Stats`] reach the caller unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Event {
    pub fn stats(id: &ContainerId, stats: &Stats) -> Self {
        Event {
            kind: "stats".into(),
            id: id.to_string(),
            // Serializing plain structs of numbers and maps cannot fail.
            data: serde_json::to_value(stats).ok(),
        }
    }

    pub fn oom(id: &ContainerId) -> Self {
        Event {
            kind: "oom".into(),
            id: id.to_string(),
            data: None,
        }
    }
}

fn zero(v: &u64) -> bool {
    *v == 0
}

/// A container's resource usage, as `runc events --stats` prints it (runc's `types.Stats`;
/// zero values are left out where runc leaves them out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds of CPU time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Bytes; `limit` is the cgroup's limit (the host's memory when unlimited).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "zero")]
    pub current: u64,
    /// 0: no limit.
    #[serde(default, skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// `checkpoint`: CRIU options are the runtime's own; they are handed on in runc's
/// spelling (`--image-path=/x`, `--leave-running`), as the caller gave them.
#[derive(Clone, Debug)]
pub struct CheckpointRequest {
    pub id: ContainerId,
    pub criu_args: Vec<String>,
}

/// `restore`: a container made again from a checkpoint, with the caller's stdio, as
/// `run` is. Returns like `run`: the container's exit code, or 0 when detached.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    pub id: ContainerId,
    pub bundle: PathBuf,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Every other flag, in runc's spelling.
    pub criu_args: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_as_runc_prints_them() {
        let id = ContainerId::new("c1").unwrap();
        assert_eq!(
            serde_json::to_string(&Event::oom(&id)).unwrap(),
            r#"{"type":"oom","id":"c1"}"#
        );
        let mut stats = Stats::default();
        stats.memory.usage.usage = 4096;
        stats.pids.current = 2;
        let text = serde_json::to_string(&Event::stats(&id, &stats)).unwrap();
        assert!(
            text.starts_with(r#"{"type":"stats","id":"c1","data":{"#),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back["data"]["memory"]["usage"],
            serde_json::json!({"limit": 0, "usage": 4096, "failcnt": 0})
        );
        assert_eq!(back["data"]["pids"], serde_json::json!({"current": 2}));
        assert_eq!(
            back["data"]["cpu"]["usage"],
            serde_json::json!({"kernel": 0, "user": 0})
        );
    }
}
