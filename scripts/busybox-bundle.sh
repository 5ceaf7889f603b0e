#!/usr/bin/env bash
# busybox-bundle.sh PROXCAGE DIR BACKEND ARGS...: makes DIR a bundle of the static busybox
# (with the applets sh, sleep, true and echo) whose process runs ARGS without a terminal,
# routed to BACKEND by its annotation. On an existing bundle it only sets the process and
# the backend. Used by the scripts and benches that drive proxcage with a busybox bundle.
set -euo pipefail
proxcage=${1:?usage: busybox-bundle.sh PROXCAGE DIR BACKEND ARGS...}
dir=${2:?usage: busybox-bundle.sh PROXCAGE DIR BACKEND ARGS...}
backend=${3:?usage: busybox-bundle.sh PROXCAGE DIR BACKEND ARGS...}
shift 3
if [ ! -e "$dir/config.json" ]; then
    busybox=$(command -v busybox) || { echo "busybox-bundle.sh: install busybox-static" >&2; exit 1; }
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev"
    cp "$busybox" "$dir/rootfs/bin/busybox"
    for applet in sh sleep true echo; do ln -s busybox "$dir/rootfs/bin/$applet"; done
    "$proxcage" spec --bundle "$dir"
fi
python3 - "$dir/config.json" "$backend" "$@" <<'PY'
import json, sys
path, backend, args = sys.argv[1], sys.argv[2], sys.argv[3:]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = args
spec.setdefault("annotations", {})["io.proxcage.backend"] = backend
json.dump(spec, open(path, "w"))
PY
