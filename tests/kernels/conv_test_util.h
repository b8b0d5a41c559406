// Helpers shared by the kernels' tests (kernels_test, lut_test): a readable name for a
// convolution shape in failure messages, and seeded random vectors.
#pragma once

#include <algorithm>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "kernels/qconv.h"
#include "kernels/qgemm.h"

namespace splitinfer::kernels::test_util {

inline std::string Describe(const ConvShape& s) {
  return std::to_string(s.in_channels) + "x" + std::to_string(s.in_height) + "x" + std::to_string(s.in_width) +
         " -> " + std::to_string(s.out_channels) + " k" + std::to_string(s.kernel_h) + "x" +
         std::to_string(s.kernel_w) + " s" + std::to_string(s.stride) + " p" + std::to_string(s.padding) + " G" +
         std::to_string(s.group_size);
}

// n values drawn uniformly from [lo, hi].
template <typename T>
std::vector<T> RandomVector(std::mt19937& rng, size_t n, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

// Every explicit kernel path, whether or not this CPU has it (tests check that a missing one is
// refused), and whether this CPU (and build) has `path`.
inline std::vector<KernelPath> AllKernelPaths() {
  return {KernelPath::kPortable, KernelPath::kAvx2, KernelPath::kAvx512Vnni, KernelPath::kNeon, KernelPath::kNeonDot};
}
inline bool CpuHas(KernelPath path) {
  const auto have = AvailableKernelPaths();
  return path == KernelPath::kAuto || std::find(have.begin(), have.end(), path) != have.end();
}

}  // namespace splitinfer::kernels::test_util
