#!/usr/bin/env bash
# Creates of different containers at once on the pct backend, against one create alone:
# N (6) containers from their own bundles of one image, all created at once, then deleted;
# one container created alone, then deleted; ROUNDS (3) rounds of each, interleaved. Prints
# the median wall time of each and their ratio (the target is at most 2 for N = 6), with
# the machine it ran on.
#
# Through the pct stand-in (test code that runs real LXC, not Proxmox), made to take as
# long as real pct does: PCT_STANDIN_TASK_DELAY_MS (1000) more per `pct create` and per
# `pct start`, where real Proxmox unpacks the template, runs its hooks and its systemd
# unit (one to several seconds each).
#
# Needs root, LXC, busybox-static, tar, zstd (scripts/install-deps.sh) and the binaries:
#   cargo build -p proxcage-cli -p pct-standin && sudo benches/pct-parallel-creates.sh
# PROXCAGE and PCT_STANDIN_BIN name other builds; N, ROUNDS, DELAY_MS change the run.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}/debug"
proxcage="${PROXCAGE:-$target/proxcage}"
standin="${PCT_STANDIN_BIN:-$target/pct-standin}"
for bin in "$proxcage" "$standin"; do
    [ -x "$bin" ] || { echo "$bin is missing: cargo build -p proxcage-cli -p pct-standin" >&2; exit 1; }
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "install busybox-static: apt-get install -y busybox-static" >&2; exit 1; }
command -v lxc-start >/dev/null || { echo "install lxc: apt-get install -y lxc" >&2; exit 1; }
n=${N:-6}
rounds=${ROUNDS:-3}
export PCT_STANDIN_TASK_DELAY_MS=${DELAY_MS:-1000}

work=$(mktemp -d /tmp/proxcage-pct-parallel.XXXXXX)
# An unprivileged CT's root (uid 100000) must reach its rootfs and files.
chmod 0755 "$work"
export PCT_STANDIN_ROOT="$work/node"
cleanup() {
    PROXCAGE_CONFIG="$work/config.toml" "$proxcage" --root "$work/root" list -q 2>/dev/null |
        while read -r id; do
            PROXCAGE_CONFIG="$work/config.toml" "$proxcage" --root "$work/root" delete --force "$id" || true
        done
    "$standin" cleanup >/dev/null ||
        echo "pct-parallel-creates.sh: the stand-in's cleanup failed; CTs of $PCT_STANDIN_ROOT may be left" >&2
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/bin" "$work/rootfs"/{bin,proc,sys,dev,tmp,etc,root,run}
ln -s "$standin" "$work/bin/pct"
ln -s "$standin" "$work/bin/pvesh"
"$work/bin/pct" list >/dev/null
cp "$busybox" "$work/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$work/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/rootfs/etc/group"
node="$PCT_STANDIN_ROOT"
cat >"$work/config.toml" <<EOF
default_backend = "pct"

[backends.pct]
pct = "$work/bin/pct"
pvesh = "$work/bin/pvesh"
lxc_path = "$node/var/lib/lxc"
pve_dir = "$node/etc/pve"
lock_dir = "$node/run/lock/lxc"
template_dir = "$node/var/lib/vz/template/cache"
files_dir = "$work/files"
EOF
px() { PROXCAGE_CONFIG="$work/config.toml" "$proxcage" --root "$work/root" "$@"; }

# One bundle per container, as containerd makes one per container: the image's rootfs,
# copied (cp -a keeps the mtimes, so they share one template).
for i in $(seq 0 "$n"); do
    bundle="$work/bundle-$i"
    mkdir "$bundle"
    cp -a "$work/rootfs" "$bundle/rootfs"
    px spec --bundle "$bundle"
    python3 - "$bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["args"] = ["sleep", "1000"]
spec["process"]["terminal"] = False
json.dump(spec, open(path, "w"))
EOF
done
# The template is packed once, before the rounds: both sides reuse it.
px create --bundle "$work/bundle-0" warm >/dev/null
px delete --force warm

now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
alone=()
together=()
for round in $(seq 1 "$rounds"); do
    start=$(now)
    px create --bundle "$work/bundle-0" "alone-$round" >/dev/null
    alone+=("$(echo "$(now) - $start" | bc -l)")
    px delete --force "alone-$round"

    start=$(now)
    pids=()
    for i in $(seq 1 "$n"); do
        px create --bundle "$work/bundle-$i" "par-$round-$i" >/dev/null &
        pids+=($!)
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    together+=("$(echo "$(now) - $start" | bc -l)")
    [ "$failed" = 0 ] || { echo "a create of round $round failed" >&2; exit 1; }
    for i in $(seq 1 "$n"); do px delete --force "par-$round-$i" & done
    wait
    echo "round $round: one alone ${alone[-1]} s, $n at once ${together[-1]} s"
done
one=$(printf '%s\n' "${alone[@]}" | median)
many=$(printf '%s\n' "${together[@]}" | median)
printf 'machine: %s CPUs, kernel %s, load %s\n' "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'pct create and pct start take %s ms more each (PCT_STANDIN_TASK_DELAY_MS)\n' "$PCT_STANDIN_TASK_DELAY_MS"
printf 'median of %s rounds: one create alone %.2f s, %s creates at once %.2f s, ratio %.2f (target <= 2)\n' \
    "$rounds" "$one" "$n" "$many" "$(echo "$many / $one" | bc -l)"
