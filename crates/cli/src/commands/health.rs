//! `health`: the store's and the backends' checks (the work is in the libraries), an
//! optional repair of what can be fixed safely, and the report. Exit code 0: healthy;
//! 1: problems found (or left after repair); 2: a check could not run.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use proxcage_core::{Finding, Severity};
use proxcage_store::health::check_store;
use serde::Serialize;

use super::print;
use crate::args::{Health, HealthFormat};
use crate::config::BACKENDS;
use crate::context::Ctx;

/// How often `--repair` checks and repairs again: a repair can reveal the next problem
/// (a damaged record set aside leaves a container without a record, which gets a new one).
const REPAIR_PASSES: usize = 3;

/// One repair that was run.
#[derive(Serialize)]
struct Repaired {
    kind: &'static str,
    object: String,
    #[serde(rename = "where")]
    location: String,
    ok: bool,
    /// What it did, or why it failed.
    message: String,
}

#[derive(Serialize)]
struct Report<'a> {
    healthy: bool,
    root: String,
    backends: &'a [String],
    findings: &'a [Finding],
    repairs: &'a [Repaired],
    /// Checks that could not run.
    errors: &'a [String],
}

pub fn health(args: &Health, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let backends = backends_in_scope(args, ctx)?;
    let mut repairs = Vec::new();
    if args.repair {
        for _ in 0..REPAIR_PASSES {
            let (findings, _) = check(&backends, ctx)?;
            let mut any = false;
            for mut finding in findings {
                let Some(result) = finding.run_repair() else {
                    continue;
                };
                any = true;
                let (ok, message) = match result {
                    Ok(done) => (true, done),
                    Err(e) => (false, e.to_string()),
                };
                if ok {
                    tracing::info!("health: {}: {message}", finding.object());
                } else {
                    tracing::warn!("health: repair of {} failed: {message}", finding.object());
                }
                repairs.push(Repaired {
                    kind: finding.kind(),
                    object: finding.object().to_string(),
                    location: finding.location().to_string(),
                    ok,
                    message,
                });
            }
            if !any {
                break;
            }
        }
    }
    let (findings, errors) = check(&backends, ctx)?;
    let report = Report {
        healthy: findings.is_empty() && errors.is_empty(),
        root: ctx.root().display().to_string(),
        backends: &backends,
        findings: &findings,
        repairs: &repairs,
        errors: &errors,
    };
    let text = match args.format {
        HealthFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        HealthFormat::Text => text(&report),
    };
    print(&text)?;
    Ok(if !errors.is_empty() {
        2
    } else if !findings.is_empty() {
        1
    } else {
        0
    })
}

/// `--backend NAME`, else every backend the config routes to and every backend a record
/// names.
fn backends_in_scope(args: &Health, ctx: &Ctx<'_>) -> anyhow::Result<Vec<String>> {
    let config = ctx.config()?;
    if let Some(name) = &args.backend {
        if !BACKENDS.contains(&name.as_str()) {
            return Err(proxcage_core::Error::UnknownBackend {
                name: name.clone(),
                context: "in --backend is not a backend proxcage has".into(),
                available: BACKENDS.iter().map(|s| s.to_string()).collect(),
            }
            .into());
        }
        return Ok(vec![name.clone()]);
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    names.insert(config.default_backend.clone());
    names.extend(config.routes.iter().map(|r| r.backend.clone()));
    if let Ok(store) = ctx.store() {
        if let Ok(records) = store.records() {
            names.extend(
                records
                    .into_iter()
                    .flatten()
                    .map(|r| r.backend().to_string()),
            );
        }
    }
    Ok(BACKENDS
        .iter()
        .filter(|b| names.contains(**b))
        .map(|b| b.to_string())
        .collect())
}

/// Runs every check: the findings, and the checks that could not run.
fn check(backends: &[String], ctx: &Ctx<'_>) -> anyhow::Result<(Vec<Finding>, Vec<String>)> {
    let mut findings = Vec::new();
    let mut errors = Vec::new();
    let store = match ctx.store() {
        Ok(store) => store,
        Err(e) => {
            errors.push(format!("the store: {e}"));
            return Ok((findings, errors));
        }
    };
    match check_store(store, BACKENDS) {
        Ok(found) => findings.extend(found),
        Err(e) => errors.push(format!("the store: {e}")),
    }
    for name in backends {
        let backend = match ctx.backend(name) {
            Ok(backend) => backend,
            Err(e) => {
                findings.push(Finding::new(
                    "backend-unavailable",
                    Severity::Error,
                    format!("backend {name}"),
                    ctx.config()?.path.display(),
                    e.to_string(),
                ));
                continue;
            }
        };
        match backend.health(store) {
            Ok(found) => findings.extend(found),
            Err(e) => errors.push(format!("backend {name}: {e}")),
        }
    }
    Ok((findings, errors))
}

fn text(report: &Report<'_>) -> String {
    let mut out = String::new();
    for r in report.repairs {
        let _ = writeln!(
            out,
            "{} {} [{}]: {}",
            if r.ok { "repaired" } else { "REPAIR FAILED" },
            r.object,
            r.kind,
            r.message
        );
    }
    for e in report.errors {
        let _ = writeln!(out, "could not check {e}");
    }
    for f in report.findings {
        let _ = writeln!(out, "{:<8}{} [{}]", f.severity(), f.object(), f.kind());
        let _ = writeln!(out, "        where:   {}", f.location());
        let _ = writeln!(out, "        problem: {}", f.message());
        let _ = writeln!(
            out,
            "        repair:  {}",
            f.repair().unwrap_or("none by proxcage (see the problem)")
        );
    }
    let scope = format!(
        "root {}, backends {}",
        report.root,
        if report.backends.is_empty() {
            "none".to_string()
        } else {
            report.backends.join(", ")
        }
    );
    if report.healthy {
        let _ = writeln!(out, "healthy: no problems found ({scope})");
    } else if !report.findings.is_empty() {
        let errors = report
            .findings
            .iter()
            .filter(|f| f.severity() == Severity::Error)
            .count();
        let repairable = report
            .findings
            .iter()
            .filter(|f| f.repair().is_some())
            .count();
        let _ = writeln!(
            out,
            "{} problem(s): {errors} error(s), {} warning(s); 'proxcage health --repair' fixes {repairable} ({scope})",
            report.findings.len(),
            report.findings.len() - errors,
        );
    }
    out
}
