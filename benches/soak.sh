#!/usr/bin/env bash
# Soak: N lifecycles (create, start, state, delete of busybox `true`) through proxcage's
# runc backend, or BACKEND=crun. Prints, for the first and the last lifecycle, each
# proxcage command's own peak RSS and the fds it had open at its end (from `--debug`:
# getrusage and /proc/self/fd of proxcage alone), and what is left in the state root
# (containers, backend state, files): all of it must be the same at the end as at the
# start. Outside CI: `sudo benches/soak.sh 10000`.
# Needs root, runc (or crun), busybox-static, and a release build:
#   scripts/build-release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: benches/soak.sh N}
backend=${BACKEND:-runc}
proxcage="${PROXCAGE:-${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-musl/release/proxcage}"
[ -x "$proxcage" ] || { echo "build it first: scripts/build-release.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/proxcage-soak.XXXXXX)
root="$work/root"
trap '"$proxcage" --root "$root" delete --force soak >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bundle="$work/bundle"
scripts/busybox-bundle.sh "$proxcage" "$bundle" "$backend" true
printf 'default_backend = "runc"\n\n[backends.crun]\ncgroup_manager = "disabled"\nprivate_cgroup2 = true\n' >"$work/config.toml"
export PROXCAGE_CONFIG="$work/config.toml"
pc() { "$proxcage" --root "$root" "$@"; }

# One lifecycle; with `measure`, every command runs with --debug and its usage is printed.
lifecycle() { # [measure]
    if [ "${1:-}" = measure ]; then
        local cmd
        for cmd in "create --bundle $bundle soak" "start soak" "state soak" "delete --force soak"; do
            # shellcheck disable=SC2086
            pc --debug $cmd >/dev/null 2>"$work/err"
            printf '  %-8s %s\n' "${cmd%% *}" "$(grep -o 'peak RSS.*' "$work/err" | tail -1)"
        done
    else
        pc create --bundle "$bundle" soak >/dev/null
        pc start soak
        pc state soak >/dev/null
        pc delete --force soak
    fi
}
leftovers() {
    printf '  files and directories under the state root: %s\n' "$(find "$root" | wc -l)"
}

echo "== soak: $n lifecycles through the $backend backend ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "first lifecycle:"
lifecycle measure
leftovers
start=$(date +%s)
for ((i = 2; i < n; i++)); do
    lifecycle
    if ((i % 1000 == 0)); then echo "  ... $i"; fi
done
echo "last lifecycle (#$n):"
lifecycle measure
leftovers
echo "== $n lifecycles in $(($(date +%s) - start)) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
