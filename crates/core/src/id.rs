//! Container ids: validated once, then safe to use as a path component.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// The longest id accepted: a directory name on Linux holds at most 255 bytes.
pub const MAX_ID_LEN: usize = 255;

/// A container id that follows runc's rule: one or more of `[A-Za-z0-9_+.-]`, not `.` or
/// `..`, at most [`MAX_ID_LEN`] bytes.
///
/// Construction is the only validation point, so a `ContainerId` is always safe to join
/// onto a directory: it has no `/`, no NUL and cannot name a parent directory.
///
/// ```
/// use proxcage_core::ContainerId;
/// assert!(ContainerId::new("web-1").is_ok());
/// assert!(ContainerId::new("../etc").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Validates `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        match problem(&id) {
            None => Ok(ContainerId(id)),
            Some(reason) => Err(Error::InvalidId { id, reason }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        return Some("the id is empty");
    }
    if id.len() > MAX_ID_LEN {
        return Some("the id is longer than 255 bytes");
    }
    if id == "." || id == ".." {
        return Some("the id names a directory");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
    if !id.chars().all(allowed) {
        return Some("only letters, digits and _ + - . are allowed");
    }
    None
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for ContainerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        ContainerId::new(s)
    }
}

impl Serialize for ContainerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ContainerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ContainerId::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_runc_ids() {
        for id in [
            "a",
            "web-1",
            "k8s_pod.abc+1",
            "0123456789abcdef",
            ".hidden",
            "a..b",
        ] {
            assert!(ContainerId::new(id).is_ok(), "{id} should be valid");
        }
    }

    #[test]
    fn refuses_path_tricks_and_bad_lengths() {
        let long = "a".repeat(MAX_ID_LEN + 1);
        for id in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/abs",
            "a b",
            "a\0b",
            "ü",
            long.as_str(),
        ] {
            let err = ContainerId::new(id).unwrap_err();
            assert!(err.to_string().contains("invalid container id"), "{err}");
        }
        assert!(ContainerId::new("a".repeat(MAX_ID_LEN)).is_ok());
    }

    proptest! {
        #[test]
        fn valid_ids_are_single_path_components(s in "\\PC{0,300}") {
            if let Ok(id) = ContainerId::new(s) {
                let p = std::path::Path::new(id.as_str());
                let mut comps = p.components();
                prop_assert!(matches!(comps.next(), Some(std::path::Component::Normal(_))));
                prop_assert!(comps.next().is_none());
            }
        }
    }

    #[test]
    fn ids_parse_from_strings_and_debug_print_quoted() {
        let id: ContainerId = "web-1".parse().unwrap();
        assert_eq!(AsRef::<str>::as_ref(&id), "web-1");
        assert_eq!(format!("{id:?}"), "\"web-1\"");
        let err = "../etc".parse::<ContainerId>().unwrap_err();
        assert!(err.to_string().contains("../etc"), "{err}");
    }
}
