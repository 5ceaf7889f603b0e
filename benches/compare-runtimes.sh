#!/usr/bin/env bash
# Compares proxcage with the runtime beneath it, side by side in one run: `run` of busybox
# `true`, and the full lifecycle create + start + delete --force, for runc and for crun.
#
# Each comparison has these entries: the runtime alone; the runtime under `floor`, a
# static C program that only posix_spawns its arguments and waits (the least any wrapper
# that is a process per command can cost: linked with musl, whose start-up costs a VM
# a tenth of glibc's); and proxcage. First hyperfine's wall times,
# then benches/alternate.py's CPU times (user + system of everything each command
# started, one round of all at a time): the ratios the README's table holds. The CPU
# comparison adds `exec-floor`, a static C program that only execs its arguments: the
# least a wrapper can cost that replaces itself with the runtime (exec in place). Then
# the load, and proxcage's own peak RSS. RUNS=N sets hyperfine's runs (30), ROUNDS=N
# alternate.py's rounds (40).
# Needs root, hyperfine and musl-gcc (apt-get install hyperfine musl-tools), runc and
# crun, and a release build:
#   scripts/build-release.sh && sudo benches/compare-runtimes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "install hyperfine: apt-get install -y hyperfine" >&2; exit 1; }
command -v musl-gcc >/dev/null || { echo "install musl-gcc (for the floor wrappers): apt-get install -y musl-tools" >&2; exit 1; }
proxcage="${PROXCAGE:-${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-musl/release/proxcage}"
[ -x "$proxcage" ] || { echo "build it first: scripts/build-release.sh" >&2; exit 1; }
runs=${RUNS:-30}
rounds=${ROUNDS:-40}
alternate="$PWD/benches/alternate.py"

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
# The floor: what a wrapper costs that does nothing but start the runtime and wait.
cat >"$work/floor.c" <<'EOF'
#include <spawn.h>
#include <sys/wait.h>
extern char **environ;
int main(int argc, char **argv) {
    pid_t pid;
    int status;
    if (argc < 2 || posix_spawn(&pid, argv[1], 0, 0, argv + 1, environ) != 0) return 127;
    if (waitpid(pid, &status, 0) < 0) return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
EOF
musl-gcc -O2 -static -o "$work/floor" "$work/floor.c"
floor="$work/floor"
cat >"$work/exec-floor.c" <<'EOF'
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    if (argc > 1) execve(argv[1], argv + 1, environ);
    return 127;
}
EOF
musl-gcc -O2 -static -o "$work/exec-floor" "$work/exec-floor.c"
exec_floor="$work/exec-floor"
bundle="$work/bundle"
printf 'default_backend = "runc"\n\n[backends.crun]\ncgroup_manager = "disabled"\nprivate_cgroup2 = true\n' >"$work/config.toml"
export PROXCAGE_CONFIG="$work/config.toml"

pc="$proxcage --root $state/pc"
annotate() { # BACKEND: the busybox `true` bundle, routed to BACKEND
    scripts/busybox-bundle.sh "$proxcage" "$bundle" "$1" true
}
# compare NAME RUNTIME PROXCAGE: the runtime's and proxcage's command lines, without
# the subcommand. The runtime's starts with its absolute path (the floor does not search
# PATH).
lifecycle() { # COMMAND: the shell line of a lifecycle through it
    echo "$1 create --bundle $bundle l >/dev/null && $1 start l && $1 delete --force l"
}
compare() {
    local name=$1 rt=$2 pc=$3 b=$bundle
    echo "== $name: run (create, start, wait, delete in one), wall time"
    hyperfine -N -w 3 -r "$runs" \
        -n "$name run" "$rt run --bundle $b r" \
        -n "floor + $name run" "$floor $rt run --bundle $b f" \
        -n "proxcage run ($name backend)" "$pc run --bundle $b p"
    echo "== $name: lifecycle create + start + delete --force, wall time"
    hyperfine -S bash -w 3 -r "$runs" \
        -n "$name" "$(lifecycle "$rt")" \
        -n "floor + $name" "$(lifecycle "$floor $rt")" \
        -n "proxcage ($name backend)" "$(lifecycle "$pc")"
    echo "== $name: CPU time, $rounds rounds; ratios to $name alone"
    python3 "$alternate" "$rounds" \
        "$name run=$rt run --bundle $b r" \
        "exec-floor + $name run=$exec_floor $rt run --bundle $b e" \
        "floor + $name run=$floor $rt run --bundle $b f" \
        "proxcage run=$pc run --bundle $b p"
    python3 "$alternate" "$rounds" \
        "$name lifecycle=$(lifecycle "$rt")" \
        "exec-floor + $name lifecycle=$(lifecycle "$exec_floor $rt")" \
        "floor + $name lifecycle=$(lifecycle "$floor $rt")" \
        "proxcage lifecycle=$(lifecycle "$pc")"
}
export -f compare lifecycle
export runs rounds floor exec_floor bundle alternate

annotate runc
compare runc "$(command -v runc) --root $state/runc" "$pc"

# crun refuses this host's hybrid cgroup layout: crun, the floor and proxcage all run
# inside one private mount namespace whose /sys/fs/cgroup is a cgroup2 mount, with no
# cgroup manager, so none pays for a wrapper process (proxcage's private_cgroup2 is off
# there: the namespace is already what it would make).
annotate crun
printf 'default_backend = "crun"\n\n[backends.crun]\ncgroup_manager = "disabled"\n' >"$work/crun-ns.toml"
PROXCAGE_CONFIG="$work/crun-ns.toml" unshare -m --propagation private bash -c '
umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup || exit 1
compare crun "$1" "$2"
' bash "$(command -v crun) --root $state/crun --cgroup-manager=disabled" "$pc"

echo "== proxcage's own peak RSS (getrusage of proxcage alone, from --debug)"
for backend in runc crun; do
    annotate "$backend"
    $pc --debug run --bundle "$bundle" rss 2>&1 >/dev/null | grep -o 'usage: .*' | sed "s/^/  run ($backend backend): /"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
