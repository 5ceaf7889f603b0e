//! What every command needs, built on first use: the root, the config, the engine. A
//! command that needs no config (`spec`) reads none.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use proxcage_core::{Error, Result};
use proxcage_engine::{CallerFlags, Config, Engine, Registry};

use crate::args::Global;

pub struct Ctx<'a> {
    pub global: &'a Global,
    config: OnceCell<Config>,
    engine: OnceCell<Engine>,
}

impl<'a> Ctx<'a> {
    pub fn new(global: &'a Global) -> Self {
        Ctx {
            global,
            config: OnceCell::new(),
            engine: OnceCell::new(),
        }
    }

    /// `--root`, else runc's rule: /run/proxcage for root (/var/run/proxcage on FreeBSD,
    /// which has no /run), $XDG_RUNTIME_DIR/proxcage for anyone else. podman calls some
    /// commands without --root, so this must not vary.
    pub fn root(&self) -> PathBuf {
        if let Some(root) = &self.global.root {
            return root.clone();
        }
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from(if cfg!(target_os = "linux") {
                "/run/proxcage"
            } else {
                "/var/run/proxcage"
            });
        }
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => Path::new(&dir).join("proxcage"),
            None => PathBuf::from(format!("/run/user/{}/proxcage", nix::unistd::geteuid())),
        }
    }

    pub fn config(&self) -> Result<&Config> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let config = Config::load(self.global.config.as_deref(), &Registry::builtin())?;
        Ok(self.config.get_or_init(|| config))
    }

    /// The engine over the root and the config, with the caller's global flags.
    pub fn engine(&self) -> Result<&Engine> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let engine = Engine::builder(self.root())
            .config(self.config()?.clone())
            .flags(CallerFlags {
                systemd_cgroup: self.global.systemd_cgroup,
                rootless: self.global.rootless.clone(),
                debug: self.global.debug,
            })
            .command_hint(self.command_line())
            .roll_back_on_signals(true)
            .build()?;
        Ok(self.engine.get_or_init(|| engine))
    }

    /// `proxcage` with the `--root` and `--config` of this invocation, for commands that
    /// messages tell the operator to run.
    fn command_line(&self) -> String {
        let mut cmd = String::from("proxcage");
        if let Some(root) = &self.global.root {
            cmd.push_str(&format!(" --root {}", root.display()));
        }
        if let Some(config) = &self.global.config {
            cmd.push_str(&format!(" --config {}", config.display()));
        }
        cmd
    }
}

/// Makes a user-given path absolute against the cwd, as the backend would read it.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io("cannot resolve", path, e))
}
