//! `health`: the engine's checks of the store and the backends, an optional repair of
//! what can be fixed safely, and the report. Exit code 0: healthy; 1: problems found (or
//! left after repair); 2: a check could not run.

use std::fmt::Write as _;

use proxcage_core::Severity;
use proxcage_engine::HealthReport;

use super::print;
use crate::args::{Health, HealthFormat};
use crate::context::Ctx;

pub fn health(args: &Health, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let report = ctx.engine()?.health(args.backend.as_deref(), args.repair)?;
    let text = match args.format {
        HealthFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        HealthFormat::Text => text(&report),
    };
    print(&text)?;
    Ok(report.exit_code())
}

fn text(report: &HealthReport) -> String {
    let mut out = String::new();
    for r in &report.repairs {
        let _ = writeln!(
            out,
            "{} {} [{}]: {}",
            if r.ok { "repaired" } else { "REPAIR FAILED" },
            r.object,
            r.kind,
            r.message
        );
    }
    for e in &report.errors {
        let _ = writeln!(out, "could not check {e}");
    }
    for f in &report.findings {
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
