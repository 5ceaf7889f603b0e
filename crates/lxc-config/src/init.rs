//! `proxcage-init`, the container's first process (crate `proxcage-init`): a static
//! executable with no libc that reads a [`crate::ProcessFile`] and execs the exact argv.
//! The translation bind-mounts it read-only at [`INIT_PATH`] and the process file at
//! [`PROCESS_FILE_PATH`], and makes it `lxc.init.cmd`.

/// The executable's bytes, for [`crate::Translation::prepare`] or any runtime that needs to
/// place it on the host.
pub use proxcage_init::EXECUTABLE;

/// Where the init appears inside the container.
pub const INIT_PATH: &str = "/.proxcage/init";

/// Where the process file appears inside the container (the init's default).
pub const PROCESS_FILE_PATH: &str = "/.proxcage/process";
