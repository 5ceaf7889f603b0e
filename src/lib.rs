//! proxcage: an OCI container runtime for Proxmox VE hosts, as libraries.
//!
//! This facade re-exports the crates, so one dependency gives an embedder all of them at
//! matching versions:
//!
//! - [`engine`]: what the `proxcage` binary runs every command through: routing, the
//!   security policy, records, create/undo/recover, list and health across backends. An
//!   [`Engine`](engine::Engine) is a [`Runtime`](core::Runtime) itself;
//! - [`core`]: container ids, signals, the OCI state, errors and the
//!   [`Runtime`](core::Runtime) trait every backend implements;
//! - [`store`]: records and locks under a root, and the health reconciler;
//! - [`process`]: how backends run their tools (stdio, signals, timeouts);
//! - [`oci`]: bundles in (`Bundle::load`, the default spec), with `oci_spec` re-exported;
//! - [`delegate`]: a `Runtime` over any binary with runc's command line;
//! - [`backend_runc`], [`backend_crun`]: the runc and crun backends;
//! - [`backend_pct`]: bundles as Proxmox containers, through pct and pvesh;
//! - [`backend_jail`]: FreeBSD jails, through ocijail.
//!
//! `examples/run_bundle.rs` creates, starts, waits for and deletes a container through
//! the engine. In short:
//!
//! ```no_run
//! use proxcage::core::{ContainerId, DeleteRequest, Runtime};
//! use proxcage::engine::{Config, Engine, Registry};
//! use proxcage::oci::Bundle;
//!
//! let registry = Registry::builtin();
//! let config = Config::load(None, &registry)?;
//! let engine = Engine::builder("/run/proxcage").config(config).registry(registry).build()?;
//! let id = ContainerId::new("web-1")?;
//! engine.create(&Bundle::load("/srv/bundles/web")?.create_request(id.clone()))?;
//! engine.start(&id)?;
//! println!("{} is {}", id, engine.state(&id)?.status);
//! engine.delete(DeleteRequest { id: &id, force: true })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use proxcage_backend_crun as backend_crun;
pub use proxcage_backend_jail as backend_jail;
pub use proxcage_backend_pct as backend_pct;
pub use proxcage_backend_runc as backend_runc;
pub use proxcage_core as core;
pub use proxcage_delegate as delegate;
pub use proxcage_engine as engine;
pub use proxcage_oci as oci;
pub use proxcage_process as process;
pub use proxcage_store as store;
