//! `ps`: the container's pids as JSON, or the rows of ps(1) (default `-ef`) whose PID
//! column is one of them, as runc prints them.

use std::process::Command;
use std::time::Duration;

use proxcage_core::{ContainerId, Runtime};
use proxcage_process as process;

use super::print;
use crate::args::{Format, Ps};
use crate::context::Ctx;

pub fn ps(args: &Ps, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    let pids = ctx.engine()?.ps(&id)?;
    if args.format == Format::Json {
        print(&format!("{}\n", serde_json::to_string(&pids)?))?;
        return Ok(0);
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let mut cmd = Command::new("ps");
    cmd.args(&ps_args);
    let out = process::run_captured(&mut cmd, Duration::from_secs(30))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} failed: {}",
            process::describe(&cmd),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    print(&filter_rows(&String::from_utf8_lossy(&out.stdout), &pids)?)?;
    Ok(0)
}

fn filter_rows(table: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps printed no PID column: {header:?}"))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_header_and_the_container_rows() {
        let table = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 100\n";
        assert_eq!(
            filter_rows(table, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 100\n"
        );
        assert!(filter_rows("USER COMMAND\n", &[1]).is_err());
    }
}
