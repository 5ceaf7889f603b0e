//! `list`: every recorded container, its state from its backend (one `list` call per
//! backend in use), in runc's table or JSON shape plus a BACKEND column.

use proxcage_store::Backend;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use proxcage_core::State;
use proxcage_store::{Phase, Record};
use serde::Serialize;

use super::print;
use crate::args::{Format, List};
use crate::context::{creating_state, Ctx};

/// A backend (if it could be set up) and the states its `list` returned, by id.
type Listed = (Option<Box<dyn Backend>>, HashMap<String, State>);

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
    // One `list` per backend in use; a container that list missed (created meanwhile,
    // or the backend's list failed on a neighbour being deleted) is asked for on its own.
    let mut backends: BTreeMap<&str, Listed> = BTreeMap::new();
    for record in &records {
        backends.entry(record.backend()).or_insert_with(|| {
            let backend = ctx.backend(record.backend());
            let listed = match backend
                .as_ref()
                .map_err(|e| e.to_string())
                .and_then(|b| b.list().map_err(|e| e.to_string()))
            {
                Ok(list) => list.into_iter().map(|s| (s.id.clone(), s)).collect(),
                Err(e) => {
                    tracing::debug!("backend {}: {e}", record.backend());
                    HashMap::new()
                }
            };
            (backend.ok(), listed)
        });
    }
    let mut rows: Vec<(State, &str)> = Vec::new();
    for record in &records {
        let (backend, listed) = &backends[record.backend()];
        let state = match listed.get(record.id().as_str()) {
            Some(state) => Some(state.clone()),
            None => backend.as_ref().and_then(|b| b.state(record.id()).ok()),
        };
        match (state, record.phase()) {
            (Some(state), _) => rows.push((state, record.backend())),
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
