#!/usr/bin/env bash
# Installs everything linewire needs to build, test and run its quick start on
# Debian bookworm. Idempotent: when every package is already present it only
# checks, so it is quick to call again.
set -euo pipefail
# shellcheck source=scripts/lib-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-apt.sh"

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang-format
  # fuzzing (scripts/fuzz.sh): clang with its libFuzzer/ASan runtime
  clang libclang-rt-14-dev
  # libraries (Debian packages only; see README "Dependencies")
  libpaho-mqttpp-dev libpaho-mqtt-dev libssl-dev
  libboost1.81-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev libcli11-dev catch2
  # broker and clients for the quick start and the integration tests
  mosquitto mosquitto-clients
  # integration tests: a real MQTT client in Python
  python3 python3-paho-mqtt python3-pytest
  # integration tests: harness.py and fleet.py write the agent's YAML configs (import yaml)
  python3-yaml
  # integration: test_rabbitmq (issue 9) runs a private RabbitMQ node with its MQTT plugin
  rabbitmq-server
  # integration tests of signed requests: Ed25519 signing in Python
  python3-cryptography
  # Home Assistant tests (issue 20): render the discovery templates with Jinja2, as HA does
  python3-jinja2
  # WebSocket tests (issue 5): a client, websocketd as the differential oracle,
  # openssl for a test certificate, headless chromium for the example page
  python3-websocket websocketd openssl chromium
  # the quick start's example config runs /usr/bin/uptime
  procps
  # issue 6: systemd-analyze/sysusers/tmpfiles check the unit (no systemd as PID 1
  # needed), dpkg-dev's dpkg-shlibdeps fills the .deb's Depends, openssl makes the
  # mqtts example's certificates
  systemd dpkg-dev openssl
  # CPack's DEB generator runs `file` on every program before dpkg-shlibdeps (phase
  # `package` of scripts/test.sh; without it: "CPackDeb: file utility is not available")
  file
  # scripts/check-format.sh lists the tracked sources with `git ls-files` (a clone made
  # elsewhere, or a source tarball, leaves a machine without git)
  git
)

if ! missing_packages "${packages[@]}"; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian mosquitto package starts a system broker on :1883; linewire's tests and
# quick start run their own brokers on free ports and do not need it.
# rabbitmq-server's package may likewise start a system node (:5672, epmd :4369);
# test_rabbitmq starts a private node with its own ports and stops it.
if [[ " ${missing[*]} " == *" rabbitmq-server "* ]]; then
  $SUDO invoke-rc.d rabbitmq-server stop >/dev/null 2>&1 || true
fi
