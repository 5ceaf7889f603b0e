#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine: installs what the tests need, then the
# unit tests, and the end-to-end tests with real runc, crun, containerd and podman.
# Needs root (the end-to-end tests run real containers).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The end-to-end tests drive the built binaries (target/debug/proxcage, pct-standin):
# cargo test alone builds only test harnesses for them.
cargo build --workspace --locked
cargo test --workspace --locked
# The embedder's example (examples/run_bundle.rs): a container created, started, waited
# for and deleted through the engine, as a Rust program would do it.
example=$(mktemp -d /tmp/proxcage-example.XXXXXX)
trap 'rm -rf "$example"' EXIT
scripts/busybox-bundle.sh target/debug/proxcage "$example/bundle" runc echo hello from the engine
out=$(env -u PROXCAGE_CONFIG cargo run -q --locked --example run_bundle -- "$example/bundle")
echo "$out"
grep -qx 'hello from the engine' <<<"$out" && grep -q '^deleted ' <<<"$out" ||
    { echo "test.sh: examples/run_bundle.rs did not run its container to the end" >&2; exit 1; }
# The end-to-end tests again, against the binary operators install (a static musl build
# with its own allocator, scripts/build-release.sh).
PROXCAGE_BIN=$(scripts/build-release.sh) cargo test --locked -p proxcage-cli --test '*'
