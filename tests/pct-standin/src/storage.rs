//! Storages from `etc/pve/storage.cfg`, emulated as directories: volume ids, templates
//! (`<storage>:vztmpl/<file>`) and container volumes (`<storage>:<size in GiB>` allocates).
//!
//! A `dir` storage keeps its files under its `path` (templates in `template/cache/`,
//! volumes in `images/<vmid>/`); every other type (lvmthin, zfspool, ...) keeps its volumes
//! as directories in `<root>/images/<storage>/<volname>/`.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use crate::layout::Layout;
use crate::Failure;

/// One storage definition.
#[derive(Debug, Clone)]
pub struct Storage {
    pub id: String,
    pub kind: String,
    pub path: Option<PathBuf>,
    pub content: BTreeSet<String>,
}

/// Every storage in storage.cfg.
pub fn read_all(layout: &Layout) -> Vec<Storage> {
    let text = fs::read_to_string(layout.storage_cfg()).unwrap_or_default();
    let mut out: Vec<Storage> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            if let Some((kind, id)) = line.split_once(':') {
                out.push(Storage {
                    id: id.trim().to_string(),
                    kind: kind.trim().to_string(),
                    path: None,
                    content: BTreeSet::new(),
                });
            }
            continue;
        }
        let Some(storage) = out.last_mut() else {
            continue;
        };
        let line = line.trim();
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match key {
            "path" => {
                let p = PathBuf::from(value.trim());
                storage.path = Some(if p.is_absolute() {
                    p
                } else {
                    layout.root.join(p)
                });
            }
            "content" => {
                storage.content = value.split(',').map(|c| c.trim().to_string()).collect();
            }
            _ => {}
        }
    }
    out
}

/// `storage '<id>' does not exist`
pub fn get(layout: &Layout, id: &str) -> Result<Storage, Failure> {
    read_all(layout)
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Failure::new(format!("storage '{id}' does not exist")))
}

/// Splits `storage:volname`; `None` when the text is no volume id.
pub fn parse_volume_id(volid: &str) -> Option<(&str, &str)> {
    let (sid, name) = volid.split_once(':')?;
    let ok_sid = sid.len() >= 2
        && sid.starts_with(|c: char| c.is_ascii_lowercase())
        && sid.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && sid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    (ok_sid && !name.is_empty()).then_some((sid, name))
}

impl Storage {
    pub fn supports_rootdir(&self) -> bool {
        self.content.contains("rootdir")
    }

    fn base(&self, layout: &Layout) -> PathBuf {
        match (&self.path, self.kind.as_str()) {
            (Some(p), "dir") => p.clone(),
            _ => layout.root.join("images").join(&self.id),
        }
    }

    /// The file of a `vztmpl/<file>` volume.
    pub fn template_path(&self, layout: &Layout, file: &str) -> PathBuf {
        self.base(layout).join("template/cache").join(file)
    }

    /// The directory of a container volume.
    pub fn volume_path(&self, layout: &Layout, volname: &str) -> PathBuf {
        if self.kind == "dir" {
            // `<vmid>/<name>` as on a Proxmox dir storage.
            self.base(layout).join("images").join(volname)
        } else {
            self.base(layout).join(volname)
        }
    }

    /// Allocates the next free `vm-<vmid>-disk-<n>` (or `<vmid>/subvol-<vmid>-disk-<n>`
    /// on a dir storage) as a directory; returns the volume id.
    pub fn alloc(&self, layout: &Layout, vmid: u32) -> Result<(String, PathBuf), Failure> {
        for n in 0.. {
            let volname = if self.kind == "dir" {
                format!("{vmid}/subvol-{vmid}-disk-{n}.subvol")
            } else {
                format!("vm-{vmid}-disk-{n}")
            };
            let path = self.volume_path(layout, &volname);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(crate::io_fail("create", parent))?;
            }
            match fs::create_dir(&path) {
                Ok(()) => return Ok((format!("{}:{volname}", self.id), path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Failure::new(format!(
                        "unable to allocate volume on storage '{}' - {e}",
                        self.id
                    )))
                }
            }
        }
        unreachable!("the loop only ends by returning")
    }
}

/// The directory behind a container volume id or host path (bind mount).
pub fn volume_dir(layout: &Layout, volume: &str) -> Result<PathBuf, Failure> {
    if volume.starts_with('/') {
        return Ok(PathBuf::from(volume));
    }
    let (sid, name) = parse_volume_id(volume)
        .ok_or_else(|| Failure::new(format!("unable to parse volume ID '{volume}'")))?;
    Ok(get(layout, sid)?.volume_path(layout, name))
}

/// Removes a container volume's directory (not host paths).
pub fn free(layout: &Layout, volume: &str) {
    if volume.starts_with('/') {
        return;
    }
    if let Ok(dir) = volume_dir(layout, volume) {
        let _ = fs::remove_dir_all(&dir);
        // `<vmid>/` of a dir storage's `<vmid>/<name>` volume, when empty.
        if volume.contains('/') {
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
    }
}

/// `4` -> `4G`, `0.5` -> `512M`: the size pct writes after allocating.
pub fn format_size(gib: f64) -> String {
    if gib.fract() == 0.0 {
        format!("{}G", gib as u64)
    } else {
        format!("{}M", (gib * 1024.0).round() as u64)
    }
}
