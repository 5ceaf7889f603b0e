#!/usr/bin/env bash
# Compares proxcage with the runtime beneath it, side by side in one run (hyperfine
# alternates nothing, but runs both under the same load): `run` of busybox `true`, and the
# full lifecycle create + start + delete --force. Prints hyperfine's ratios.
# Needs root, hyperfine (apt-get install hyperfine), runc and crun, and a release build:
#   cargo build --release -p proxcage-cli && sudo benches/compare-runtimes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "install hyperfine: apt-get install -y hyperfine" >&2; exit 1; }
proxcage="${PROXCAGE:-${CARGO_TARGET_DIR:-$PWD/target}/release/proxcage}"
[ -x "$proxcage" ] || { echo "build it first: cargo build --release -p proxcage-cli" >&2; exit 1; }
runs=${RUNS:-30}

work=$(mktemp -d /tmp/proxcage-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
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

pc="$proxcage --root $work/pc"
annotate() { # backend
    python3 -c '
import json, sys
p, b = sys.argv[1], sys.argv[2]
spec = json.load(open(p))
spec.setdefault("annotations", {})["io.proxcage.backend"] = b
json.dump(spec, open(p, "w"))
' "$bundle/config.json" "$1"
}
crun_direct() { # crun arguments, in the private cgroup2 mount namespace proxcage uses
    echo "unshare -m sh -c 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && crun --root $work/crun --cgroup-manager=disabled $*'"
}

echo "== runc: run (create, start, wait, delete in one)"
annotate runc
hyperfine -N -w 3 -r "$runs" \
    -n "runc run" "runc --root $work/runc run --bundle $bundle r" \
    -n "proxcage run (runc backend)" "$pc run --bundle $bundle p"
echo "== runc: lifecycle create + start + delete --force"
hyperfine -S bash -w 3 -r "$runs" \
    -n "runc" "runc --root $work/runc create --bundle $bundle l >/dev/null && runc --root $work/runc start l && runc --root $work/runc delete --force l" \
    -n "proxcage (runc backend)" "$pc create --bundle $bundle l >/dev/null && $pc start l && $pc delete --force l"

echo "== crun: run"
annotate crun
hyperfine -S bash -w 3 -r "$runs" \
    -n "crun run" "$(crun_direct run --bundle "$bundle" c)" \
    -n "proxcage run (crun backend)" "$pc run --bundle $bundle p"
