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
#   LINEWIRE_ASAN=0        skip the ASan+UBSan build and its test run (default 1)
#   LINEWIRE_FUZZ_SECONDS=N  seconds per fuzz target (default 30; 0 skips fuzzing)
#   LINEWIRE_PACKAGE=0     skip building, installing (dpkg -i) and purging the .deb
#   LINEWIRE_CROSS=0       skip the arm64 cross build run under qemu (default arm64;
#                          "arm64 armhf" does both)
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

# The whole suite again, built with AddressSanitizer + UBSan (LINEWIRE_SANITIZE) in
# build-asan/. Leak detection is on; tests/lsan.supp lists what is not ours.
configure_asan() {
  # Without -Werror: GCC 12 warns falsely (maybe-uninitialized in <regex>) under ASan;
  # the plain build above already holds the warnings to -Werror.
  cmake -S . -B build-asan -G Ninja -DLINEWIRE_WERROR=OFF -DLINEWIRE_TESTS=ON \
    -DLINEWIRE_SANITIZE=ON
}

# The long durability and leak runs (label `durability`) run in the plain build only:
# under ASan they would double CI's time without reaching new code.
run_asan_tests() {
  # shellcheck disable=SC2086 # CTEST_ARGS is split on purpose
  # The integration harness starts build-asan's linewired (LINEWIRED is set per test by
  # ctest); sanitizer reports make the agent exit non-zero, which teardown checks.
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:halt_on_error=1" \
    LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    LINEWIRE_TEST_SLOWDOWN=${LINEWIRE_TEST_SLOWDOWN:-2} \
    ctest --test-dir build-asan --output-on-failure --no-tests=error -j2 -LE "durability|fleet" ${CTEST_ARGS:-}
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
  if [ "${LINEWIRE_PACKAGE:-1}" = 1 ]; then
    run_phase package scripts/package.sh "$build_dir" --install
  else
    skip_phase package
  fi
  if [ "${LINEWIRE_CROSS:-arm64}" != 0 ]; then
    for arch in ${LINEWIRE_CROSS:-arm64}; do
      run_phase "cross-$arch" cross/build.sh "$arch" --package
    done
  else
    skip_phase cross
  fi
  if [ "${LINEWIRE_ASAN:-1}" = 1 ]; then
    if run_phase asan-conf configure_asan && run_phase asan-build ninja -C build-asan; then
      run_phase asan-test run_asan_tests
    else
      printf '%s\n' "${summary[@]}" | grep -q "^asan-build " || skip_phase asan-build
      skip_phase asan-test
    fi
  else
    skip_phase asan
  fi
  if [ "${LINEWIRE_FUZZ_SECONDS:-30}" != 0 ]; then
    run_phase fuzz scripts/fuzz.sh "${LINEWIRE_FUZZ_SECONDS:-30}"
  else
    skip_phase fuzz
  fi
else
  # Whatever failed, the phases after it cannot run; say so in the summary.
  for p in deps configure build test package cross asan fuzz; do
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
