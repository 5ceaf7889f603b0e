//! proxcage-init: the container's first process, and the monitor that stands in for it on
//! the host. Its source is `program/` (no std, no libc, its own `_start`); `build.rs`
//! compiles it with rustc into a freestanding static executable of a few KiB, and this
//! library embeds the result as [`EXECUTABLE`].
//!
//! One executable, two roles:
//!
//! - **In the container** (`init [PROCESS_FILE [TERMINAL_SOCKET]]`, the CT's
//!   `lxc.init.cmd`): it reads a process file (written by `proxcage_lxc_config::ProcessFile`:
//!   the exact argv, environment, working directory, umask, user, capability sets and
//!   flags), and execs the command, so that arguments and environment values reach the
//!   process byte for byte where LXC 5.0 would split `lxc.init.cmd` on spaces and trim
//!   `lxc.environment`. Monitored, it first connects to the monitor's socket, takes its
//!   stdio (or sends it a pseudo-terminal), waits on the exec FIFO until `start`, and then
//!   stays PID 1: it runs the process as its child, passes signals on, reaps orphans and
//!   reports the exit status.
//! - **On the host** (`init --monitor LISTEN_FD STATUS_FD NFDS HOLD_FD [CONSOLE_SOCKET]`): the
//!   process left in the caller's process tree by `create`, which accepts the CT's init,
//!   hands it the caller's stdio, and exits with the status the init reports.
//!
//! Exit codes when the command cannot be started, as a shell reports them: 127 when it is
//! not found, 126 when it cannot be executed, 125 for a bad or unreadable process file or a
//! set-up step that failed.
//!
//! ```
//! // A static ELF executable.
//! assert_eq!(&proxcage_init::EXECUTABLE[..4], b"\x7fELF");
//! ```

/// The executable's bytes, to be written to a file the runtime bind-mounts into the
/// container (and runs on the host as the monitor).
pub const EXECUTABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/proxcage-init"));

#[cfg(test)]
#[path = "../program/text.rs"]
mod text;

#[cfg(test)]
#[path = "../program/process_file.rs"]
mod process_file;
