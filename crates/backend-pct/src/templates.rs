//! Templates, shared by content among the containers of every proxcage root that packs
//! into the same template directory (one root per containerd namespace shares one config
//! file), and counted on disk next to them:
//!
//! ```text
//! <template_dir>/proxcage-<sha256>.tar.zst                  the template
//! <template_dir>/.proxcage-refs/proxcage-<sha256>.tar.zst/  one empty file per user:
//!     <root token>.<container id>                           a create of that root
//! <template_dir>/.proxcage-refs/proxcage-<sha256>.tar.zst.lock
//! <template_dir>/.proxcage-refs/pack-<outline>.lock
//! ```
//!
//! A create adds its reference under the template's lock before `pct create` reads the
//! template; a delete (or the undo of a failed create) removes it under that lock, and
//! removes the template with it when no reference is left. A template is thus never
//! removed while a create of any root is about to use it. Creates of the same content
//! pack it once: the packer holds the lock of its archive's outline (the digest of its
//! headers, known from the tree's metadata before packing) until its reference is added,
//! so a second create of that content waits, then finds the template and reuses it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxcage_core::{ContainerId, Error, Result};
use proxcage_oci::template::{archive_outline, pack_rootfs, PackOptions, Template};

use crate::locks;

/// The directory of references and locks in the template directory.
pub(crate) const REFS: &str = ".proxcage-refs";

/// How long a create waits for another create packing a tree of the same outline: a pack
/// of a large rootfs on a loaded node takes minutes.
const PACK_WAIT: Duration = Duration::from_secs(1800);

/// How long anyone waits for a template's lock: it is held for a few file operations.
const REF_WAIT: Duration = Duration::from_secs(300);

/// One user of a template: a container of a root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Reference {
    pub(crate) root: String,
    pub(crate) id: String,
}

/// The templates of a template directory.
#[derive(Clone, Debug)]
pub(crate) struct Templates {
    dir: PathBuf,
}

impl Templates {
    pub(crate) fn new(dir: &Path) -> Self {
        Templates {
            dir: dir.to_path_buf(),
        }
    }

    fn refs(&self) -> PathBuf {
        self.dir.join(REFS)
    }

    fn users_dir(&self, template: &str) -> PathBuf {
        self.refs().join(template)
    }

    fn lock_path(&self, template: &str) -> PathBuf {
        self.refs().join(format!("{template}.lock"))
    }

    /// The template's lock, held while its references change.
    fn lock(&self, template: &str) -> Result<nix::fcntl::Flock<fs::File>> {
        locks::take(
            &self.lock_path(template),
            &format!("the lock of template {template}"),
            REF_WAIT,
        )
    }

    /// Packs `rootfs` (or finds its template) and adds the reference of container `id` of
    /// the root with `token`, before anything reads the template.
    pub(crate) fn pack_and_refer(
        &self,
        rootfs: &Path,
        token: &str,
        id: &ContainerId,
    ) -> Result<Template> {
        // A rootfs that cannot be packed is the bundle's fault.
        let outline = archive_outline(rootfs).map_err(|e| Error::Input(Box::new(e)))?;
        // Made here, not with the lock's parents: a template directory that is missing
        // is a setting to fix, not a directory to make.
        let refs = self.refs();
        match fs::create_dir(&refs) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("cannot create", &refs, e)),
        }
        let key = outline.headers.hex();
        let key = key.get(..16).unwrap_or(&key);
        let pack_lock = refs.join(format!("pack-{key}.lock"));
        let packing = locks::take(
            &pack_lock,
            &format!("the lock of template packs of trees outlined {key}"),
            PACK_WAIT,
        )?;
        let referred = self.pack_and_refer_locked(rootfs, token, id);
        locks::remove_held(&pack_lock, &packing);
        referred
    }

    /// [`Templates::pack_and_refer`] under the pack lock, which every create that could
    /// refer to this template takes first.
    fn pack_and_refer_locked(
        &self,
        rootfs: &Path,
        token: &str,
        id: &ContainerId,
    ) -> Result<Template> {
        // A template found and then removed by its last user before its lock was ours
        // is packed again; that user cannot remove it once our reference is there.
        for _ in 0..3 {
            let template = pack_rootfs(rootfs, &self.dir, &PackOptions::default())
                .map_err(|e| Error::Input(Box::new(e)))?;
            let name = template.file_name();
            let referred = self.lock(&name).and_then(|held| {
                if !template.path().is_file() {
                    return Ok(None);
                }
                self.add_user(&name, token, id).map(|()| Some(held))
            });
            match referred {
                Ok(Some(_held)) => return Ok(template),
                Ok(None) => continue,
                Err(e) => {
                    // Packed by this create and referred to by no one: only creates
                    // holding the pack lock (this one) add references to it.
                    if !template.reused() && self.users(&name).is_empty() {
                        let _ = fs::remove_file(template.path());
                    }
                    return Err(e);
                }
            }
        }
        Err(Error::Conflict {
            id: id.clone(),
            message: format!(
                "its template in {} was removed three times while the create packed it: run the create again",
                self.dir.display()
            ),
        })
    }

    fn add_user(&self, template: &str, token: &str, id: &ContainerId) -> Result<()> {
        let users = self.users_dir(template);
        fs::create_dir_all(&users).map_err(|e| Error::io("cannot create", &users, e))?;
        let reference = users.join(format!("{token}.{id}"));
        fs::write(&reference, b"").map_err(|e| Error::io("cannot write", &reference, e))
    }

    /// Removes the reference of container `id` of the root with `token` to `template`, and
    /// the template when no reference is left and `still_used()` (containers of this root
    /// from before references) says no. Whether the template was removed.
    pub(crate) fn release(
        &self,
        template: &str,
        token: &str,
        id: &ContainerId,
        still_used: impl FnOnce() -> bool,
    ) -> Result<bool> {
        let held = self.lock(template)?;
        let reference = self.users_dir(template).join(format!("{token}.{id}"));
        match fs::remove_file(&reference) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot remove", &reference, e)),
        }
        if !self.users(template).is_empty() || still_used() {
            return Ok(false);
        }
        self.remove_locked(template, &held)?;
        Ok(true)
    }

    /// Removes `template`, its references directory and its lock file, under its lock.
    fn remove_locked(&self, template: &str, held: &nix::fcntl::Flock<fs::File>) -> Result<()> {
        let path = self.dir.join(template);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot remove", &path, e)),
        }
        let _ = fs::remove_dir(self.users_dir(template));
        locks::remove_held(&self.lock_path(template), held);
        Ok(())
    }

    /// The references to `template`, read without its lock.
    pub(crate) fn users(&self, template: &str) -> Vec<Reference> {
        let Ok(entries) = fs::read_dir(self.users_dir(template)) else {
            return Vec::new();
        };
        let mut out: Vec<Reference> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (root, id) = name.split_once('.')?;
                Some(Reference {
                    root: root.to_string(),
                    id: id.to_string(),
                })
            })
            .collect();
        out.sort();
        out
    }

    /// For `health --repair`: under the template's lock, removes the references of the
    /// root with `token` that `stale` proves dead, then the template if no reference is
    /// left and `still_used()` says no. What was done, in words.
    pub(crate) fn remove_unreferenced(
        &self,
        template: &str,
        token: Option<&str>,
        stale: impl Fn(&str) -> bool,
        still_used: impl FnOnce() -> bool,
    ) -> Result<String> {
        let held = self.lock(template)?;
        for user in self.users(template) {
            if Some(user.root.as_str()) == token && stale(&user.id) {
                let path = self
                    .users_dir(template)
                    .join(format!("{}.{}", user.root, user.id));
                fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
            }
        }
        let users = self.users(template);
        if !users.is_empty() || still_used() {
            return Ok(format!(
                "kept {template}: {} use it now",
                if users.is_empty() {
                    "containers of this root".to_string()
                } else {
                    describe(&users)
                }
            ));
        }
        if !self.dir.join(template).exists() {
            self.remove_locked(template, &held)?;
            return Ok(format!("{template} is gone already"));
        }
        self.remove_locked(template, &held)?;
        Ok(format!("removed {}", self.dir.join(template).display()))
    }
}

/// References in words: `container web-1 of root 3f2a9c1e...`.
pub(crate) fn describe(users: &[Reference]) -> String {
    users
        .iter()
        .map(|u| {
            format!(
                "container {} of root {}",
                u.id,
                u.root.get(..8).unwrap_or(&u.root)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_goes_with_its_last_reference_of_any_root() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::write(rootfs.join("bin/x"), b"x").unwrap();
        let cache = dir.path().join("cache");
        fs::create_dir_all(&cache).unwrap();
        let templates = Templates::new(&cache);
        let (a, b) = (
            ContainerId::new("a").unwrap(),
            ContainerId::new("b").unwrap(),
        );
        let first = templates.pack_and_refer(&rootfs, "roota", &a).unwrap();
        let second = templates.pack_and_refer(&rootfs, "rootb", &a).unwrap();
        assert!(second.reused());
        let name = first.file_name();
        assert_eq!(templates.users(&name).len(), 2);
        // Another root's reference keeps it; this root's own records may too.
        assert!(!templates.release(&name, "roota", &a, || false).unwrap());
        assert!(first.path().exists());
        assert!(!templates.release(&name, "rootb", &b, || false).unwrap());
        assert!(templates
            .remove_unreferenced(&name, Some("roota"), |_| true, || false)
            .unwrap()
            .starts_with("kept"));
        assert!(templates
            .remove_unreferenced(&name, Some("rootb"), |id| id == "a", || false)
            .unwrap()
            .starts_with("removed"));
        assert!(!first.path().exists());
        let left: Vec<_> = fs::read_dir(cache.join(REFS))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
