#!/usr/bin/env bash
# Cross-compiles the node's kernels (src/kernels) and their tests for 64-bit ARM and runs them
# under qemu-user (tests/cross/CMakeLists.txt). `make test` runs this as the ctest case
# kernels_aarch64. Usage: scripts/cross_test.sh [BUILD_DIR]   (default build/cross-aarch64)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/cross-aarch64}
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  if ! command -v "$tool" > /dev/null; then
    echo "cross_test: $tool not found; run scripts/install-deps.sh (g++-aarch64-linux-gnu, qemu-user)" >&2
    exit 1
  fi
done
cmake -S "$root/tests/cross" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-aarch64-linux-gnu.cmake" > "$out.configure.log" 2>&1 ||
  { cat "$out.configure.log" >&2; exit 1; }
cmake --build "$out" -j "${JOBS:-2}"
ctest --test-dir "$out" --output-on-failure
