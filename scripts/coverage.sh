#!/usr/bin/env bash
# Line coverage per crate, measured with cargo-tarpaulin over the whole test suite: the
# unit tests and the end-to-end tests in crates/*/tests/, including the code that runs in the
# `proxcage` processes those tests start. Needs root and the tools the tests need
# (scripts/install-deps.sh), like scripts/test.sh; 5 minutes on the 2-core VM once built.
#
#   scripts/coverage.sh                   # everything; prints the table
#   scripts/coverage.sh --test pct        # extra arguments go to cargo tarpaulin
#
# How: tarpaulin's llvm engine (`-C instrument-coverage`; it reads the profraw files
# itself, so llvm-tools are not needed). Every instrumented process writes a profraw file
# named by $LLVM_PROFILE_FILE, which tarpaulin sets for each test binary and the test's
# subprocesses inherit, so the `proxcage` a test starts counts once it is built with the
# same flags (the first tarpaulin call, `--command build`) and named with `--objects`.
# Not counted: code a process runs between fork and exec (pre_exec hooks) or in a
# process that ends by SIGKILL; `proxcage` started by containerd and podman (they do not
# pass the variable on; other tests run the same code directly); and
# crates/init/program, the container's no-std init, built without instrumentation.
# A test binary with a failing test counts for nothing (tarpaulin drops its profiles):
# the script then exits non-zero, and the table is too low. The ptrace engine (with
# --follow-exec) was not needed: the llvm engine counts forked and exec'd processes alike.
#
# The table counts each crate's src/ only: test code (#[cfg(test)] modules, and all of
# tests/, which tarpaulin takes for test code: the pct stand-in too), fuzz/ and
# benches/ are not in it.
#
# The build goes to $CARGO_TARGET_DIR/coverage (default target/coverage), apart from the
# normal build; the lcov report to <that>/report/lcov.info.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-tarpaulin >/dev/null; then
    echo "coverage.sh: cargo-tarpaulin is not installed: cargo install cargo-tarpaulin --locked" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "coverage.sh: run as root (the end-to-end tests run real containers)" >&2
    exit 1
fi

target="${CARGO_TARGET_DIR:-target}/coverage"
report="$target/report"
common=(--engine llvm --workspace --locked --skip-clean --target-dir "$target")

# The end-to-end tests drive the built binaries; cargo test alone builds only the test
# harnesses. Same flags as the test build, so cargo does not rebuild them differently.
cargo tarpaulin "${common[@]}" --command build --no-run

rm -rf "$report"
status=0
cargo tarpaulin "${common[@]}" \
    --objects "$target/debug/proxcage" \
    --timeout 3600 --no-fail-fast \
    --exclude-files 'fuzz/*' 'benches/*' \
    --out Lcov --output-dir "$report" "$@" || status=$?

python3 - "$report/lcov.info" "$PWD" <<'EOF'
import collections, os, sys

lcov, root = sys.argv[1], sys.argv[2]
lines = collections.defaultdict(dict)  # crate -> {(file, line): hit}
path = None
for raw in open(lcov):
    raw = raw.strip()
    if raw.startswith("SF:"):
        path = os.path.relpath(raw[3:], root)
    elif raw.startswith("DA:") and path:
        line, hits = raw[3:].split(",")[:2]
        parts = path.split("/")
        if parts[0] == "crates" and len(parts) > 2 and parts[2] == "src":
            crate = parts[1]
        elif parts[0] == "src":
            crate = "proxcage (facade)"
        else:
            continue  # test code, fuzz, benches, the container init
        key = (path, int(line))
        lines[crate][key] = lines[crate].get(key, False) or int(hits) > 0

print()
print("| crate | lines covered / total | % |")
print("|---|---:|---:|")
covered_all = total_all = 0
for crate in sorted(lines):
    covered = sum(lines[crate].values())
    total = len(lines[crate])
    covered_all += covered
    total_all += total
    print(f"| {crate} | {covered} / {total} | {100 * covered / total:.1f} |")
if total_all:
    print(f"| **all crates** | {covered_all} / {total_all} | {100 * covered_all / total_all:.1f} |")
EOF
if [ "$status" -ne 0 ]; then
    echo "coverage.sh: tests failed (cargo tarpaulin exited $status): the table leaves out their test binaries" >&2
fi
exit "$status"
