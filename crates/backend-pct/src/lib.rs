//! proxcage-backend-pct: OCI bundles as real Proxmox VE containers, driven through `pct`
//! and `pvesh` (contract: reference/pct.md).
//!
//! This crate holds the typed calls of pct, pvesh and lxc-info, their output parsers, the
//! mapping of pct's error messages to errors that tell the operator what to do, and
//! VMIDs. The backend itself (create from a bundle, the lifecycle) builds on them.

pub mod alloc;
mod attach;
mod backend;
pub mod error;
mod health;
mod hooks;
mod identity;
mod idmap;
mod locks;
mod member;
mod monitor;
mod netlink;
mod network;
pub mod parse;
pub mod pct;
mod policy;
mod sandbox;
mod settings;
mod staging;
mod templates;
mod tty;
pub mod vmid;

pub use backend::{pct, without_proxmox_keys, Pct};
pub use error::PctError;
pub use pct::{CallError, PctTools};
pub use policy::BindSources;
pub use settings::PctSettings;
pub use vmid::{Vmid, VmidRange};

/// The backend's name in routes, records and the config file.
pub const NAME: &str = "pct";
