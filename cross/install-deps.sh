#!/usr/bin/env bash
# Installs what cross/build.sh needs for ARCH (arm64 or armhf) on Debian bookworm:
# the cross compiler, the target's libraries from Debian multiarch, and qemu-user to
# run the results. Idempotent; fails loudly when a package cannot be installed.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib-apt.sh"

arch=${1:?usage: cross/install-deps.sh arm64|armhf}
case $arch in
  arm64 | armhf) ;;
  *)
    echo "cross/install-deps.sh: unknown architecture '$arch' (arm64 or armhf)" >&2
    exit 2
    ;;
esac

# The host's side first: cmake, ninja, and the header-only libraries (Boost,
# nlohmann-json, CLI11, Catch2) come from the native list, so that cross/build.sh also
# works on its own on a fresh machine (it did not: "cmake: command not found").
"$(dirname "${BASH_SOURCE[0]}")/../scripts/install-deps.sh"

packages=(
  "crossbuild-essential-$arch" qemu-user
  # The target's libraries (headers come along; Boost, nlohmann-json, CLI11 and
  # Catch2 are header-only here and used from the host's packages). Every -dev
  # package here is Multi-Arch: same, so the host's stay installed.
  "libpaho-mqttpp-dev:$arch" "libpaho-mqtt-dev:$arch" "libssl-dev:$arch"
  "libspdlog-dev:$arch" "libfmt-dev:$arch"
  # Not libyaml-cpp-dev:$arch: it is not Multi-Arch and would replace the host's
  # (cross/yaml-cpp/ stands in for its CMake config); the runtime library is enough.
  "libyaml-cpp0.7:$arch" libyaml-cpp-dev
)

export DEBIAN_FRONTEND=noninteractive
added=0
if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  $SUDO dpkg --add-architecture "$arch"
  added=1
fi

if ! missing_packages "${packages[@]}"; then
  echo "cross/install-deps: all ${#packages[@]} packages for $arch present"
  exit 0
fi
echo "cross/install-deps: installing ${missing[*]}"
# A new architecture has no package lists yet; other helpers may hold the dpkg lock.
if [ "$added" = 1 ] || ! apt-cache show "libpaho-mqttpp-dev:$arch" >/dev/null 2>&1; then
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
fi
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
