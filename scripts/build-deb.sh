#!/usr/bin/env bash
# Builds the Debian package proxcage_<version>-1_amd64.deb from the workspace and prints
# its path (under target/debian/). It holds the static release binary
# (scripts/build-release.sh, reused when already built) as /usr/bin/proxcage; the man
# pages and the bash, zsh and fish completions, generated from the command line's clap
# definitions (`cargo run -p xtask`); /etc/proxcage/config.toml, a conffile, and the
# containerd, podman and Kubernetes examples, all taken from README.md's marked blocks;
# and the files in packaging/deb/ (control, changelog, copyright, lintian-overrides).
# No maintainer scripts: installing it changes no other program's configuration.
# Needs dpkg-dev's tools (dpkg-deb), binutils (strip), gzip and what build-release.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022
for tool in dpkg-deb dpkg-query strip gzip; do
    command -v "$tool" >/dev/null || {
        echo "build-deb.sh: $tool is missing (apt-get install -y dpkg-dev binutils gzip)" >&2
        exit 1
    }
done
binary=$(scripts/build-release.sh)
version=$("$binary" --version | sed -n 's/^proxcage version //p')
deb_version="$version-1"
head -n1 packaging/deb/changelog | grep -q "^proxcage ($deb_version) " || {
    echo "build-deb.sh: packaging/deb/changelog does not start with an entry for $deb_version:" \
        "add one (the binary says version $version)" >&2
    exit 1
}
built_using=$(dpkg-query -W -f '${source:Package} (= ${source:Version})' musl-dev) || {
    echo "build-deb.sh: cannot tell which musl the binary is linked with (apt-get install -y musl-tools)" >&2
    exit 1
}

out="${CARGO_TARGET_DIR:-$PWD/target}/debian"
stage="$out/proxcage_${deb_version}_amd64"
gen="$out/generated"
rm -rf "$stage" "$gen"
mkdir -p "$stage/DEBIAN" "$gen"
cargo run --locked -q -p xtask -- man "$gen/man" >&2
cargo run --locked -q -p xtask -- completions "$gen/completions" >&2
cargo run --locked -q -p xtask -- readme-files "$gen/readme" >&2

doc="$stage/usr/share/doc/proxcage"
install -D -m 0755 "$binary" "$stage/usr/bin/proxcage"
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/proxcage"
install -d "$stage/usr/share/man/man8"
for page in "$gen"/man/*.8; do
    gzip -9n <"$page" >"$stage/usr/share/man/man8/$(basename "$page").gz"
done
install -D -m 0644 "$gen/completions/proxcage.bash" "$stage/usr/share/bash-completion/completions/proxcage"
install -D -m 0644 "$gen/completions/_proxcage" "$stage/usr/share/zsh/vendor-completions/_proxcage"
install -D -m 0644 "$gen/completions/proxcage.fish" "$stage/usr/share/fish/vendor_completions.d/proxcage.fish"
install -D -m 0644 "$gen/readme/config.toml" "$stage/etc/proxcage/config.toml"
install -D -m 0644 packaging/deb/copyright "$doc/copyright"
install -D -m 0644 packaging/deb/lintian-overrides "$stage/usr/share/lintian/overrides/proxcage"
gzip -9n <packaging/deb/changelog >"$doc/changelog.Debian.gz"
gzip -9n <README.md >"$doc/README.md.gz"
for example in containerd-config.toml podman-containers.conf kubernetes-runtimeclass.yaml; do
    install -D -m 0644 "$gen/readme/$example" "$doc/examples/$example"
done

echo /etc/proxcage/config.toml >"$stage/DEBIAN/conffiles"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
installed_size=$(du -sk --apparent-size "$stage/usr" "$stage/etc" | awk '{n += $1} END {print n}')
sed -e "s/@VERSION@/$deb_version/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
    -e "s/@BUILT_USING@/$built_using/" packaging/deb/control >"$stage/DEBIAN/control"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

deb="$out/proxcage_${deb_version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
