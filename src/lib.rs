//! proxcage: an OCI container runtime for Proxmox VE hosts, as libraries.
//!
//! This facade re-exports the crates, so one dependency gives an embedder all of them at
//! matching versions:
//!
//! - [`core`]: container ids, signals, the OCI state, the state store, routing and the
//!   [`Runtime`](core::Runtime) trait every backend implements;
//! - [`oci`]: bundles in (`Bundle::load`, the default spec), with `oci_spec` re-exported;
//! - [`delegate`]: a `Runtime` over any binary with runc's command line;
//! - [`backend_runc`], [`backend_crun`]: the runc and crun backends;
//! - [`backend_pct`]: bundles as Proxmox containers, through pct and pvesh.
//!
//! ```no_run
//! use proxcage::core::{ContainerId, Runtime};
//! use proxcage::backend_runc::{runc, RuncSettings};
//!
//! let backend = runc(&RuncSettings::default(), "/run/proxcage/backends/runc".into(), &Default::default())?;
//! let state = backend.state(&ContainerId::new("web-1")?)?;
//! println!("{} is {}", state.id, state.status);
//! # Ok::<(), proxcage::core::Error>(())
//! ```

pub use proxcage_backend_crun as backend_crun;
pub use proxcage_backend_pct as backend_pct;
pub use proxcage_backend_runc as backend_runc;
pub use proxcage_core as core;
pub use proxcage_delegate as delegate;
pub use proxcage_engine as engine;
pub use proxcage_oci as oci;
pub use proxcage_process as process;
pub use proxcage_store as store;
