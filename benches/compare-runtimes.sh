#!/usr/bin/env bash
# Compares proxcage with the runtime beneath it, side by side in one run (hyperfine runs
# the two one after the other, under the same load): `run` of busybox `true`, and the full
# lifecycle create + start + delete --force, for runc and for crun. Prints hyperfine's
# ratios, the load, and proxcage's own peak RSS. RUNS=N sets the runs per command (30).
# Needs root, hyperfine (apt-get install hyperfine), runc and crun, and a release build:
#   scripts/build-release.sh && sudo benches/compare-runtimes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "install hyperfine: apt-get install -y hyperfine" >&2; exit 1; }
proxcage="${PROXCAGE:-${CARGO_TARGET_DIR:-$PWD/target}/$(rustc -vV | sed -n 's/^host: //p')/release/proxcage}"
[ -x "$proxcage" ] || { echo "build it first: scripts/build-release.sh" >&2; exit 1; }
runs=${RUNS:-30}

work=$(mktemp -d /tmp/proxcage-compare.XXXXXX)
# Every state root (proxcage's, runc's, crun's) lives on a tmpfs, as /run does on a
# Proxmox host; STATE_ON_DISK=1 keeps them on the disk /tmp is on instead.
state="$work/state"
mkdir "$state"
if [ -z "${STATE_ON_DISK:-}" ]; then
    mount -t tmpfs -o size=256m,mode=0700 proxcage-bench "$state"
fi
trap 'mountpoint -q "$state" && umount -l "$state"; rm -rf "$work"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); state roots on $(stat -f -c %T "$state"); $(nproc) CPUs"
bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
"$proxcage" spec --bundle "$bundle"
python3 -c '
import json, sys
p = sys.argv[1]
spec = json.load(open(p))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["true"]
json.dump(spec, open(p, "w"))
' "$bundle/config.json"
printf 'default_backend = "runc"\n\n[backends.crun]\ncgroup_manager = "disabled"\nprivate_cgroup2 = true\n' >"$work/config.toml"
export PROXCAGE_CONFIG="$work/config.toml"

pc="$proxcage --root $state/pc"
annotate() { # backend
    python3 -c '
import json, sys
p, b = sys.argv[1], sys.argv[2]
spec = json.load(open(p))
spec.setdefault("annotations", {})["io.proxcage.backend"] = b
json.dump(spec, open(p, "w"))
' "$bundle/config.json" "$1"
}
echo "== runc: run (create, start, wait, delete in one)"
annotate runc
hyperfine -N -w 3 -r "$runs" \
    -n "runc run" "runc --root $state/runc run --bundle $bundle r" \
    -n "proxcage run (runc backend)" "$pc run --bundle $bundle p"
echo "== runc: lifecycle create + start + delete --force"
hyperfine -S bash -w 3 -r "$runs" \
    -n "runc" "runc --root $state/runc create --bundle $bundle l >/dev/null && runc --root $state/runc start l && runc --root $state/runc delete --force l" \
    -n "proxcage (runc backend)" "$pc create --bundle $bundle l >/dev/null && $pc start l && $pc delete --force l"

# crun refuses this host's hybrid cgroup layout: both crun and proxcage run inside one
# private mount namespace whose /sys/fs/cgroup is a cgroup2 mount, with no cgroup
# manager, so neither pays for a wrapper process (proxcage's private_cgroup2 is off there:
# the namespace is already what it would make).
annotate crun
printf 'default_backend = "crun"\n\n[backends.crun]\ncgroup_manager = "disabled"\n' >"$work/crun-ns.toml"
crun="crun --root $state/crun --cgroup-manager=disabled"
PROXCAGE_CONFIG="$work/crun-ns.toml" unshare -m --propagation private sh -c '
umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup || exit 1
echo "== crun: run"
hyperfine -N -w 3 -r "$1" -n "crun run" "$2 run --bundle $4 c" -n "proxcage run (crun backend)" "$3 run --bundle $4 p"
echo "== crun: lifecycle create + start + delete --force"
hyperfine -S bash -w 3 -r "$1" \
    -n "crun" "$2 create --bundle $4 l >/dev/null && $2 start l && $2 delete --force l" \
    -n "proxcage (crun backend)" "$3 create --bundle $4 l >/dev/null && $3 start l && $3 delete --force l"
' sh "$runs" "$crun" "$pc" "$bundle"

echo "== proxcage's own peak RSS (getrusage of proxcage alone, from --debug)"
for backend in runc crun; do
    annotate "$backend"
    $pc --debug run --bundle "$bundle" rss 2>&1 >/dev/null | grep -o 'usage: .*' | sed "s/^/  run ($backend backend): /"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
