//! Running the LXC tools and tar: argv lists, a timeout, output captured in files (a
//! daemonising lxc-start would keep a pipe open for as long as the container runs).

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::{io_fail, Failure};

/// What a finished command left.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
}

/// Runs `cmd` with stdin from `stdin` (or /dev/null), killing it after `timeout`.
pub fn run(
    scratch: &Path,
    cmd: &mut Command,
    stdin: Option<File>,
    timeout: Duration,
) -> Result<Ran, Failure> {
    fs::create_dir_all(scratch).map_err(io_fail("create", scratch))?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let base = scratch.join(format!(
        "{}-{}-{}",
        Path::new(&program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        next()
    ));
    let out_path = base.with_extension("out");
    let err_path = base.with_extension("err");
    let result = (|| {
        let mut child = cmd
            .stdin(stdin.map(Stdio::from).unwrap_or_else(Stdio::null))
            .stdout(File::create(&out_path).map_err(io_fail("create", &out_path))?)
            .stderr(File::create(&err_path).map_err(io_fail("create", &err_path))?)
            .spawn()
            .map_err(|e| Failure::new(format!("unable to run {program}: {e}")))?;
        let status = match child
            .wait_timeout(timeout)
            .map_err(|e| Failure::new(format!("waiting for {program} failed - {e}")))?
        {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::new(format!(
                    "command '{program}' failed: got timeout"
                )));
            }
        };
        Ok(Ran {
            status,
            stdout: String::from_utf8_lossy(
                &fs::read(&out_path).map_err(io_fail("read", &out_path))?,
            )
            .into_owned(),
            stderr: String::from_utf8_lossy(
                &fs::read(&err_path).map_err(io_fail("read", &err_path))?,
            )
            .into_owned(),
        })
    })();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    result
}

fn next() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
