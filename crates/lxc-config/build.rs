//! Builds `proxcage-init` (init/main.rs), the container's first process, into OUT_DIR; the
//! library embeds it ([`crate::init::EXECUTABLE`]).
//!
//! It is compiled here with rustc directly rather than as a `[[bin]]` target because it
//! must be `panic = "abort"` (it has no std) and fully static with no C runtime, and
//! Cargo cannot set either for one binary of a workspace whose dev profile unwinds.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("init/main.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("proxcage-init");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").unwrap();
    let status = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "proxcage_init",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=s",
            "-C",
            "relocation-model=static",
        ])
        .args(["-C", "debuginfo=0", "-C", "strip=symbols"])
        .args([
            "-C",
            "link-arg=-nostartfiles",
            "-C",
            "link-arg=-nostdlib",
            "-C",
            "link-arg=-static",
        ])
        .args([
            "-C",
            "link-arg=-Wl,-z,noexecstack",
            "-C",
            "link-arg=-Wl,--build-id=none",
        ])
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
    println!("cargo:rerun-if-changed=init/main.rs");
    println!("cargo:rerun-if-changed=build.rs");
}
