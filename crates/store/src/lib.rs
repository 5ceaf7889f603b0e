//! proxcage-store: proxcage's own records of the containers it made.
//!
//! One directory per container under `<root>/containers/`, holding its [`Record`] (which
//! backend owns it, its bundle, whether its create finished); backends keep their own
//! state under `<root>/backends/<name>/`. Records are written atomically, every change to
//! a container happens under its lock ([`ContainerLock`]), and [`health`] checks and
//! repairs the store itself and gives the backends' checks what they share.
//!
//! ```
//! use proxcage_core::ContainerId;
//! use proxcage_store::{Record, StateStore};
//!
//! let dir = tempfile::tempdir()?;
//! let store = StateStore::open(dir.path())?;
//! let id = ContainerId::new("web-1")?;
//! let lock = store.lock_new(&id)?;
//! lock.write(&Record::creating(id.clone(), "runc", "/srv/bundles/web"))?;
//! drop(lock);
//! assert_eq!(store.read(&id)?.unwrap().backend(), "runc");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
pub mod health;
mod stale;
mod store;

pub use backend::{held_from_state, Backend, Held, Leftovers};
pub use stale::{describe_holder, describe_stale, lock_holder, stale_lock, StaleLock};
pub use store::{now_rfc3339, wait_for_flock, ContainerLock, Phase, Record, StateStore, StoreLock};
