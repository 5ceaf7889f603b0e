#!/usr/bin/env bash
# Time from RunPodSandbox to a running app container, through containerd 1.6's CRI plugin
# as kubelet drives it (a kubelet-shaped pod on a CNI bridge of its own, the sandbox image
# made here, one app container), for each runtime given, against the first: rounds of
# each runtime alternate so that load changes hit them alike. Prints the machine it ran
# on, then each runtime's median and quartiles and its median's ratio to the first's.
#
#   sudo benches/cri-pod-start.sh [RUNTIME...]    (default: runc proxcage-runc)
#
# Runtimes: runc (alone), proxcage-runc, proxcage-crun, pct (proxcage on the pct
# stand-in: test code running LXC, not Proxmox). ROUNDS=N sets the rounds (20).
# proxcage is $PROXCAGE, or the release build (scripts/build-release.sh). Needs root, containerd, runc, crun, lxc, umoci and
# the CNI plugins (scripts/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "cri-pod-start.sh: run as root (it runs containerd and real pods)" >&2; exit 1; }
for tool in containerd:containerd runc:runc umoci:umoci; do
    command -v "${tool%%:*}" >/dev/null || { echo "install ${tool#*:}: apt-get install -y ${tool#*:}" >&2; exit 1; }
done
[ -x /usr/lib/cni/bridge ] || { echo "install the CNI plugins: apt-get install -y containernetworking-plugins" >&2; exit 1; }
runtimes=("$@")
[ ${#runtimes[@]} -gt 0 ] || runtimes=(runc proxcage-runc)
target="${CARGO_TARGET_DIR:-$PWD/target}"
proxcage="${PROXCAGE:-$target/x86_64-unknown-linux-musl/release/proxcage}"
[ -x "$proxcage" ] || { echo "build it first: scripts/build-release.sh (or set PROXCAGE)" >&2; exit 1; }
cargo build -q --locked -p proxcage-test-support --features cri --bin cri-pod-start
cargo build -q --locked -p pct-standin

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)," \
    "$(systemd-detect-virt 2>/dev/null || echo 'virtualization unknown')"
echo "versions: $(containerd --version | cut -d' ' -f3), runc $(runc --version | head -1 | cut -d' ' -f3)," \
    "crun $(crun --version 2>/dev/null | head -1 | cut -d' ' -f3), proxcage $proxcage"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
PROXCAGE_BIN="$proxcage" PCT_STANDIN_BIN="$target/debug/pct-standin" \
    "$target/debug/cri-pod-start" "${ROUNDS:-20}" "${runtimes[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
