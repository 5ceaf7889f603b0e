//! Loading a bundle: reading `config.json` safely, deserializing it with the failing field
//! named, runc's treatment of unknown capabilities, and the checks a runtime needs before
//! it can create anything (version, root, process, mounts).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Capability, Mount, Spec};
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::BundleError;
use crate::untrusted::{read_untrusted, UntrustedFileError};

/// The largest `config.json` [`Bundle::load`] reads. Real ones are a few KiB; the cap keeps
/// a wrong or hostile file from eating the host's memory.
pub const CONFIG_SIZE_LIMIT: u64 = 16 << 20;

/// The capability sets of `process.capabilities`, in the spec's order.
const CAPABILITY_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// An OCI bundle: its directory and its validated `config.json`, with the paths in it
/// resolved against the bundle directory.
#[derive(Clone, Debug)]
pub struct Bundle {
    dir: PathBuf,
    config_path: PathBuf,
    spec: Spec,
    rootfs: PathBuf,
    mount_sources: Vec<Option<PathBuf>>,
    warnings: Vec<String>,
}

impl Bundle {
    /// Loads `<dir>/config.json`. `dir` may be relative: it is made absolute against the
    /// process's current directory once; everything else (`root.path`, relative bind-mount
    /// sources) resolves against the bundle directory, never the current directory.
    ///
    /// Paths are made absolute lexically, as runc's `filepath.Abs` does: `.`, `..` and
    /// repeated slashes are resolved on the text; symbolic links are left to the kernel.
    pub fn load(dir: impl AsRef<Path>) -> Result<Bundle, BundleError> {
        let dir = absolute(dir.as_ref())?;
        let config_path = dir.join("config.json");
        let bytes = read_config(&dir, &config_path)?;
        Bundle::from_config_bytes(dir, &bytes)
    }

    /// What [`Bundle::load`] does once it has read `<dir>/config.json`: `bytes` are taken
    /// as that file's content (errors name `<dir>/config.json`), parsed and validated; the
    /// paths in it resolve against `dir`, which must exist for `root.path` to be found.
    /// For configs that do not come from a file (and for fuzzing the parser).
    pub fn from_config_bytes(dir: impl AsRef<Path>, bytes: &[u8]) -> Result<Bundle, BundleError> {
        let dir = absolute(dir.as_ref())?;
        let config_path = dir.join("config.json");
        let (spec, warnings) = parse_spec(&config_path, bytes)?;
        let mut bundle = Bundle::from_spec(dir, spec)?;
        bundle.warnings = warnings;
        Ok(bundle)
    }

    /// A bundle of directory `dir` whose config.json is `spec`, already parsed: checked
    /// and resolved as [`Bundle::load`] checks and resolves it, without reading
    /// config.json again (a backend handed a spec acts on exactly that spec).
    pub fn from_spec(dir: impl AsRef<Path>, spec: Spec) -> Result<Bundle, BundleError> {
        let dir = absolute(dir.as_ref())?;
        let config_path = dir.join("config.json");
        check_version(&config_path, spec.version())?;
        let rootfs = resolve_rootfs(&dir, &config_path, &spec)?;
        check_process(&config_path, &spec)?;
        check_nul_bytes(&config_path, &spec)?;
        let mount_sources = resolve_mounts(&dir, &config_path, spec.mounts().as_deref())?;

        tracing::debug!(bundle = %dir.display(), "bundle checked");
        Ok(Bundle {
            dir,
            config_path,
            spec,
            rootfs,
            mount_sources,
            warnings: Vec::new(),
        })
    }

    /// The request to create container `id` from this bundle: its directory and its spec
    /// as loaded, which the backend acts on.
    pub fn create_request(&self, id: proxcage_core::ContainerId) -> proxcage_core::CreateRequest {
        proxcage_core::CreateRequest::new(id, &self.dir, std::sync::Arc::new(self.spec.clone()))
    }

    /// The absolute bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/config.json`.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The spec as read, less the capabilities reported in [`Bundle::warnings`].
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The absolute `root.path`, checked to be a directory when the bundle was loaded.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The annotations of config.json; empty when it has none.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The source of each mount, by its index in `spec.mounts`: a bind mount's relative
    /// source is resolved against the bundle directory; other sources (`proc`, `tmpfs`, an
    /// absolute path) are as written; `None` where the mount has no source.
    pub fn mount_sources(&self) -> &[Option<PathBuf>] {
        &self.mount_sources
    }

    /// Problems in config.json that did not stop the load (capabilities runc would ignore,
    /// and which were dropped from [`Bundle::spec`]), one sentence each, naming the field.
    /// They do not repeat the file name: print them after [`Bundle::config_path`].
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// `dir` made absolute against the current directory and [`clean`]ed. An empty path is
/// the current directory, as runc's default `--bundle`.
fn absolute(dir: &Path) -> Result<PathBuf, BundleError> {
    if dir.is_absolute() {
        return Ok(clean(dir));
    }
    let cwd = std::env::current_dir().map_err(|source| BundleError::CurrentDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(clean(&cwd.join(dir)))
}

/// Go's `filepath.Clean` for an absolute path: drops `.` components and repeated or
/// trailing slashes, and takes `..` back one component (never above `/`).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Checks that `dir` is an existing directory.
pub(crate) fn check_bundle_dir(dir: &Path) -> Result<(), BundleError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(BundleError::BundleNotADirectory { dir: dir.into() }),
        Err(e) if is_not_found(&e) => Err(BundleError::BundleNotFound { dir: dir.into() }),
        Err(source) => Err(BundleError::Io {
            op: "inspect",
            path: dir.into(),
            source,
        }),
    }
}

fn is_not_found(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Reads config.json without ever blocking (a FIFO in its place is refused, not read) and
/// without reading more than [`CONFIG_SIZE_LIMIT`]. Links are followed, as runc follows
/// them.
fn read_config(dir: &Path, path: &Path) -> Result<Vec<u8>, BundleError> {
    read_untrusted(path, CONFIG_SIZE_LIMIT).map_err(|e| config_error(dir, e))
}

/// Tells why config.json could not be read: no bundle directory, no config.json, not a
/// regular file, too large, or a plain I/O error.
fn config_error(dir: &Path, error: UntrustedFileError) -> BundleError {
    match error {
        UntrustedFileError::NotRegular { path, kind } => {
            BundleError::ConfigNotRegular { path, kind }
        }
        UntrustedFileError::SymbolicLink { path } => BundleError::ConfigNotRegular {
            path,
            kind: "a symbolic link",
        },
        UntrustedFileError::TooLarge { path, size, limit } => {
            BundleError::ConfigTooLarge { path, size, limit }
        }
        UntrustedFileError::Io { op, path, source } => {
            if let Err(e) = check_bundle_dir(dir) {
                e
            } else if is_not_found(&source) {
                BundleError::ConfigNotFound { path }
            } else {
                BundleError::Io { op, path, source }
            }
        }
    }
}

/// Deserializes the spec, naming the failing field. Capabilities runc would ignore are
/// dropped with a warning; that takes a second pass through a `serde_json::Value`, which
/// only such configs pay for.
fn parse_spec(path: &Path, bytes: &[u8]) -> Result<(Spec, Vec<String>), BundleError> {
    // serde would take an array for a struct, its fields by position; runc would not.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(BundleError::InvalidField {
            path: path.into(),
            field: "the top level".into(),
            message: "expected a JSON object, found an array".into(),
            line: 0,
            column: 0,
        });
    }
    let parsed = match serde_json::from_slice::<Spec>(bytes) {
        Ok(spec) if !has_capabilities(&spec) || capabilities_are_canonical(bytes) => {
            return Ok((spec, Vec::new()));
        }
        Ok(spec) => Some(spec),
        Err(e) if !e.is_data() => return Err(json_error(path, &e)),
        // Perhaps an unknown capability.
        Err(_) => None,
    };

    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| json_error(path, &e))?;
    let warnings = drop_unknown_capabilities(&mut value);
    if warnings.is_empty() {
        if let Some(spec) = parsed {
            return Ok((spec, warnings));
        }
        // The error is not a capability name: find it again in the bytes, to report its
        // line and column too.
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let spec = deserialize_tracked(path, &mut de)?;
        de.end().map_err(|e| json_error(path, &e))?;
        return Ok((spec, warnings));
    }
    let spec = match Spec::deserialize(&value) {
        Ok(spec) => spec,
        Err(_) => deserialize_tracked(path, &value)?,
    };
    Ok((spec, warnings))
}

/// Deserializes a Spec keeping track of the JSON path, to name the failing field. That
/// costs as much again as the parse, so it is only done to report an error: the same
/// input fails at the same place.
fn deserialize_tracked<'de, D>(path: &Path, de: D) -> Result<Spec, BundleError>
where
    D: Deserializer<'de, Error = serde_json::Error>,
{
    serde_path_to_error::deserialize(de).map_err(|e| spec_error(path, e))
}

fn has_capabilities(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .is_some_and(|p| p.capabilities().is_some())
}

/// Whether every capability name in the document is spelled exactly as runc wants it.
/// oci-spec also takes `sys_admin` or `SYS_ADMIN` for `CAP_SYS_ADMIN`; runc ignores those
/// (the container runs without the capability), so we must see the names as written.
fn capabilities_are_canonical(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Doc<'a> {
        #[serde(default, borrow)]
        process: Option<Process<'a>>,
    }
    #[derive(Deserialize)]
    struct Process<'a> {
        #[serde(default, borrow)]
        capabilities: Option<Sets<'a>>,
    }
    type Names<'a> = Option<Vec<Cow<'a, str>>>;
    #[derive(Deserialize)]
    struct Sets<'a> {
        #[serde(default, borrow)]
        bounding: Names<'a>,
        #[serde(default, borrow)]
        effective: Names<'a>,
        #[serde(default, borrow)]
        inheritable: Names<'a>,
        #[serde(default, borrow)]
        permitted: Names<'a>,
        #[serde(default, borrow)]
        ambient: Names<'a>,
    }
    let Ok(doc) = serde_json::from_slice::<Doc<'_>>(bytes) else {
        // It deserialized as a Spec already, so this cannot happen; if it does, the slow
        // path decides.
        return false;
    };
    let Some(sets) = doc.process.and_then(|p| p.capabilities) else {
        return true;
    };
    [
        sets.bounding,
        sets.effective,
        sets.inheritable,
        sets.permitted,
        sets.ambient,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .all(|name| check_capability(&name).is_ok())
}

/// Ok for a name runc accepts; otherwise the end of the warning sentence.
fn check_capability(name: &str) -> Result<(), String> {
    let parsed = Capability::deserialize(StrDeserializer::<ValueError>::new(name));
    match parsed {
        Ok(cap) => {
            let canonical = format!("CAP_{cap}");
            if canonical == name {
                Ok(())
            } else {
                Err(format!("runc only accepts the exact name {canonical:?}"))
            }
        }
        Err(_) => Err("it is not a Linux capability".to_owned()),
    }
}

/// Removes from `process.capabilities` the names runc would ignore; returns a warning for
/// each. A set holding something other than strings is left whole, so that the error
/// deserializing reports names the index as written.
fn drop_unknown_capabilities(doc: &mut Value) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(caps) = doc
        .get_mut("process")
        .and_then(|p| p.get_mut("capabilities"))
        .and_then(Value::as_object_mut)
    else {
        return warnings;
    };
    for set in CAPABILITY_SETS {
        let Some(Value::Array(names)) = caps.get_mut(set) else {
            continue;
        };
        if !names.iter().all(Value::is_string) {
            continue;
        }
        names.retain(|name| {
            let Some(name) = name.as_str() else {
                return true;
            };
            match check_capability(name) {
                Ok(()) => true,
                Err(why) => {
                    warnings.push(format!(
                        "ignoring capability {name:?} in process.capabilities.{set}: {why}"
                    ));
                    false
                }
            }
        });
    }
    warnings
}

fn json_error(path: &Path, e: &serde_json::Error) -> BundleError {
    BundleError::InvalidJson {
        path: path.into(),
        line: e.line(),
        column: e.column(),
        message: message_of(e),
    }
}

/// serde_json's message without the " at line L column C" it appends.
fn message_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// The error of a deserialization that tracked the JSON path; serde_path_to_error writes
/// the top level as `.`.
fn spec_error(path: &Path, e: serde_path_to_error::Error<serde_json::Error>) -> BundleError {
    let field = e.path().to_string();
    let e = e.into_inner();
    if !e.is_data() {
        return json_error(path, &e);
    }
    let message = message_of(&e);
    let parent = if field == "." { None } else { Some(field) };
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let field = match parent {
            Some(parent) => format!("{parent}.{name}"),
            None => name.to_owned(),
        };
        return BundleError::MissingField {
            path: path.into(),
            field,
        };
    }
    BundleError::InvalidField {
        path: path.into(),
        field: parent.unwrap_or_else(|| "the top level".to_owned()),
        message,
        line: e.line(),
        column: e.column(),
    }
}

fn check_version(path: &Path, version: &str) -> Result<(), BundleError> {
    if version.is_empty() {
        return Err(BundleError::MissingField {
            path: path.into(),
            field: "ociVersion".into(),
        });
    }
    if is_supported_version(version) {
        Ok(())
    } else {
        Err(BundleError::UnsupportedVersion {
            path: path.into(),
            version: version.into(),
        })
    }
}

/// SemVer `1.MINOR.PATCH`, with an optional pre-release (`-dev`, `-rc.1`) and build
/// metadata (`+abc`).
fn is_supported_version(version: &str) -> bool {
    fn identifiers(s: &str) -> bool {
        s.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    }
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let mut numbers = core.split('.');
    let number =
        |n: Option<&str>| n.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    numbers.next() == Some("1")
        && number(numbers.next())
        && number(numbers.next())
        && numbers.next().is_none()
        && pre.is_none_or(identifiers)
        && build.is_none_or(identifiers)
}

fn resolve_rootfs(dir: &Path, path: &Path, spec: &Spec) -> Result<PathBuf, BundleError> {
    let missing = |field: &str| BundleError::MissingField {
        path: path.into(),
        field: field.into(),
    };
    let root = spec.root().as_ref().ok_or_else(|| missing("root"))?;
    let written = root.path();
    if written.as_os_str().is_empty() {
        return Err(missing("root.path"));
    }
    let resolved = clean(&dir.join(written));
    match fs::metadata(&resolved) {
        Ok(meta) if meta.is_dir() => {
            let real = fs::canonicalize(&resolved).map_err(|source| BundleError::Io {
                op: "resolve",
                path: resolved.clone(),
                source,
            })?;
            // runc chdirs into the bundle (the kernel resolves the bundle directory's own
            // links) and then wants root.path itself free of links.
            let as_runc_sees_it = if written.is_absolute() {
                resolved.clone()
            } else {
                let bundle = fs::canonicalize(dir).map_err(|source| BundleError::Io {
                    op: "resolve",
                    path: dir.into(),
                    source,
                })?;
                clean(&bundle.join(written))
            };
            if real != as_runc_sees_it {
                return Err(BundleError::RootfsThroughSymlink {
                    path: path.into(),
                    root: written.clone(),
                    real,
                });
            }
            Ok(resolved)
        }
        Ok(_) => Err(BundleError::RootfsNotADirectory {
            path: path.into(),
            root: written.clone(),
            resolved,
        }),
        Err(e) if is_not_found(&e) => Err(BundleError::RootfsNotFound {
            path: path.into(),
            root: written.clone(),
            resolved,
        }),
        Err(source) => Err(BundleError::Io {
            op: "inspect",
            path: resolved,
            source,
        }),
    }
}

fn check_process(path: &Path, spec: &Spec) -> Result<(), BundleError> {
    let missing = |field: &str| BundleError::MissingField {
        path: path.into(),
        field: field.into(),
    };
    let process = spec.process().as_ref().ok_or_else(|| missing("process"))?;
    match process.args() {
        None => Err(missing("process.args")),
        Some(args) if args.is_empty() => Err(BundleError::EmptyArgs { path: path.into() }),
        Some(_) => Ok(()),
    }
}

/// A NUL byte cannot reach an `execve` argument, an environment variable, a path or an
/// LXC config line; serde_json decodes `\u0000` into one all the same. Refused here, by
/// field, rather than truncated or mangled further down.
fn check_nul_bytes(path: &Path, spec: &Spec) -> Result<(), BundleError> {
    let nul = |field: String| BundleError::NulByte {
        path: path.into(),
        field,
    };
    let has_nul = |s: &str| s.as_bytes().contains(&0);
    let path_has_nul = |p: &Path| p.as_os_str().as_encoded_bytes().contains(&0);
    if let Some(process) = spec.process() {
        for (i, arg) in process.args().iter().flatten().enumerate() {
            if has_nul(arg) {
                return Err(nul(format!("process.args[{i}]")));
            }
        }
        for (i, var) in process.env().iter().flatten().enumerate() {
            if has_nul(var) {
                return Err(nul(format!("process.env[{i}]")));
            }
        }
        if path_has_nul(process.cwd()) {
            return Err(nul("process.cwd".into()));
        }
    }
    if let Some(root) = spec.root() {
        if path_has_nul(root.path()) {
            return Err(nul("root.path".into()));
        }
    }
    if spec.hostname().as_deref().is_some_and(has_nul) {
        return Err(nul("hostname".into()));
    }
    for (i, mount) in spec.mounts().iter().flatten().enumerate() {
        if path_has_nul(mount.destination()) {
            return Err(nul(format!("mounts[{i}].destination")));
        }
        if mount.source().as_deref().is_some_and(path_has_nul) {
            return Err(nul(format!("mounts[{i}].source")));
        }
        if mount.typ().as_deref().is_some_and(has_nul) {
            return Err(nul(format!("mounts[{i}].type")));
        }
        for (j, option) in mount.options().iter().flatten().enumerate() {
            if has_nul(option) {
                return Err(nul(format!("mounts[{i}].options[{j}]")));
            }
        }
    }
    for (key, value) in spec.annotations().iter().flatten() {
        if has_nul(key) || has_nul(value) {
            return Err(nul(format!("annotations[{key:?}]")));
        }
    }
    Ok(())
}

fn resolve_mounts(
    dir: &Path,
    path: &Path,
    mounts: Option<&[Mount]>,
) -> Result<Vec<Option<PathBuf>>, BundleError> {
    let mounts = mounts.unwrap_or_default();
    let mut sources = Vec::with_capacity(mounts.len());
    for (index, mount) in mounts.iter().enumerate() {
        let destination = mount.destination();
        if !destination.is_absolute() {
            return Err(BundleError::MountDestinationNotAbsolute {
                path: path.into(),
                index,
                destination: destination.clone(),
            });
        }
        let source = mount.source().as_ref().map(|source| {
            if source.is_relative() && is_bind(mount) {
                clean(&dir.join(source))
            } else {
                source.clone()
            }
        });
        sources.push(source);
    }
    Ok(sources)
}

/// runc's test: the type is `bind`, or the options ask for `bind` or `rbind`.
fn is_bind(mount: &Mount) -> bool {
    mount.typ().as_deref() == Some("bind")
        || mount
            .options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    use crate::spec::RUNC_SPEC;

    /// A bundle directory with a rootfs and the given config.json.
    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    fn minimal() -> Value {
        json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh"]},
        })
    }

    fn load_value(config: &Value) -> (tempfile::TempDir, Result<Bundle, BundleError>) {
        let dir = bundle_with(&serde_json::to_string_pretty(config).unwrap());
        let result = Bundle::load(dir.path());
        (dir, result)
    }

    /// The error message of loading `config`, with the temporary directory replaced by `B`.
    fn error_of(config: &Value) -> String {
        let (dir, result) = load_value(config);
        let message = result.unwrap_err().to_string();
        message.replace(&dir.path().display().to_string(), "B")
    }

    #[test]
    fn loads_runc_default_spec_and_resolves_paths_against_the_bundle() {
        let dir = bundle_with(RUNC_SPEC);
        let bundle = Bundle::load(dir.path()).unwrap();
        assert_eq!(bundle.dir(), dir.path());
        assert_eq!(bundle.config_path(), dir.path().join("config.json"));
        assert_eq!(bundle.rootfs(), dir.path().join("rootfs"));
        assert!(bundle.warnings().is_empty());
        assert!(bundle.annotations().is_empty());
        assert_eq!(bundle.mount_sources().len(), 7);
        assert_eq!(bundle.mount_sources()[0], Some(PathBuf::from("proc")));
        let caps = bundle
            .spec()
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 3);
    }

    #[test]
    fn relative_bundle_dir_is_made_absolute_once() {
        let dir = bundle_with(&minimal().to_string());
        // The same directory named relative to the current one: ../../tmp/.tmpXXXX
        let cwd = std::env::current_dir().unwrap();
        let up: PathBuf = cwd.components().skip(1).map(|_| "..").collect();
        let relative = up.join(dir.path().strip_prefix("/").unwrap());
        assert!(relative.is_relative());
        let bundle = Bundle::load(&relative).unwrap();
        assert_eq!(bundle.dir(), dir.path());
        assert_eq!(bundle.config_path(), dir.path().join("config.json"));
        assert_eq!(bundle.rootfs(), dir.path().join("rootfs"));
    }

    #[test]
    fn empty_bundle_path_is_the_current_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("")).unwrap(), cwd);
        assert_eq!(absolute(Path::new("./a/../b/")).unwrap(), cwd.join("b"));
        assert_eq!(clean(Path::new("/../x//./y/..")), Path::new("/x"));
    }

    #[test]
    fn absolute_root_path_and_bind_sources() {
        let rootfs = tempfile::tempdir().unwrap();
        let mut config = minimal();
        config["root"]["path"] = json!(rootfs.path());
        config["mounts"] = json!([
            {"destination": "/data", "type": "bind", "source": "./x/../data", "options": ["rbind"]},
            {"destination": "/opt", "type": "none", "source": "opt", "options": ["rbind", "ro"]},
            {"destination": "/abs", "type": "bind", "source": "/srv/x"},
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/run", "type": "tmpfs"},
        ]);
        let (dir, result) = load_value(&config);
        let bundle = result.unwrap();
        assert_eq!(bundle.rootfs(), rootfs.path());
        assert_eq!(
            bundle.mount_sources(),
            [
                Some(dir.path().join("data")),
                Some(dir.path().join("opt")),
                Some(PathBuf::from("/srv/x")),
                Some(PathBuf::from("proc")),
                None,
            ]
        );
    }

    #[test]
    fn annotations_are_returned_sorted() {
        let mut config = minimal();
        config["annotations"] = json!({"io.proxcage.backend": "pct", "a": "1"});
        let (_dir, result) = load_value(&config);
        let annotations = result.unwrap().annotations();
        assert_eq!(
            annotations.into_iter().collect::<Vec<_>>(),
            [
                ("a".to_owned(), "1".to_owned()),
                ("io.proxcage.backend".to_owned(), "pct".to_owned())
            ]
        );
    }

    #[test]
    fn bundle_directory_missing_or_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert_eq!(
            Bundle::load(&missing).unwrap_err().to_string(),
            format!("bundle directory {} does not exist", missing.display())
        );
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert_eq!(
            Bundle::load(&file).unwrap_err().to_string(),
            format!(
                "bundle {} is not a directory: the bundle is the directory that holds config.json",
                file.display()
            )
        );
    }

    #[test]
    fn config_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Bundle::load(dir.path()).unwrap_err().to_string(),
            format!(
                "{}/config.json does not exist: a bundle needs a config.json ('proxcage spec' writes runc's default one)",
                dir.path().display()
            )
        );
    }

    #[test]
    fn config_that_is_a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            Bundle::load(dir.path()).unwrap_err().to_string(),
            format!("{} is a FIFO, not a regular file", path.display())
        );
    }

    #[test]
    fn config_that_is_a_directory_or_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::create_dir(&path).unwrap();
        assert_eq!(
            Bundle::load(dir.path()).unwrap_err().to_string(),
            format!("{} is a directory, not a regular file", path.display())
        );
        fs::remove_dir(&path).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(
            Bundle::load(dir.path()).unwrap_err().to_string(),
            format!("{} is a socket, not a regular file", path.display())
        );
    }

    #[test]
    fn config_larger_than_the_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // Sparse: no 16 MiB written.
        fs::File::create(&path)
            .unwrap()
            .set_len(CONFIG_SIZE_LIMIT + 1)
            .unwrap();
        assert_eq!(
            Bundle::load(dir.path()).unwrap_err().to_string(),
            format!(
                "{} is 16777217 bytes, more than the 16777216 bytes a config.json may have",
                path.display()
            )
        );
    }

    #[test]
    fn invalid_json_names_line_and_column() {
        let dir = bundle_with("{\n  \"ociVersion\": \"1.0.2\",\n  \"root\": {\"path\": rootfs}\n}");
        let err = Bundle::load(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}/config.json: invalid JSON at line 3, column 20: expected value",
                dir.path().display()
            )
        );
        let dir = bundle_with("");
        assert_eq!(
            Bundle::load(dir.path()).unwrap_err().to_string(),
            format!(
                "{}/config.json: invalid JSON at line 1, column 0: EOF while parsing a value",
                dir.path().display()
            )
        );
        let dir = bundle_with("{} x");
        assert_eq!(
            Bundle::load(dir.path()).unwrap_err().to_string(),
            format!(
                "{}/config.json: invalid JSON at line 1, column 4: trailing characters",
                dir.path().display()
            )
        );
    }

    #[test]
    fn wrong_type_names_the_json_path() {
        let mut config = minimal();
        config["process"]["user"]["uid"] = json!("root");
        let message = error_of(&config);
        assert!(
            message.starts_with(
                "B/config.json: process.user.uid: invalid type: string \"root\", expected u32 (line "
            ),
            "{message}"
        );

        let mut config = minimal();
        config["mounts"] = json!([{"destination": "/a"}, {"destination": "/b", "options": "ro"}]);
        let message = error_of(&config);
        assert!(
            message.starts_with(
                "B/config.json: mounts[1].options: invalid type: string \"ro\", expected a sequence (line "
            ),
            "{message}"
        );

        let message = error_of(&json!(5));
        assert_eq!(
            message,
            "B/config.json: the top level: invalid type: integer `5`, expected struct Spec (line 1, column 1)"
        );
        assert_eq!(
            error_of(&json!(["1.0.2", {"path": "rootfs"}])),
            "B/config.json: the top level: expected a JSON object, found an array"
        );
    }

    #[test]
    fn bad_enum_value_names_the_json_path() {
        let mut config = minimal();
        config["linux"] = json!({"namespaces": [{"type": "pid"}, {"type": "bogus"}]});
        let message = error_of(&config);
        assert!(
            message.starts_with("B/config.json: linux.namespaces[1].type: unknown variant `bogus`"),
            "{message}"
        );
    }

    #[test]
    fn missing_required_field_is_named_with_its_path() {
        let mut config = minimal();
        config["process"].as_object_mut().unwrap().remove("cwd");
        assert_eq!(error_of(&config), "B/config.json: process.cwd is missing");
    }

    #[test]
    fn oci_version_must_be_1_x_y() {
        for ok in ["1.0.0", "1.0.2-dev", "1.2.0", "1.10.3-rc.1+build.5"] {
            let mut config = minimal();
            config["ociVersion"] = json!(ok);
            assert!(load_value(&config).1.is_ok(), "{ok}");
        }
        for bad in [
            "2.0.0", "0.9.0", "1.0", "1.0.0.0", "1.x.0", "1.0.0-", "v1.0.0",
        ] {
            let mut config = minimal();
            config["ociVersion"] = json!(bad);
            assert_eq!(
                error_of(&config),
                format!("B/config.json: ociVersion {bad:?} is not supported: proxcage runs specs of version 1.x.y")
            );
        }
        let mut config = minimal();
        config.as_object_mut().unwrap().remove("ociVersion");
        assert_eq!(error_of(&config), "B/config.json: ociVersion is missing");
    }

    #[test]
    fn root_missing_or_bad() {
        let mut config = minimal();
        config.as_object_mut().unwrap().remove("root");
        assert_eq!(error_of(&config), "B/config.json: root is missing");

        config["root"] = json!({"readonly": true});
        assert_eq!(error_of(&config), "B/config.json: root.path is missing");

        config["root"] = json!({"path": "nothere"});
        assert_eq!(
            error_of(&config),
            "B/config.json: root.path nothere does not exist (looked for B/nothere)"
        );

        config["root"] = json!({"path": "config.json"});
        assert_eq!(
            error_of(&config),
            "B/config.json: root.path config.json is not a directory (resolved to B/config.json)"
        );
    }

    #[test]
    fn process_missing_or_args_empty() {
        let mut config = minimal();
        config["process"]["args"] = json!([]);
        assert_eq!(
            error_of(&config),
            "B/config.json: process.args is empty: it must name the program to run"
        );
        config["process"].as_object_mut().unwrap().remove("args");
        assert_eq!(error_of(&config), "B/config.json: process.args is missing");
        config.as_object_mut().unwrap().remove("process");
        assert_eq!(error_of(&config), "B/config.json: process is missing");
    }

    #[test]
    fn mount_destination_must_be_absolute() {
        let mut config = minimal();
        config["mounts"] = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs"},
            {"destination": "tmp", "type": "tmpfs"},
        ]);
        assert_eq!(
            error_of(&config),
            "B/config.json: mounts[2].destination \"tmp\" is not absolute"
        );
    }

    #[test]
    fn unknown_capabilities_are_dropped_with_a_warning() {
        let mut config = minimal();
        config["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_NOPE", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "ambient": ["sys_admin", "CAP_FOO"],
        });
        let (_dir, result) = load_value(&config);
        let bundle = result.unwrap();
        assert_eq!(
            bundle.warnings(),
            [
                "ignoring capability \"CAP_NOPE\" in process.capabilities.bounding: it is not a Linux capability",
                "ignoring capability \"sys_admin\" in process.capabilities.ambient: runc only accepts the exact name \"CAP_SYS_ADMIN\"",
                "ignoring capability \"CAP_FOO\" in process.capabilities.ambient: it is not a Linux capability",
            ]
        );
        let caps = bundle
            .spec()
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        let bounding = caps.bounding().as_ref().unwrap();
        assert_eq!(bounding.len(), 2);
        assert!(bounding.contains(&Capability::Kill) && bounding.contains(&Capability::Chown));
        assert!(caps.ambient().as_ref().unwrap().is_empty());
    }

    #[test]
    fn non_canonical_capability_alone_is_dropped_too() {
        let mut config = minimal();
        config["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", "SYS_ADMIN"]});
        let (_dir, result) = load_value(&config);
        let bundle = result.unwrap();
        assert_eq!(bundle.warnings().len(), 1);
        assert!(bundle.warnings()[0].contains("\"SYS_ADMIN\" in process.capabilities.bounding"));
        let caps = bundle
            .spec()
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone();
        assert_eq!(caps.unwrap().bounding().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn capability_of_wrong_type_is_an_error_with_its_position() {
        let mut config = minimal();
        config["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", 7]});
        let message = error_of(&config);
        assert!(
            message.starts_with("B/config.json: process.capabilities.bounding[1]: invalid type: integer `7`, expected a string (line "),
            "{message}"
        );
        // With an unknown name in another set, the line is lost but the path is kept.
        config["process"]["capabilities"] =
            json!({"bounding": ["CAP_NOPE", 7], "ambient": ["CAP_NOPE"]});
        assert_eq!(
            error_of(&config),
            "B/config.json: process.capabilities.bounding[0]: no variant for CAP_NOPE (converted to NOPE)"
        );
        config["process"]["capabilities"] =
            json!({"bounding": ["CAP_KILL", 7], "ambient": ["CAP_NOPE"]});
        assert_eq!(
            error_of(&config),
            "B/config.json: process.capabilities.bounding[1]: invalid type: integer `7`, expected a string"
        );
    }

    #[test]
    fn every_linux_capability_name_is_accepted_as_runc_spells_it() {
        let names = [
            "AUDIT_CONTROL",
            "AUDIT_READ",
            "AUDIT_WRITE",
            "BLOCK_SUSPEND",
            "BPF",
            "CHECKPOINT_RESTORE",
            "CHOWN",
            "DAC_OVERRIDE",
            "DAC_READ_SEARCH",
            "FOWNER",
            "FSETID",
            "IPC_LOCK",
            "IPC_OWNER",
            "KILL",
            "LEASE",
            "LINUX_IMMUTABLE",
            "MAC_ADMIN",
            "MAC_OVERRIDE",
            "MKNOD",
            "NET_ADMIN",
            "NET_BIND_SERVICE",
            "NET_BROADCAST",
            "NET_RAW",
            "PERFMON",
            "SETGID",
            "SETFCAP",
            "SETPCAP",
            "SETUID",
            "SYS_ADMIN",
            "SYS_BOOT",
            "SYS_CHROOT",
            "SYS_MODULE",
            "SYS_NICE",
            "SYS_PACCT",
            "SYS_PTRACE",
            "SYS_RAWIO",
            "SYS_RESOURCE",
            "SYS_TIME",
            "SYS_TTY_CONFIG",
            "SYSLOG",
            "WAKE_ALARM",
        ];
        for name in names {
            assert_eq!(check_capability(&format!("CAP_{name}")), Ok(()), "{name}");
            assert!(check_capability(name).is_err(), "{name}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("config.json"), &bytes).unwrap();
            let _ = Bundle::load(dir.path());
        }

        #[test]
        fn damaged_configs_never_panic(cut in 0..RUNC_SPEC.len(), at in 0..RUNC_SPEC.len(), byte in any::<u8>()) {
            let mut bytes = RUNC_SPEC.as_bytes().to_vec();
            bytes[at] = byte;
            bytes.truncate(cut.max(at + 1));
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("rootfs")).unwrap();
            fs::write(dir.path().join("config.json"), &bytes).unwrap();
            let _ = Bundle::load(dir.path());
        }

        #[test]
        fn arbitrary_capability_names_load_or_warn(names in proptest::collection::vec("[A-Za-z_]{0,24}", 0..6)) {
            let mut config = minimal();
            config["process"]["capabilities"] = json!({"permitted": names});
            let (_dir, result) = load_value(&config);
            let bundle = result.unwrap();
            let kept = bundle.spec().process().as_ref().unwrap().capabilities().as_ref().unwrap()
                .permitted().as_ref().unwrap().len();
            let valid: std::collections::HashSet<_> = names.iter().filter(|n| check_capability(n).is_ok()).collect();
            prop_assert_eq!(kept, valid.len());
            prop_assert_eq!(bundle.warnings().len(), names.len() - names.iter().filter(|n| check_capability(n).is_ok()).count());
        }
    }
}
