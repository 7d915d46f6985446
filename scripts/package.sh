#!/usr/bin/env bash
# Builds the Debian package from a configured build folder and, with --install, checks
# it the way a user meets it: dpkg -i, the installed config validates, the installed
# unit verifies, the programs run; then it is purged again.
#
#   scripts/package.sh BUILD_DIR [--install]
#
# Prints the .deb's path and size, and the stripped sizes of the programs in it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=${1:?usage: scripts/package.sh BUILD_DIR [--install]}
install=${2:-}

ninja -C "$build_dir" linewired linewire
out="$build_dir/packages"
rm -rf "$out"
mkdir -p "$out"
(cd "$build_dir" && cpack -G DEB -B "$PWD/packages" >/dev/null)
rm -rf "$out/_CPack_Packages"
deb=$(ls "$out"/*.deb)
echo "package: $deb ($(stat -c %s "$deb") bytes)"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Depends\|Installed-Size\):/  \1:/p'
# The stripped programs as installed.
contents=$(mktemp -d)
trap 'rm -rf "$contents"' EXIT
dpkg-deb -x "$deb" "$contents"
for p in linewired linewire; do
  echo "  /usr/bin/$p: $(stat -c %s "$contents/usr/bin/$p") bytes stripped"
done
# (grep reads everything: with -q it would end the pipe early, failing pipefail)
[ -f "$contents/etc/linewire/linewire.yaml" ]
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -x /etc/linewire/linewire.yaml >/dev/null

[ "$install" = --install ] || exit 0

# The package's Depends must be satisfiable here: apt-get resolves them, dpkg installs.
export DEBIAN_FRONTEND=noninteractive
dpkg -i "$deb" || apt-get -o DPkg::Lock::Timeout=600 install -f -y -qq --no-install-recommends
dpkg -s linewire | grep -q '^Status: install ok installed'
trap 'dpkg --purge linewire >/dev/null || true; rm -rf "$contents"' EXIT
/usr/bin/linewired --version
/usr/bin/linewire --help >/dev/null
/usr/bin/linewired --config /etc/linewire/linewire.yaml --check-config
/usr/bin/linewired --check-config  # the default config is the installed one
/usr/bin/linewired --check-config /etc/linewire/linewire.yaml
getent passwd linewire >/dev/null
[ "$(stat -c %U:%a /var/lib/linewire)" = linewire:750 ]
# The installed unit, against the real system (its ExecStart exists now).
verify=$(systemd-analyze verify --man=no --generators=no /usr/lib/systemd/system/linewired.service 2>&1) || {
  echo "$verify"
  exit 1
}
if [ -n "$verify" ]; then
  echo "systemd-analyze verify is not clean:"
  echo "$verify"
  exit 1
fi
trap 'rm -rf "$contents"' EXIT
dpkg --purge linewire >/dev/null
[ ! -e /usr/bin/linewired ] && [ ! -e /etc/linewire/linewire.yaml ]
echo "package: installed, checked and purged"
