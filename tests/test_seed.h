// Random test inputs come from a fresh seed per run, printed so a failure can be replayed with
// SPLITINFER_TEST_SEED=<seed> (XNNPACK/zstd style: random coverage, deterministic replay).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace splitinfer::testing {

inline uint32_t TestSeed() {
  static const uint32_t seed = [] {
    const char* env = std::getenv("SPLITINFER_TEST_SEED");
    const uint32_t s = env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : std::random_device{}();
    std::printf("test seed %u (replay with SPLITINFER_TEST_SEED=%u)\n", s, s);
    return s;
  }();
  return seed;
}

}  // namespace splitinfer::testing
