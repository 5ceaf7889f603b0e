#!/usr/bin/env bash
# Writes scripts/hot-symbols.txt: the functions of the proxcage binary that the runc
# command line's commands run, for scripts/build-release.sh, which has the linker lay them
# out together. It runs each command of a lifecycle (create, state, start, exec, ps, list,
# kill, delete, run) through the runc and crun backends under callgrind and lists every
# function any of them executed, those that the most commands run first.
# Run it again after changes to what those commands do; a stale list costs speed only.
# Needs root, valgrind, runc, crun and busybox-static (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind runc crun busybox; do
    command -v "$tool" >/dev/null || { echo "hot-symbols.sh: install $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
touch scripts/hot-symbols.txt # the build below reads it; the names do not depend on it
proxcage=$(scripts/build-release.sh)
work=$(mktemp -d /tmp/proxcage-hot.XXXXXX)
root="$work/root"
trap 'for id in $("$proxcage" --root "$root" list -q 2>/dev/null); do "$proxcage" --root "$root" delete --force "$id"; done; rm -rf "$work"' EXIT

# crun gets a private cgroup2 mount on a host with the hybrid layout, as in main-job.sh.
config="$work/config.toml"
printf 'default_backend = "runc"\n' >"$config"
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    printf '\n[backends.crun]\ncgroup_manager = "disabled"\nprivate_cgroup2 = true\n' >>"$config"
fi
export PROXCAGE_CONFIG="$config"

mkdir "$work/cg"
n=0
traced() { # ARGS...: proxcage ARGS under callgrind (valgrind's own messages go to a file:
    # it does not know pidfd_open and says so, and proxcage falls back)
    n=$((n + 1))
    valgrind -q --tool=callgrind --demangle=no --callgrind-out-file="$work/cg/$n.out" \
        --log-file="$work/cg/$n.log" "$proxcage" --root "$root" "$@"
}
for backend in runc crun; do
    scripts/busybox-bundle.sh "$proxcage" "$work/$backend-sleep" "$backend" sleep 30
    scripts/busybox-bundle.sh "$proxcage" "$work/$backend-true" "$backend" true
    traced create --bundle "$work/$backend-sleep" "$backend-a" >/dev/null
    traced state "$backend-a" >/dev/null
    traced start "$backend-a"
    traced exec "$backend-a" true
    traced ps "$backend-a" >/dev/null
    traced list >/dev/null
    traced kill "$backend-a" KILL
    for _ in $(seq 50); do
        [[ $("$proxcage" --root "$root" state "$backend-a") == *'"stopped"'* ]] && break
        sleep 0.1
    done
    traced delete "$backend-a"
    traced run --bundle "$work/$backend-true" "$backend-b"
done

# Every function name (callgrind's `fn=`/`cfn=` lines name it the first time), with the
# number of commands that ran it; most first, then by name.
python3 - "$work/cg" >scripts/hot-symbols.txt <<'EOF'
import collections, pathlib, re, sys
runs = collections.Counter()
for out in sorted(pathlib.Path(sys.argv[1]).glob("*.out")):
    names = set()
    for line in out.read_text(errors="replace").splitlines():
        m = re.match(r"c?fn=\(\d+\) (.+)$", line)
        if m and not m.group(1).startswith(("0x", "(")):
            names.add(m.group(1))
    runs.update(names)
for name, _ in sorted(runs.items(), key=lambda kv: (-kv[1], kv[0])):
    print(name)
EOF
echo "hot-symbols.sh: $(wc -l <scripts/hot-symbols.txt) functions from $n commands in scripts/hot-symbols.txt" >&2
