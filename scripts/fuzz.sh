#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while: `scripts/fuzz.sh [seconds-per-target] [target...]`
# (default 20 s each, every target). CI runs the short pass; for a real hunt give each
# target an hour: `scripts/fuzz.sh 3600 rootfs_tar`.
#
# Inputs start from the committed seeds (fuzz/seeds/<target>) and grow in fuzz/corpus/
# (not committed). A crash stops the script with the reproducer under fuzz/artifacts/;
# `cargo +nightly fuzz run <target> <file>` replays it. Needs the nightly toolchain;
# installs cargo-fuzz when it is missing. Runs as root: the tar and image targets create
# device nodes and set owners as `bundle create` does.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-20}"
shift || true

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "scripts/fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: installing cargo-fuzz (cargo +nightly install cargo-fuzz --locked)" >&2
    cargo +nightly install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build -O
log="$(mktemp)"
# The harnesses keep their sandboxes (bundle dirs, a store) in TMPDIR for the whole run.
TMPDIR="$(mktemp -d -t proxcage-fuzz.XXXXXX)"
export TMPDIR
trap 'rm -f "$log"; rm -rf "$TMPDIR"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target"
    echo "== $target: ${seconds}s" >&2
    status=0
    cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^stat::(number_of_executed_units|new_units_added)|^Done' "$log" >&2 || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        if artifact="$(grep -o 'Test unit written to .*' "$log" | tail -n 1)" && [ -n "$artifact" ]; then
            echo "scripts/fuzz.sh: $target found a crash; ${artifact#Test unit written to } reproduces it" >&2
        else
            echo "scripts/fuzz.sh: $target did not run (see the output above)" >&2
        fi
        exit 1
    fi
done
echo "scripts/fuzz.sh: every target ran ${seconds}s without a crash" >&2
