//! [`ResolvedPaths`]: what a translation needs from the host besides the spec.

use std::path::{Path, PathBuf};

use proxcage_oci::Bundle;

/// The host paths a translation needs besides the spec.
#[derive(Clone, Debug)]
pub struct ResolvedPaths {
    pub(super) rootfs: PathBuf,
    pub(super) mount_sources: Vec<Option<PathBuf>>,
    pub(super) files_dir: PathBuf,
    pub(super) init: bool,
    pub(super) monitored: bool,
}

impl ResolvedPaths {
    /// Paths from a loaded bundle. `files_dir` is a host directory of the runtime's own
    /// (per container) where [`Translation::prepare`](super::Translation::prepare) writes
    /// the init, the process file and the seccomp profile that the config refers to.
    pub fn from_bundle(bundle: &Bundle, files_dir: impl Into<PathBuf>) -> ResolvedPaths {
        ResolvedPaths::new(bundle.rootfs(), bundle.mount_sources().to_vec(), files_dir)
    }

    /// Paths given one by one: the absolute rootfs, each mount's resolved source by its
    /// index in `spec.mounts` (as [`Bundle::mount_sources`]), and the files directory.
    pub fn new(
        rootfs: impl Into<PathBuf>,
        mount_sources: Vec<Option<PathBuf>>,
        files_dir: impl Into<PathBuf>,
    ) -> ResolvedPaths {
        ResolvedPaths {
            rootfs: rootfs.into(),
            mount_sources,
            files_dir: files_dir.into(),
            init: true,
            monitored: false,
        }
    }

    /// With a monitor outside the container: the init reports to it through the files
    /// directory's `run/` subdirectory, bind-mounted at `/.proxcage/run` (see
    /// [`ProcessFile::monitored`](crate::ProcessFile)). The runtime creates the socket and
    /// the FIFO there before the start.
    pub fn monitored(mut self) -> ResolvedPaths {
        self.monitored = true;
        self
    }

    /// Without `proxcage-init`: `process.args` go to `lxc.init.cmd` and `process.env` to
    /// `lxc.environment`, which LXC 5.0 splits on spaces and trims; arguments or values
    /// that would change on the way are refused.
    pub fn without_init(mut self) -> ResolvedPaths {
        self.init = false;
        self
    }

    /// The absolute rootfs.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Where the runtime's files for this container go.
    pub fn files_dir(&self) -> &Path {
        &self.files_dir
    }
}
