#!/usr/bin/env bash
# Builds the proxcage binary an operator installs and prints its path: release, linked
# statically against musl, not position-independent, with the code every command runs
# laid out together. Each command a shim sends starts a fresh proxcage, so what its start
# costs is paid on every command (measured on the 2-core VM, `perf stat`):
#
# - static and non-PIE: no dynamic loader and no self-relocation (`proxcage --version`
#   0.65 ms of CPU instead of 1.3 ms);
# - musl rather than static glibc: glibc's start-up probes the CPU's caches with cpuid,
#   which traps to the hypervisor in a VM, and resolves its own path in /proc: a static
#   C program that prints a line costs 0.34 ms with glibc and 0.05 ms with musl;
#   `proxcage --version` 0.40 ms (with dlmalloc as the allocator, see main.rs);
# - the hot code together: scripts/hot-symbols.txt lists the functions that a lifecycle
#   of commands runs (scripts/hot-symbols.sh writes it), and the linker (rust-lld) puts
#   them first, so a command touches a few hundred kB of the binary's 7 MB of code
#   instead of pages all over it: 49 page faults for a `start` instead of 72. A name
#   missing from the list (the code has changed since it was written) only costs speed.
#
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
gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
[ -x "$gcc_ld/ld.lld" ] || {
    echo "build-release.sh: the toolchain has no rust-lld ($gcc_ld/ld.lld)" >&2
    exit 1
}
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static \
-C link-arg=-fuse-ld=lld -C link-arg=-B$gcc_ld \
-C link-arg=-Wl,--symbol-ordering-file=$PWD/scripts/hot-symbols.txt \
-C link-arg=-Wl,--no-warn-symbol-ordering" \
    cargo build --release --locked --target "$target" -p proxcage-cli >&2
binary="${CARGO_TARGET_DIR:-$PWD/target}/$target/release/proxcage"
listed=$(wc -l <scripts/hot-symbols.txt)
found=$(nm "$binary" | awk '{print $NF}' | sort -u | comm -12 - <(sort -u scripts/hot-symbols.txt) | wc -l)
echo "build-release.sh: $found of the $listed functions in scripts/hot-symbols.txt are in the binary (scripts/hot-symbols.sh lists them anew)" >&2
echo "$binary"
