//! The process file that `proxcage-init` reads: the exact argv, environment, working
//! directory and umask of the container's process.
//!
//! Format (every field NUL-terminated, so any byte but NUL survives):
//! `PROXCAGE-PROCESS 4`, the cwd, the umask in octal (or empty), the flags (a
//! comma-separated subset of `no_new_privs`, `monitor`, `terminal`, in that order, or
//! empty), the user (`uid:gid`, then optionally `:gids` and `:caps`, comma-separated
//! numbers; or empty to stay as started), the capability sets
//! (`effective:permitted:inheritable:ambient`, hexadecimal masks; or empty to leave them
//! as they are), the argument count, the arguments, then the environment variables until
//! the end of the file.

use std::fmt;

/// The first field of a process file.
pub const MAGIC: &str = "PROXCAGE-PROCESS 4";

/// The flags, in the order they are written.
const FLAGS: [&str; 3] = ["no_new_privs", "monitor", "terminal"];

/// Where a monitored init finds its monitor's socket, inside the container.
pub const CONTROL_SOCKET_PATH: &str = "/.proxcage/run/control";

/// The FIFO a monitored init blocks on until the runtime's `start` opens it.
pub const EXEC_FIFO_PATH: &str = "/.proxcage/run/exec.fifo";

/// What the container's process is: read by `proxcage-init`, written by [`ProcessFile::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessFile {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub umask: Option<u32>,
    /// Set no_new_privs before the exec (`process.noNewPrivileges`): done by the init, so
    /// it holds where LXC's `lxc.no_new_privs` is not applied (Proxmox drops that key).
    pub no_new_privileges: bool,
    /// The init reports to a monitor outside the container: it connects to
    /// [`CONTROL_SOCKET_PATH`], takes its stdio from the monitor (or sends it a terminal),
    /// waits on [`EXEC_FIFO_PATH`] for `start`, then runs the process as its child,
    /// forwards signals to it and reports its exit status.
    pub monitored: bool,
    /// The process gets a new pseudo-terminal, whose master goes to the monitor (with
    /// `monitored`) or to the socket named by the init's second argument (an exec).
    pub terminal: bool,
    /// The user the init switches to before the exec; `None` keeps the one it runs as.
    pub user: Option<User>,
    /// The capability sets the init applies after the user switch, before the exec;
    /// `None` leaves them as the init has them.
    pub capabilities: Option<CapabilitySets>,
}

/// Capability sets as masks: bit `n` is capability `n` (`CAP_CHOWN` is 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    /// Raised one by one after the others are set: each must be permitted and
    /// inheritable.
    pub ambient: u64,
}

impl CapabilitySets {
    fn encode(&self) -> String {
        format!(
            "{:x}:{:x}:{:x}:{:x}",
            self.effective, self.permitted, self.inheritable, self.ambient
        )
    }

    fn decode(text: &str) -> Option<CapabilitySets> {
        let masks: Vec<u64> = text
            .split(':')
            .map(|m| u64::from_str_radix(m, 16).ok())
            .collect::<Option<_>>()?;
        match masks[..] {
            [effective, permitted, inheritable, ambient] => Some(CapabilitySets {
                effective,
                permitted,
                inheritable,
                ambient,
            }),
            _ => None,
        }
    }
}

/// A uid, a gid and supplementary groups, as `process.user` gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Capabilities (by number) the init keeps only to switch users and drops from its
    /// bounding set before the switch: the spec did not ask for them.
    pub drop_bounding: Vec<u32>,
}

impl User {
    fn encode(&self) -> String {
        let list = |l: &[u32]| l.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut text = format!("{}:{}", self.uid, self.gid);
        if !self.additional_gids.is_empty() || !self.drop_bounding.is_empty() {
            text.push(':');
            text.push_str(&list(&self.additional_gids));
        }
        if !self.drop_bounding.is_empty() {
            text.push(':');
            text.push_str(&list(&self.drop_bounding));
        }
        text
    }

    fn decode(text: &str) -> Option<User> {
        let list = |l: Option<&str>| -> Option<Vec<u32>> {
            match l {
                None | Some("") => Some(Vec::new()),
                Some(l) => l.split(',').map(|g| g.parse().ok()).collect(),
            }
        };
        let mut parts = text.splitn(4, ':');
        let uid = parts.next()?.parse().ok()?;
        let gid = parts.next()?.parse().ok()?;
        let additional_gids = list(parts.next())?;
        let drop_bounding = list(parts.next())?;
        Some(User {
            uid,
            gid,
            additional_gids,
            drop_bounding,
        })
    }
}

/// A process file that [`ProcessFile::decode`] cannot read, or values that cannot be
/// written (a NUL inside a string, no arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFileError(String);

impl fmt::Display for ProcessFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process file: {}", self.0)
    }
}

impl std::error::Error for ProcessFileError {}

impl ProcessFile {
    /// The file's bytes. Fails on an empty argv or a NUL inside any string.
    pub fn encode(&self) -> Result<Vec<u8>, ProcessFileError> {
        if self.args.is_empty() {
            return Err(ProcessFileError("process.args is empty".into()));
        }
        let umask = self.umask.map(|m| format!("{m:o}")).unwrap_or_default();
        let argc = self.args.len().to_string();
        let flags =
            ProcessFile::flags_text([self.no_new_privileges, self.monitored, self.terminal]);
        let user = self.user.as_ref().map(User::encode).unwrap_or_default();
        let capabilities = self
            .capabilities
            .as_ref()
            .map(CapabilitySets::encode)
            .unwrap_or_default();
        let fields = [
            MAGIC,
            &self.cwd,
            &umask,
            &flags,
            &user,
            &capabilities,
            &argc,
        ]
        .into_iter()
        .chain(self.args.iter().map(String::as_str))
        .chain(self.env.iter().map(String::as_str));
        let mut out = Vec::new();
        for field in fields {
            if field.contains('\0') {
                return Err(ProcessFileError(format!("{field:?} contains a NUL byte")));
            }
            out.extend_from_slice(field.as_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// Reads what [`ProcessFile::encode`] wrote; refuses anything else.
    pub fn decode(bytes: &[u8]) -> Result<ProcessFile, ProcessFileError> {
        let bad = |what: &str| ProcessFileError(what.into());
        let body = bytes
            .strip_suffix(b"\0")
            .ok_or_else(|| bad("it does not end with a NUL"))?;
        let mut fields = body
            .split(|&b| b == 0)
            .map(|f| String::from_utf8(f.to_vec()).map_err(|_| bad("a field is not UTF-8")));
        let mut next = |what: &str| fields.next().unwrap_or_else(|| Err(bad(what)));
        if next("no header")? != MAGIC {
            return Err(bad("it does not start with PROXCAGE-PROCESS 4"));
        }
        let cwd = next("no cwd")?;
        let umask = match next("no umask")?.as_str() {
            "" => None,
            m => Some(u32::from_str_radix(m, 8).map_err(|_| bad("the umask is not octal"))?),
        };
        let flags = next("no flags")?;
        let mut set = [false; 3];
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            let i = FLAGS
                .iter()
                .position(|f| *f == flag)
                .ok_or_else(|| bad("unknown flags"))?;
            set[i] = true;
        }
        if flags != ProcessFile::flags_text(set) {
            return Err(bad("flags out of order or repeated"));
        }
        let [no_new_privileges, monitored, terminal] = set;
        let user = match next("no user")?.as_str() {
            "" => None,
            text => Some(User::decode(text).ok_or_else(|| bad("the user is not uid:gid[:gids]"))?),
        };
        let capabilities = match next("no capabilities")?.as_str() {
            "" => None,
            text => Some(
                CapabilitySets::decode(text)
                    .ok_or_else(|| bad("the capabilities are not four hex masks"))?,
            ),
        };
        let argc: usize = next("no argument count")?
            .parse()
            .map_err(|_| bad("the argument count is not a number"))?;
        if argc == 0 {
            return Err(bad("the argument count is 0"));
        }
        let args = (0..argc)
            .map(|_| next("fewer arguments than the count says"))
            .collect::<Result<Vec<_>, _>>()?;
        let env = fields.collect::<Result<Vec<_>, _>>()?;
        Ok(ProcessFile {
            args,
            env,
            cwd,
            umask,
            no_new_privileges,
            monitored,
            terminal,
            user,
            capabilities,
        })
    }

    fn flags_text(set: [bool; 3]) -> String {
        let flags: Vec<&str> = FLAGS
            .iter()
            .zip(set)
            .filter(|(_, on)| *on)
            .map(|(flag, _)| *flag)
            .collect();
        flags.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_bytes() {
        let p = ProcessFile {
            args: vec!["sh".into(), "".into(), "a b".into()],
            env: vec!["T=x ".into()],
            cwd: "/".into(),
            umask: Some(0o22),
            no_new_privileges: true,
            monitored: false,
            terminal: true,
            user: Some(User {
                uid: 1000,
                gid: 100,
                additional_gids: vec![4, 27],
                drop_bounding: vec![6, 8],
            }),
            capabilities: Some(CapabilitySets {
                effective: 0x2_0000_0001,
                permitted: 0x2_0000_0001,
                inheritable: 1,
                ambient: 0,
            }),
        };
        assert_eq!(
            p.encode().unwrap(),
            b"PROXCAGE-PROCESS 4\0/\x0022\0no_new_privs,terminal\x001000:100:4,27:6,8\x00200000001:200000001:1:0\x003\0sh\0\0a b\0T=x \0"
                .to_vec()
        );
        assert_eq!(ProcessFile::decode(&p.encode().unwrap()).unwrap(), p);
        let swapped = b"PROXCAGE-PROCESS 4\0/\0\0terminal,monitor\0\0\x001\0sh\0";
        assert!(ProcessFile::decode(swapped).is_err());
    }

    #[test]
    fn refuses_nul_and_empty_argv() {
        let mut p = ProcessFile {
            args: vec![],
            env: vec![],
            cwd: "/".into(),
            umask: None,
            no_new_privileges: false,
            monitored: false,
            terminal: false,
            user: None,
            capabilities: None,
        };
        assert!(p.encode().is_err());
        p.args = vec!["a\0b".into()];
        assert!(p.encode().is_err());
    }

    proptest! {
        #[test]
        fn round_trips(args in proptest::collection::vec("[^\0]*", 1..6),
                       env in proptest::collection::vec("[^\0]*", 0..6),
                       cwd in "[^\0]*", umask in proptest::option::of(0u32..0o7777),
                       [no_new_privileges, monitored, terminal] in any::<[bool; 3]>(),
                       user in proptest::option::of((any::<u32>(), any::<u32>(),
                                                     proptest::collection::vec(any::<u32>(), 0..4))),
                       capabilities in proptest::option::of(any::<[u64; 4]>())) {
            let user = user.map(|(uid, gid, additional_gids)| {
                let drop_bounding = additional_gids.iter().map(|g| g % 41).collect();
                User { uid, gid, additional_gids, drop_bounding }
            });
            let capabilities = capabilities.map(|[effective, permitted, inheritable, ambient]| {
                CapabilitySets { effective, permitted, inheritable, ambient }
            });
            let p = ProcessFile { args, env, cwd, umask, no_new_privileges, monitored, terminal, user, capabilities };
            prop_assert_eq!(ProcessFile::decode(&p.encode().unwrap()).unwrap(), p);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ProcessFile::decode(&bytes);
        }
    }
}
