//! Records the git commit for `proxcage --version`, when built from a git checkout, and
//! has it recorded again when a commit or a checkout moves HEAD.

use std::process::Command;

/// `git ARGS`' output, trimmed; `None` outside a checkout or without git.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PROXCAGE_COMMIT={commit}");
    // HEAD names the branch (in a worktree too); a commit moves the branch's ref, which
    // may live in packed-refs. A path that does not exist would rebuild every time.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["rev-parse", "--symbolic-full-name", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    if commit == "unknown" {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
