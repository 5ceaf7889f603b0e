//! `list`: every recorded container with its state and backend, in runc's table or JSON
//! shape plus a BACKEND column.

use std::fmt::Write as _;

use proxcage_engine::Listed;

use super::print;
use crate::args::{Format, List};
use crate::context::Ctx;

pub fn list(args: &List, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let rows = ctx.engine()?.list_containers()?;
    let mut out = String::new();
    if args.quiet {
        for row in &rows {
            let _ = writeln!(out, "{}", row.state.id);
        }
    } else if args.format == Format::Json {
        if rows.is_empty() {
            out.push_str("null");
        } else {
            out.push_str(&serde_json::to_string(&rows)?);
        }
        out.push('\n');
    } else {
        out = table(&rows);
    }
    print(&out)?;
    Ok(0)
}

/// runc's columns (tabwriter: minimum width 12, padding 1) and BACKEND.
fn table(rows: &[Listed]) -> String {
    let header = [
        "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER", "BACKEND",
    ]
    .map(String::from);
    let mut lines: Vec<[String; 7]> = vec![header];
    for row in rows {
        let (s, backend) = (&row.state, &row.backend);
        lines.push([
            s.id.clone(),
            s.pid.to_string(),
            row.status().to_string(),
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
