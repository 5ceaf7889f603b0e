#!/usr/bin/env bash
# pct-standin-setup.sh STANDIN WORK: lays out the pct stand-in's tree under WORK/pve (its
# PCT_STANDIN_ROOT), with `pct` and `pvesh` in WORK/bin, and prints the [backends.pct]
# section of a proxcage config that drives it, files_dir WORK/pct-files. The stand-in is
# test code that follows Proxmox's pct/pvesh contract and runs real LXC containers: it is
# not Proxmox; on a Proxmox host the same config without these paths drives the real pct.
# Used by scripts/main-job.sh and benches/soak.sh; the caller exports
# PCT_STANDIN_ROOT=WORK/pve and runs `PCT_STANDIN_ROOT=WORK/pve STANDIN cleanup` at the end.
set -euo pipefail
standin=${1:?usage: pct-standin-setup.sh STANDIN WORK}
work=${2:?usage: pct-standin-setup.sh STANDIN WORK}
chmod 0755 "$work" # unprivileged CTs (uid 100000) reach their files under it
mkdir -p "$work/pve" "$work/bin"
ln -s "$standin" "$work/bin/pct"
ln -s "$standin" "$work/bin/pvesh"
PCT_STANDIN_ROOT="$work/pve" "$work/bin/pct" list >/dev/null # lays out the stand-in's tree
cat <<TOML

[backends.pct]
pct = "$work/bin/pct"
pvesh = "$work/bin/pvesh"
lxc_path = "$work/pve/var/lib/lxc"
pve_dir = "$work/pve/etc/pve"
lock_dir = "$work/pve/run/lock/lxc"
template_dir = "$work/pve/var/lib/vz/template/cache"
files_dir = "$work/pct-files"
TOML
