#!/usr/bin/env bash
# The main job: builds proxcage, generates a busybox bundle, and runs it through every
# backend that can run on this host, showing the whole runc lifecycle for each.
# Needs root. Leaves nothing behind (its root and bundle live in a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
proxcage=$(scripts/build-release.sh)
cargo build --release --locked -p pct-standin
standin="$PWD/target/release/pct-standin"

work=$(mktemp -d /tmp/proxcage-main-job.XXXXXX)
root="$work/root"
cleanup() {
    for id in $("$proxcage" --root "$root" list -q 2>/dev/null); do
        "$proxcage" --root "$root" delete --force "$id" || echo "main-job: could not delete $id" >&2
    done
    if [ -d "$work/pve" ]; then
        PCT_STANDIN_ROOT="$work/pve" "$standin" cleanup >/dev/null || echo "main-job: pct stand-in cleanup failed" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# crun refuses a hybrid cgroup layout: on such a host it gets a private cgroup2 mount
# and no cgroup manager. A host with the unified layout (Proxmox VE 7+) needs neither.
config="$work/config.toml"
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    printf 'default_backend = "runc"\n' >"$config"
else
    printf 'default_backend = "runc"\n\n[backends.crun]\ncgroup_manager = "disabled"\nprivate_cgroup2 = true\n' >"$config"
fi
export PROXCAGE_CONFIG="$config"
echo "== config ($config)"
cat "$config"

# A busybox bundle: the static busybox, one link per applet, and `proxcage spec`.
bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" "$bundle/rootfs/tmp"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$applet"
done
"$proxcage" spec --bundle "$bundle"

set_process() { # backend, args as JSON
    python3 - "$bundle/config.json" "$1" "$2" <<'PY'
import json, sys
path, backend, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = args
spec.setdefault("annotations", {})["io.proxcage.backend"] = backend
json.dump(spec, open(path, "w"), indent=2)
PY
}

for backend in runc crun; do
    if ! command -v "$backend" >/dev/null; then
        echo "== $backend: not installed, skipped"
        continue
    fi
    echo
    echo "== $backend: run (foreground, exit code passed through)"
    set_process "$backend" '["sh", "-c", "echo hello from busybox $(busybox | head -1 | cut -d\" \" -f2) in a '"$backend"' container; exit 3"]'
    set +e
    "$proxcage" --root "$root" run --bundle "$bundle" "demo-$backend-run"
    code=$?
    set -e
    echo "exit code: $code"
    [ "$code" -eq 3 ]

    echo "== $backend: create, start, exec, kill, delete"
    set_process "$backend" '["sleep", "1000"]'
    "$proxcage" --root "$root" create --bundle "$bundle" --pid-file "$work/$backend.pid" "demo-$backend"
    echo "pid file: $(cat "$work/$backend.pid")"
    "$proxcage" --root "$root" state "demo-$backend" | grep '"status"'
    "$proxcage" --root "$root" start "demo-$backend"
    "$proxcage" --root "$root" list
    "$proxcage" --root "$root" exec "demo-$backend" sh -c 'echo "exec sees: $(ps | wc -l) lines of ps"'
    "$proxcage" --root "$root" ps --format json "demo-$backend"
    "$proxcage" --root "$root" kill "demo-$backend" KILL
    sleep 0.5
    "$proxcage" --root "$root" state "demo-$backend" | grep '"status"'
    "$proxcage" --root "$root" delete "demo-$backend"
done
# The pct backend, against the pct stand-in: test code that follows Proxmox's pct/pvesh
# contract and runs real LXC containers underneath. It is not Proxmox; on a Proxmox host
# the same proxcage config without the paths pct-standin-setup.sh writes drives the real
# pct.
echo
echo "== pct: through the pct stand-in (test code, not Proxmox) with real LXC"
export PCT_STANDIN_ROOT="$work/pve"
scripts/pct-standin-setup.sh "$standin" "$work" >>"$config"
echo "== pct: run (foreground: the CT's process has this script's stdio, exit code passed through)"
set_process pct '["sh", "-c", "echo hello from busybox in a CT named $(hostname); exit 3"]'
set +e
"$proxcage" --root "$root" run --bundle "$bundle" demo-pct-run
code=$?
set -e
echo "exit code: $code"
[ "$code" -eq 3 ]

echo "== pct: create (the CT runs, its init waits), start, exec, kill, delete"
set_process pct '["sh", "-c", "trap \"echo got SIGTERM; exit 0\" TERM; echo hello from busybox in a CT named $(hostname); while :; do sleep 0.1; done"]'
"$proxcage" --root "$root" create --bundle "$bundle" --pid-file "$work/pct.pid" demo-pct
vmid=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["vmid"])' "$root/backends/pct/demo-pct.json")
echo "CT $vmid: $("$work/bin/pct" status "$vmid"); monitor pid (pid file): $(cat "$work/pct.pid")"
"$proxcage" --root "$root" state demo-pct | grep -E '"(status|pid)"'
"$proxcage" --root "$root" start demo-pct
"$proxcage" --root "$root" state demo-pct | grep -E '"(status|pid)"'
sleep 0.5
"$proxcage" --root "$root" exec demo-pct sh -c 'echo "exec in CT $(hostname): $(ps | wc -l) lines of ps"'
"$proxcage" --root "$root" list
"$proxcage" --root "$root" kill demo-pct TERM
for _ in $(seq 50); do
    "$proxcage" --root "$root" state demo-pct | grep -q '"stopped"' && break
    sleep 0.1
done
"$proxcage" --root "$root" state demo-pct | grep '"status"'
"$proxcage" --root "$root" delete demo-pct
echo "pct list after delete: [$("$work/bin/pct" list)]"

echo
echo "== done: containers left: $("$proxcage" --root "$root" list -q | wc -l)"
