// Helpers shared by the kernels' tests (kernels_test, lut_test): a readable name for a
// convolution shape in failure messages, and seeded random vectors.
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "kernels/qconv.h"

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

}  // namespace splitinfer::kernels::test_util
