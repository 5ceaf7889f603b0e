//! Records the git commit for `proxcage --version`, when built from a git checkout, and
//! has the binary linked again when the release build's list of hot functions changes
//! (scripts/build-release.sh hands it to the linker).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PROXCAGE_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../scripts/hot-symbols.txt");
}
