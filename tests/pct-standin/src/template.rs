//! Template extraction as pve-container's `restore_archive` does it: GNU tar with numeric
//! owners, ACLs and xattrs, `./dev/*` excluded; for unprivileged containers inside a user
//! namespace (`lxc-usernsexec -m u:0:100000:65536 -m g:0:100000:65536`) so every owner
//! lands shifted by 100000.

use std::fs::File;
use std::os::unix::fs::chown;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::layout::Layout;
use crate::run::run;
use crate::{Failure, Warn};

/// The uid/gid the container's root maps to.
pub const ID_SHIFT: u32 = 100_000;

/// The tar flag for a template's compression, from its name.
fn compression(file: &Path) -> Result<Option<&'static str>, Failure> {
    let name = file.to_string_lossy();
    Ok(if name.ends_with(".tar") {
        None
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some("-z")
    } else if name.ends_with(".tar.xz") {
        Some("-J")
    } else if name.ends_with(".tar.zst") {
        Some("--zstd")
    } else if name.ends_with(".tar.bz2") {
        Some("-j")
    } else {
        return Err(Failure::new(format!(
            "unable to detect archive compression of '{}'",
            file.display()
        )));
    })
}

/// Extracts `archive` into `rootdir` (which must exist).
pub fn extract(
    layout: &Layout,
    archive: &Path,
    rootdir: &Path,
    unprivileged: bool,
    warn: Warn,
) -> Result<(), Failure> {
    let flag = compression(archive)?;
    warn.say(&format!("extracting archive '{}'", archive.display()));
    let mut cmd;
    if unprivileged {
        chown(rootdir, Some(ID_SHIFT), Some(ID_SHIFT)).map_err(crate::io_fail("chown", rootdir))?;
        cmd = Command::new("lxc-usernsexec");
        cmd.args([
            "-m",
            &format!("u:0:{ID_SHIFT}:65536"),
            "-m",
            &format!("g:0:{ID_SHIFT}:65536"),
            "--",
            "tar",
        ]);
    } else {
        cmd = Command::new("tar");
    }
    // The archive comes in on stdin and tar works in its cwd: neither needs to be
    // reachable by the namespace's root through the (possibly 0700) parent directories.
    cmd.args(["xpf", "-"]);
    if let Some(flag) = flag {
        cmd.arg(flag);
    }
    cmd.args([
        "--totals",
        "--one-file-system",
        "-p",
        "--sparse",
        "--numeric-owner",
        "--acls",
        "--xattrs",
        "--xattrs-include=user.*",
        "--xattrs-include=security.capability",
        "--warning=no-file-ignored",
        "--warning=no-xattr-write",
        "-C",
        ".",
        "--skip-old-files",
        "--anchored",
        "--exclude",
        "./dev/*",
    ])
    .current_dir(rootdir)
    .env("PATH", layout.lxc_env_path()?);
    let input = File::open(archive)
        .map_err(|e| Failure::new(format!("unable to open '{}' - {e}", archive.display())))?;
    let ran = run(
        &layout.scratch(),
        &mut cmd,
        Some(input),
        Duration::from_secs(600),
    )?;
    for line in ran.stderr.lines().chain(ran.stdout.lines()) {
        warn.say(line);
    }
    if !ran.ok() {
        return Err(Failure::new(format!(
            "command 'tar xpf - ...' failed: exit code {}",
            ran.status.code().unwrap_or(-1)
        )));
    }
    Ok(())
}

/// pve-container's OS detection: the distribution from files in the rootfs.
pub fn detect_ostype(rootdir: &Path) -> Result<&'static str, Failure> {
    let has = |p: &str| rootdir.join(p).exists();
    let os_release = std::fs::read_to_string(rootdir.join("etc/os-release")).unwrap_or_default();
    let id = os_release
        .lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    Ok(if has("etc/devuan_version") {
        "devuan"
    } else if has("etc/lsb-release")
        && std::fs::read_to_string(rootdir.join("etc/lsb-release"))
            .unwrap_or_default()
            .contains("Ubuntu")
    {
        "ubuntu"
    } else if has("etc/debian_version") {
        "debian"
    } else if has("etc/alpine-release") {
        "alpine"
    } else if has("etc/arch-release") {
        "archlinux"
    } else if has("etc/fedora-release") {
        "fedora"
    } else if has("etc/centos-release") || has("etc/redhat-release") {
        "centos"
    } else if has("etc/gentoo-release") {
        "gentoo"
    } else if has("etc/NIXOS") {
        "nixos"
    } else if id.starts_with("opensuse") {
        "opensuse"
    } else {
        return Err(Failure::new("unable to detect OS distribution"));
    })
}
