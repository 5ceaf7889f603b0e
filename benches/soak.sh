#!/usr/bin/env bash
# Soak: N lifecycles (create, start, state, delete of busybox `true`) through proxcage's
# runc backend, or BACKEND=crun or BACKEND=pct. Prints, for the first and the last
# lifecycle, each proxcage command's own peak RSS and the fds it had open at its end (from
# `--debug`: getrusage and /proc/self/fd of proxcage alone), and what is left in the state
# root (containers, backend state, files): all of it must be the same at the end as at
# the start. With BACKEND=pct it also prints the container's monitor (the one long-lived
# proxcage process, pid from `create --pid-file`) while the container is created: its
# peak and current RSS and its open fds. BACKEND=pct runs against the pct stand-in, test
# code that follows Proxmox's pct and pvesh and runs real LXC containers: it is not
# Proxmox. Outside CI: `sudo benches/soak.sh 10000`.
# Needs root, runc (or crun, or LXC for pct), busybox-static, and a release build:
#   scripts/build-release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: benches/soak.sh N}
backend=${BACKEND:-runc}
case "$backend" in
runc | crun | pct) ;;
*) echo "soak.sh: BACKEND is runc, crun or pct, not '$backend'" >&2; exit 1 ;;
esac
proxcage="${PROXCAGE:-${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-musl/release/proxcage}"
[ -x "$proxcage" ] || { echo "build it first: scripts/build-release.sh" >&2; exit 1; }
if [ "$backend" = pct ]; then
    command -v lxc-start >/dev/null || { echo "soak.sh: the pct stand-in needs LXC: apt-get install -y lxc" >&2; exit 1; }
    cargo build --release --locked -p pct-standin >&2
    standin="${CARGO_TARGET_DIR:-$PWD/target}/release/pct-standin"
fi

work=$(mktemp -d /tmp/proxcage-soak.XXXXXX)
root="$work/root"
cleanup() {
    # A soak stopped mid-lifecycle leaves its container; one that ended has none.
    if "$proxcage" --root "$root" state soak >/dev/null 2>&1; then
        "$proxcage" --root "$root" delete --force soak || echo "soak.sh: could not delete the container soak" >&2
    fi
    if [ -d "$work/pve" ]; then
        PCT_STANDIN_ROOT="$work/pve" "$standin" cleanup >/dev/null || echo "soak.sh: pct stand-in cleanup failed" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
bundle="$work/bundle"
scripts/busybox-bundle.sh "$proxcage" "$bundle" "$backend" true
config="$work/config.toml"
printf 'default_backend = "runc"\n\n[backends.crun]\ncgroup_manager = "disabled"\nprivate_cgroup2 = true\n' >"$config"
if [ "$backend" = pct ]; then
    export PCT_STANDIN_ROOT="$work/pve"
    scripts/pct-standin-setup.sh "$standin" "$work" >>"$config"
fi
export PROXCAGE_CONFIG="$config"
pc() { "$proxcage" --root "$root" "$@"; }

# One lifecycle; with `measure`, every command runs with --debug and its usage is printed.
lifecycle() { # [measure]
    if [ "${1:-}" = measure ]; then
        local cmd
        for cmd in "create --bundle $bundle --pid-file $work/monitor.pid soak" "start soak" "state soak" "delete --force soak"; do
            # shellcheck disable=SC2086
            pc --debug $cmd >/dev/null 2>"$work/err"
            printf '  %-8s %s\n' "${cmd%% *}" "$(grep -o 'peak RSS.*' "$work/err" | tail -1)"
            if [ "$backend" = pct ] && [ "${cmd%% *}" = create ]; then monitor; fi
        done
    else
        pc create --bundle "$bundle" soak >/dev/null
        pc start soak
        pc state soak >/dev/null
        pc delete --force soak
    fi
}
monitor() { # the monitor of the created container: VmHWM and VmRSS, and its fds
    local pid
    pid=$(cat "$work/monitor.pid")
    printf '  %-8s peak RSS %s kB, RSS %s kB, open fds %s\n' monitor \
        "$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")" \
        "$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")" \
        "$(find "/proc/$pid/fd" -mindepth 1 | wc -l)"
}
leftovers() {
    printf '  files and directories under the state root: %s\n' "$(find "$root" | wc -l)"
    if [ "$backend" = pct ]; then
        printf '  CTs in the stand-in: %s; files and directories under files_dir: %s\n' \
            "$("$work/bin/pct" list | wc -l)" "$(find "$work/pct-files" 2>/dev/null | wc -l)"
    fi
}

echo "== soak: $n lifecycles through the $backend backend ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "first lifecycle:"
lifecycle measure
leftovers
step=1000
[ "$backend" != pct ] || step=100 # a CT takes a second or so to make
start=$(date +%s)
for ((i = 2; i < n; i++)); do
    lifecycle
    if ((i % step == 0)); then echo "  ... $i"; fi
done
echo "last lifecycle (#$n):"
lifecycle measure
leftovers
echo "== $n lifecycles in $(($(date +%s) - start)) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
