// The look-up-table convolution (kernels/lut.h) on every path this CPU has, against the readable
// ReferenceConvAccumulate: equal accumulators bit for bit, at every bit width, with zero padding,
// per-tensor and per-region zero points, extreme codes and regions deep enough to overflow any
// narrow intermediate that is not widened in time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/lut.h"
#include "kernels/qconv.h"
#include "kernels/qgemm.h"
#include "conv_test_util.h"
#include "test_seed.h"

namespace splitinfer::kernels {
namespace {

using ::splitinfer::testing::TestSeed;
using test_util::CpuHas;
using test_util::Describe;
using test_util::RandomVector;

// Reports the first difference only (the vectors can be large), with its [oc][region][pixel].
void ExpectIdentical(const ConvShape& s, const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) {
      const size_t pixel = i % s.pixels(), row = i / s.pixels();
      ADD_FAILURE() << "first difference at " << i << " (oc " << row / s.regions() << ", region "
                    << row % s.regions() << ", pixel " << pixel << "): got " << got[i] << ", want " << want[i];
      return;
    }
}

void ExpectError(const Status& st, ErrorCode code, const std::string& needle) {
  EXPECT_EQ(st.code(), code) << st.ToString();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.ToString();
}


// A kernel: the path and the table width (4 slots: 16-entry tables, vpshufb or tbl; 6: 64-entry
// tables, vpermb, AVX-512 VBMI only).
struct Kernel {
  KernelPath path;
  int slots;
};

bool Has(const Kernel& k) { return CpuHas(k.path) && (k.slots == 4 || CpuHasAvx512Vbmi()); }

std::string Name(const Kernel& k) { return std::string(KernelPathName(k.path)) + "_s" + std::to_string(k.slots); }

// A random valid shape: odd sizes, strides 1..3, padding 0..3, kernels 1/2/3/5/7 (some
// non-square), group sizes that leave region depths of every residue mod 4, out_channels
// rarely a multiple of the channel block.
ConvShape RandomShape(std::mt19937& rng) {
  std::uniform_int_distribution<int> size(1, 23), out(1, 37), stride(1, 3), pad(0, 3), regions(1, 3), pick(0, 99);
  const int groups[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 19};
  const int kernels[] = {1, 1, 2, 3, 3, 3, 5, 7};
  for (;;) {
    ConvShape s;
    s.group_size = groups[pick(rng) % 12];
    s.in_channels = s.group_size * regions(rng);
    s.in_height = size(rng);
    s.in_width = size(rng);
    s.out_channels = out(rng);
    s.kernel_h = kernels[pick(rng) % 8];
    s.kernel_w = pick(rng) < 80 ? s.kernel_h : kernels[pick(rng) % 8];
    s.stride = stride(rng);
    s.padding = pad(rng);
    if (ValidateConvShape(s).ok()) return s;
  }
}

// Fixed shapes for the corners the random ones may miss.
std::vector<ConvShape> CornerShapes() {
  return {
      // in_c, h, w, out_c, kh, kw, stride, pad, group
      {3, 23, 21, 6, 7, 7, 2, 3, 3},     // a ResNet stem in miniature: 3-channel region, 7x7, s2, p3
      {1, 28, 28, 9, 3, 3, 2, 1, 1},     // the Fashion-MNIST stem: one channel, columns share chunks
      {64, 14, 14, 64, 3, 3, 1, 1, 16},  // a real layer shape
      {64, 20, 20, 5, 3, 3, 1, 1, 64},   // 144 chunks: more than one pixel tile per region
      {16, 9, 11, 7, 3, 3, 2, 1, 16},    // stride 2, per-channel
      {12, 6, 6, 9, 1, 1, 1, 0, 4},      // 1x1
      {24, 5, 7, 6, 1, 1, 2, 0, 8},      // 1x1 with stride
      {6, 4, 9, 2, 1, 3, 1, 1, 2},       // non-square kernel, 2-channel regions
      {5, 3, 3, 3, 3, 3, 1, 0, 5},       // a single output pixel
      {9, 2, 2, 5, 3, 3, 1, 1, 3},       // kernel larger than the unpadded input
      {1, 1, 1, 1, 1, 1, 1, 0, 1},       // the smallest
      {2, 40, 3, 4, 3, 3, 3, 3, 1},      // stride 3 > pad, tall and narrow
      {4, 9, 70, 3, 3, 3, 1, 1, 4},      // rows wider than one vector of pixels
      {8, 5, 5, 3, 5, 5, 4, 2, 8},       // stride 4 > kernel phases
  };
}

// One case on one path: random codes (or all-max), per-tensor or per-region zero points.
struct Case {
  ConvShape shape;
  int wbits = 2, abits = 4;
  std::vector<uint8_t> codes, input;
  std::vector<int32_t> zero_points;  // one per region
  bool per_tensor = true;
};

Case RandomCase(std::mt19937& rng, const ConvShape& s, int wbits, int abits) {
  Case c;
  c.shape = s;
  c.wbits = wbits;
  c.abits = abits;
  const int amax = (1 << abits) - 1, wmax = (1 << wbits) - 1;
  const int mode = static_cast<int>(rng() % 8);
  c.codes = RandomVector<uint8_t>(rng, s.weight_size(), 0, wmax);
  c.input = RandomVector<uint8_t>(rng, s.input_size(), 0, amax);
  if (mode == 0) std::fill(c.input.begin(), c.input.end(), static_cast<uint8_t>(amax));  // extreme codes
  if (mode == 1) std::fill(c.codes.begin(), c.codes.end(), static_cast<uint8_t>(wmax));
  if (mode == 2) std::fill(c.codes.begin(), c.codes.end(), uint8_t{0});  // all weights at the most negative level
  c.per_tensor = rng() % 2;
  std::uniform_int_distribution<int> z(0, amax);
  const int32_t edge = (rng() % 2) ? 0 : amax;  // the range ends are the interesting zero points
  for (int g = 0; g < s.regions(); ++g) c.zero_points.push_back(c.per_tensor ? edge : (rng() % 3 ? z(rng) : edge));
  return c;
}

void ExpectMatchesReference(const Case& c, const Kernel& kernel) {
  SCOPED_TRACE(Name(kernel) + " w" + std::to_string(c.wbits) + "a" + std::to_string(c.abits) +
               " " + Describe(c.shape) + (c.per_tensor ? " z=" + std::to_string(c.zero_points[0]) : " per-region z"));
  auto weights = DecodeLutWeights(c.codes, c.wbits);
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  auto want = ReferenceConvAccumulate(c.shape, c.input, c.zero_points, *weights);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  auto lw = PrepareLutWeights(c.shape, c.codes, c.wbits, kernel.path, kernel.slots);
  ASSERT_TRUE(lw.ok()) << lw.status().ToString();
  EXPECT_EQ(lw->path, kernel.path);
  EXPECT_EQ(lw->slots, kernel.slots);
  // The buffer form into a buffer of the wrong size full of garbage: every element is written.
  std::vector<int32_t> acc(c.shape.acc_size() + 7, -12345);
  ASSERT_TRUE(LutConvAccumulate(*lw, c.input, c.abits, c.zero_points, &acc).ok());
  ExpectIdentical(c.shape, acc, *want);
  if (c.per_tensor) {
    auto got = LutConvAccumulate(*lw, c.input, c.abits, c.zero_points[0]);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectIdentical(c.shape, *got, *want);
  } else {
    auto got = LutConvAccumulate(*lw, c.input, c.abits, c.zero_points);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectIdentical(c.shape, *got, *want);
  }
}

class LutPathTest : public ::testing::TestWithParam<Kernel> {
 protected:
  void SetUp() override {
    if (!Has(GetParam())) GTEST_SKIP() << "this CPU has no " << Name(GetParam());
  }
};

TEST_P(LutPathTest, CornerShapesAtEveryBitWidth) {
  std::mt19937 rng(TestSeed());
  for (const ConvShape& s : CornerShapes())
    for (int wbits = 1; wbits <= 4; ++wbits)
      for (int abits = 1; abits <= 4; ++abits) {
        ExpectMatchesReference(RandomCase(rng, s, wbits, abits), GetParam());
        if (HasFatalFailure() || HasFailure()) return;
      }
}

TEST_P(LutPathTest, RandomShapes) {
  std::mt19937 rng(TestSeed() + 1);
  for (int i = 0; i < 300; ++i) {
    const ConvShape s = RandomShape(rng);
    ExpectMatchesReference(RandomCase(rng, s, 1 + static_cast<int>(rng() % 4), 1 + static_cast<int>(rng() % 4)),
                           GetParam());
    if (HasFailure()) return;
  }
}

// 512 input channels x 3x3 = 4608 taps in one region, every code at its maximum: uint8 sums of
// more than n_u8 chunks, or int16 sums of the whole region, would wrap. Zero point 0 makes every
// term positive (the largest sum), the maximum zero point every term negative.
TEST_P(LutPathTest, DeepRegionsWithExtremeCodesStayExact) {
  const ConvShape s{512, 5, 6, 5, 3, 3, 1, 1, 512};
  for (int wbits = 1; wbits <= 4; ++wbits)
    for (int abits = 1; abits <= 4; ++abits)
      for (int32_t z : {0, (1 << abits) - 1}) {
        Case c;
        c.shape = s;
        c.wbits = wbits;
        c.abits = abits;
        c.codes.assign(s.weight_size(), static_cast<uint8_t>((1 << wbits) - 1));
        c.input.assign(s.input_size(), static_cast<uint8_t>((1 << abits) - 1));
        c.zero_points = {z};
        ExpectMatchesReference(c, GetParam());
        if (HasFailure()) return;
      }
}

// Each region with its own zero point, padding included: the border of region g must read z_g.
TEST_P(LutPathTest, PerRegionZeroPointsFillTheirOwnPadding) {
  std::mt19937 rng(TestSeed() + 2);
  const ConvShape s{12, 7, 6, 10, 3, 3, 1, 2, 3};  // 4 regions, padding 2: many border taps
  for (int abits = 1; abits <= 4; ++abits) {
    Case c = RandomCase(rng, s, 2, abits);
    c.per_tensor = false;
    c.zero_points = {0, (1 << abits) - 1, (1 << abits) / 2, 1 % (1 << abits)};
    ExpectMatchesReference(c, GetParam());
  }
}

// Results do not depend on what ran before on the thread (scratch buffers are reused and grow).
TEST_P(LutPathTest, RepeatedCallsOnReusedBuffersAgree) {
  std::mt19937 rng(TestSeed() + 3);
  const Case big = RandomCase(rng, {64, 20, 20, 9, 3, 3, 1, 1, 16}, 2, 4);
  const Case small = RandomCase(rng, {3, 9, 7, 5, 3, 3, 2, 1, 3}, 2, 4);
  ExpectMatchesReference(big, GetParam());
  ExpectMatchesReference(small, GetParam());
  ExpectMatchesReference(big, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Kernels, LutPathTest,
                         ::testing::Values(Kernel{KernelPath::kPortable, 4}, Kernel{KernelPath::kAvx2, 4},
                                           Kernel{KernelPath::kAvx512Vnni, 4}, Kernel{KernelPath::kAvx512Vnni, 6},
                                           Kernel{KernelPath::kNeon, 4}, Kernel{KernelPath::kNeonDot, 4}),
                         [](const auto& param_info) { return Name(param_info.param); });

TEST(LutTest, AutoPicksTheFastestPathThisCpuHas) {
  const KernelPath best = CpuHasAvx512Vnni() ? KernelPath::kAvx512Vnni
                          : CpuHasAvx2()     ? KernelPath::kAvx2
                          : CpuHasNeonDot()  ? KernelPath::kNeonDot
                          : CpuHasNeon()     ? KernelPath::kNeon
                                             : KernelPath::kPortable;
  // Few output pixels: 16-entry tables everywhere (64-entry ones would be streamed, not reused).
  const ConvShape small{4, 5, 5, 3, 3, 3, 1, 1, 4};
  auto lw = PrepareLutWeights(small, std::vector<uint8_t>(small.weight_size(), 1), 2);
  ASSERT_TRUE(lw.ok());
  EXPECT_EQ(lw->path, best);
  EXPECT_EQ(lw->slots, 4);
  // Many: 64-entry tables where the CPU has VBMI.
  const ConvShape large{4, 16, 16, 3, 3, 3, 1, 1, 4};
  lw = PrepareLutWeights(large, std::vector<uint8_t>(large.weight_size(), 1), 2);
  ASSERT_TRUE(lw.ok());
  EXPECT_EQ(lw->slots, best == KernelPath::kAvx512Vnni && CpuHasAvx512Vbmi() ? 6 : 4);
  // The other paths always take 16-entry tables.
  for (KernelPath path : AvailableKernelPaths()) {
    if (path == KernelPath::kAvx512Vnni) continue;
    lw = PrepareLutWeights(large, std::vector<uint8_t>(large.weight_size(), 1), 2, path);
    ASSERT_TRUE(lw.ok()) << KernelPathName(path);
    EXPECT_EQ(lw->slots, 4) << KernelPathName(path);
  }
}

TEST(LutTest, ArgumentsAreChecked) {
  const ConvShape s{8, 5, 5, 4, 3, 3, 1, 1, 4};  // 2 regions
  const std::vector<uint8_t> codes(s.weight_size(), 1), input(s.input_size(), 2);
  ExpectError(PrepareLutWeights(s, codes, 2, static_cast<KernelPath>(9)).status(), ErrorCode::kInvalidArgument,
              "path");
  for (KernelPath path : {KernelPath::kAvx2, KernelPath::kAvx512Vnni, KernelPath::kNeon, KernelPath::kNeonDot})
    if (!CpuHas(path))
      ExpectError(PrepareLutWeights(s, codes, 2, path).status(), ErrorCode::kFailedPrecondition,
                  KernelPathName(path));
  ExpectError(PrepareLutWeights(s, {1, 2, 3}, 2).status(), ErrorCode::kInvalidArgument, "weight codes");
  ExpectError(PrepareLutWeights(s, codes, 2, KernelPath::kPortable, 5).status(), ErrorCode::kInvalidArgument,
              "slots");
  for (KernelPath path : {KernelPath::kPortable, KernelPath::kAvx2, KernelPath::kNeon, KernelPath::kNeonDot})
    if (CpuHas(path))
      ExpectError(PrepareLutWeights(s, codes, 2, path, 6).status(), ErrorCode::kInvalidArgument,
                  "slots = 6 needs the avx512vnni path");
  if (CpuHasAvx512Vnni() && !CpuHasAvx512Vbmi())
    ExpectError(PrepareLutWeights(s, codes, 2, KernelPath::kAvx512Vnni, 6).status(), ErrorCode::kFailedPrecondition,
                "VBMI");
  ConvShape bad = s;
  bad.group_size = 3;
  ExpectError(PrepareLutWeights(bad, codes, 2).status(), ErrorCode::kInvalidArgument, "group_size");

  auto lw = PrepareLutWeights(s, codes, 2);
  ASSERT_TRUE(lw.ok()) << lw.status().ToString();
  std::vector<int32_t> acc;
  // Zero points: one per region, each in [0, 2^abits).
  ExpectError(LutConvAccumulate(*lw, input, 2, std::vector<int32_t>{1, 1, 1}, &acc), ErrorCode::kInvalidArgument,
              "has 3 values");
  ExpectError(LutConvAccumulate(*lw, input, 2, std::vector<int32_t>{}, &acc), ErrorCode::kInvalidArgument,
              "input_zero_points");
  ExpectError(LutConvAccumulate(*lw, input, 2, std::vector<int32_t>{3, 4}, &acc), ErrorCode::kOutOfRange,
              "input_zero_points[1]");
  ExpectError(LutConvAccumulate(*lw, input, 2, std::vector<int32_t>{-1, 0}).status(), ErrorCode::kOutOfRange,
              "input_zero_points[0]");
  ExpectError(LutConvAccumulate(*lw, input, 2, 4, &acc), ErrorCode::kOutOfRange, "input_zero_point");
  // Bit widths, input codes and counts.
  ExpectError(LutConvAccumulate(*lw, input, 0, 0, &acc), ErrorCode::kInvalidArgument, "abits");
  ExpectError(LutConvAccumulate(*lw, input, 5, std::vector<int32_t>{0, 0}, &acc), ErrorCode::kInvalidArgument,
              "abits");
  ExpectError(LutConvAccumulate(*lw, input, 1, 0, &acc), ErrorCode::kOutOfRange, "input[0]");
  ExpectError(LutConvAccumulate(*lw, {1, 2}, 2, 0, &acc), ErrorCode::kInvalidArgument, "input");
  ExpectError(LutConvAccumulate(*lw, input, 2, 0, nullptr), ErrorCode::kInvalidArgument, "acc");
  // Weights prepared for another shape, or altered after PrepareLutWeights.
  LutWeights other = *lw;
  other.shape.kernel_h = other.shape.kernel_w = 1;
  other.shape.padding = 0;
  ExpectError(LutConvAccumulate(other, std::vector<uint8_t>(other.shape.input_size(), 0), 2, 0, &acc),
              ErrorCode::kInvalidArgument, "lut weights do not match");
  other = *lw;
  other.shape.out_channels = 5;
  ExpectError(LutConvAccumulate(other, input, 2, 0, &acc), ErrorCode::kInvalidArgument, "lut weights do not match");
  other = *lw;
  other.tables.pop_back();
  ExpectError(LutConvAccumulate(other, input, 2, 0, &acc), ErrorCode::kInvalidArgument, "lut weights do not match");
  other = *lw;
  other.slots = other.slots == 4 ? 6 : 4;
  ExpectError(LutConvAccumulate(other, input, 2, 0, &acc), ErrorCode::kInvalidArgument, "lut weights do not match");
  other = *lw;
  other.wbits = 7;
  ExpectError(LutConvAccumulate(other, input, 2, 0, &acc), ErrorCode::kInvalidArgument, "wbits");
  other = *lw;
  other.path = static_cast<KernelPath>(9);
  ExpectError(LutConvAccumulate(other, input, 2, 0, &acc), ErrorCode::kInvalidArgument, "path");
  other = *lw;
  other.path = KernelPath::kAuto;
  ExpectError(LutConvAccumulate(other, input, 2, 0, &acc), ErrorCode::kInvalidArgument, "lut weights");
  // None of the failures above touched the buffer.
  EXPECT_TRUE(acc.empty());
}

}  // namespace
}  // namespace splitinfer::kernels
