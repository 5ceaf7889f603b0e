//! Parsers for what pct and pvesh print (formats in reference/pct.md).

use crate::vmid::Vmid;

/// `pct status <vmid>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtStatus {
    Running,
    Stopped,
}

pub fn status(out: &str) -> Result<CtStatus, String> {
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("status:"));
    match line.map(|l| l["status:".len()..].trim()) {
        Some("running") => Ok(CtStatus::Running),
        Some("stopped") => Ok(CtStatus::Stopped),
        Some(other) => Err(format!("unknown status {other:?}")),
        None => Err(format!("no 'status:' line in {out:?}")),
    }
}

/// One row of `pct list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub vmid: Vmid,
    pub status: String,
    /// Empty when the CT is not locked.
    pub lock: String,
    pub name: String,
}

/// `pct list`: a header, then `printf "%-10s %-10s %-12s %-20s\n"` rows; nothing at all
/// when there are no containers. The lock column may be blank, so the columns are cut at
/// the header's offsets rather than split on whitespace.
pub fn list(out: &str) -> Result<Vec<ListEntry>, String> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let col = |name: &str| {
        header
            .find(name)
            .ok_or_else(|| format!("no {name} column in {header:?}"))
    };
    let (status_at, lock_at, name_at) = (col("Status")?, col("Lock")?, col("Name")?);
    lines
        .map(|line| {
            let cell = |from: usize, to: Option<usize>| -> String {
                let end = to.unwrap_or(line.len()).min(line.len());
                line.get(from.min(end)..end)
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            let vmid = cell(0, Some(status_at)).parse::<Vmid>()?;
            Ok(ListEntry {
                vmid,
                status: cell(status_at, Some(lock_at)),
                lock: cell(lock_at, Some(name_at)),
                name: cell(name_at, None),
            })
        })
        .collect()
}

/// `pct config <vmid>`: `key: value` lines (the description url-encoded), then raw `lxc.*`
/// lines. Keys keep their order; values are as printed.
pub fn config(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// `pvesh get /cluster/nextid`: the number, possibly JSON-quoted.
pub fn nextid(out: &str) -> Result<Vmid, String> {
    out.trim().trim_matches('"').parse::<Vmid>()
}

/// `lxc-info -p -H`: the init's host pid; nothing when the container is not running.
pub fn init_pid(out: &str) -> Result<Option<i32>, String> {
    let text = out.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i32>()
        .map(Some)
        .map_err(|_| format!("not a pid: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_lines() {
        assert_eq!(status("status: running\n"), Ok(CtStatus::Running));
        assert_eq!(status("status: stopped\n"), Ok(CtStatus::Stopped));
        assert!(status("").is_err());
        assert!(status("status: frozen\n").is_err());
    }

    #[test]
    fn list_with_blank_and_filled_lock_columns() {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<10} {:<10} {:<12} {:<20}\n",
            "VMID", "Status", "Lock", "Name"
        ));
        out.push_str(&format!(
            "{:<10} {:<10} {:<12} {:<20}\n",
            "100", "running", "", "web"
        ));
        out.push_str(&format!(
            "{:<10} {:<10} {:<12} {:<20}\n",
            "105", "stopped", "backup", "db with space"
        ));
        let rows = list(&out).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].vmid.get(),
                rows[0].status.as_str(),
                rows[0].lock.as_str(),
                rows[0].name.as_str()
            ),
            (100, "running", "", "web")
        );
        assert_eq!(
            (rows[1].lock.as_str(), rows[1].name.as_str()),
            ("backup", "db with space")
        );
    }

    #[test]
    fn list_of_nothing_prints_nothing() {
        assert_eq!(list("").unwrap(), vec![]);
    }

    #[test]
    fn config_nextid_and_pid() {
        let conf = config("arch: amd64\ndescription: proxcage%3A web\nhostname: web\nlxc.init.cmd: /.proxcage/init\n");
        assert_eq!(conf[1], ("description".into(), "proxcage%3A web".into()));
        assert_eq!(conf[3], ("lxc.init.cmd".into(), "/.proxcage/init".into()));
        assert_eq!(nextid("105\n").unwrap().get(), 105);
        assert_eq!(nextid("\"105\"\n").unwrap().get(), 105);
        assert!(nextid("99").is_err());
        assert_eq!(init_pid("4242\n"), Ok(Some(4242)));
        assert_eq!(init_pid(""), Ok(None));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = status(&s);
            let _ = list(&s);
            let _ = config(&s);
            let _ = nextid(&s);
            let _ = init_pid(&s);
        }
    }
}
