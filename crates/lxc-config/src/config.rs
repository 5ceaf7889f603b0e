//! [`LxcConfig`]: an LXC container configuration as an ordered list of `key = value`
//! entries, with a renderer and a parser that round-trip.
//!
//! LXC reads its config line by line: a line is `key = value`, the key and the value are
//! trimmed of surrounding blanks, `#` starts a comment line, and there is no quoting or
//! escaping. So a value that holds a line break, a NUL, or starts or ends with blanks cannot
//! be written; [`LxcConfig::push`] refuses it instead of writing something LXC reads
//! differently.

use std::fmt;

use crate::error::ConfigError;

/// One `key = value` line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    key: String,
    value: String,
}

impl Entry {
    /// A checked entry: the key is `lxc.` followed by ASCII letters, digits, `.`, `_`
    /// and `-`; the value has no line break, NUL or other control character but tab, and
    /// no blanks at either end.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Result<Entry, ConfigError> {
        let (key, value) = (key.into(), value.into());
        check_key(&key)?;
        check_value(&key, &value)?;
        Ok(Entry { key, value })
    }

    /// The key, e.g. `lxc.init.cmd`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value as LXC reads it.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{} =", self.key)
        } else {
            write!(f, "{} = {}", self.key, self.value)
        }
    }
}

fn check_key(key: &str) -> Result<(), ConfigError> {
    let well_formed = key.len() > 4
        && key.starts_with("lxc.")
        && !key.ends_with('.')
        && !key.contains("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if well_formed {
        Ok(())
    } else {
        Err(ConfigError::InvalidKey { key: key.into() })
    }
}

fn check_value(key: &str, value: &str) -> Result<(), ConfigError> {
    let problem = if let Some(c) = value.chars().find(|&c| c.is_control() && c != '\t') {
        Some(format!(
            "it contains the control character {c:?}, which LXC's line-based config cannot hold"
        ))
    } else if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        Some("it starts or ends with blanks, which LXC trims".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(reason) => Err(ConfigError::InvalidValue {
            key: key.into(),
            value: value.into(),
            reason,
        }),
    }
}

/// An LXC configuration: entries in the order LXC applies them. Keys may repeat (mount
/// entries, capabilities, environment); for single-value keys the last one wins in LXC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LxcConfig {
    entries: Vec<Entry>,
}

impl LxcConfig {
    /// An empty configuration.
    pub fn new() -> LxcConfig {
        LxcConfig::default()
    }

    /// Appends `key = value`, refusing what LXC could not read back as written.
    pub fn push(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), ConfigError> {
        self.entries.push(Entry::new(key, value)?);
        Ok(())
    }

    /// Appends an entry that was checked when it was made.
    pub fn push_entry(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// The entries in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The values of `key`, in order.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// The value LXC uses for a single-value key: the last one.
    pub fn get<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.values(key).last()
    }

    /// The config file text: one `key = value` line per entry.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.entries.len() * 40);
        for entry in &self.entries {
            out.push_str(&entry.to_string());
            out.push('\n');
        }
        out
    }

    /// Parses LXC config text: blank lines and `#` comment lines are skipped, every other
    /// line must be `key = value` with a valid key. Line numbers in errors count from 1.
    pub fn parse(text: &str) -> Result<LxcConfig, ConfigError> {
        let mut config = LxcConfig::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = line.trim_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(ConfigError::Syntax {
                    line: line_no,
                    text: line.into(),
                    reason: "expected `key = value`".into(),
                });
            };
            let entry = Entry::new(
                key.trim_matches([' ', '\t']),
                value.trim_matches([' ', '\t']),
            )
            .map_err(|err| ConfigError::Syntax {
                line: line_no,
                text: line.into(),
                reason: err.to_string(),
            })?;
            config.entries.push(entry);
        }
        Ok(config)
    }
}

impl fmt::Display for LxcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl FromIterator<Entry> for LxcConfig {
    fn from_iter<I: IntoIterator<Item = Entry>>(iter: I) -> Self {
        LxcConfig {
            entries: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_in_order_and_parses_back() {
        let mut c = LxcConfig::new();
        c.push("lxc.uts.name", "web").unwrap();
        c.push("lxc.mount.entry", "/srv srv none bind,ro,create=dir 0 0")
            .unwrap();
        c.push("lxc.cap.keep", "").unwrap();
        c.push("lxc.mount.entry", "tmpfs tmp tmpfs size=1m 0 0")
            .unwrap();
        let text = c.render();
        assert_eq!(
            text,
            "lxc.uts.name = web\nlxc.mount.entry = /srv srv none bind,ro,create=dir 0 0\nlxc.cap.keep =\nlxc.mount.entry = tmpfs tmp tmpfs size=1m 0 0\n"
        );
        assert_eq!(LxcConfig::parse(&text).unwrap(), c);
        assert_eq!(c.values("lxc.mount.entry").count(), 2);
    }

    #[test]
    fn refuses_values_lxc_cannot_read_back() {
        for value in [
            "a\nlxc.rootfs.path = /",
            "a\rb",
            "nul\0",
            "trailing ",
            " leading",
            "tab\t",
            "\u{85}",
        ] {
            let err = Entry::new("lxc.environment", value).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidValue { .. }),
                "{value:?}: {err}"
            );
            assert!(err.to_string().contains("lxc.environment"), "{err}");
        }
        Entry::new("lxc.environment", "A=in\tside").unwrap();
    }

    #[test]
    fn refuses_bad_keys() {
        for key in [
            "",
            "lxc.",
            "rootfs.path",
            "lxc.a b",
            "lxc.a=b",
            "lxc..x",
            "lxc.x\n",
            "lxc.x.",
        ] {
            assert!(Entry::new(key, "v").is_err(), "{key:?}");
        }
    }

    #[test]
    fn parses_comments_blanks_and_spacing() {
        let c = LxcConfig::parse("# c\n\n  lxc.a=1\nlxc.b   =   two words  \n\t# x\n").unwrap();
        assert_eq!(c.get("lxc.a"), Some("1"));
        assert_eq!(c.get("lxc.b"), Some("two words"));
        let err = LxcConfig::parse("lxc.a = 1\nnot a line\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    fn entry() -> impl Strategy<Value = Entry> {
        (
            "lxc\\.[a-z0-9_]{1,8}(\\.[a-zA-Z0-9_-]{1,8}){0,3}",
            "([!-~]([ -~\t\u{a0}-\u{2000}]{0,30}[!-~])?)?",
        )
            .prop_map(|(k, v)| Entry::new(k, v).unwrap())
    }

    proptest! {
        #[test]
        fn any_config_round_trips(entries in proptest::collection::vec(entry(), 0..20)) {
            let config: LxcConfig = entries.into_iter().collect();
            prop_assert_eq!(LxcConfig::parse(&config.render()).unwrap(), config);
        }

        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let _ = LxcConfig::parse(&text);
        }

        #[test]
        fn what_parses_renders_to_the_same_entries(text in "((lxc\\.[a-z.]{1,6} ?= ?[ -~]{0,10}|#[ -~]*| *)\n){0,8}") {
            if let Ok(config) = LxcConfig::parse(&text) {
                prop_assert_eq!(LxcConfig::parse(&config.render()).unwrap(), config);
            }
        }
    }
}
