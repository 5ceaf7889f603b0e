#!/usr/bin/env bash
# Installs what proxcage's tests and main job need on Debian 12: the runtimes it drives
# (runc, crun, LXC), the clients that drive it (containerd, podman), and the tools the
# tests build images with. Needs root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (apt-get install)" >&2
    exit 1
fi

packages=(
    runc crun lxc           # backends and the LXC the pct backend drives
    busybox-static          # the test and demo container
    umoci skopeo tar        # OCI images for the containerd and podman tests
    zstd xz-utils bzip2     # template compressions the pct stand-in unpacks
    containerd podman uidmap
    golang-go golang-github-containerd-containerd-dev  # tests/containerd-update (the task Update ctr lacks)
    containernetworking-plugins iptables  # the CNI networks of the podman and CRI tests
    protobuf-compiler       # protoc, for the CRI client (k8s-cri) of the CRI tests
    procps util-linux iproute2
    valgrind python3        # scripts/valgrind.sh: memcheck of every proxcage command
    hyperfine               # benches/compare-runtimes.sh
    musl-tools              # scripts/build-release.sh (static musl build) and the bench floors
    binutils lintian man-db # scripts/build-deb.sh (strip) and scripts/test-deb.sh
)

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "installed: ${packages[*]}"
