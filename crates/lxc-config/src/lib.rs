//! proxcage-lxc-config: LXC configuration as data, the OCI -> LXC translation, and
//! Proxmox's `/etc/pve/lxc/<vmid>.conf`.
//!
//! - [`LxcConfig`]: ordered `key = value` entries; [`LxcConfig::render`] and
//!   [`LxcConfig::parse`] round-trip, and values LXC would read differently (line breaks,
//!   blanks at the ends) are refused, never written.
//! - [`from_oci`]: a bundle's spec as an LXC config, following `reference/oci-to-lxc.md`;
//!   what LXC cannot express is a [`TranslateError`] that names the field.
//! - [`PveConfig`] and [`split_for_proxmox`]: `/etc/pve/lxc/<vmid>.conf` as data, and a
//!   translation split into pct options and the raw keys Proxmox passes through.
//! - [`ProcessFile`] and [`init::EXECUTABLE`]: the exact argv, environment and working
//!   directory, exec'd by a tiny static init inside the container, because LXC 5.0 splits
//!   `lxc.init.cmd` on spaces and trims environment values.
//!
//! ```
//! use proxcage_lxc_config::{from_oci, LxcConfig, ResolvedPaths};
//!
//! let dir = tempfile::tempdir()?;
//! let rootfs = dir.path().join("rootfs");
//! std::fs::create_dir(&rootfs)?;
//! let spec = proxcage_oci::default_spec(false);
//! let paths = ResolvedPaths::new(&rootfs, Vec::new(), dir.path().join("files"));
//! let translation = from_oci(&spec, &paths)?;
//! let text = translation.config().render();
//! assert!(text.contains("lxc.init.cmd = /.proxcage/init\n"));
//! assert_eq!(LxcConfig::parse(&text)?, *translation.config());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use proxcage_oci::oci_spec;

mod config;
mod error;
pub mod init;
mod mounts;
mod process;
mod pve;
mod seccomp;
mod translate;

pub use config::{Entry, LxcConfig};
pub use error::{ConfigError, PveError, TranslateError};
pub use process::{
    CapabilitySets, ProcessFile, ProcessFileError, User, CONTROL_SOCKET_PATH, EXEC_FIFO_PATH,
};
pub use pve::{proxmox_allows, split_for_proxmox, ProxmoxConfig, ProxmoxPolicy, PveConfig};
pub use translate::{
    from_oci, DeviceNode, HostFile, MountTarget, ResolvedPaths, RuntimeHooks, Translation,
};
