//! Which CT a VMID holds now, and whether it is the one this root made for a container.
//!
//! A VMID is freed by `pct destroy` and handed to the next `pct create`, of this root,
//! another proxcage root, or a person. A record that still names a freed VMID (a delete
//! interrupted after `pct destroy`, a CT destroyed by hand) must never steer a signal, an
//! exec, a stop or a destroy into the CT that got the VMID next. So every CT proxcage makes
//! is tagged `proxcage` and its description names the container and carries a token of
//! the root that made it (random, kept in the root as `root-token`); every command that
//! touches the CT reads these back first ([`Proof`]).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use proxcage_core::{ContainerId, Error, Result};

use crate::error::PctError;
use crate::pct::PctTools;
use crate::vmid::Vmid;

/// The line of the description that names the container.
const CONTAINER: &str = "proxcage container ";
/// The line of the description that names the root that made the CT.
const ROOT: &str = "proxcage root ";
/// The line of the description that names the template the CT was made from.
const TEMPLATE: &str = "proxcage template ";
/// The token's file in the backend's root.
const TOKEN_FILE: &str = "root-token";

/// What a CT's config says of who made it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Tagged `proxcage`.
    pub(crate) tagged: bool,
    /// The container named in the description.
    pub(crate) owner: Option<ContainerId>,
    /// The token of the root named in the description.
    pub(crate) root: Option<String>,
    /// pct's lock (`create`, `destroyed`, ...), if any.
    pub(crate) lock: Option<String>,
    /// The template's file name in the template directory.
    pub(crate) template: Option<String>,
}

/// What a VMID holds, for container `id` of this root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Proof {
    /// The CT this root made for the container.
    Ours,
    /// No CT has the VMID.
    Gone,
    /// A CT that `pct destroy` left half-way: its volumes are freed and its config says
    /// nothing but `lock: destroyed` (pve-container writes that in place of the config
    /// before it removes it). Nothing is left in it to lose.
    Destroyed,
    /// Another CT; what it is, in words.
    Other(String),
}

/// The description of the CT made for `id` by the root with `token` from `template`
/// (what the backend's record holds, so that a damaged record can be written again).
pub(crate) fn description(id: &ContainerId, token: &str, template: &str) -> String {
    format!("{CONTAINER}{id}\n{ROOT}{token}\n{TEMPLATE}{template}")
}

/// The root's token, made on first use.
pub(crate) fn root_token(root: &Path) -> Result<String> {
    if let Some(token) = read_token(root)? {
        return Ok(token);
    }
    fs::create_dir_all(root).map_err(|e| Error::io("cannot create", root, e))?;
    let mut bytes = [0u8; 16];
    let urandom = Path::new("/dev/urandom");
    fs::File::open(urandom)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("cannot read", urandom, e))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // Written whole to a file of this process, then linked into place: creates that race
    // for the first token never see one half-written, and the first link wins.
    let path = root.join(TOKEN_FILE);
    let tmp = root.join(format!("{TOKEN_FILE}.tmp.{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(token.as_bytes()).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("cannot write", &tmp, e));
    }
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(token),
        // Another process of this root made it first: its token is the root's.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_token(root)?.ok_or_else(|| Error::io("cannot read", &path, e))
        }
        Err(e) => Err(Error::io("cannot write", &path, e)),
    }
}

/// The root's token; `None` while no CT was made by this root.
pub(crate) fn read_token(root: &Path) -> Result<Option<String>> {
    let path = root.join(TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_string())),
        // Not one this proxcage writes (its token is linked into place whole): no CT can
        // carry an empty token, so it is made anew.
        Ok(_) => {
            let _ = fs::remove_file(&path);
            Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", &path, e)),
    }
}

/// What CT `vmid` says of who made it: read from its `.conf` (one file read, where `pct
/// config` costs a Perl start-up per CT on Proxmox), or from `pct config` when the file
/// cannot be read. `None` when no CT has the VMID.
pub(crate) fn read(tools: &PctTools, pve_dir: &Path, vmid: Vmid) -> Result<Option<Seen>> {
    let conf = pve_dir.join("lxc").join(format!("{vmid}.conf"));
    if let Ok(text) = fs::read_to_string(&conf) {
        return Ok(Some(from_conf(&text)));
    }
    let config = match tools.config(vmid) {
        Ok(config) => config,
        Err(e) if matches!(e.pct(), Some(PctError::NoSuchCt { .. })) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let get = |key: &str| {
        config
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok(Some(seen(
        &get("tags"),
        &percent_decode(&get("description")),
        &get("lock"),
    )))
}

/// Whether `seen` is the CT the root with `token` made for `id`. A description without a
/// root line was written by a proxcage from before root tokens: its container id is all
/// there is to go on.
pub(crate) fn judge(seen: Option<&Seen>, id: &ContainerId, token: Option<&str>) -> Proof {
    let Some(seen) = seen else {
        return Proof::Gone;
    };
    if seen.lock.as_deref() == Some("destroyed") {
        return Proof::Destroyed;
    }
    let root_matches = match (&seen.root, token) {
        (None, _) => true,
        (Some(theirs), Some(ours)) => theirs == ours,
        (Some(_), None) => false,
    };
    if seen.tagged && seen.owner.as_ref() == Some(id) && root_matches {
        return Proof::Ours;
    }
    Proof::Other(match (&seen.owner, seen.tagged) {
        (Some(owner), true) if owner == id => {
            format!("a CT another proxcage root made for a container {owner}")
        }
        (Some(owner), true) => format!("the CT of container {owner}"),
        _ => "a CT proxcage did not make for it".into(),
    })
}

/// The tags, description (`#` lines) and lock of a CT's `.conf`; the live config ends at
/// the first snapshot section.
fn from_conf(conf: &str) -> Seen {
    let mut tags = "";
    let mut lock = "";
    let mut description = String::new();
    for line in conf.lines().take_while(|l| !l.starts_with('[')) {
        if let Some(comment) = line.strip_prefix('#') {
            description.push_str(&percent_decode(comment));
            description.push('\n');
        } else if let Some(value) = line.strip_prefix("tags:") {
            tags = value.trim();
        } else if let Some(value) = line.strip_prefix("lock:") {
            lock = value.trim();
        }
    }
    seen(tags, &description, lock)
}

fn seen(tags: &str, description: &str, lock: &str) -> Seen {
    let line = |prefix: &str| {
        description
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    };
    Seen {
        tagged: tags.split([';', ',', ' ']).any(|t| t.trim() == "proxcage"),
        owner: line(CONTAINER).and_then(|id| ContainerId::new(&id).ok()),
        root: line(ROOT),
        template: line(TEMPLATE),
        lock: (!lock.is_empty()).then(|| lock.to_string()),
    }
}

/// pct prints the description url-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContainerId {
        ContainerId::new(s).unwrap()
    }

    #[test]
    fn descriptions_and_tags() {
        assert_eq!(
            percent_decode("proxcage%20container%20web-1%0A"),
            "proxcage container web-1\n"
        );
        assert_eq!(percent_decode("100%"), "100%");
        let seen = from_conf(
            "#proxcage container web-1\n#proxcage root abc\ntags: proxcage\n[snap]\ntags: other\nlock: backup\n",
        );
        assert_eq!(
            seen,
            Seen {
                tagged: true,
                owner: Some(id("web-1")),
                root: Some("abc".into()),
                lock: None,
                template: None,
            }
        );
    }

    #[test]
    fn only_the_ct_this_root_made_for_the_id_is_ours() {
        let ours = from_conf(&format!(
            "{}\ntags: proxcage\n",
            description(&id("a"), "t1", "x.tar.zst")
                .lines()
                .map(|l| format!("#{l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
        assert_eq!(judge(Some(&ours), &id("a"), Some("t1")), Proof::Ours);
        assert_eq!(ours.template.as_deref(), Some("x.tar.zst"));
        // The same id made by another root, another id, no CT, an untagged CT.
        assert!(matches!(
            judge(Some(&ours), &id("a"), Some("t2")),
            Proof::Other(_)
        ));
        assert!(matches!(
            judge(Some(&ours), &id("a"), None),
            Proof::Other(_)
        ));
        assert!(matches!(
            judge(Some(&ours), &id("b"), Some("t1")),
            Proof::Other(_)
        ));
        assert_eq!(judge(None, &id("a"), Some("t1")), Proof::Gone);
        let untagged = Seen {
            tagged: false,
            ..ours.clone()
        };
        assert!(matches!(
            judge(Some(&untagged), &id("a"), Some("t1")),
            Proof::Other(_)
        ));
        // A CT from before root tokens: its container id decides.
        let old = from_conf("#proxcage container a\ntags: proxcage\n");
        assert_eq!(judge(Some(&old), &id("a"), Some("t1")), Proof::Ours);
        let destroyed = from_conf("lock: destroyed\n");
        assert_eq!(
            judge(Some(&destroyed), &id("a"), Some("t1")),
            Proof::Destroyed
        );
    }

    #[test]
    fn a_root_keeps_its_token() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_token(dir.path()).unwrap(), None);
        let token = root_token(dir.path()).unwrap();
        assert_eq!(token.len(), 32);
        assert_eq!(root_token(dir.path()).unwrap(), token);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(root_token(other.path()).unwrap(), token);
    }
}
