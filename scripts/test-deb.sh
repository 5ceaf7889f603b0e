#!/usr/bin/env bash
# CI: the Debian package on this machine, as an operator would use it. Builds it
# (scripts/build-deb.sh, reusing the release build scripts/test.sh made; DEB=FILE checks
# that file instead), installs it with apt-get, then checks: `proxcage --version`, the
# man pages (`man -w`), bash completing a subcommand, every key of the installed config
# file (commented out) being one proxcage reads, and a runc container run through the
# installed binary with the installed config. Then `apt-get purge` must leave none of
# its files behind, /etc/proxcage included, and lintian must find no error.
# Needs root (it installs the package), lintian and man-db (scripts/install-deps.sh),
# runc and busybox-static. Refuses to run where proxcage is installed already, or where
# /etc/proxcage exists: the purge at its end would take them.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test-deb.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (it installs the package)"
for tool in lintian:lintian man:man-db runc:runc busybox:busybox-static; do
    command -v "${tool%%:*}" >/dev/null || fail "${tool%%:*} is missing: apt-get install -y ${tool#*:}"
done
if dpkg-query -W -f '${Status}' proxcage 2>/dev/null | grep -q installed || [ -e /etc/proxcage ]; then
    fail "proxcage is installed here already, or /etc/proxcage exists: this check installs and purges the package; remove them first"
fi

deb=${DEB:-$(scripts/build-deb.sh)}
deb=$(realpath "$deb")
echo "== $deb"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Recommends\|Suggests\|Built-Using\):/  &/p'

work=$(mktemp -d /tmp/proxcage-deb.XXXXXX)
installed=
cleanup() {
    # `run` removes its container; one is left only when the check failed half-way.
    if [ -x /usr/bin/proxcage ] && /usr/bin/proxcage --root "$work/root" state deb-check >/dev/null 2>&1; then
        /usr/bin/proxcage --root "$work/root" delete --force deb-check ||
            echo "test-deb.sh: could not delete the container deb-check" >&2
    fi
    if [ -n "$installed" ]; then
        apt-get purge -y -qq proxcage >/dev/null 2>&1 || echo "test-deb.sh: could not purge proxcage" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== apt-get install"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
installed=1
files=$(dpkg -L proxcage)
version=$(dpkg-deb -f "$deb" Version)

echo "== proxcage --version"
/usr/bin/proxcage --version | tee "$work/version"
grep -qx "proxcage version ${version%-*}" <(head -n1 "$work/version") ||
    fail "the installed binary says $(head -n1 "$work/version"), the package is $version"

echo "== man -w"
for page in proxcage proxcage-create proxcage-kill proxcage-bundle-create; do
    man -w "$page" || fail "man -w $page found no page"
done

echo "== bash completion of 'proxcage cre'"
offered=$(bash -c '
    source /usr/share/bash-completion/completions/proxcage
    COMP_WORDS=(proxcage cre); COMP_CWORD=1; COMP_LINE="proxcage cre"; COMP_POINT=${#COMP_LINE}
    _proxcage proxcage cre proxcage
    printf "%s\n" "${COMPREPLY[@]}"')
echo "$offered"
grep -qx create <<<"$offered" || fail "bash completion did not offer 'create' for 'proxcage cre'"

echo "== every key of /etc/proxcage/config.toml is one proxcage reads"
# Each commented-out key, uncommented: an unknown key or a wrong type is an error.
sed -E 's/^#([^ #])/\1/' /etc/proxcage/config.toml >"$work/uncommented.toml"
grep -q '^default_backend = "runc"' "$work/uncommented.toml" || fail "no default_backend in the config file"
env -u PROXCAGE_CONFIG /usr/bin/proxcage --config "$work/uncommented.toml" --root "$work/root" list -q ||
    fail "the config file's keys, uncommented, are refused"

echo "== a runc container through the installed binary and config"
scripts/busybox-bundle.sh /usr/bin/proxcage "$work/bundle" runc echo hello from the package
# Routed by the installed config's default, not by an annotation.
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
del spec["annotations"]["io.proxcage.backend"]
json.dump(spec, open(sys.argv[1], "w"))
PY
out=$(env -u PROXCAGE_CONFIG /usr/bin/proxcage --root "$work/root" run --bundle "$work/bundle" deb-check)
[ "$out" = "hello from the package" ] || fail "the container printed '$out'"
echo "$out"
[ -z "$(env -u PROXCAGE_CONFIG /usr/bin/proxcage --root "$work/root" list -q)" ] || fail "the container was left behind"

echo "== apt-get purge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq proxcage >/dev/null
installed=
left=$(while read -r path; do
    if [ -f "$path" ] || [ -L "$path" ]; then echo "$path"; fi
done <<<"$files")
for dir in /etc/proxcage /usr/share/doc/proxcage; do
    [ ! -e "$dir" ] || left+=$'\n'"$dir"
done
[ -z "${left//$'\n'/}" ] || fail "left behind after purge:$left"
dpkg-query -W proxcage >/dev/null 2>&1 && fail "dpkg still knows proxcage after purge"
echo "nothing left"

echo "== lintian"
# lintian refuses root unless told; it only reads the package.
lintian --allow-root --fail-on error "$deb" || fail "lintian found errors in $deb"
echo "test-deb.sh: passed"
