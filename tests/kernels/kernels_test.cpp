#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/lut.h"
#include "kernels/qconv.h"
#include "kernels/qgemm.h"
#include "conv_test_util.h"
#include "test_seed.h"

namespace splitinfer::kernels {
namespace {

using ::splitinfer::testing::TestSeed;
using test_util::AllKernelPaths;
using test_util::CpuHas;
using test_util::Describe;
using test_util::RandomVector;

// Fixed shapes covering the corners, then random ones.
std::vector<ConvShape> Shapes(std::mt19937& rng) {
  std::vector<ConvShape> shapes = {
      // in_c, h, w, out_c, kh, kw, stride, pad, group
      {3, 7, 5, 5, 3, 3, 1, 1, 3},       // RGB-like, odd sizes
      {16, 14, 14, 8, 3, 3, 1, 1, 8},    // two regions
      {16, 9, 11, 7, 3, 3, 2, 1, 16},    // stride 2, per-channel
      {12, 6, 6, 9, 1, 1, 1, 0, 4},      // 1x1 direct (no im2col), C_in not a multiple of 8
      {24, 5, 7, 6, 1, 1, 2, 0, 8},      // 1x1 with stride: im2col
      {40, 8, 8, 17, 3, 3, 1, 0, 8},     // 5 regions, 17 output channels (4+4+4+4+1)
      {5, 3, 3, 3, 3, 3, 1, 0, 5},       // a single output pixel
      {32, 13, 13, 4, 3, 3, 2, 0, 32},
      {6, 4, 9, 2, 1, 3, 1, 1, 2},       // non-square kernel
      {64, 14, 14, 64, 3, 3, 1, 1, 16},  // a real layer shape
      {1, 1, 1, 1, 1, 1, 1, 0, 1},       // the smallest
      {9, 2, 2, 5, 3, 3, 1, 1, 3},       // kernel larger than the unpadded input
      {33, 17, 3, 6, 2, 2, 2, 1, 11},    // odd everything, region depth 44
  };
  std::uniform_int_distribution<int> group_pick(0, 5), regions(1, 4), size(1, 19), out(1, 20), k(0, 2),
      stride(1, 3), pad(0, 2);
  const int groups[] = {1, 2, 3, 4, 8, 16};
  while (shapes.size() < 25) {
    ConvShape s;
    s.group_size = groups[group_pick(rng)];
    s.in_channels = s.group_size * regions(rng);
    s.in_height = size(rng);
    s.in_width = size(rng);
    s.out_channels = out(rng);
    s.kernel_h = s.kernel_w = 2 * k(rng) + 1;
    s.stride = stride(rng);
    s.padding = pad(rng);
    if (ValidateConvShape(s).ok()) shapes.push_back(s);
  }
  return shapes;
}

Requant RandomRequant(std::mt19937& rng, const ConvShape& s) {
  std::uniform_real_distribution<float> scale(1e-4f, 1e-1f), bias(-5.f, 5.f);
  Requant rq;
  rq.input_scale = scale(rng);
  for (size_t i = 0; i < static_cast<size_t>(s.out_channels) * s.regions(); ++i) rq.weight_scales.push_back(scale(rng));
  if (rng() & 1)
    for (int i = 0; i < s.out_channels; ++i) rq.bias.push_back(bias(rng));
  rq.relu = rng() & 1;
  return rq;
}

// Element-wise equality, reporting the first difference only (the vectors can be large).
// Floats are compared by bit pattern: "the same" means identical, not close.
template <typename T>
void ExpectIdentical(const std::vector<T>& got, const std::vector<T>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      ADD_FAILURE() << "first difference at " << i << ": got " << +got[i] << ", want " << +want[i];
      return;
    }
}

// Accumulators, floats and uint8 outputs of one path against the reference.
void ExpectSameOutputs(const ConvShape& s, const std::vector<int32_t>& got, const std::vector<int32_t>& want,
                       const Requant& rq) {
  ExpectIdentical(got, want);
  auto fg = Requantize(s, got, rq), fw = Requantize(s, want, rq);
  ASSERT_TRUE(fg.ok() && fw.ok()) << fg.status().ToString();
  ExpectIdentical(*fg, *fw);
  auto qg = QuantizeOutput(*fg, 0.05f, 7), qw = QuantizeOutput(*fw, 0.05f, 7);
  ASSERT_TRUE(qg.ok() && qw.ok());
  ExpectIdentical(*qg, *qw);
}

TEST(QConvTest, ReferenceMatchesHandComputedExample) {
  // Channel 0: codes 1..9 with zero point 1, i.e. values 0..8; channel 1: all 1 above zero.
  const ConvShape s{2, 3, 3, 1, 2, 2, 1, 0, 1};
  std::vector<uint8_t> input = {1, 2, 3, 4, 5, 6, 7, 8, 9, 2, 2, 2, 2, 2, 2, 2, 2, 2};
  std::vector<int8_t> weights = {1, -1, 2, 0, 1, 1, 1, 1};
  auto acc = ReferenceConvAccumulate(s, input, 1, weights);
  ASSERT_TRUE(acc.ok()) << acc.status().ToString();
  EXPECT_EQ(*acc, (std::vector<int32_t>{5, 7, 11, 13, 4, 4, 4, 4}));
  // y = (acc0 * 0.5 + acc1 * 0.25) * 2 - 8 = {-1, 1, 5, 7}, ReLU -> {0, 1, 5, 7}.
  Requant rq{2.f, {0.5f, 0.25f}, {-8.f}, true};
  auto y = Requantize(s, *acc, rq);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(*y, (std::vector<float>{0.f, 1.f, 5.f, 7.f}));
  // y / 2 = {0, 0.5, 2.5, 3.5}: halves round to even, then + 3.
  auto q = QuantizeOutput(*y, 2.f, 3);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, (std::vector<uint8_t>{3, 3, 5, 7}));
  // Saturation at both ends.
  EXPECT_EQ(QuantizeOutput({-1000.f, 1000.f}, 1.f, 0).value(), (std::vector<uint8_t>{0, 255}));
}

void ExpectError(const Status& st, ErrorCode code, const std::string& needle);

// Per-region zero points (activation ranges per local region): region 1 of the example above
// with its own zero point, and a padded 3x3 on a 1x1 input where only the centre tap is inside:
// the padding taps must add nothing whatever the region's zero point.
TEST(QConvTest, PerRegionZeroPointsHandComputed) {
  const ConvShape s{2, 3, 3, 1, 2, 2, 1, 0, 1};
  const std::vector<uint8_t> input = {1, 2, 3, 4, 5, 6, 7, 8, 9, 2, 2, 2, 2, 2, 2, 2, 2, 2};
  const std::vector<int8_t> weights = {1, -1, 2, 0, 1, 1, 1, 1};
  auto acc = ReferenceConvAccumulate(s, input, std::vector<int32_t>{1, 0}, weights);
  ASSERT_TRUE(acc.ok()) << acc.status().ToString();
  EXPECT_EQ(*acc, (std::vector<int32_t>{5, 7, 11, 13, 8, 8, 8, 8}));

  const ConvShape pad{2, 1, 1, 1, 3, 3, 1, 1, 1};
  const std::vector<int8_t> ones(pad.weight_size(), 1);
  const std::vector<int32_t> zps = {2, 4};
  auto centre = ReferenceConvAccumulate(pad, {5, 9}, zps, ones);
  ASSERT_TRUE(centre.ok()) << centre.status().ToString();
  EXPECT_EQ(*centre, (std::vector<int32_t>{3, 5}));
  for (KernelPath path : AllKernelPaths()) {
    auto w = PrepareInt8ConvWeights(pad, ones, path);
    if (!w.ok()) continue;  // a path this CPU lacks (checked elsewhere)
    std::vector<int32_t> got;
    ASSERT_TRUE(Int8ConvAccumulate(*w, {5, 9}, zps, &got).ok());
    EXPECT_EQ(got, *centre) << KernelPathName(path);
  }
  // y = 3 * (0.5 * 2) + 5 * (0.25 * 4) - 1 = 7: each region's scale is weight x input scale.
  Requant rq{1.f, {0.5f, 0.25f}, {-1.f}, false, {2.f, 4.f}};
  auto y = Requantize(pad, *centre, rq);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(*y, (std::vector<float>{7.f}));

  ExpectError(ReferenceConvAccumulate(pad, {5, 9}, std::vector<int32_t>{2}, ones).status(),
              ErrorCode::kInvalidArgument, "input_zero_points has 1 values, needs one per region (2)");
  ExpectError(ReferenceConvAccumulate(pad, {5, 9}, std::vector<int32_t>{2, 256}, ones).status(),
              ErrorCode::kOutOfRange, "input_zero_points[1] = 256");
  rq.input_scales = {2.f};
  ExpectError(Requantize(pad, *centre, rq).status(), ErrorCode::kInvalidArgument, "input_scales has 1 values");
  rq.input_scales = {2.f, 0.f};
  ExpectError(Requantize(pad, *centre, rq).status(), ErrorCode::kOutOfRange, "input_scales[1]");
}

// Random per-region zero points: every int8 path this CPU has against the reference, and the
// reference against per-tensor runs region by region (the same sums, computed another way).
TEST(QGemmTest, PerRegionZeroPointsMatchReferenceOnEveryPath) {
  std::mt19937 rng(TestSeed());
  for (const ConvShape& s : Shapes(rng)) {
    SCOPED_TRACE(Describe(s));
    const auto input = RandomVector<uint8_t>(rng, s.input_size(), 0, 255);
    const auto weights = RandomVector<int8_t>(rng, s.weight_size(), -128, 127);
    const auto zps = RandomVector<int32_t>(rng, static_cast<size_t>(s.regions()), 0, 255);
    auto want = ReferenceConvAccumulate(s, input, zps, weights);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    const size_t plane = s.pixels();
    for (int g = 0; g < s.regions(); ++g) {
      auto one = ReferenceConvAccumulate(s, input, zps[static_cast<size_t>(g)], weights);
      ASSERT_TRUE(one.ok());
      for (int oc = 0; oc < s.out_channels; ++oc) {
        const size_t at = (static_cast<size_t>(oc) * s.regions() + g) * plane;
        ASSERT_TRUE(std::equal(one->begin() + at, one->begin() + at + plane, want->begin() + at)) << "region " << g;
      }
    }
    for (KernelPath path : AllKernelPaths()) {
      auto w = PrepareInt8ConvWeights(s, weights, path);
      if (!w.ok()) {
        EXPECT_EQ(w.status().code(), ErrorCode::kFailedPrecondition);
        continue;
      }
      std::vector<int32_t> got;
      ASSERT_TRUE(Int8ConvAccumulate(*w, input, zps, &got).ok());
      ExpectIdentical(got, *want);
    }
  }
}

void CheckInt8Path(KernelPath path) {
  std::mt19937 rng(TestSeed());
  for (const ConvShape& s : Shapes(rng)) {
    SCOPED_TRACE(Describe(s));
    const auto input = RandomVector<uint8_t>(rng, s.input_size(), 0, 255);
    const auto weights = RandomVector<int8_t>(rng, s.weight_size(), -128, 127);
    const int32_t zp = static_cast<int32_t>(rng() % 256);
    auto want = ReferenceConvAccumulate(s, input, zp, weights);
    auto got = Int8ConvAccumulate(s, input, zp, weights, path);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
    ExpectSameOutputs(s, *got, *want, RandomRequant(rng, s));
  }
}

TEST(QGemmTest, PortableConvMatchesReference) { CheckInt8Path(KernelPath::kPortable); }

TEST(QGemmTest, Avx2ConvMatchesReference) {
  if (!CpuHasAvx2()) GTEST_SKIP() << "this CPU has no AVX2";
  CheckInt8Path(KernelPath::kAvx2);
}

TEST(QGemmTest, Avx512VnniConvMatchesReference) {
  if (!CpuHasAvx512Vnni()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  CheckInt8Path(KernelPath::kAvx512Vnni);
}

TEST(QGemmTest, NeonConvMatchesReference) {
  if (!CpuHasNeon()) GTEST_SKIP() << "not an AArch64 build";
  CheckInt8Path(KernelPath::kNeon);
}

TEST(QGemmTest, NeonDotConvMatchesReference) {
  if (!CpuHasNeonDot()) GTEST_SKIP() << "this CPU has no ARMv8.2 dot product";
  CheckInt8Path(KernelPath::kNeonDot);
}

TEST(QGemmTest, AutoPicksTheFastestPathThisCpuHas) {
  // kAuto must agree with the reference whichever path it takes.
  CheckInt8Path(KernelPath::kAuto);
}

TEST(QGemmTest, Avx512VnniConvOnRegionAndTileEdges) {
  // Region depths that are not multiples of 4 (zero-weight padding of the last quad), N around
  // the 16/64-column tiles, M around the 16/12/8/6/4-row blocks.
  if (!CpuHasAvx512Vnni()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  std::mt19937 rng(TestSeed());
  const std::vector<ConvShape> shapes = {
      // in_c, h, w, out_c, kh, kw, stride, pad, group
      {4, 5, 5, 7, 3, 3, 1, 1, 1},     // depth 9, N 25, M 7
      {6, 9, 7, 13, 3, 3, 1, 1, 2},    // depth 18, N 63
      {9, 8, 8, 5, 1, 1, 1, 0, 3},     // 1x1 direct, depth 3, N 64
      {9, 4, 4, 23, 1, 1, 1, 0, 3},    // 1x1 direct, N 16, M 23 (16 + 4 + 3 x 1)
      {5, 17, 1, 11, 1, 1, 1, 0, 5},   // depth 5, N 17
      {10, 6, 11, 19, 1, 3, 1, 1, 5},  // depth 15, N 66 (64 + 2)
      {3, 13, 5, 30, 3, 3, 2, 1, 1},   // stride 2, N 21, M 30 (2 x 12 + 4 + 2 x 1)
      {7, 12, 12, 9, 2, 2, 1, 0, 7},   // even kernel, depth 28, N 121
      {2, 1, 1, 3, 1, 1, 1, 0, 1},     // N 1, depth 1
      {8, 10, 10, 17, 3, 3, 3, 2, 4},  // stride 3, N 16
      {5, 4, 4, 13, 1, 1, 1, 0, 5},    // N 16, M 13: a 16-row tile with 3 padded rows
      {4, 8, 9, 40, 3, 3, 2, 0, 2},    // stride 2 without padding, N 16, M 40 (16 + 16 + 8)
      {3, 30, 30, 6, 3, 3, 1, 1, 3},   // rows wider than 16 columns (ow 30), N 900
      // The padded planes: rows of up to 64 bytes are one masked load and store, wider ones not.
      {2, 5, 62, 3, 3, 3, 1, 1, 1},    // padded row exactly 64 bytes
      {2, 4, 64, 3, 3, 3, 1, 0, 2},    // 64 bytes, no padding
      {2, 4, 63, 3, 3, 3, 2, 1, 1},    // padded row 65 bytes: the wide path
      {4, 3, 58, 5, 7, 7, 2, 3, 4},    // padding 3 (a 7x7 stem), 64 bytes
  };
  for (const ConvShape& s : shapes) {
    SCOPED_TRACE(Describe(s));
    ASSERT_TRUE(ValidateConvShape(s).ok());
    const auto input = RandomVector<uint8_t>(rng, s.input_size(), 0, 255);
    const auto weights = RandomVector<int8_t>(rng, s.weight_size(), -128, 127);
    const int32_t zp = static_cast<int32_t>(rng() % 256);
    auto want = ReferenceConvAccumulate(s, input, zp, weights);
    auto got = Int8ConvAccumulate(s, input, zp, weights, KernelPath::kAvx512Vnni);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
    ExpectSameOutputs(s, *got, *want, RandomRequant(rng, s));
  }
}

// Random GEMMs (odd region lengths, ldb > n, with and without offsets): `path` against portable.
void CheckGemmAgainstPortable(KernelPath path) {
  std::mt19937 rng(TestSeed());
  std::uniform_int_distribution<int> dim(1, 40), regions(1, 4), extra(0, 5), wide(41, 150);
  for (int trial = 0; trial < 60; ++trial) {
    GemmShape s;
    s.m = dim(rng);
    s.n = trial % 4 == 3 ? wide(rng) : dim(rng);  // some beyond one 64-column tile
    s.group_k = dim(rng);  // odd lengths exercise the zero-weight partner / padding
    s.k = s.group_k * regions(rng);
    s.ldb = s.n + extra(rng);
    SCOPED_TRACE("m " + std::to_string(s.m) + " n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
                 " group_k " + std::to_string(s.group_k) + " ldb " + std::to_string(s.ldb));
    const auto a = RandomVector<int8_t>(rng, static_cast<size_t>(s.m) * s.k, -128, 127);
    const auto b = RandomVector<uint8_t>(rng, static_cast<size_t>(s.k) * s.ldb, 0, 255);
    const auto offset = RandomVector<int32_t>(rng, static_cast<size_t>(s.m) * (s.k / s.group_k), -100000, 100000);
    const size_t out = static_cast<size_t>(s.m) * (s.k / s.group_k) * s.n;
    for (const int32_t* off : {offset.data(), static_cast<const int32_t*>(nullptr)}) {
      std::vector<int32_t> fast(out, -1), slow(out, -2);
      ASSERT_TRUE(QGemm(s, a.data(), b.data(), off, fast.data(), path).ok());
      ASSERT_TRUE(QGemm(s, a.data(), b.data(), off, slow.data(), KernelPath::kPortable).ok());
      ExpectIdentical(fast, slow);
    }
  }
}

TEST(QGemmTest, Avx2GemmMatchesPortable) {
  if (!CpuHasAvx2()) GTEST_SKIP() << "this CPU has no AVX2";
  CheckGemmAgainstPortable(KernelPath::kAvx2);
}

TEST(QGemmTest, Avx512VnniGemmMatchesPortable) {
  if (!CpuHasAvx512Vnni()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  CheckGemmAgainstPortable(KernelPath::kAvx512Vnni);
}

TEST(QGemmTest, NeonGemmMatchesPortable) {
  if (!CpuHasNeon()) GTEST_SKIP() << "not an AArch64 build";
  CheckGemmAgainstPortable(KernelPath::kNeon);
}

TEST(QGemmTest, NeonDotGemmMatchesPortable) {
  if (!CpuHasNeonDot()) GTEST_SKIP() << "this CPU has no ARMv8.2 dot product";
  CheckGemmAgainstPortable(KernelPath::kNeonDot);
}

TEST(QGemmTest, Avx512VnniGemmExtremeValues) {
  // Every product at its extreme (w = -128 or 127, b = 0 or 255) with depths 1..9, so a quad
  // sum reaches 4 * 128 * 255; the int32 total must still be exact.
  if (!CpuHasAvx512Vnni()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  for (int group_k = 1; group_k <= 9; ++group_k)
    for (const auto& [w, v] : {std::pair<int, int>{-128, 255}, {127, 255}, {-128, 0}, {127, 0}}) {
      GemmShape s;
      s.m = 5;
      s.n = 37;
      s.group_k = group_k;
      s.k = 3 * group_k;
      s.ldb = s.n;
      const std::vector<int8_t> a(static_cast<size_t>(s.m) * s.k, static_cast<int8_t>(w));
      const std::vector<uint8_t> b(static_cast<size_t>(s.k) * s.ldb, static_cast<uint8_t>(v));
      const size_t out = static_cast<size_t>(s.m) * 3 * s.n;
      std::vector<int32_t> fast(out, -1), slow(out, -2);
      ASSERT_TRUE(QGemm(s, a.data(), b.data(), nullptr, fast.data(), KernelPath::kAvx512Vnni).ok());
      ASSERT_TRUE(QGemm(s, a.data(), b.data(), nullptr, slow.data(), KernelPath::kPortable).ok());
      ExpectIdentical(fast, slow);
      EXPECT_EQ(fast[0], w * v * group_k);
    }
}

void ExpectError(const Status& st, ErrorCode code, const std::string& needle);

TEST(QGemmTest, PreparedWeightsMatchReferenceOnEveryPath) {
  std::mt19937 rng(TestSeed());
  std::vector<int32_t> reused(7, -5);  // one buffer for every call: it grows and shrinks
  for (const ConvShape& s : Shapes(rng)) {
    SCOPED_TRACE(Describe(s));
    const auto input = RandomVector<uint8_t>(rng, s.input_size(), 0, 255);
    const auto weights = RandomVector<int8_t>(rng, s.weight_size(), -128, 127);
    const int32_t zp = static_cast<int32_t>(rng() % 256);
    auto want = ReferenceConvAccumulate(s, input, zp, weights);
    ASSERT_TRUE(want.ok());
    auto paths = AllKernelPaths();
    paths.push_back(KernelPath::kAuto);
    for (KernelPath path : paths) {
      SCOPED_TRACE(KernelPathName(path));
      auto w = PrepareInt8ConvWeights(s, weights, path);
      if (!CpuHas(path)) {
        EXPECT_EQ(w.status().code(), ErrorCode::kFailedPrecondition);
        continue;
      }
      ASSERT_TRUE(w.ok()) << w.status().ToString();
      EXPECT_NE(w->path, KernelPath::kAuto);
      auto got = Int8ConvAccumulate(*w, input, zp);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ExpectIdentical(*got, *want);
      ASSERT_TRUE(Int8ConvAccumulate(*w, input, zp, &reused).ok());
      ExpectIdentical(reused, *want);
    }
  }
}

TEST(QGemmTest, PreparedWeightsAreChecked) {
  const ConvShape s{8, 5, 5, 4, 3, 3, 1, 1, 4};
  const std::vector<uint8_t> input(s.input_size(), 3);
  const std::vector<int8_t> weights(s.weight_size(), 1);
  auto w = PrepareInt8ConvWeights(s, weights);
  ASSERT_TRUE(w.ok());
  ExpectError(Int8ConvAccumulate(*w, std::vector<uint8_t>(5, 0), 0).status(), ErrorCode::kInvalidArgument, "input");
  ExpectError(Int8ConvAccumulate(*w, input, 300).status(), ErrorCode::kOutOfRange, "input_zero_point");
  ExpectError(Int8ConvAccumulate(*w, input, 0, nullptr), ErrorCode::kInvalidArgument, "acc");
  Int8ConvWeights broken = *w;
  broken.region_sums.pop_back();
  ExpectError(Int8ConvAccumulate(broken, input, 0).status(), ErrorCode::kInvalidArgument, "PrepareInt8ConvWeights");
  broken = *w;
  broken.shape.out_channels = 5;  // the buffers are for 4
  ExpectError(Int8ConvAccumulate(broken, input, 0).status(), ErrorCode::kInvalidArgument, "PrepareInt8ConvWeights");
  broken = *w;
  broken.path = KernelPath::kAuto;
  ExpectError(Int8ConvAccumulate(broken, input, 0).status(), ErrorCode::kInvalidArgument, "PrepareInt8ConvWeights");
  ExpectError(PrepareInt8ConvWeights(s, {1, 2}).status(), ErrorCode::kInvalidArgument, "weights");
}

// Requantize against the documented per-element order, written out (the int8 paths all share
// Requantize, so the comparisons above cannot see a change in it). Includes accumulators of 0
// (signed zeros through the ReLU) and extreme sums.
TEST(QConvTest, RequantizeFollowsTheDocumentedOrder) {
  std::mt19937 rng(TestSeed());
  for (const ConvShape& s : Shapes(rng)) {
    SCOPED_TRACE(Describe(s));
    const Requant rq = RandomRequant(rng, s);
    std::vector<int32_t> acc = RandomVector<int32_t>(rng, s.acc_size(), -3000000, 3000000);
    for (size_t i = 0; i < acc.size(); i += 7) acc[i] = 0;
    for (size_t i = 3; i < acc.size(); i += 11) acc[i] = (i & 1) ? 2147483647 : -2147483647 - 1;
    auto got = Requantize(s, acc, rq);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const int regions = s.regions();
    const size_t pixels = s.pixels();
    std::vector<float> want(s.output_size());
    for (int oc = 0; oc < s.out_channels; ++oc)
      for (size_t p = 0; p < pixels; ++p) {
        float sum = 0.f;
        for (int g = 0; g < regions; ++g)
          sum += static_cast<float>(acc[(static_cast<size_t>(oc) * regions + g) * pixels + p]) *
                 rq.weight_scales[static_cast<size_t>(oc) * regions + g];
        float y = sum * rq.input_scale;
        y += rq.bias.empty() ? 0.f : rq.bias[oc];
        want[static_cast<size_t>(oc) * pixels + p] = rq.relu && y < 0.f ? 0.f : y;
      }
    ExpectIdentical(*got, want);
  }
}

TEST(QGemmTest, ExtremeValuesStayExact) {
  // |w * (a - z)| = 128 * 255 at every tap: where an int16 pair sum (maddubs) would saturate.
  const ConvShape s{64, 6, 6, 5, 3, 3, 1, 1, 64};
  for (const auto& [w, a, z] : {std::tuple<int, int, int>{-128, 255, 0}, {-128, 0, 255}, {127, 255, 0}}) {
    const std::vector<uint8_t> input(s.input_size(), static_cast<uint8_t>(a));
    const std::vector<int8_t> weights(s.weight_size(), static_cast<int8_t>(w));
    auto want = ReferenceConvAccumulate(s, input, z, weights);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ((*want)[s.out_width() + 1], w * (a - z) * s.region_depth());  // an interior pixel: all taps
    for (KernelPath path : AllKernelPaths()) {
      if (!CpuHas(path)) continue;
      SCOPED_TRACE(KernelPathName(path));
      auto got = Int8ConvAccumulate(s, input, z, weights, path);
      ASSERT_TRUE(got.ok());
      ExpectIdentical(*got, *want);
    }
  }
}

TEST(LutTest, MatchesReferenceAtEveryBitWidth) {
  std::mt19937 rng(TestSeed());
  const std::vector<ConvShape> shapes = Shapes(rng);
  for (int wbits = 1; wbits <= 4; ++wbits)
    for (int abits = 1; abits <= 4; ++abits)
      for (const ConvShape& s : shapes) {
        SCOPED_TRACE("w" + std::to_string(wbits) + "a" + std::to_string(abits) + " " + Describe(s));
        const auto codes = RandomVector<uint8_t>(rng, s.weight_size(), 0, (1 << wbits) - 1);
        const auto input = RandomVector<uint8_t>(rng, s.input_size(), 0, (1 << abits) - 1);
        const int32_t zp = static_cast<int32_t>(rng() % (1u << abits));
        auto weights = DecodeLutWeights(codes, wbits);
        auto lw = PrepareLutWeights(s, codes, wbits);
        ASSERT_TRUE(weights.ok() && lw.ok()) << lw.status().ToString();
        auto want = ReferenceConvAccumulate(s, input, zp, *weights);
        auto got = LutConvAccumulate(*lw, input, abits, zp);
        auto int8 = Int8ConvAccumulate(s, input, zp, *weights);
        ASSERT_TRUE(want.ok() && got.ok() && int8.ok()) << got.status().ToString();
        ExpectSameOutputs(s, *got, *want, RandomRequant(rng, s));
        ExpectIdentical(*int8, *want);
      }
}

TEST(LutTest, WeightLevelsAreOddAndSymmetric) {
  EXPECT_EQ(DecodeLutWeights({0, 1}, 1).value(), (std::vector<int8_t>{-1, 1}));
  EXPECT_EQ(DecodeLutWeights({0, 1, 2, 3}, 2).value(), (std::vector<int8_t>{-3, -1, 1, 3}));
  EXPECT_EQ(DecodeLutWeights({0, 7, 8, 15}, 4).value(), (std::vector<int8_t>{-15, -1, 1, 15}));
}

// The error code, and the argument's name in the message.
void ExpectError(const Status& st, ErrorCode code, const std::string& needle) {
  EXPECT_EQ(st.code(), code) << st.ToString();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.ToString();
}

TEST(KernelsErrorTest, ShapesAndArgumentsAreValidated) {
  const ConvShape good{8, 5, 5, 4, 3, 3, 1, 1, 4};
  auto with = [&](auto change) { ConvShape s = good; change(s); return ValidateConvShape(s); };
  ASSERT_TRUE(ValidateConvShape(good).ok());
  ExpectError(with([](ConvShape& s) { s.group_size = 3; }), ErrorCode::kInvalidArgument, "group_size");
  ExpectError(with([](ConvShape& s) { s.group_size = 0; }), ErrorCode::kInvalidArgument, "group_size");
  ExpectError(with([](ConvShape& s) { s.stride = 0; }), ErrorCode::kInvalidArgument, "stride");
  ExpectError(with([](ConvShape& s) { s.padding = -1; }), ErrorCode::kInvalidArgument, "padding");
  ExpectError(with([](ConvShape& s) { s.kernel_h = 8; }), ErrorCode::kInvalidArgument, "kernel");
  ExpectError(with([](ConvShape& s) { s.in_channels = s.group_size = 8192; }), ErrorCode::kOutOfRange,
              "region depth");

  const std::vector<uint8_t> input(good.input_size(), 0);
  const std::vector<int8_t> weights(good.weight_size(), 0);
  ExpectError(ReferenceConvAccumulate(good, {1, 2}, 0, weights).status(), ErrorCode::kInvalidArgument, "input");
  ExpectError(Int8ConvAccumulate(good, input, 0, {1}).status(), ErrorCode::kInvalidArgument, "weights");
  ExpectError(Int8ConvAccumulate(good, input, 256, weights).status(), ErrorCode::kOutOfRange, "input_zero_point");

  const std::vector<int32_t> acc(good.acc_size(), 0);
  ExpectError(Requantize(good, acc, Requant{1.f, {1.f}, {}, false}).status(), ErrorCode::kInvalidArgument,
              "weight_scales");
  ExpectError(Requantize(good, acc, Requant{1.f, std::vector<float>(8, 0.f), {}, false}).status(),
              ErrorCode::kOutOfRange, "weight_scales[0]");
  ExpectError(Requantize(good, acc, Requant{1.f, std::vector<float>(8, 1.f), {1.f}, false}).status(),
              ErrorCode::kInvalidArgument, "bias");
  ExpectError(QuantizeOutput({1.f}, 1.f, 300).status(), ErrorCode::kOutOfRange, "zero_point");

  const std::vector<uint8_t> codes(good.weight_size(), 1);
  ExpectError(PrepareLutWeights(good, codes, 0).status(), ErrorCode::kInvalidArgument, "wbits");
  ExpectError(PrepareLutWeights(good, codes, 5).status(), ErrorCode::kInvalidArgument, "wbits");
  std::vector<uint8_t> bad_codes = codes;
  bad_codes[7] = 4;
  ExpectError(PrepareLutWeights(good, bad_codes, 2).status(), ErrorCode::kOutOfRange, "weight code[7]");
  auto lw = PrepareLutWeights(good, codes, 2);
  ASSERT_TRUE(lw.ok());
  ExpectError(LutConvAccumulate(*lw, input, 9, 0).status(), ErrorCode::kInvalidArgument, "abits");
  std::vector<uint8_t> bad_input = input;
  bad_input[3] = 16;
  ExpectError(LutConvAccumulate(*lw, bad_input, 4, 0).status(), ErrorCode::kOutOfRange, "input[3]");
  ExpectError(LutConvAccumulate(*lw, input, 2, 4).status(), ErrorCode::kOutOfRange, "input_zero_point");

  int32_t out[8];
  const int8_t a[8] = {};
  const uint8_t b[8] = {};
  ExpectError(QGemm(GemmShape{1, 2, 4, 3, 2}, a, b, nullptr, out), ErrorCode::kInvalidArgument, "group_k");
  ExpectError(QGemm(GemmShape{1, 2, 4, 2, 1}, a, b, nullptr, out), ErrorCode::kInvalidArgument, "ldb");
  if (!CpuHasAvx2())
    ExpectError(QGemm(GemmShape{1, 2, 4, 2, 2}, a, b, nullptr, out, KernelPath::kAvx2),
                ErrorCode::kFailedPrecondition, "avx2");
  if (!CpuHasAvx512Vnni()) {
    ExpectError(QGemm(GemmShape{1, 2, 4, 2, 2}, a, b, nullptr, out, KernelPath::kAvx512Vnni),
                ErrorCode::kFailedPrecondition, "avx512vnni");
    ExpectError(Int8ConvAccumulate(good, input, 0, weights, KernelPath::kAvx512Vnni).status(),
                ErrorCode::kFailedPrecondition, "avx512vnni");
  }
  ExpectError(QGemm(GemmShape{1, 2, 4, 2, 2}, a, b, nullptr, out, static_cast<KernelPath>(9)),
              ErrorCode::kInvalidArgument, "path");
  EXPECT_STREQ(KernelPathName(KernelPath::kAvx512Vnni), "avx512vnni");
}

}  // namespace
}  // namespace splitinfer::kernels
