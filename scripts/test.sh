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
# The end-to-end tests again, against the binary operators install (a static musl build
# with its own allocator, scripts/build-release.sh).
PROXCAGE_BIN=$(scripts/build-release.sh) cargo test --locked -p proxcage-cli --test '*'
