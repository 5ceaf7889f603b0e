//! The ocijail stand-in (`ocijail-standin.py`): ocijail's command line and answers, from
//! its source, without jails; it records every call's argv. For the jail backend's tests.

use std::fs;
use std::path::{Path, PathBuf};

/// The stand-in, installed as `ocijail` in a directory of its own.
#[derive(Debug)]
pub struct OcijailStandin {
    dir: PathBuf,
}

impl OcijailStandin {
    /// Installs the stand-in in `dir` (created if needed). It needs python3.
    pub fn install(dir: &Path) -> Self {
        crate::require_tool("python3", "python3");
        fs::create_dir_all(dir).unwrap();
        crate::install_script(&dir.join("ocijail"), include_str!("ocijail-standin.py"));
        OcijailStandin {
            dir: dir.to_path_buf(),
        }
    }

    /// The binary, for `[backends.jail] binary`.
    pub fn binary(&self) -> PathBuf {
        self.dir.join("ocijail")
    }

    /// What `ocijail --version` prints from now on.
    pub fn set_version(&self, text: &str) {
        fs::write(self.dir.join("version"), text).unwrap();
    }

    /// Every call's argv so far, `--version` calls left out.
    pub fn calls(&self) -> Vec<Vec<String>> {
        let text = fs::read_to_string(self.dir.join("calls")).unwrap_or_default();
        text.split_terminator("---\n")
            .filter(|call| *call != "--version\n")
            .map(|call| call.lines().map(str::to_string).collect())
            .collect()
    }

    /// The subcommands called so far, in order.
    pub fn subcommands(&self) -> Vec<String> {
        let globals = ["--root", "--log", "--log-format", "--log-level"];
        self.calls()
            .iter()
            .filter_map(|argv| {
                let mut i = 0;
                while i < argv.len() && globals.contains(&argv[i].as_str()) {
                    i += 2;
                }
                argv.get(i).cloned()
            })
            .collect()
    }
}
