#!/usr/bin/env bash
# The FreeBSD build of the proxcage binary (x86_64-unknown-freebsd): `cargo check` and
# `cargo clippy -D warnings` of the CLI for that target, so that the cfg'd Linux-only
# parts (the crun and pct backends, bundles from images, templates, LXC configs, the
# signalfd/pidfd waits) cannot break it unnoticed. This compiles and lints; nothing here
# runs on FreeBSD (see the README's FreeBSD section). Adds the Rust target with rustup
# when it is missing (rustup downloads it from static.rust-lang.org).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-freebsd
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target" >&2 || {
        echo "check-freebsd.sh: could not add the Rust target $target (rustup target add $target)" >&2
        exit 1
    }
fi
cargo check --locked --target "$target" -p proxcage-cli
cargo clippy --locked --target "$target" -p proxcage-cli -- -D warnings
