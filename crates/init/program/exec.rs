//! The exec: the path as given when it has a `/`, else a search of PATH as execvp(3) does.

use crate::fail;
use crate::sys::{self, errno_text, EACCES, ENOENT, ENOTDIR};

fn execve(path: *const u8, args: &[*const u8], envs: &[*const u8]) -> isize {
    // SAFETY: path is NUL-terminated; args and envs are NULL-terminated arrays of
    // NUL-terminated strings.
    unsafe {
        sys::call(
            sys::EXECVE,
            path as usize,
            args.as_ptr() as usize,
            envs.as_ptr() as usize,
        )
    }
}

/// Execs `args[0]` with `args` and `envs` (NULL-terminated arrays of NUL-terminated
/// strings), searching `search_path` when it has no `/`; `candidate` holds the paths
/// tried. Returns only by failing: 127 when not found, 126 when not executable.
pub fn exec(
    args: &[*const u8],
    envs: &[*const u8],
    search_path: &[u8],
    candidate: &mut [u8],
) -> ! {
    // SAFETY: args[0] points at a NUL-terminated string.
    let arg0 = unsafe { sys::c_str(args[0]) };
    if arg0.contains(&b'/') {
        let err = execve(args[0], args, envs);
        fail(
            if err == -ENOENT { 127 } else { 126 },
            &[b"cannot execute ", arg0, b": ", errno_text(err)],
        );
    }
    // As execvp(3): search PATH from the process environment; remember a permission error.
    let mut seen_eacces = false;
    for dir in search_path.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let total = dir.len() + 1 + arg0.len() + 1;
        if total > candidate.len() {
            continue;
        }
        candidate[..dir.len()].copy_from_slice(dir);
        candidate[dir.len()] = b'/';
        candidate[dir.len() + 1..total - 1].copy_from_slice(arg0);
        candidate[total - 1] = 0;
        let err = execve(candidate.as_ptr(), args, envs);
        match err {
            e if e == -EACCES => seen_eacces = true,
            e if e == -ENOENT || e == -ENOTDIR => {}
            e => fail(
                126,
                &[
                    b"cannot execute ",
                    &candidate[..total - 1],
                    b": ",
                    errno_text(e),
                ],
            ),
        }
    }
    if seen_eacces {
        fail(126, &[b"cannot execute ", arg0, b": permission denied"]);
    }
    fail(127, &[arg0, b": command not found in PATH"])
}
