#!/usr/bin/env bash
# Cross-builds linewired, linewire and the unit tests for ARCH (arm64 or armhf) with
# Debian's cross compiler and multiarch libraries, then runs them under qemu-user:
# `linewired --version`, `--check-config` on the shipped configs, and the unit tests.
# With --package, also builds the ARCH .deb. Prints the stripped program sizes.
#
#   cross/build.sh ARCH [--package]
#
# Environment: LINEWIRE_CROSS_BUILD_DIR (default build-ARCH), LINEWIRE_WERROR (ON).
# binfmt_misc need not be registered (containers rarely have it): every target program
# is started as `qemu-ARCH PROGRAM` explicitly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

arch=${1:?usage: cross/build.sh arm64|armhf [--package]}
package=${2:-}
case $arch in
  arm64) triplet=aarch64-linux-gnu qemu=qemu-aarch64 ;;
  armhf) triplet=arm-linux-gnueabihf qemu=qemu-arm ;;
  *)
    echo "cross/build.sh: unknown architecture '$arch' (arm64 or armhf)" >&2
    exit 2
    ;;
esac
build_dir=${LINEWIRE_CROSS_BUILD_DIR:-build-$arch}

step() { echo "--> $*"; }

step "dependencies for $arch"
cross/install-deps.sh "$arch"

# -O2 as Debian builds its packages: GCC 12 at -O3 warns falsely (-Wrestrict on
# "literal" + std::string, GCC PR 105651), which -Werror turns into a failure.
step "configure $build_dir ($triplet)"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_TOOLCHAIN_FILE="cross/$triplet.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DLINEWIRE_WERROR="${LINEWIRE_WERROR:-ON}" -DLINEWIRE_TESTS=ON >/dev/null

step "build linewired, linewire, unit tests"
ninja -C "$build_dir" linewired linewire linewire_unit_tests

machine=$(readelf -h "$build_dir/linewired" | sed -n 's/^ *Machine: *//p')
case "$arch:$machine" in
  arm64:AArch64 | armhf:ARM) ;;
  *)
    echo "cross/build.sh: $build_dir/linewired is for '$machine', not $arch" >&2
    exit 1
    ;;
esac

step "run under $qemu"
"$qemu" "$build_dir/linewired" --version
for cfg in packaging/linewire.yaml examples/linewire.yaml; do
  "$qemu" "$build_dir/linewired" --config "$cfg" --check-config
done
# A bad config is refused with exit 2 under qemu too.
bad=$(mktemp)
trap 'rm -f "$bad"' EXIT
printf 'commands: {x: {exec: 5}}\n' >"$bad"
rc=0
"$qemu" "$build_dir/linewired" --config "$bad" --check-config >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || {
  echo "cross/build.sh: a bad config gave exit $rc under qemu, not 2" >&2
  exit 1
}
"$qemu" "$build_dir/cli/linewire" --help >/dev/null
# Not the [process] cases: qemu-user turns posix_spawn's clone(CLONE_VM|CLONE_VFORK)
# into a plain fork, so the parent no longer waits for the exec and cannot see it fail
# (a missing program "starts", then exits 127). They run natively in CI; here they
# would test qemu (issue 6 asks for the non-forking unit tests under qemu).
"$qemu" "$build_dir/tests/unit/linewire_unit_tests" "~[process]"

step "stripped sizes ($arch)"
for p in linewired cli/linewire; do
  "$triplet-strip" -o "$build_dir/$(basename "$p").stripped" "$build_dir/$p"
  echo "  $(basename "$p"): $(stat -c %s "$build_dir/$(basename "$p").stripped") bytes"
done

if [ "$package" = --package ]; then
  step "package ($arch)"
  scripts/package.sh "$build_dir"
fi
