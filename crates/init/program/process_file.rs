//! The process file, as `proxcage_lxc_config::ProcessFile::encode` writes it: fields
//! ending in NUL,
//!
//! ```text
//! PROXCAGE-PROCESS 4  cwd  umask (octal, or empty)  flags  user  capabilities  argc  arg...  env...
//! ```
//!
//! flags: a comma-separated subset of `no_new_privs`, `monitor`, `terminal`; user:
//! `uid:gid[:gids[:caps to drop from the bounding set]]` or empty; capabilities:
//! `effective:permitted:inheritable:ambient` as hexadecimal masks, or empty.

use crate::text::{next_string, parse_hex_u64, parse_number, starts_with};

const MAGIC: &[u8] = b"PROXCAGE-PROCESS 4";
const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Capability sets to apply before the exec (bit n is capability n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// A process file read; the strings point into the file's buffer.
#[derive(Debug)]
pub struct ProcessFile<'a> {
    /// The working directory, empty for none; `cwd_ptr` is it NUL-terminated.
    pub cwd: &'a [u8],
    pub cwd_ptr: *const u8,
    pub umask: Option<usize>,
    pub no_new_privs: bool,
    pub monitored: bool,
    pub terminal: bool,
    /// `uid:gid[:gids[:caps]]`, or empty to stay as started.
    pub user: &'a [u8],
    pub caps: Option<CapSets>,
    /// PATH from the environment, or the default.
    pub search_path: &'a [u8],
}

/// Reads `data`, filling `args` and `envs` with NULL-terminated arrays of pointers to
/// the NUL-terminated strings in it. The error says what is malformed.
pub fn parse<'a>(
    data: &'a [u8],
    args: &mut [*const u8],
    envs: &mut [*const u8],
) -> Result<ProcessFile<'a>, &'static [u8]> {
    let mut pos = 0;
    if next_string(data, &mut pos) != Some(MAGIC) {
        return Err(b"it does not start with PROXCAGE-PROCESS 4");
    }
    let cwd_ptr = data[pos..].as_ptr();
    let cwd = next_string(data, &mut pos).ok_or(&b"no cwd"[..])?;
    let umask = match next_string(data, &mut pos).ok_or(&b"no umask"[..])? {
        b"" => None,
        text => Some(parse_number(text, 8).ok_or(&b"the umask is not octal"[..])?),
    };
    let flags = next_string(data, &mut pos).ok_or(&b"no flags"[..])?;
    let (mut no_new_privs, mut monitored, mut terminal) = (false, false, false);
    for flag in flags.split(|&b| b == b',').filter(|f| !f.is_empty()) {
        match flag {
            b"no_new_privs" => no_new_privs = true,
            b"monitor" => monitored = true,
            b"terminal" => terminal = true,
            _ => return Err(b"unknown flags"),
        }
    }
    let user = next_string(data, &mut pos).ok_or(&b"no user"[..])?;
    let caps = match next_string(data, &mut pos).ok_or(&b"no capabilities"[..])? {
        b"" => None,
        text => Some(cap_sets(text).ok_or(&b"the capabilities are not four hex masks"[..])?),
    };
    let argc = next_string(data, &mut pos)
        .and_then(|n| parse_number(n, 10))
        .ok_or(&b"no argument count"[..])?;
    if argc == 0 || argc >= args.len() {
        return Err(b"the argument count is 0 or too large");
    }
    for slot in args.iter_mut().take(argc) {
        *slot = data[pos..].as_ptr();
        next_string(data, &mut pos).ok_or(&b"fewer arguments than the count says"[..])?;
    }
    args[argc] = core::ptr::null();
    let search_path = environment(data, pos, envs)?;
    Ok(ProcessFile {
        cwd,
        cwd_ptr,
        umask,
        no_new_privs,
        monitored,
        terminal,
        user,
        caps,
        search_path,
    })
}

/// The variables from `pos` to the end into `envs`; PATH's value, or the default.
fn environment<'a>(
    data: &'a [u8],
    mut pos: usize,
    envs: &mut [*const u8],
) -> Result<&'a [u8], &'static [u8]> {
    let mut envc = 0;
    let mut search_path = DEFAULT_PATH;
    while pos < data.len() {
        let start = pos;
        let var = next_string(data, &mut pos).ok_or(&b"an unterminated variable"[..])?;
        if envc + 1 >= envs.len() {
            return Err(b"too many environment variables");
        }
        if starts_with(var, b"PATH=") {
            search_path = &var[5..];
        }
        envs[envc] = data[start..].as_ptr();
        envc += 1;
    }
    envs[envc] = core::ptr::null();
    Ok(search_path)
}

fn cap_sets(text: &[u8]) -> Option<CapSets> {
    let mut masks = text.split(|&b| b == b':').map(parse_hex_u64);
    let sets = CapSets {
        effective: masks.next()??,
        permitted: masks.next()??,
        inheritable: masks.next()??,
        ambient: masks.next()??,
    };
    masks.next().is_none().then_some(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] = b"PROXCAGE-PROCESS 4\0/srv\x0022\0no_new_privs,monitor\x001000:100\0\
        20000000c:20000000c:c:4\x002\0sh\0a b\0PATH=/x\0T=y \0";

    #[test]
    fn every_field_is_read() {
        let (mut args, mut envs) = ([core::ptr::null(); 4], [core::ptr::null(); 4]);
        let p = parse(FILE, &mut args, &mut envs).unwrap();
        assert_eq!(p.cwd, b"/srv");
        assert_eq!(p.umask, Some(0o22));
        assert!(p.no_new_privs && p.monitored && !p.terminal);
        assert_eq!(p.user, b"1000:100");
        assert_eq!(
            p.caps,
            Some(CapSets {
                effective: 0x2_0000_000c,
                permitted: 0x2_0000_000c,
                inheritable: 0xc,
                ambient: 0x4,
            })
        );
        assert_eq!(p.search_path, b"/x");
        // SAFETY: the pointers point at NUL-terminated strings inside FILE.
        let text = |p: *const u8| unsafe { std::ffi::CStr::from_ptr(p.cast()) }.to_bytes();
        assert_eq!([text(args[0]), text(args[1])], [&b"sh"[..], b"a b"]);
        assert!(args[2].is_null());
        assert_eq!([text(envs[0]), text(envs[1])], [&b"PATH=/x"[..], b"T=y "]);
        assert!(envs[2].is_null());
        assert_eq!(text(p.cwd_ptr), b"/srv");
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        let (mut args, mut envs) = ([core::ptr::null(); 4], [core::ptr::null(); 4]);
        let mut err = |file: &[u8]| parse(file, &mut args, &mut envs).unwrap_err();
        assert_eq!(
            err(b"PROXCAGE-PROCESS 3\0/\0\0\0\x001\0sh\0"),
            b"it does not start with PROXCAGE-PROCESS 4"
        );
        assert_eq!(
            err(b"PROXCAGE-PROCESS 4\0/\0\0\0\0c:c:c\x001\0sh\0"),
            b"the capabilities are not four hex masks"
        );
        assert_eq!(
            err(b"PROXCAGE-PROCESS 4\0/\0\0\0\0\x002\0sh\0"),
            b"fewer arguments than the count says"
        );
        assert_eq!(
            err(b"PROXCAGE-PROCESS 4\0/\0\0\0\0\x009\0sh\0"),
            b"the argument count is 0 or too large"
        );
        assert_eq!(err(b"PROXCAGE-PROCESS 4\0/\0\0bad\0"), b"unknown flags");
    }
}
