//! proxcage-engine: routing, records and recovery over proxcage's backends.
//!
//! An [`Engine`] is what the `proxcage` binary runs every command through, and what an
//! embedder calls to get the same behaviour: it picks each new container's backend (the
//! `io.proxcage.backend` annotation, the config file's `[[route]]` rules, then
//! `default_backend`), checks the `[security]` policy on the bundle it was given, keeps a
//! record of the choice under its root, and sends every later request about the container
//! to that backend. A create is recorded before the backend starts and undone when the
//! backend fails; a create whose process died midway is cleaned up by the next command
//! that meets it, and by [`Engine::health`].
//!
//! The engine implements [`Runtime`](proxcage_core::Runtime) itself:
//!
//! ```no_run
//! use proxcage_core::{ContainerId, DeleteRequest, Runtime};
//! use proxcage_engine::{Config, Engine, Registry};
//! use proxcage_oci::Bundle;
//!
//! let registry = Registry::builtin();
//! let config = Config::load(None, &registry)?; // /etc/proxcage/config.toml, if any
//! let engine = Engine::builder("/run/proxcage").config(config).registry(registry).build()?;
//!
//! let id = ContainerId::new("web-1")?;
//! let bundle = Bundle::load("/srv/bundles/web")?;
//! engine.create(&bundle.create_request(id.clone()))?;
//! engine.start(&id)?;
//! println!("{}", engine.state(&id)?.status);
//! engine.delete(DeleteRequest { id: &id, force: true })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Process-wide effects: backends that drive runc or crun run them with this process's
//! stdio and pass on the signals this process receives while they run (see
//! `proxcage-process`); with [`EngineBuilder::roll_back_on_signals`], `create` also takes
//! over SIGINT, SIGTERM and SIGHUP while it runs. The pct backend's `create` leaves a
//! monitor process as a child of this process (as runc leaves its init), for the caller
//! to reap.

mod config;
mod create;
mod engine;
mod health;
mod interrupt;
mod lifecycle;
mod pod;
mod registry;
mod router;
mod security;

pub use config::{Config, DEFAULT_BACKEND, DEFAULT_PATH, ENV};
pub use engine::{Engine, EngineBuilder};
pub use health::{HealthReport, Repaired};
pub use lifecycle::Listed;
pub use registry::{BackendEnv, Registry};
pub use router::{Reason, RouteRule, Router};
pub use security::SecurityPolicy;

pub use proxcage_delegate::CallerFlags;
