#!/usr/bin/env bash
# Memory check of proxcage itself: every command of a full lifecycle (create, start,
# state, list, exec, kill, delete; and run) through the runc and the crun backend, each
# invocation under valgrind memcheck. Fails on any definitely or indirectly lost byte and
# on any invalid read or write. The backends' processes are not traced
# (--trace-children=no): they are not proxcage's.
# Then the same lifecycle without valgrind prints each invocation's own peak RSS (from
# `--debug`, getrusage of proxcage alone, not of runc beneath it); the target is < 10 MB.
# Needs root, valgrind, runc, crun, busybox-static (scripts/install-deps.sh), and a build:
#   cargo build -p proxcage-cli && sudo scripts/valgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "install valgrind: apt-get install -y valgrind" >&2; exit 1; }
proxcage="${PROXCAGE:-${CARGO_TARGET_DIR:-$PWD/target}/debug/proxcage}"
[ -x "$proxcage" ] || { echo "build it first: cargo build -p proxcage-cli" >&2; exit 1; }

work=$(mktemp -d /tmp/proxcage-valgrind.XXXXXX)
root="$work/root"
cleanup() {
    for id in vg-c vg-r; do "$proxcage" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

bundle="$work/bundle"
set_spec() { # BACKEND ARGS...
    scripts/busybox-bundle.sh "$proxcage" "$bundle" "$@"
}
# The crun settings the tests use: hosts with a hybrid cgroup layout need them.
printf 'default_backend = "runc"\n\n[backends.crun]\ncgroup_manager = "disabled"\nprivate_cgroup2 = true\n' >"$work/config.toml"
export PROXCAGE_CONFIG="$work/config.toml"

memcheck=(valgrind --quiet --error-exitcode=99 --leak-check=full
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
    --trace-children=no --child-silent-after-fork=yes)
failed=0
# Runs one proxcage command with the given wrapper; the expected exit code first.
step() { # expected-code label wrapper... -- proxcage-args...
    local expected=$1 label=$2; shift 2
    local wrapper=()
    while [ "$1" != -- ]; do wrapper+=("$1"); shift; done
    shift
    local code=0
    "${wrapper[@]}" "$proxcage" --root "$root" "$@" >"$work/out" 2>"$work/err" || code=$?
    if [ "$code" = 99 ]; then
        echo "FAIL $label: valgrind found errors:" >&2
        cat "$work/err" >&2
        failed=1
    elif [ "$code" != "$expected" ]; then
        echo "FAIL $label: exit code $code, expected $expected" >&2
        cat "$work/err" >&2
        failed=1
    fi
}

wait_stopped() { # id
    for _ in $(seq 100); do
        "$proxcage" --root "$root" state "$1" 2>/dev/null | grep -q '"status": "stopped"' && return 0
        sleep 0.1
    done
    echo "FAIL: $1 did not stop" >&2
    failed=1
}

lifecycle() { # backend wrapper...
    local backend=$1; shift
    local id=vg-c
    set_spec "$backend" sleep 60
    step 0 "$backend create" "$@" -- create --bundle "$bundle" "$id"
    step 0 "$backend start" "$@" -- start "$id"
    step 0 "$backend state" "$@" -- state "$id"
    step 0 "$backend list" "$@" -- list
    step 0 "$backend list json" "$@" -- list --format json
    step 0 "$backend exec" "$@" -- exec "$id" echo hi
    step 3 "$backend exec exit code" "$@" -- exec "$id" sh -c 'exit 3'
    step 0 "$backend kill" "$@" -- kill "$id" KILL
    wait_stopped "$id"
    step 0 "$backend delete" "$@" -- delete "$id"
    step 1 "$backend state of a deleted container" "$@" -- state "$id"
    set_spec "$backend" true
    step 0 "$backend run" "$@" -- run --bundle "$bundle" vg-r
}

for backend in runc crun; do
    echo "== valgrind memcheck: $backend backend"
    lifecycle "$backend" "${memcheck[@]}"
done

# Peak RSS: proxcage's own (getrusage RUSAGE_SELF, printed with --debug), per command,
# of the release build when there is one (a debug build maps far more code).
release="${CARGO_TARGET_DIR:-$PWD/target}/release/proxcage"
if [ -z "${PROXCAGE:-}" ] && [ -x "$release" ]; then
    proxcage=$release
else
    echo "(peak RSS of the debug build: cargo build --release -p proxcage-cli for the real figure)"
fi
usage() { grep -o 'peak RSS [0-9]* kB' "$work/err" | grep -o '[0-9]*' | tail -1; }
peak_all=0
for backend in runc crun; do
    echo "== peak RSS of each proxcage invocation: $backend backend"
    set_spec "$backend" sleep 60
    for cmd in "create --bundle $bundle vg-c" "start vg-c" "state vg-c" "list" "exec vg-c true" \
        "kill vg-c KILL" "delete --force vg-c"; do
        # shellcheck disable=SC2086
        "$proxcage" --root "$root" --debug $cmd >/dev/null 2>"$work/err" || true
        kb=$(usage)
        printf '  %-30s %6s kB\n' "${cmd%% *}" "${kb:-?}"
        [ -n "$kb" ] && [ "$kb" -gt "$peak_all" ] && peak_all=$kb
    done
    set_spec "$backend" true
    "$proxcage" --root "$root" --debug run --bundle "$bundle" vg-r >/dev/null 2>"$work/err" || true
    kb=$(usage)
    printf '  %-30s %6s kB\n' run "${kb:-?}"
    [ -n "$kb" ] && [ "$kb" -gt "$peak_all" ] && peak_all=$kb
done
echo "largest peak RSS of one proxcage invocation: $peak_all kB (target < 10240 kB)"

if [ "$failed" != 0 ]; then
    echo "valgrind.sh: FAILED" >&2
    exit 1
fi
echo "valgrind.sh: no leaks, no invalid accesses"
