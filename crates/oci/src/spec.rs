//! runc's default spec, what `runc spec` and `runc spec --rootless` write, and writing it
//! the way runc does: tab-indented, keys in runc's order, capability sets sorted.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Spec};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use serde_json::Value;

use crate::bundle::check_bundle_dir;
use crate::error::BundleError;

/// What runc 1.1.5 writes for `runc spec`, byte for byte.
pub(crate) const RUNC_SPEC: &str = include_str!("runc-spec.json");

/// runc's default spec, as `runc spec` writes it, and with `rootless` as
/// `runc spec --rootless` does: a user namespace mapping root in the container to the
/// caller's effective uid and gid, no network namespace, `/sys` bind-mounted, no cgroup
/// resources. `ociVersion` is proxcage's, [`proxcage_core::OCI_VERSION`].
pub fn default_spec(rootless: bool) -> Spec {
    // RUNC_SPEC is a constant that the test `default_spec_is_runcs` deserializes.
    let mut spec: Spec =
        serde_json::from_str(RUNC_SPEC).expect("runc-spec.json is a valid runtime spec");
    spec.set_version(proxcage_core::OCI_VERSION.to_owned());
    if rootless {
        make_rootless(
            &mut spec,
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
    }
    spec
}

/// runc's `specconv.ToRootless`.
fn make_rootless(spec: &mut Spec, uid: u32, gid: u32) {
    if let Some(linux) = spec.linux_mut() {
        let mut namespaces: Vec<LinuxNamespace> = linux
            .namespaces()
            .iter()
            .flatten()
            .filter(|ns| {
                !matches!(
                    ns.typ(),
                    LinuxNamespaceType::Network | LinuxNamespaceType::User
                )
            })
            .cloned()
            .collect();
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        namespaces.push(user);
        linux.set_namespaces(Some(namespaces));

        let map_root_to = |host_id| {
            // The builder defaults every field it is not given, so build() cannot fail.
            let mapping = LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host_id)
                .size(1u32)
                .build()
                .expect("an id mapping with every field set");
            vec![mapping]
        };
        linux.set_uid_mappings(Some(map_root_to(uid)));
        linux.set_gid_mappings(Some(map_root_to(gid)));
        linux.set_resources(None);
    }
    for mount in spec.mounts_mut().iter_mut().flatten() {
        if mount
            .destination()
            .components()
            .eq(Path::new("/sys").components())
        {
            // A user namespace cannot mount sysfs; runc bind-mounts the host's.
            mount
                .set_source(Some("/sys".into()))
                .set_typ(Some("none".into()))
                .set_options(Some(
                    ["rbind", "nosuid", "noexec", "nodev", "ro"]
                        .map(String::from)
                        .into(),
                ));
            continue;
        }
        if let Some(options) = mount.options_mut() {
            options.retain(|o| !o.starts_with("gid=") && !o.starts_with("uid="));
        }
    }
}

/// Writes [`default_spec`] as `<bundle>/config.json`, formatted as runc writes it, and
/// returns the path written. Refuses to overwrite an existing config.json, as runc does.
pub fn write_default_spec(bundle: &Path, rootless: bool) -> Result<PathBuf, BundleError> {
    check_bundle_dir(bundle)?;
    let path = bundle.join("config.json");
    let text = to_runc_json(&default_spec(rootless)).map_err(|e| BundleError::Io {
        op: "serialize the spec for",
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(BundleError::ConfigExists { path })
        }
        Err(source) => {
            return Err(BundleError::Io {
                op: "create",
                path,
                source,
            })
        }
    };
    if let Err(source) = file.write_all(&text) {
        // A half-written file would make the next attempt refuse; it is ours to remove.
        let _ = fs::remove_file(&path);
        return Err(BundleError::Io {
            op: "write",
            path,
            source,
        });
    }
    Ok(path)
}

/// The top-level keys in the order of runc's Go `specs.Spec`.
const SPEC_KEYS: &[&str] = &[
    "ociVersion",
    "process",
    "root",
    "hostname",
    "domainname",
    "mounts",
    "hooks",
    "annotations",
    "linux",
    "solaris",
    "windows",
    "vm",
    "zos",
];

/// The keys of an id mapping in Go's order.
const ID_MAPPING_KEYS: &[&str] = &["containerID", "hostID", "size"];

/// `spec` as runc's `json.MarshalIndent(spec, "", "\t")` would write it: oci-spec's own
/// field order differs at the top level and in id mappings, and its capability sets are
/// hash sets whose order changes from run to run.
fn to_runc_json(spec: &Spec) -> Result<Vec<u8>, serde_json::Error> {
    let mut doc: Ordered = serde_json::from_str(&serde_json::to_string(spec)?)?;
    if let Ordered::Object(top) = &mut doc {
        order_keys(top, SPEC_KEYS);
        for (key, value) in top.iter_mut() {
            match key.as_str() {
                "process" => {
                    if let Some(Ordered::Object(sets)) = value.get_mut("capabilities") {
                        for (_, names) in sets {
                            if let Ordered::Array(names) = names {
                                names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                            }
                        }
                    }
                }
                "linux" => {
                    order_id_mappings(value);
                    if let Some(Ordered::Object(sysctl)) = value.get_mut("sysctl") {
                        sysctl.sort_by(|a, b| a.0.cmp(&b.0));
                    }
                }
                "mounts" => {
                    if let Ordered::Array(mounts) = value {
                        mounts.iter_mut().for_each(order_id_mappings);
                    }
                }
                // Go writes map keys sorted.
                "annotations" => {
                    if let Ordered::Object(annotations) = value {
                        annotations.sort_by(|a, b| a.0.cmp(&b.0));
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::with_capacity(RUNC_SPEC.len() + 256);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    doc.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    Ok(out)
}

fn order_id_mappings(parent: &mut Ordered) {
    for key in ["uidMappings", "gidMappings"] {
        if let Some(Ordered::Array(mappings)) = parent.get_mut(key) {
            for mapping in mappings {
                if let Ordered::Object(fields) = mapping {
                    order_keys(fields, ID_MAPPING_KEYS);
                }
            }
        }
    }
}

/// Puts the keys named in `order` first, in that order; the others keep theirs after.
fn order_keys(fields: &mut [(String, Ordered)], order: &[&str]) {
    let rank = |key: &str| order.iter().position(|k| *k == key).unwrap_or(order.len());
    fields.sort_by_key(|(key, _)| rank(key));
}

/// JSON that keeps the order of object keys as read (serde_json's `Value` sorts them).
#[derive(Debug)]
enum Ordered {
    Scalar(Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    fn get_mut(&mut self, key: &str) -> Option<&mut Ordered> {
        match self {
            Ordered::Object(fields) => fields.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Ordered::Scalar(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Ordered::Scalar(value) => value.serialize(serializer),
            Ordered::Array(items) => serializer.collect_seq(items),
            Ordered::Object(fields) => serializer.collect_map(fields.iter().map(|(k, v)| (k, v))),
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;

        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Null))
            }

            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Bool(v)))
            }

            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }

            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }

            fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }

            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::String(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::String(v)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Ordered::Object(fields))
            }
        }

        deserializer.deserialize_any(OrderedVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const RUNC: &str = "/usr/sbin/runc";

    /// runc's output with its ociVersion replaced by ours.
    fn with_our_version(runc_json: &str) -> String {
        runc_json.replacen(
            "\"ociVersion\": \"1.0.2-dev\"",
            &format!("\"ociVersion\": \"{}\"", proxcage_core::OCI_VERSION),
            1,
        )
    }

    fn written(rootless: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write_default_spec(dir.path(), rootless).unwrap();
        assert_eq!(path, dir.path().join("config.json"));
        fs::read_to_string(path).unwrap()
    }

    /// What `runc spec [--rootless]` writes here, or None where runc is not installed.
    fn runc_spec(rootless: bool) -> Option<String> {
        if !Path::new(RUNC).exists() {
            eprintln!("{RUNC} not installed: comparing with the checked-in copy only");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(RUNC);
        command.arg("spec").current_dir(dir.path());
        if rootless {
            command.arg("--rootless");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        Some(fs::read_to_string(dir.path().join("config.json")).unwrap())
    }

    #[test]
    fn default_spec_is_runcs() {
        let ours = default_spec(false);
        assert_eq!(ours.version(), proxcage_core::OCI_VERSION);
        let process = ours.process().as_ref().unwrap();
        assert_eq!(process.terminal(), Some(true));
        assert_eq!(ours.hostname().as_deref(), Some("runc"));
        assert!(process
            .capabilities()
            .as_ref()
            .unwrap()
            .inheritable()
            .is_none());
        assert_eq!(written(false), with_our_version(RUNC_SPEC));
    }

    #[test]
    fn written_spec_is_byte_for_byte_what_runc_writes() {
        if let Some(runc) = runc_spec(false) {
            assert_eq!(written(false), with_our_version(&runc));
        }
        if let Some(runc) = runc_spec(true) {
            assert_eq!(written(true), with_our_version(&runc));
        }
    }

    #[test]
    fn rootless_maps_the_caller_and_drops_what_a_user_namespace_cannot_have() {
        let mut spec = default_spec(false);
        make_rootless(&mut spec, 1000, 1001);
        let linux = spec.linux().as_ref().unwrap();
        let uid = linux.uid_mappings().as_ref().unwrap();
        let gid = linux.gid_mappings().as_ref().unwrap();
        assert_eq!(
            (uid[0].container_id(), uid[0].host_id(), uid[0].size()),
            (0, 1000, 1)
        );
        assert_eq!(
            (gid[0].container_id(), gid[0].host_id(), gid[0].size()),
            (0, 1001, 1)
        );
        let namespaces: Vec<_> = linux
            .namespaces()
            .iter()
            .flatten()
            .map(|ns| ns.typ())
            .collect();
        assert_eq!(
            namespaces,
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::User
            ]
        );
        assert!(linux.resources().is_none());
        let mounts = spec.mounts().as_ref().unwrap();
        let sys = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert_eq!(sys.typ().as_deref(), Some("none"));
        assert_eq!(sys.source().as_deref(), Some(Path::new("/sys")));
        assert!(mounts
            .iter()
            .flat_map(|m| m.options().iter().flatten())
            .all(|o| !o.starts_with("gid=") && !o.starts_with("uid=")));
        let text = String::from_utf8(to_runc_json(&spec).unwrap()).unwrap();
        assert!(text.contains(
            "\"uidMappings\": [\n\t\t\t{\n\t\t\t\t\"containerID\": 0,\n\t\t\t\t\"hostID\": 1000,"
        ));
    }

    #[test]
    fn existing_config_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "mine").unwrap();
        assert_eq!(
            write_default_spec(dir.path(), false)
                .unwrap_err()
                .to_string(),
            format!("file {} exists: remove it first", path.display())
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "mine");
    }

    #[test]
    fn missing_bundle_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert_eq!(
            write_default_spec(&missing, false).unwrap_err().to_string(),
            format!("bundle directory {} does not exist", missing.display())
        );
    }

    #[test]
    fn written_spec_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        write_default_spec(dir.path(), true).unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        let bundle = crate::Bundle::load(dir.path()).unwrap();
        assert_eq!(bundle.spec(), &default_spec(true));
        assert!(bundle.warnings().is_empty());
    }
}
