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
//! - [`read_untrusted`]: a file someone else wrote (config.json, a `--process` file), read
//!   without blocking on a FIFO, opening a device or reading past a limit.
//! - [`build::create_bundle`] (feature `images`): a bundle from an OCI image layout or
//!   oci-archive, a rootfs directory or a rootfs tarball, with the image config as the
//!   process; blob sizes and unpacked data bounded by
//!   [`BundleOptions`](build::BundleOptions).
//! - [`template::pack_rootfs`] (feature `templates`): a root filesystem packed into a
//!   Proxmox template (`proxcage-<digest>.tar.zst`), reused when the same tree was packed
//!   before; [`template::pack_oci_archive`]: a bundle as an oci-archive Proxmox VE 9.1
//!   imports.
//! - Every [`BundleError`] names the file and the field, e.g.
//!   `/b/config.json: process.user.uid: invalid type: string "root", expected u32 (line 7, column 17)`.
//!
//! `oci_spec` is re-exported so that embedders use the same version.
//!
//! # Features
//!
//! None is on by default: a runtime that only loads bundles compiles no compressor, hash
//! or progress bar.
//!
//! | feature | brings | and the crates |
//! |---|---|---|
//! | (none) | [`Bundle`], [`default_spec`], [`read_untrusted`] | oci-spec, serde_json, nix |
//! | `templates` | [`template`] (Proxmox templates and oci-archives), [`Digest`] | zstd, sha2, xattr, indicatif, tempfile |
//! | `images` | [`build`] (bundles from images, rootfs directories and tarballs); includes `templates`, whose archive writer copies rootfs directories | flate2 |
//!
//! ```toml
//! [dependencies]
//! proxcage-oci = { version = "0.1", features = ["images"] }
//! ```
//!
//! Loading a bundle (no feature):
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
//! From a root filesystem to a bundle and to a template (feature `images`):
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

// The documentation above links to what the features bring; without them, those links
// have nothing to point at.
#![cfg_attr(not(feature = "images"), allow(rustdoc::broken_intra_doc_links))]

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
