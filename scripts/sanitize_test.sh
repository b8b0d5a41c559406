#!/usr/bin/env bash
# The sanitizer lane (tests/sanitize/CMakeLists.txt): the parts without LibTorch (core, codec,
# kernels, the YAML reader, the wire and PNG parsing) built with ASan + UBSan, then their unit
# tests and the fuzz corpora. `make test` runs this as the ctest case sanitize_lane.
# Usage: scripts/sanitize_test.sh [BUILD_DIR]   (default build/sanitize)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/sanitize}
mkdir -p "$(dirname "$out")"
cmake -S "$root/tests/sanitize" -B "$out" -G Ninja > "$out.configure.log" 2>&1 ||
  { cat "$out.configure.log" >&2; exit 1; }
cmake --build "$out" -j "${JOBS:-2}"
# detect_leaks: the tests own every allocation, so a leak is ours. halt_on_error: the first
# report fails the test (UBSan is already -fno-sanitize-recover).
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$out" --output-on-failure -j "${JOBS:-2}"
