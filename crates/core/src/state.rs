//! The OCI state of a container, as `state` prints it and `list --format json` lists it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Lifecycle status. `Paused` is runc's extension to the OCI set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
    Paused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "creating" => Status::Creating,
            "created" => Status::Created,
            "running" => Status::Running,
            "stopped" => Status::Stopped,
            "paused" => Status::Paused,
            other => return Err(format!("unknown container status {other:?}")),
        })
    }
}

/// The OCI state document, field for field in runc's order.
///
/// `pid` is the container's init as seen from the host; 0 once stopped. `annotations` is
/// left out of the JSON when empty, as runc does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Empty when the backend left it out (crun's `list` does).
    #[serde(default)]
    pub oci_version: String,
    pub id: String,
    #[serde(default)]
    pub pid: i32,
    pub status: Status,
    #[serde(default)]
    pub bundle: PathBuf,
    #[serde(default)]
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl State {
    /// Two-space indented JSON, as `runc state` prints it.
    pub fn to_pretty_json(&self) -> String {
        // Serialising a struct of strings, integers and a string map cannot fail.
        serde_json::to_string_pretty(self).expect("State serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runc_state_and_prints_it_back_in_runc_shape() {
        let runc = r#"{
  "ociVersion": "1.0.2-dev",
  "id": "t1",
  "pid": 12474,
  "status": "created",
  "bundle": "/abs/path/bundle",
  "rootfs": "/abs/path/bundle/rootfs",
  "created": "2026-11-26T11:30:39.589851021Z",
  "owner": ""
}"#;
        let state: State = serde_json::from_str(runc).unwrap();
        assert_eq!(state.status, Status::Created);
        assert_eq!(state.to_pretty_json(), runc);
    }

    #[test]
    fn annotations_appear_only_when_present() {
        let mut state: State = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","id":"a","pid":0,"status":"stopped","bundle":"/b","rootfs":"/b/r","created":"x","owner":""}"#,
        )
        .unwrap();
        assert!(!state.to_pretty_json().contains("annotations"));
        state.annotations.insert("k".into(), "v".into());
        assert!(state
            .to_pretty_json()
            .contains("\"annotations\": {\n    \"k\": \"v\""));
    }

    #[test]
    fn ignores_fields_other_runtimes_add() {
        let crun = r#"{"ociVersion":"1.0.0","id":"c","pid":5,"status":"running","bundle":"/b","rootfs":"/b/r","created":"t","owner":"","systemd-scope":"x.scope"}"#;
        let state: State = serde_json::from_str(crun).unwrap();
        assert_eq!(state.status, Status::Running);
    }

    #[test]
    fn every_status_round_trips_through_its_name_and_json() {
        for status in [
            Status::Creating,
            Status::Created,
            Status::Running,
            Status::Stopped,
            Status::Paused,
        ] {
            let name = status.to_string();
            assert_eq!(name.parse::<Status>().unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), name.as_str());
        }
        assert_eq!(
            "Running".parse::<Status>().unwrap_err(),
            "unknown container status \"Running\""
        );
    }
}
