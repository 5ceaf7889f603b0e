//! `list`: every recorded container, its state from its backend (one `list` call per
//! backend in use), in runc's table or JSON shape plus a BACKEND column.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use proxcage_core::{Phase, Record, State};
use serde::Serialize;

use super::print;
use crate::args::{Format, List};
use crate::context::{creating_state, Ctx};

#[derive(Serialize)]
struct Entry<'a> {
    #[serde(flatten)]
    state: &'a State,
    backend: &'a str,
}

pub fn list(args: &List, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let mut records: Vec<Record> = Vec::new();
    for record in ctx.store()?.records()? {
        match record {
            Ok(record) => records.push(record),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    let mut by_backend: BTreeMap<&str, HashMap<String, State>> = BTreeMap::new();
    for record in &records {
        by_backend.entry(record.backend()).or_default();
    }
    for (name, states) in by_backend.iter_mut() {
        match ctx.backend(name).and_then(|b| b.list()) {
            Ok(list) => states.extend(list.into_iter().map(|s| (s.id.clone(), s))),
            Err(e) => tracing::warn!("backend {name}: {e}"),
        }
    }
    let mut rows: Vec<(State, &str)> = Vec::new();
    for record in &records {
        let known = by_backend
            .get(record.backend())
            .and_then(|s| s.get(record.id().as_str()));
        match (known, record.phase()) {
            (Some(state), _) => rows.push((state.clone(), record.backend())),
            (None, Phase::Creating) => rows.push((creating_state(record), record.backend())),
            (None, Phase::Created) => {
                tracing::debug!(
                    "container {} is recorded but its backend no longer has it",
                    record.id()
                )
            }
        }
    }
    let mut out = String::new();
    if args.quiet {
        for (state, _) in &rows {
            let _ = writeln!(out, "{}", state.id);
        }
    } else if args.format == Format::Json {
        if rows.is_empty() {
            out.push_str("null");
        } else {
            let entries: Vec<Entry<'_>> = rows
                .iter()
                .map(|(state, backend)| Entry { state, backend })
                .collect();
            out.push_str(&serde_json::to_string(&entries)?);
        }
        out.push('\n');
    } else {
        out = table(&rows);
    }
    print(&out)?;
    Ok(0)
}

/// runc's columns (tabwriter: minimum width 12, padding 1) and BACKEND.
fn table(rows: &[(State, &str)]) -> String {
    let header = [
        "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER", "BACKEND",
    ]
    .map(String::from);
    let mut lines: Vec<[String; 7]> = vec![header];
    for (s, backend) in rows {
        lines.push([
            s.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.display().to_string(),
            s.created.clone(),
            s.owner.clone(),
            backend.to_string(),
        ]);
    }
    let mut widths = [12usize; 7];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.len() + 1);
        }
    }
    let mut out = String::new();
    for line in &lines {
        for (i, cell) in line.iter().enumerate() {
            if i + 1 == line.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}", width = widths[i]);
            }
        }
        out.push('\n');
    }
    out
}
