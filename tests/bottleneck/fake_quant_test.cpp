#include "bottleneck/fake_quant.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "codec/quantize/quantize.h"
#include "test_seed.h"

namespace splitinfer::bottleneck {
namespace {

TEST(FakeQuantTest, ForwardEqualsTheCodecsReconstruction) {
  // 1196903030 once put an element on an exact 8-bit bin edge, where dividing by the step and
  // multiplying by its inverse round apart by a whole step: kept as a regression seed.
  for (uint32_t seed : {testing::TestSeed(), 1196903030u}) {
    torch::manual_seed(seed);
    auto x = torch::relu(torch::randn({4, 8, 6, 6}) * 1.5);
    for (int bits : {1, 2, 3, 8}) {
      codec::QuantSpec spec;
      spec.bits = bits;
      spec.clip = codec::ClipMethod::kMse;
      auto params = codec::Calibrate(spec, x);
      ASSERT_TRUE(params.ok()) << params.status().ToString();
      auto expected = codec::SimulateBatch(*params, x);
      ASSERT_TRUE(expected.ok());
      auto got = FakeQuantize(x, torch::zeros({}), torch::full({}, params->hi[0]), bits);
      // The same float operations in the same order: what training sees is bit for bit what
      // the server decodes.
      EXPECT_EQ((got - *expected).abs().max().item<float>(), 0.0f) << "bits " << bits << " seed " << seed;
    }
  }
}

// Per-channel affine ranges through ToRangeTensors, one channel dead (lo == hi, which the codec
// maps to its lower end) and one whose span is below a millionth: still the codec's bit for bit.
TEST(FakeQuantTest, PerChannelAffineRangesEqualTheCodecsToo) {
  for (uint32_t seed : {testing::TestSeed(), 7u}) {
    torch::manual_seed(seed);
    auto x = torch::randn({3, 5, 4, 4}) * 2 - 0.5;
    x.select(1, 3).fill_(0.25);                                   // a dead channel
    x.select(1, 4).copy_(0.5 + torch::rand({3, 4, 4}) * 4e-7);     // a nearly dead one
    for (int bits : {1, 2, 4, 8}) {
      codec::QuantSpec spec;
      spec.bits = bits;
      spec.range = codec::RangeKind::kAffine;
      spec.granularity = codec::Granularity::kChannel;
      auto params = codec::Calibrate(spec, x);
      ASSERT_TRUE(params.ok()) << params.status().ToString();
      auto expected = codec::SimulateBatch(*params, x);
      ASSERT_TRUE(expected.ok());
      auto r = ToRangeTensors(*params, 3, torch::kCPU);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->hi.sizes(), (std::vector<int64_t>{1, 5, 1, 1}));
      auto got = FakeQuantize(x, r->lo, r->hi, bits);
      EXPECT_EQ((got - *expected).abs().max().item<float>(), 0.0f) << "bits " << bits << " seed " << seed;
      // Written back unchanged, and a reversed learned range is refused by name.
      codec::QuantParams back = *params;
      ASSERT_TRUE(SetRanges(*r, &back).ok());
      EXPECT_EQ(back.hi, params->hi);
      RangeTensors reversed{r->lo, r->lo - 1};
      auto refused = SetRanges(reversed, &back);
      ASSERT_FALSE(refused.ok());
      EXPECT_NE(refused.message().find("not a range"), std::string::npos);
    }
  }
  codec::QuantSpec region;
  region.granularity = codec::Granularity::kRegion;
  region.region[0] = 1, region.region[1] = 2, region.region[2] = 2;
  auto p = codec::Calibrate(region, torch::rand({2, 2, 4, 4}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(ToRangeTensors(*p, 3, torch::kCPU).status().code(), ErrorCode::kInvalidArgument);
}

TEST(FakeQuantTest, StraightThroughInsideTheRangeAndPactGradientForTheClip) {
  auto x = torch::tensor({0.1f, 0.4f, 0.9f, 3.0f}).set_requires_grad(true);
  auto hi = torch::full({}, 1.0f).set_requires_grad(true);
  auto y = FakeQuantize(x, torch::zeros({}), hi, 2);
  y.sum().backward();
  auto gx = x.grad();
  EXPECT_FLOAT_EQ(gx[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(gx[2].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(gx[3].item<float>(), 0.0f);  // clipped: the gradient goes to the clip instead
  EXPECT_GT(hi.grad().item<float>(), 0.5f);
}

TEST(FakeQuantTest, ClusteringLossIsZeroOnLevelsAndPullsTowardThem) {
  auto on = torch::tensor({0.0f, 1.0f / 3, 2.0f / 3, 1.0f});
  EXPECT_NEAR(ClusteringLoss(on, 0.0, 1.0, 2).item<float>(), 0.0f, 1e-10);
  auto off = torch::tensor({0.1f, 0.5f}).set_requires_grad(true);
  auto loss = ClusteringLoss(off, 0.0, 1.0, 1);  // levels 0 and 1
  EXPECT_NEAR(loss.item<float>(), (0.01f + 0.25f) / 2, 1e-6);  // step 1: distances in steps
  // 0.5 on the grid {0, 2/3, 4/3, 2} is a quarter step from 2/3.
  EXPECT_NEAR(ClusteringLoss(torch::tensor({0.5f}), 0.0, 2.0, 2).item<float>(), 0.0625f, 1e-5);
  loss.backward();
  EXPECT_GT(off.grad()[0].item<float>(), 0.0f);  // 0.1 moves down toward 0
}

TEST(FakeQuantTest, LambdaSchedulesGrowWithTime) {
  EXPECT_DOUBLE_EQ(ClusteringWeight(LambdaSchedule::kConstant, 2.0, 0.3), 2.0);
  EXPECT_DOUBLE_EQ(ClusteringWeight(LambdaSchedule::kLinear, 2.0, 0.25), 0.5);
  EXPECT_DOUBLE_EQ(ClusteringWeight(LambdaSchedule::kExponential, 2.0, 0.0), 0.0);
  EXPECT_NEAR(ClusteringWeight(LambdaSchedule::kExponential, 2.0, 1.0), 2.0, 1e-12);
  EXPECT_LT(ClusteringWeight(LambdaSchedule::kExponential, 2.0, 0.5), 1.0);  // slow start
  EXPECT_DOUBLE_EQ(ClusteringWeight(LambdaSchedule::kStep, 3.0, 0.1), 0.0);
  EXPECT_DOUBLE_EQ(ClusteringWeight(LambdaSchedule::kStep, 3.0, 0.6), 2.0);
  EXPECT_DOUBLE_EQ(ClusteringWeight(LambdaSchedule::kStep, 3.0, 1.0), 3.0);
  auto bad = LambdaScheduleFromName("cubic");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("linear"), std::string::npos);
}

TEST(FakeQuantTest, LearnedClipLearnsARange) {
  // Values spread on [0, 4]; starting the clip at 0.5 loses most of them, so minimising the
  // reconstruction error must grow it.
  torch::manual_seed(3);
  auto x = torch::rand({4096}) * 4;
  LearnedClip clip(0.5);
  torch::optim::Adam opt(clip->parameters(), torch::optim::AdamOptions(0.05));
  for (int i = 0; i < 200; ++i) {
    opt.zero_grad();
    auto loss = (clip->forward(x, 3) - x).pow(2).mean();
    loss.backward();
    opt.step();
  }
  EXPECT_GT(clip->hi(), 3.0);
}

}  // namespace
}  // namespace splitinfer::bottleneck
