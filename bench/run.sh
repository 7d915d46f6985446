#!/usr/bin/env bash
# The one command behind bench/README.md's table: installs what the benchmarks need,
# builds linewire in Release (build-bench/), runs bench/bench.py against a private
# mosquitto, and writes the table to bench/results/latest.md (and stdout).
#
#   bench/run.sh                      # everything (about 5 minutes on 2 cores)
#   bench/run.sh --only spawn,size    # some of it; see bench/bench.py --help
#
# Run it on a quiet machine: the numbers are ratios against websocketd and
# mosquitto's own clients measured in the same run, but a busy CPU still skews them
# (every hop of a round trip waits for a time slice).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
# What only the benchmarks use.
. scripts/lib-apt.sh
if missing_packages websocketd python3-websocket binutils; then
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Release at -O2, as cross/build.sh and Debian build: the binaries measured are the ones
# shipped (CMakeLists.txt adds section GC and link-time optimization to Release).
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DLINEWIRE_TESTS=OFF >/dev/null
ninja -C build-bench linewired linewire

mkdir -p bench/results
LINEWIRED=$PWD/build-bench/linewired LINEWIRE=$PWD/build-bench/linewire \
  timeout 1800 /usr/bin/python3 bench/bench.py "$@" | tee bench/results/latest.md
