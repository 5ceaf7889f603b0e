//! pct's command-line grammar and parameter checks: Getopt::Long-style option parsing
//! (`--opt value`, `-opt value`, `--opt=value`, booleans with an optional value) and the
//! JSON-schema checks of pve-container, with their messages.

use std::collections::BTreeMap;

use crate::Failure;

/// How an option takes its value on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// `:s` in Getopt terms: the next argument unless it looks like an option; `1` when absent.
    Bool,
    /// `=s`: always the next argument.
    Value,
}

/// The parsed command line of one subcommand.
#[derive(Debug, Default)]
pub struct Params {
    pub pos: Vec<String>,
    pub opts: BTreeMap<String, String>,
    pub extra: Vec<String>,
}

/// Parses `args` the way PVE::JSONSchema::get_options does: options anywhere, `--` ends
/// them; `positional` names the required arguments; `extra` collects the rest (exec).
pub fn parse(
    args: &[String],
    positional: &[&str],
    extra: bool,
    arity: impl Fn(&str) -> Option<Arity>,
    usage: &str,
) -> Result<Params, Failure> {
    let mut params = Params::default();
    let mut rest = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if ended {
            rest.push(arg.clone());
            continue;
        }
        if arg == "--" {
            ended = true;
            continue;
        }
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            rest.push(arg.clone());
            continue;
        };
        if name.is_empty() || arg == "-" {
            rest.push(arg.clone());
            continue;
        }
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let Some(kind) = arity(name) else {
            return Err(Failure::usage(
                format!(
                    "Unknown option: {}\n400 unable to parse option",
                    name.to_lowercase()
                ),
                usage,
            ));
        };
        let value = match (inline, kind) {
            (Some(v), _) => v,
            (None, Arity::Value) => match args.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => {
                    return Err(Failure::usage(
                        format!("Option {name} requires an argument\n400 unable to parse option"),
                        usage,
                    ))
                }
            },
            (None, Arity::Bool) => match args.get(i) {
                Some(v) if !v.starts_with('-') => {
                    i += 1;
                    v.clone()
                }
                _ => "1".to_string(),
            },
        };
        params.opts.insert(name.to_string(), value);
    }
    if rest.len() < positional.len() {
        return Err(Failure::usage("400 not enough arguments", usage));
    }
    let extra_args = rest.split_off(positional.len());
    if !extra_args.is_empty() && !extra {
        return Err(Failure::usage("400 too many arguments", usage));
    }
    params.pos = rest;
    params.extra = extra_args;
    Ok(params)
}

/// Collected `field: message` lines of a `400 Parameter verification failed.` error.
#[derive(Debug, Default)]
pub struct ParamErrors(BTreeMap<String, String>);

impl ParamErrors {
    pub fn add(&mut self, field: &str, msg: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_insert_with(|| msg.into());
    }

    /// Fails with every collected error, as pve's parameter exception prints them.
    pub fn into_result(self, usage: &str) -> Result<(), Failure> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut text = String::from("400 Parameter verification failed.");
        for (field, msg) in self.0 {
            text.push_str(&format!("\n{field}: {msg}"));
        }
        Err(Failure::usage(text, usage))
    }
}

/// One field's failure, already worded as pve words it.
pub fn param_error(field: &str, msg: impl Into<String>, usage: &str) -> Failure {
    let mut errors = ParamErrors::default();
    errors.add(field, msg);
    match errors.into_result(usage) {
        Err(f) => f,
        Ok(()) => unreachable!("one error was added"),
    }
}

/// The value types of the pve schema that pct options use.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Int(Option<i64>, Option<i64>),
    Num(f64, f64),
    Bool,
    Enum(&'static [&'static str]),
    Str(Option<usize>, Fmt),
}

/// Named string formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmt {
    Plain,
    Dns,
    Tags,
    Rootfs,
    Mp,
    Net,
    Dev,
    Features,
    Startup,
}

pub const OSTYPES: &[&str] = &[
    "debian",
    "devuan",
    "ubuntu",
    "centos",
    "fedora",
    "opensuse",
    "archlinux",
    "alpine",
    "gentoo",
    "nixos",
    "unmanaged",
];
pub const ARCHES: &[&str] = &["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"];
pub const CMODES: &[&str] = &["shell", "console", "tty"];
pub const LOCKS: &[&str] = &[
    "backup",
    "create",
    "destroyed",
    "disk",
    "fstrim",
    "migrate",
    "mounted",
    "rollback",
    "snapshot",
    "snapshot-delete",
];

/// The type of a container config option (`pct create` / `pct set`), or None.
pub fn config_option(name: &str) -> Option<Ty> {
    let indexed = |prefix: &str, max: u32| {
        name.strip_prefix(prefix)
            .and_then(|n| (!n.starts_with('0') || n == "0").then_some(n))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n <= max)
    };
    if indexed("mp", 255) {
        return Some(Ty::Str(None, Fmt::Mp));
    }
    if indexed("net", 31) {
        return Some(Ty::Str(None, Fmt::Net));
    }
    if indexed("dev", 255) {
        return Some(Ty::Str(None, Fmt::Dev));
    }
    Some(match name {
        "arch" => Ty::Enum(ARCHES),
        "cmode" => Ty::Enum(CMODES),
        "console" | "onboot" | "protection" | "template" | "debug" => Ty::Bool,
        "cores" => Ty::Int(Some(1), Some(8192)),
        "cpulimit" => Ty::Num(0.0, 8192.0),
        "cpuunits" => Ty::Int(Some(0), Some(500_000)),
        "memory" => Ty::Int(Some(16), None),
        "swap" => Ty::Int(Some(0), None),
        "tty" => Ty::Int(Some(0), Some(6)),
        "hostname" => Ty::Str(Some(255), Fmt::Dns),
        "description" => Ty::Str(Some(8192), Fmt::Plain),
        "features" => Ty::Str(None, Fmt::Features),
        "rootfs" => Ty::Str(None, Fmt::Rootfs),
        "ostype" => Ty::Enum(OSTYPES),
        "tags" => Ty::Str(None, Fmt::Tags),
        "entrypoint" | "env" | "nameserver" | "searchdomain" | "timezone" | "hookscript" => {
            Ty::Str(None, Fmt::Plain)
        }
        "startup" => Ty::Str(None, Fmt::Startup),
        "lock" => Ty::Enum(LOCKS),
        _ => return None,
    })
}

/// Checks `value` against `ty`; returns the value as pve stores it (booleans as 0/1).
pub fn check(field: &str, ty: Ty, value: &str) -> Result<String, String> {
    match ty {
        Ty::Int(min, max) => {
            let n: i64 = value
                .parse()
                .map_err(|_| format!("type check ('integer') failed - got '{value}'"))?;
            if let Some(min) = min.filter(|m| n < *m) {
                return Err(format!("value must have a minimum value of {min}"));
            }
            if let Some(max) = max.filter(|m| n > *m) {
                return Err(format!("value must have a maximum value of {max}"));
            }
            Ok(n.to_string())
        }
        Ty::Num(min, max) => {
            let n: f64 = value
                .parse()
                .ok()
                .filter(|_| is_number(value))
                .ok_or_else(|| format!("type check ('number') failed - got '{value}'"))?;
            if n < min {
                return Err(format!("value must have a minimum value of {min}"));
            }
            if n > max {
                return Err(format!("value must have a maximum value of {max}"));
            }
            Ok(value.to_string())
        }
        Ty::Bool => parse_bool(value)
            .map(|b| if b { "1" } else { "0" }.to_string())
            .ok_or_else(|| format!("type check ('boolean') failed - got '{value}'")),
        Ty::Enum(values) => {
            if values.contains(&value) {
                Ok(value.to_string())
            } else {
                Err(format!(
                    "value '{value}' does not have a value in the enumeration '{}'",
                    values.join(", ")
                ))
            }
        }
        Ty::Str(max, fmt) => {
            if let Some(max) = max.filter(|m| value.chars().count() > *m) {
                return Err(format!("value may only be {max} characters long"));
            }
            check_format(field, fmt, value).map(|()| value.to_string())
        }
    }
}

fn is_number(value: &str) -> bool {
    let v = value.strip_prefix('-').unwrap_or(value);
    let (int, frac) = v.split_once('.').unwrap_or((v, "0"));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && !frac.is_empty()
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// pve's boolean spellings.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `^[1-9][0-9]{2,8}$`, the pve-vmid format.
pub fn check_vmid(value: &str) -> Result<u32, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("type check ('integer') failed - got '{value}'"));
    }
    if value.starts_with('0') || !(3..=9).contains(&value.len()) {
        return Err("invalid format - value does not look like a valid VM ID".into());
    }
    value
        .parse()
        .map_err(|_| "invalid format - value does not look like a valid VM ID".into())
}

fn is_dns_name(value: &str) -> bool {
    !value.is_empty()
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-+.".contains(&b))
}

/// Keys of a property string and their types; `default` is the key a bare value fills.
struct PropSpec {
    keys: &'static [(&'static str, Ty)],
    default: Option<&'static str>,
    required: &'static [&'static str],
}

const MOUNT_OPTS: &[&str] = &[
    "discard", "lazytime", "noatime", "nodev", "noexec", "nosuid",
];

const ROOTFS_KEYS: &[(&str, Ty)] = &[
    ("volume", Ty::Str(None, Fmt::Plain)),
    ("size", Ty::Str(None, Fmt::Plain)),
    ("acl", Ty::Bool),
    ("mountoptions", Ty::Str(None, Fmt::Plain)),
    ("ro", Ty::Bool),
    ("quota", Ty::Bool),
    ("replicate", Ty::Bool),
    ("shared", Ty::Bool),
];
const MP_KEYS: &[(&str, Ty)] = &[
    ("volume", Ty::Str(None, Fmt::Plain)),
    ("size", Ty::Str(None, Fmt::Plain)),
    ("acl", Ty::Bool),
    ("mountoptions", Ty::Str(None, Fmt::Plain)),
    ("ro", Ty::Bool),
    ("quota", Ty::Bool),
    ("replicate", Ty::Bool),
    ("shared", Ty::Bool),
    ("backup", Ty::Bool),
    ("mp", Ty::Str(None, Fmt::Plain)),
];
const NET_KEYS: &[(&str, Ty)] = &[
    ("type", Ty::Enum(&["veth"])),
    ("name", Ty::Str(None, Fmt::Plain)),
    ("bridge", Ty::Str(None, Fmt::Plain)),
    ("hwaddr", Ty::Str(None, Fmt::Plain)),
    ("mtu", Ty::Int(Some(64), Some(65535))),
    ("ip", Ty::Str(None, Fmt::Plain)),
    ("gw", Ty::Str(None, Fmt::Plain)),
    ("ip6", Ty::Str(None, Fmt::Plain)),
    ("gw6", Ty::Str(None, Fmt::Plain)),
    ("firewall", Ty::Bool),
    ("tag", Ty::Int(Some(1), Some(4094))),
    ("trunks", Ty::Str(None, Fmt::Plain)),
    ("rate", Ty::Num(0.0, f64::MAX)),
    ("link_down", Ty::Bool),
];
const DEV_KEYS: &[(&str, Ty)] = &[
    ("path", Ty::Str(None, Fmt::Plain)),
    ("mode", Ty::Str(None, Fmt::Plain)),
    ("uid", Ty::Int(Some(0), None)),
    ("gid", Ty::Int(Some(0), None)),
    ("deny-write", Ty::Bool),
];
const FEATURE_KEYS: &[(&str, Ty)] = &[
    ("mount", Ty::Str(None, Fmt::Plain)),
    ("nesting", Ty::Bool),
    ("keyctl", Ty::Bool),
    ("fuse", Ty::Bool),
    ("mknod", Ty::Bool),
    ("force_rw_sys", Ty::Bool),
];

fn spec(fmt: Fmt) -> Option<PropSpec> {
    Some(match fmt {
        Fmt::Rootfs => PropSpec {
            keys: ROOTFS_KEYS,
            default: Some("volume"),
            required: &["volume"],
        },
        Fmt::Mp => PropSpec {
            keys: MP_KEYS,
            default: Some("volume"),
            required: &["volume", "mp"],
        },
        Fmt::Net => PropSpec {
            keys: NET_KEYS,
            default: None,
            required: &["name"],
        },
        Fmt::Dev => PropSpec {
            keys: DEV_KEYS,
            default: Some("path"),
            required: &[],
        },
        Fmt::Features => PropSpec {
            keys: FEATURE_KEYS,
            default: None,
            required: &[],
        },
        _ => return None,
    })
}

/// A parsed property string (`a=1,b=2`, the default key may be bare).
pub fn parse_property_string(fmt: Fmt, value: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(spec) = spec(fmt) else {
        return Ok(BTreeMap::new());
    };
    let mut map = BTreeMap::new();
    let mut errors = Vec::new();
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let (key, val) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match spec.default {
                Some(d) if !map.contains_key(d) => (d.to_string(), part.to_string()),
                _ => {
                    return Err(
                        "value without key, but schema does not define a default key".to_string(),
                    )
                }
            },
        };
        match spec.keys.iter().find(|(k, _)| *k == key) {
            None => errors.push(format!(
                "{key}: property is not defined in schema and the schema does not allow additional properties"
            )),
            Some((_, ty)) => match check(&key, *ty, &val) {
                Ok(v) => {
                    if map.insert(key.clone(), v).is_some() {
                        return Err(format!("duplicate key in comma-separated list property: {key}"));
                    }
                }
                Err(e) => errors.push(format!("{key}: {e}")),
            },
        }
    }
    for req in spec.required {
        if !map.contains_key(*req) {
            errors.push(format!("{req}: property is missing and it is not optional"));
        }
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(errors.join("\n"))
    }
}

fn check_format(field: &str, fmt: Fmt, value: &str) -> Result<(), String> {
    match fmt {
        Fmt::Plain => Ok(()),
        Fmt::Dns => is_dns_name(value)
            .then_some(())
            .ok_or_else(|| "invalid format - value does not look like a valid DNS name".into()),
        Fmt::Tags => {
            for tag in value.split([';', ',', ' ']).filter(|t| !t.is_empty()) {
                if !is_tag(tag) {
                    return Err(format!(
                        "invalid format - invalid characters in tag '{tag}'"
                    ));
                }
            }
            Ok(())
        }
        Fmt::Startup => Ok(()),
        Fmt::Rootfs | Fmt::Mp | Fmt::Net | Fmt::Dev | Fmt::Features => {
            let map = parse_property_string(fmt, value).map_err(|e| {
                let lines: Vec<String> = e.lines().map(|l| format!("{field}.{l}")).collect();
                format!("invalid format - format error\n{}", lines.join("\n"))
            })?;
            let sub = |key: &str, msg: String| {
                format!("invalid format - format error\n{field}.{key}: {msg}")
            };
            if let Some(size) = map.get("size") {
                if !is_disk_size(size) {
                    return Err(sub(
                        "size",
                        format!("invalid format - unable to parse size '{size}'"),
                    ));
                }
            }
            if let Some(opts) = map.get("mountoptions") {
                if !opts.split(';').all(|o| MOUNT_OPTS.contains(&o)) {
                    return Err(sub(
                        "mountoptions",
                        "value does not match the regex pattern".into(),
                    ));
                }
            }
            for key in ["volume", "mp"] {
                if let Some(p) = map.get(key) {
                    if p.contains("/../")
                        || p.contains("/./")
                        || p.ends_with("/..")
                        || p.ends_with("/.")
                        || p.starts_with("../")
                    {
                        return Err(sub(
                            key,
                            format!("invalid format - {p} contains illegal character sequences"),
                        ));
                    }
                }
            }
            if let Some(path) = map.get("path") {
                if !path.starts_with("/dev/") || path.contains("/../") || path.ends_with("/..") {
                    return Err(sub(
                        "path",
                        format!("invalid format - {path} is not a valid device path"),
                    ));
                }
            }
            if let Some(name) = map.get("name").filter(|_| fmt == Fmt::Net) {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    return Err(sub("name", "value does not match the regex pattern".into()));
                }
            }
            Ok(())
        }
    }
}

/// `disk-size`: a number with an optional K, M, G or T suffix.
pub fn is_disk_size(value: &str) -> bool {
    let num = value.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(value);
    let num = if num.contains('.') {
        num.to_string()
    } else {
        format!("{num}.0")
    };
    is_number(&num) && !num.starts_with('-')
}
