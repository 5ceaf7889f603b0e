//! `proxcage health`: the store's and the backends' checks, an optional repair of what can
//! be fixed safely, and the report.

use std::collections::BTreeSet;

use proxcage_core::{Error, Finding, Result, Severity};
use proxcage_store::health::{check_store, reconcile};
use serde::Serialize;

use crate::engine::Engine;

/// How often a repair checks and repairs again: a repair can reveal the next problem (a
/// damaged record set aside leaves a container without a record, which gets a new one).
const REPAIR_PASSES: usize = 3;

/// One repair that was run.
#[derive(Debug, Serialize)]
pub struct Repaired {
    pub kind: &'static str,
    pub object: String,
    #[serde(rename = "where")]
    pub location: String,
    pub ok: bool,
    /// What it did, or why it failed.
    pub message: String,
}

/// What `health` found, and repaired. Serialises to the JSON the README documents.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    pub root: String,
    pub backends: Vec<String>,
    pub findings: Vec<Finding>,
    pub repairs: Vec<Repaired>,
    /// Checks that could not run.
    pub errors: Vec<String>,
}

impl HealthReport {
    /// The exit code the report stands for: 0 healthy, 1 problems, 2 a check could not run.
    pub fn exit_code(&self) -> i32 {
        if !self.errors.is_empty() {
            2
        } else if !self.findings.is_empty() {
            1
        } else {
            0
        }
    }
}

impl Engine {
    /// Checks the store and `backend` (or every backend in use: the default, those of the
    /// routing rules, those that records name); with `repair`, repairs what can be repaired
    /// safely first, then reports what is left.
    pub fn health(&self, backend: Option<&str>, repair: bool) -> Result<HealthReport> {
        let backends = self.backends_in_scope(backend)?;
        let mut repairs = Vec::new();
        if repair {
            for _ in 0..REPAIR_PASSES {
                let (findings, _) = self.check(&backends);
                let before = repairs.len();
                repairs.extend(findings.into_iter().filter_map(run_repair));
                if repairs.len() == before {
                    break;
                }
            }
        }
        let (findings, errors) = self.check(&backends);
        Ok(HealthReport {
            healthy: findings.is_empty() && errors.is_empty(),
            root: self.store.root().display().to_string(),
            backends,
            findings,
            repairs,
            errors,
        })
    }

    fn backends_in_scope(&self, backend: Option<&str>) -> Result<Vec<String>> {
        if let Some(name) = backend {
            if !self.registry.contains(name) {
                return Err(Error::UnknownBackend {
                    name: name.to_string(),
                    context: "in --backend is not a backend proxcage has".into(),
                    available: self.available(),
                });
            }
            return Ok(vec![name.to_string()]);
        }
        let mut names: BTreeSet<String> = BTreeSet::new();
        names.insert(self.config.default_backend.clone());
        names.extend(self.config.routes.iter().map(|r| r.backend.clone()));
        if let Ok(records) = self.store.records() {
            names.extend(
                records
                    .into_iter()
                    .flatten()
                    .map(|r| r.backend().to_string()),
            );
        }
        Ok(self
            .registry
            .names()
            .into_iter()
            .filter(|b| names.contains(*b))
            .map(str::to_string)
            .collect())
    }

    /// Runs every check: the findings, and the checks that could not run.
    fn check(&self, backends: &[String]) -> (Vec<Finding>, Vec<String>) {
        let mut findings = Vec::new();
        let mut errors = Vec::new();
        // A config whose routing names a backend proxcage lacks fails every create.
        if let Err(e) = self.config.router(&self.registry) {
            findings.push(Finding::new(
                "config-invalid",
                Severity::Error,
                "the config file",
                self.config.origin(),
                format!("{e}: every create fails until the config file is fixed"),
            ));
        }
        match check_store(&self.store, &self.registry.names()) {
            Ok(found) => findings.extend(found),
            Err(e) => errors.push(format!("the store: {e}")),
        }
        for name in backends {
            let backend = match self.backend(name) {
                Ok(backend) => backend,
                Err(e) => {
                    findings.push(Finding::new(
                        "backend-unavailable",
                        Severity::Error,
                        format!("backend {name}"),
                        self.config.origin(),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            match reconcile(&self.store, &backend) {
                Ok(found) => findings.extend(found),
                Err(e) => errors.push(format!("backend {name}: {e}")),
            }
        }
        (findings, errors)
    }
}

/// Runs the repair of `finding`, if it has one, and says how it went.
fn run_repair(mut finding: Finding) -> Option<Repaired> {
    let (ok, message) = match finding.run_repair()? {
        Ok(done) => (true, done),
        Err(e) => (false, e.to_string()),
    };
    if ok {
        tracing::info!("health: {}: {message}", finding.object());
    } else {
        tracing::warn!("health: repair of {} failed: {message}", finding.object());
    }
    Some(Repaired {
        kind: finding.kind(),
        object: finding.object().to_string(),
        location: finding.location().to_string(),
        ok,
        message,
    })
}
