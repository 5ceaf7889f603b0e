//! proxcage-oci: OCI bundles in; bundles, templates and archives out.
//!
//! - [`Bundle::load`] reads a bundle's `config.json` once, deserializes it into an
//!   [`oci_spec::runtime::Spec`] and checks what a runtime needs before it creates anything:
//!   a 1.x `ociVersion`, an existing `root.path`, a process with arguments, absolute mount
//!   destinations. `root.path` and relative bind-mount sources are resolved against the
//!   bundle directory. Capabilities runc would ignore are dropped with a warning, as runc
//!   does.
//! - [`default_spec`] and [`write_default_spec`]: what `runc spec` (and `--rootless`)
//!   writes, for `proxcage spec`.
//! - [`build::create_bundle`]: a bundle from an OCI image layout or oci-archive, a rootfs
//!   directory or a rootfs tarball, with the image config as the process.
//! - [`template::pack_rootfs`]: a root filesystem packed into a Proxmox template
//!   (`proxcage-<digest>.tar.zst`), reused when the same tree was packed before;
//!   [`template::pack_oci_archive`]: a bundle as an oci-archive Proxmox VE 9.1 imports.
//! - Every [`BundleError`] names the file and the field, e.g.
//!   `/b/config.json: process.user.uid: invalid type: string "root", expected u32 (line 7, column 17)`.
//!
//! `oci_spec` is re-exported so that embedders use the same version.
//!
//! ```
//! use proxcage_oci::{write_default_spec, Bundle};
//!
//! let dir = tempfile::tempdir()?;
//! write_default_spec(dir.path(), false)?;
//! std::fs::create_dir(dir.path().join("rootfs"))?;
//!
//! let bundle = Bundle::load(dir.path())?;
//! assert_eq!(bundle.rootfs(), dir.path().join("rootfs"));
//! let args = bundle.spec().process().as_ref().and_then(|p| p.args().clone());
//! assert_eq!(args, Some(vec!["sh".to_string()]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! From a root filesystem to a bundle and to a template:
//!
//! ```
//! use proxcage_oci::build::{create_bundle, BundleOptions, Source};
//! use proxcage_oci::template::{pack_rootfs, PackOptions};
//!
//! let work = tempfile::tempdir()?;
//! let rootfs = work.path().join("rootfs");
//! std::fs::create_dir_all(rootfs.join("etc"))?;
//! std::fs::write(rootfs.join("etc/motd"), "hi\n")?;
//!
//! let source = Source::parse(rootfs.to_str().unwrap())?; // a directory: copied
//! let opts = BundleOptions::default().args(["/bin/sh"]).hostname("demo").progress(false);
//! let built = create_bundle(&work.path().join("bundle"), &source, &opts)?;
//! assert!(built.rootfs().join("etc/motd").is_file());
//!
//! let cache = work.path().join("cache");
//! std::fs::create_dir(&cache)?;
//! let template = pack_rootfs(built.rootfs(), &cache, &PackOptions::default().progress(false))?;
//! assert!(template.file_name().starts_with("proxcage-"));
//! assert!(pack_rootfs(built.rootfs(), &cache, &PackOptions::default().progress(false))?.reused());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use oci_spec;

#[cfg(feature = "images")]
pub mod build;
mod bundle;
#[cfg(feature = "templates")]
mod digest;
mod error;
#[cfg(feature = "images")]
mod layout;
#[cfg(feature = "templates")]
mod oci_archive;
mod spec;
#[cfg(feature = "images")]
mod tar_read;
#[cfg(feature = "templates")]
pub mod template;
#[cfg(feature = "images")]
mod unpack;
mod untrusted;
#[cfg(feature = "templates")]
mod ustar;

pub use bundle::{Bundle, CONFIG_SIZE_LIMIT};
#[cfg(feature = "templates")]
pub use digest::{Digest, DigestParseError};
pub use error::BundleError;
pub use spec::{default_spec, write_default_spec};
pub use untrusted::{read_untrusted, UntrustedFileError};
