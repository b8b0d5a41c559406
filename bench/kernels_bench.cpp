// Quantized convolution kernels per layer (Google Benchmark): the int8 GEMM path (weights
// prepared once, buffer form, as QuantizedHead runs it) against the look-up-table path at
// w2a4, w2a2, w1a1 and w4a4, on every path this CPU has. One thread.
// Run: build/bench/kernels_bench --benchmark_min_time=0.2 (see bench/README.md).
//
// Shapes: the convolutions of the ResNet Fashion-MNIST head up to stage 3 (group_size 16; the
// 1-channel stem can only have 1), the ResNet-50 stem (3x224x224 -> 64, 7x7, stride 2, pad 3,
// group 3) and a ResNet-50 layer1 3x3 conv (64x56x56 -> 64, group 16). Counter GMAC/s counts the
// multiply-accumulates of the convolution (out_channels * pixels * in_channels * kh * kw), so
// paths and bit widths compare on the same work.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/lut.h"
#include "kernels/qconv.h"
#include "kernels/qgemm.h"

namespace k = splitinfer::kernels;

namespace {

struct Layer {
  const char* name;
  k::ConvShape shape;
};

const std::vector<Layer>& Layers() {
  static const std::vector<Layer> layers = {
      // in_c, h, w, out_c, kh, kw, stride, pad, group
      {"fmnist.stem_1x28x28_64_k3s2", {1, 28, 28, 64, 3, 3, 2, 1, 1}},
      {"fmnist.s1_64x14x14_64_k3", {64, 14, 14, 64, 3, 3, 1, 1, 16}},
      {"fmnist.s2_64x14x14_128_k3s2", {64, 14, 14, 128, 3, 3, 2, 1, 16}},
      {"fmnist.s2down_64x14x14_128_k1s2", {64, 14, 14, 128, 1, 1, 2, 0, 16}},
      {"fmnist.s2_128x7x7_128_k3", {128, 7, 7, 128, 3, 3, 1, 1, 16}},
      {"fmnist.s3_128x7x7_256_k3s2", {128, 7, 7, 256, 3, 3, 2, 1, 16}},
      {"fmnist.s3down_128x7x7_256_k1s2", {128, 7, 7, 256, 1, 1, 2, 0, 16}},
      {"fmnist.s3_256x4x4_256_k3", {256, 4, 4, 256, 3, 3, 1, 1, 16}},
      {"resnet50.stem_3x224x224_64_k7s2", {3, 224, 224, 64, 7, 7, 2, 3, 3}},
      {"resnet50.layer1_64x56x56_64_k3", {64, 56, 56, 64, 3, 3, 1, 1, 16}},
  };
  return layers;
}

std::vector<k::KernelPath> Paths() { return k::AvailableKernelPaths(); }

template <typename T>
std::vector<T> Random(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

double Macs(const k::ConvShape& s) {
  return static_cast<double>(s.out_channels) * static_cast<double>(s.pixels()) * s.in_channels * s.kernel_h *
         s.kernel_w;
}

void SetCounters(benchmark::State& state, const k::ConvShape& s) {
  state.counters["GMAC/s"] =
      benchmark::Counter(Macs(s) * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void Int8(benchmark::State& state, const k::ConvShape& s, k::KernelPath path) {
  const auto input = Random<uint8_t>(s.input_size(), 0, 255, 1);
  const auto weights = Random<int8_t>(s.weight_size(), -127, 127, 2);
  auto prepared = k::PrepareInt8ConvWeights(s, weights, path);
  if (!prepared.ok()) {
    state.SkipWithError(prepared.status().ToString().c_str());
    return;
  }
  std::vector<int32_t> acc;
  for (auto _ : state) {
    const auto st = k::Int8ConvAccumulate(*prepared, input, 3, &acc);
    benchmark::DoNotOptimize(acc.data());
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  SetCounters(state, s);
}

void Lut(benchmark::State& state, const k::ConvShape& s, k::KernelPath path, int slots, int wbits, int abits) {
  const auto input = Random<uint8_t>(s.input_size(), 0, (1 << abits) - 1, 3);
  const auto codes = Random<uint8_t>(s.weight_size(), 0, (1 << wbits) - 1, 4);
  auto prepared = k::PrepareLutWeights(s, codes, wbits, path, slots);
  if (!prepared.ok()) {
    state.SkipWithError(prepared.status().ToString().c_str());
    return;
  }
  const std::vector<int32_t> zero_points(static_cast<size_t>(s.regions()), (1 << abits) / 2);
  std::vector<int32_t> acc;
  for (auto _ : state) {
    const auto st = k::LutConvAccumulate(*prepared, input, abits, zero_points, &acc);
    benchmark::DoNotOptimize(acc.data());
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  SetCounters(state, s);
}

// Microseconds, and with --benchmark_repetitions a "min" row beside mean/median/stddev: on a
// shared machine the least disturbed repetition is the best estimate of the kernel's own time.
void Configure(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMicrosecond)->ComputeStatistics("min", [](const std::vector<double>& v) {
    return *std::min_element(v.begin(), v.end());
  });
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string features = "sse2";
  if (k::CpuHasAvx2()) features += " avx2";
  if (k::CpuHasAvx512Vnni()) features += " avx512f+bw+vl+vnni";
  if (k::CpuHasAvx512Vbmi()) features += " avx512vbmi";
  if (k::CpuHasNeon()) features += " neon";
  if (k::CpuHasNeonDot()) features += " dotprod";
  benchmark::AddCustomContext("cpu_kernel_paths", features);
  const int bits[][2] = {{2, 4}, {2, 2}, {1, 1}, {4, 4}};
  for (const Layer& l : Layers()) {
    for (k::KernelPath path : Paths())
      Configure(benchmark::RegisterBenchmark((std::string(l.name) + "/int8/" + k::KernelPathName(path)).c_str(),
                                             [s = l.shape, path](benchmark::State& st) { Int8(st, s, path); }));
    for (const auto& wa : bits)
      for (k::KernelPath path : Paths())
        // The default table width for the path, and on AVX-512 with VBMI also both widths forced
        // (".s4": 16-entry tables, vpshufb; ".s6": 64-entry tables, vpermb).
        for (int slots : {0, 4, 6}) {
          if (slots != 0 && !(path == k::KernelPath::kAvx512Vnni && k::CpuHasAvx512Vbmi())) continue;
          const std::string variant = slots ? ".s" + std::to_string(slots) : "";
          Configure(benchmark::RegisterBenchmark(
              (std::string(l.name) + "/lut_w" + std::to_string(wa[0]) + "a" + std::to_string(wa[1]) + "/" +
               k::KernelPathName(path) + variant)
                  .c_str(),
              [s = l.shape, path, slots, w = wa[0], a = wa[1]](benchmark::State& st) { Lut(st, s, path, slots, w, a); }));
        }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
