//! proxcage-core: the vocabulary shared by proxcage's crates.
//!
//! - [`ContainerId`], [`Signal`], [`Status`] and [`State`]: runc's notions, validated on
//!   construction and printed exactly as runc prints them.
//! - [`Runtime`]: the contract every backend fulfils; requests in [`runtime`].
//! - [`Finding`]: what `proxcage health` reports, with the repair it would make.
//! - [`Error`]: what went wrong, with the id, file or command, and runc's wording for the
//!   classes callers match on.
//!
//! ```
//! use proxcage_core::{ContainerId, Signal};
//!
//! let id = ContainerId::new("web-1")?;
//! let sig: Signal = "SIGRTMIN+3".parse()?;
//! assert_eq!((id.as_str(), sig.number()), ("web-1", 37));
//! # Ok::<(), proxcage_core::Error>(())
//! ```

pub mod error;
pub mod finding;
pub mod id;
pub mod resources;
pub mod runtime;
pub mod signal;
pub mod state;

pub use error::{Error, ErrorKind, Result};
pub use finding::{Finding, Severity};
pub use id::ContainerId;
pub use resources::{
    CheckpointRequest, Event, EventsRequest, Flow, RestoreRequest, Stats, UpdateRequest,
};
pub use runtime::{CreateRequest, DeleteRequest, ExecRequest, KillRequest, RunRequest, Runtime};
pub use signal::Signal;
pub use state::{State, Status};

/// The OCI runtime-spec version proxcage writes (`spec`) and reports. 1.1.0 is the newest
/// that every backend accepts: crun 1.8.1 refuses a config.json that says 1.2.0.
pub const OCI_VERSION: &str = "1.1.0";

/// The annotation in a bundle's config.json that names the backend to run it.
pub const BACKEND_ANNOTATION: &str = "io.proxcage.backend";
