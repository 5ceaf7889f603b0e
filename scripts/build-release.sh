#!/usr/bin/env bash
# Builds the proxcage binary an operator installs (and the Debian package holds) and
# prints its path: release, linked statically against musl, not position-independent,
# with dlmalloc as its allocator (crates/cli/Cargo.toml). Each command a shim sends starts
# a fresh proxcage, so what its start costs is paid on every command: without a dynamic
# loader, without relocating itself, and with musl's start-up instead of glibc's, a
# command costs about half the CPU of the default build (benches/README.md).
# proxcage's libc use is system calls and memory: no NSS, no locales, no dlopen.
# The flags need an explicit --target: Cargo then keeps them off the build scripts and
# proc-macros. The binary lands in target/x86_64-unknown-linux-musl/release/.
# scripts/valgrind.sh keeps using the plain (dynamic glibc) build: memcheck can only
# follow malloc in a dynamically linked program.
# Needs musl-tools (the zstd crate compiles C) and the musl target of the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
command -v musl-gcc >/dev/null || {
    echo "build-release.sh: install musl-tools (apt-get install -y musl-tools)" >&2
    exit 1
}
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target" >&2 || {
        echo "build-release.sh: could not add the Rust target $target (rustup target add $target)" >&2
        exit 1
    }
fi
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --locked --target "$target" -p proxcage-cli >&2
echo "${CARGO_TARGET_DIR:-$PWD/target}/$target/release/proxcage"
