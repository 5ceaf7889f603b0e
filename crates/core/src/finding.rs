//! What `proxcage health` reports: [`Finding`]s, each naming what is wrong (`kind`,
//! stable), the object it is about, where it is, and, when proxcage can fix it safely, the
//! repair it would make; [`Finding::run_repair`] then does it.
//!
//! Repairs are the least destructive fix that makes the state consistent again, and never
//! touch a container proxcage did not create: a backend container is only removed when a
//! record of this root proves proxcage made it.

use serde::Serialize;
use std::fmt;

use crate::error::Result;

/// How bad a finding is. `error`: something is broken (a command will fail on it);
/// `warning`: inconsistent or wasteful, but nothing fails yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The action a repair runs; it says what it did.
pub type Fix = Box<dyn FnOnce() -> Result<String>>;

/// One problem found by a check.
#[derive(Serialize)]
pub struct Finding {
    /// What kind of problem, e.g. `record-corrupt`: stable, for scripts to match on.
    kind: &'static str,
    severity: Severity,
    /// What it is about: `container web-1`, `CT 105`, `template proxcage-<sha256>.tar.zst`.
    object: String,
    /// Where: a path, or a backend's address of the object (`pct:105`).
    #[serde(rename = "where")]
    location: String,
    /// What is wrong, in words for the operator.
    message: String,
    /// What `--repair` would do; `None`: proxcage will not repair this itself (the message
    /// says what to do by hand).
    repair: Option<String>,
    #[serde(skip)]
    fix: Option<Fix>,
}

impl fmt::Debug for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finding")
            .field("kind", &self.kind)
            .field("severity", &self.severity)
            .field("object", &self.object)
            .field("where", &self.location)
            .field("message", &self.message)
            .field("repair", &self.repair)
            .finish()
    }
}

impl Finding {
    pub fn new(
        kind: &'static str,
        severity: Severity,
        object: impl Into<String>,
        location: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            kind,
            severity,
            object: object.into(),
            location: location.to_string(),
            message: message.into(),
            repair: None,
            fix: None,
        }
    }

    /// The repair `what` (as the report words it), done by `fix`.
    pub fn with_repair(
        mut self,
        what: impl Into<String>,
        fix: impl FnOnce() -> Result<String> + 'static,
    ) -> Self {
        self.repair = Some(what.into());
        self.fix = Some(Box::new(fix));
        self
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }
    pub fn severity(&self) -> Severity {
        self.severity
    }
    pub fn object(&self) -> &str {
        &self.object
    }
    /// The `where` of the report.
    pub fn location(&self) -> &str {
        &self.location
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    /// What `--repair` would do, if proxcage repairs this itself.
    pub fn repair(&self) -> Option<&str> {
        self.repair.as_deref()
    }

    /// Runs the repair (once): `None` when there is none, else what it did or why it
    /// failed.
    pub fn run_repair(&mut self) -> Option<Result<String>> {
        self.fix.take().map(|fix| fix())
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} [{}] at {}: {}",
            self.severity, self.object, self.kind, self.location, self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_print_as_the_report_shows_them() {
        let f = Finding::new("temp-file", Severity::Warning, "container a", "/r/x", "m")
            .with_repair("remove it", || Ok("removed".into()));
        assert_eq!(format!("[{:>7}]", Severity::Error), "[  error]");
        let debug = format!("{f:?}");
        assert!(
            debug.contains("kind: \"temp-file\"") && debug.contains("repair: Some(\"remove it\")"),
            "{debug}"
        );
        assert_eq!(f.to_string(), "warning: container a [temp-file] at /r/x: m");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["where"], "/r/x");
        assert_eq!(json["severity"], "warning");
    }
}
