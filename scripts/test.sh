#!/usr/bin/env bash
# Everything CI does, on a fresh Debian bookworm machine or a developer's:
# installs the dependencies, configures and builds with warnings as errors, runs
# every test (unit and integration) and checks the formatting. Prints how long each
# phase took; exits non-zero if any phase failed.
#
# Environment:
#   LINEWIRE_WERROR=OFF    build without -Werror (default ON)
#   LINEWIRE_BUILD_DIR=D   build folder (default build)
#   CTEST_ARGS="..."       extra ctest arguments, e.g. CTEST_ARGS="-R unit:"
#
# The integration tests start their own mosquitto on free ports, so a system broker
# on :1883 (which Debian's mosquitto package may start) does not matter.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

build_dir=${LINEWIRE_BUILD_DIR:-build}
werror=${LINEWIRE_WERROR:-ON}

summary=()
failed=0

# run_phase NAME COMMAND...: runs one phase, records its time and result.
run_phase() {
  local name=$1
  shift
  echo
  echo "==> $name: $*"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    summary+=("$(printf '%-10s ok      %4ds' "$name" "$took")")
  else
    summary+=("$(printf '%-10s FAILED  %4ds  (exit %d)' "$name" "$took" "$rc")")
    failed=1
  fi
  return "$rc"
}

skip_phase() {
  summary+=("$(printf '%-10s skipped' "$1")")
}

configure() {
  # A build folder made by another generator cannot be reused with -G Ninja.
  if [ -f "$build_dir/CMakeCache.txt" ] &&
    ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build_dir/CMakeCache.txt"; then
    echo "$build_dir/ was configured with another generator; remove it or set LINEWIRE_BUILD_DIR" >&2
    return 1
  fi
  cmake -S . -B "$build_dir" -G Ninja -DLINEWIRE_WERROR="$werror" -DLINEWIRE_TESTS=ON
}

run_tests() {
  # Each test's timeout is set where the test is declared (tests/**/CMakeLists.txt).
  # shellcheck disable=SC2086 # CTEST_ARGS is split on purpose
  ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j2 ${CTEST_ARGS:-}
}

total_start=$SECONDS
if run_phase deps scripts/install-deps.sh &&
  run_phase configure configure &&
  run_phase build ninja -C "$build_dir"; then
  run_phase test run_tests
else
  # Whatever failed, the phases after it cannot run; say so in the summary.
  for p in deps configure build test; do
    printf '%s\n' "${summary[@]}" | grep -q "^$p " || skip_phase "$p"
  done
fi
# Formatting is independent of the build: always checked.
run_phase format scripts/check-format.sh

echo
echo "==> summary"
printf '  %s\n' "${summary[@]}"
printf '  %-10s         %4ds\n' total $((SECONDS - total_start))
if [ "$failed" -ne 0 ]; then
  echo "FAILED"
  exit 1
fi
echo "all passed"
