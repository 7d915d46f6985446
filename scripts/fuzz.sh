#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang in build-fuzz/ and runs each for N
# seconds (default 60) from its seed corpus in fuzz/corpus/<target>/. New inputs that
# libFuzzer finds go to build-fuzz/corpus/<target>/ (not into the repo); a crash leaves
# its input in build-fuzz/ and makes the script exit non-zero.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 30
#
# Needs clang and libclang-rt-14-dev (Debian's clang package pulls it in).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_request fuzz_config fuzz_openssh)
build_dir=${LINEWIRE_FUZZ_BUILD_DIR:-build-fuzz}

CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLINEWIRE_FUZZ=ON -DLINEWIRE_TESTS=OFF -DLINEWIRE_WERROR=OFF >/dev/null
ninja -C "$build_dir" "${targets[@]}"

# Paho/yaml-cpp are not involved; leaks in the parsers are real findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

rc=0
for t in "${targets[@]}"; do
  max_len=65536  # limits.max_payload's default: the largest request the agent parses
  [ "$t" = fuzz_config ] && max_len=16384
  [ "$t" = fuzz_openssh ] && max_len=9000  # past the parser's own 8192-byte limit
  work="$build_dir/corpus/$t"
  mkdir -p "$work" "$build_dir/artifacts/$t"
  echo "==> $t: ${seconds}s"
  if ! "$build_dir/fuzz/$t" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$t/" \
    "$work" "fuzz/corpus/$t" 2>"$build_dir/$t.log"; then
    echo "$t FAILED; see $build_dir/$t.log and $build_dir/artifacts/$t/" >&2
    tail -n 60 "$build_dir/$t.log" >&2
    rc=1
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE' \
    "$build_dir/$t.log" || true
done
exit $rc
