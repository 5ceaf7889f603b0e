//! Builds the init (`program/main.rs` and its modules) into OUT_DIR as a freestanding
//! static executable; the library embeds it ([`EXECUTABLE`](../src/lib.rs)).
//!
//! It is compiled here with rustc directly rather than as a `[[bin]]` target because it
//! must be `panic = "abort"` (it has no std) and fully static with no C runtime, and
//! Cargo cannot set either for one binary of a workspace whose dev profile unwinds.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let source = dir.join("program/main.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it")).join("proxcage-init");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets it");
    let status = Command::new(&rustc)
        .args(["--edition", "2021", "--crate-type", "bin"])
        .args(["--crate-name", "proxcage_init"])
        .args(["--target", &target])
        .args(["-C", "panic=abort", "-C", "opt-level=s"])
        .args(["-C", "relocation-model=static"])
        .args(["-C", "debuginfo=0", "-C", "strip=symbols"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args(["-C", "link-arg=-static"])
        .args(["-C", "link-arg=-Wl,-z,noexecstack"])
        .args(["-C", "link-arg=-Wl,--build-id=none"])
        .args(["-D", "warnings"])
        // musl targets link their own crt1.o (with a `_start`) unless told not to.
        .args(if target.contains("musl") {
            &["-C", "link-self-contained=no"][..]
        } else {
            &[]
        })
        .arg(&source)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run rustc for proxcage-init");
    assert!(status.success(), "compiling {} failed", source.display());
    println!("cargo:rerun-if-changed=program");
    println!("cargo:rerun-if-changed=build.rs");
}
