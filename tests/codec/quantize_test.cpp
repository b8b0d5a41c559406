#include "codec/quantize/quantize.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace splitinfer::codec {
namespace {

// A readable per-element reference for level reconstruction with static ranges.
torch::Tensor ReferenceLevelQuant(const torch::Tensor& x, float lo, float hi, int bits) {
  const int L = 1 << bits;
  const float step = (hi - lo) / static_cast<float>(L - 1);
  auto out = torch::empty_like(x);
  auto xa = x.contiguous();
  const float* src = xa.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    float v = (src[i] - lo) / step;
    int q = static_cast<int>(std::floor(v + 0.5f));
    q = std::clamp(q, 0, L - 1);
    dst[i] = lo + static_cast<float>(q) * step;
  }
  return out;
}

QuantSpec Spec(int bits, Granularity g = Granularity::kTensor) {
  QuantSpec s;
  s.bits = bits;
  s.granularity = g;
  return s;
}

TEST(QuantizeTest, MinMaxTensorMatchesReference) {
  torch::manual_seed(0);
  auto samples = torch::relu(torch::randn({8, 4, 5, 6}));
  for (int bits : {1, 2, 3, 4, 8}) {
    auto p = Calibrate(Spec(bits), samples);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ASSERT_EQ(p->regions(), 1u);
    EXPECT_FLOAT_EQ(p->hi[0], samples.max().item<float>());
    EXPECT_EQ(p->lo[0], 0.0f);
    auto q = Quantize(*p, samples[3]);
    ASSERT_TRUE(q.ok());
    EXPECT_TRUE(q->side_info.empty());  // static: nothing sent
    auto r = Dequantize(*p, q->symbols.data(), q->symbols.size(), nullptr, 0);
    ASSERT_TRUE(r.ok());
    auto ref = ReferenceLevelQuant(samples[3], 0.0f, p->hi[0], bits);
    EXPECT_LE((r.value() - ref).abs().max().item<float>(), 1e-6f * p->hi[0]) << bits << " bits";
    for (uint8_t s : q->symbols) ASSERT_LT(s, 1 << bits);
  }
}

TEST(QuantizeTest, OneBitThresholdsAtHalfTheRange) {
  auto samples = torch::tensor({0.0f, 0.49f, 0.51f, 1.0f}).view({1, 1, 1, 4});
  auto p = Calibrate(Spec(1), samples).value();
  auto q = Quantize(p, samples[0]).value();
  EXPECT_EQ(q.symbols, (std::vector<uint8_t>{0, 0, 1, 1}));
}

TEST(QuantizeTest, PerChannelRangesAreIndependent) {
  auto s = torch::zeros({2, 3, 2, 2});
  s.select(1, 0).fill_(1.0f);
  s.select(1, 1).fill_(10.0f);
  s.select(1, 2).fill_(100.0f);
  auto p = Calibrate(Spec(2, Granularity::kChannel), s).value();
  ASSERT_EQ(p.regions(), 3u);
  EXPECT_EQ(p.hi, (std::vector<float>{1.0f, 10.0f, 100.0f}));
}

TEST(QuantizeTest, LocalRegionsTileWithPartialEdges) {
  QuantSpec spec = Spec(2, Granularity::kRegion);
  spec.region[0] = 2, spec.region[1] = 3, spec.region[2] = 4;
  auto p = Calibrate(spec, torch::rand({2, 5, 7, 9})).value();
  // ceil(5/2) * ceil(7/3) * ceil(9/4) = 3 * 3 * 3
  EXPECT_EQ(p.regions(), 27u);
  EXPECT_EQ(p.desc().region[0], 2u);
}

TEST(QuantizeTest, DynamicRegionsSendHalfRangesAndRoundTrip) {
  QuantSpec spec = Spec(2, Granularity::kRegion);
  spec.region[0] = 4, spec.region[1] = 4, spec.region[2] = 4;
  spec.params_in_frame = true;
  torch::manual_seed(1);
  auto x = torch::relu(torch::randn({8, 8, 8})) * 3;
  auto p = Calibrate(spec, x.unsqueeze(0)).value();
  auto q = Quantize(p, x).value();
  EXPECT_EQ(q.side_info.size(), 8u * 2);  // 8 regions x one half-float
  auto r = Dequantize(p, q.symbols.data(), q.symbols.size(), q.side_info.data(), q.side_info.size());
  ASSERT_TRUE(r.ok());
  // Max error is half a step of the region's (half-rounded) range, plus clipping at the top.
  const float hi = x.max().item<float>();
  EXPECT_LE((r.value() - x).abs().max().item<float>(), hi / 3.0f * 0.5f + hi * 1e-3f);
  auto bad = Dequantize(p, q.symbols.data(), q.symbols.size(), q.side_info.data(), q.side_info.size() - 1);
  EXPECT_EQ(bad.status().code(), ErrorCode::kFrameSideInfo);
}

TEST(QuantizeTest, CentroidReconstructionBeatsLevelsInMse) {
  torch::manual_seed(2);
  // Exponential-ish post-ReLU values: most mass near zero, where level reconstruction at the
  // bin edges is poor.
  auto samples = torch::relu(torch::randn({64, 8, 7, 7})).pow(2);
  auto level = Calibrate(Spec(1), samples).value();
  QuantSpec cspec = Spec(1);
  cspec.reconstruction = Reconstruction::kCentroid;
  auto centroid = Calibrate(cspec, samples).value();
  ASSERT_EQ(centroid.centroids.size(), 2u);
  double e_level = 0, e_centroid = 0;
  for (int i = 0; i < 64; ++i) {
    auto x = samples[i];
    auto ql = Quantize(level, x).value();
    auto qc = Quantize(centroid, x).value();
    e_level += (Dequantize(level, ql.symbols.data(), ql.symbols.size(), nullptr, 0).value() - x).pow(2).sum().item<double>();
    e_centroid += (Dequantize(centroid, qc.symbols.data(), qc.symbols.size(), nullptr, 0).value() - x).pow(2).sum().item<double>();
  }
  EXPECT_LT(e_centroid, 0.8 * e_level);
}

TEST(QuantizeTest, MseClipBeatsMinMaxWithOutliers) {
  torch::manual_seed(3);
  auto samples = torch::relu(torch::randn({32, 4, 8, 8}));
  samples.view(-1)[0] = 20.0f;  // one outlier stretches the min-max range
  QuantSpec mse = Spec(2);
  mse.clip = ClipMethod::kMse;
  auto pm = Calibrate(Spec(2), samples).value();
  auto pe = Calibrate(mse, samples).value();
  EXPECT_LT(pe.hi[0], pm.hi[0]);
  auto err = [&](const QuantParams& p) {
    double e = 0;
    for (int i = 0; i < 32; ++i) {
      auto q = Quantize(p, samples[i]).value();
      e += (Dequantize(p, q.symbols.data(), q.symbols.size(), nullptr, 0).value() - samples[i]).pow(2).sum().item<double>();
    }
    return e;
  };
  EXPECT_LT(err(pe), err(pm));
  QuantSpec pct = Spec(2);
  pct.clip = ClipMethod::kPercentile;
  pct.percentile = 99.0;
  EXPECT_LT(Calibrate(pct, samples).value().hi[0], pm.hi[0]);
}

TEST(QuantizeTest, SignedAndAffineRanges) {
  auto samples = torch::tensor({-2.0f, -1.0f, 0.5f, 3.0f}).view({1, 4});
  QuantSpec s = Spec(3);
  s.range = RangeKind::kSymmetric;
  auto ps = Calibrate(s, samples).value();
  EXPECT_EQ(ps.lo[0], -3.0f);
  EXPECT_EQ(ps.hi[0], 3.0f);
  s.range = RangeKind::kAffine;
  auto pa = Calibrate(s, samples).value();
  EXPECT_EQ(pa.lo[0], -2.0f);
  EXPECT_EQ(pa.hi[0], 3.0f);
  auto q = Quantize(pa, samples[0]).value();
  auto r = Dequantize(pa, q.symbols.data(), q.symbols.size(), nullptr, 0).value();
  EXPECT_FLOAT_EQ(r[0].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(r[3].item<float>(), 3.0f);
}

TEST(QuantizeTest, ShapeMismatchAndBadSpecs) {
  auto p = Calibrate(Spec(2), torch::rand({2, 3, 4})).value();
  EXPECT_EQ(Quantize(p, torch::rand({4, 3})).status().code(), ErrorCode::kMismatch);
  EXPECT_EQ(Calibrate(Spec(9), torch::rand({2, 3})).status().code(), ErrorCode::kInvalidArgument);
  QuantSpec dyn = Spec(2);
  dyn.params_in_frame = true;
  dyn.clip = ClipMethod::kMse;
  EXPECT_EQ(Calibrate(dyn, torch::rand({2, 3})).status().code(), ErrorCode::kInvalidArgument);
  QuantSpec reg = Spec(2, Granularity::kRegion);
  EXPECT_EQ(Calibrate(reg, torch::rand({2, 3})).status().code(), ErrorCode::kInvalidArgument);
}

TEST(QuantizeTest, ConstantZeroMapIsAllZeroSymbols) {
  auto p = Calibrate(Spec(2), torch::zeros({2, 3, 3})).value();
  auto q = Quantize(p, torch::zeros({3, 3})).value();
  EXPECT_EQ(std::count(q.symbols.begin(), q.symbols.end(), 0), 9);
  auto r = Dequantize(p, q.symbols.data(), 9, nullptr, 0).value();
  EXPECT_EQ(r.abs().sum().item<float>(), 0.0f);
}

TEST(QuantizeTest, JsonRoundTripAndValidation) {
  QuantSpec spec = Spec(2, Granularity::kChannel);
  spec.reconstruction = Reconstruction::kCentroid;
  auto p = Calibrate(spec, torch::rand({4, 3, 2, 2})).value();
  auto j = ToJson(p);
  auto back = QuantParamsFromJson(nlohmann::json::parse(j.dump()), "t");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->hi, p.hi);
  EXPECT_EQ(back->centroids, p.centroids);
  j["hi"].erase(0);
  EXPECT_EQ(QuantParamsFromJson(j, "t").status().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(QuantParamsFromJson(nlohmann::json{{"format", "x"}}, "t").status().code(), ErrorCode::kDataLoss);
}

// SimulateBatch is what training sees; it must equal the per-image codec path bit for bit for
// every granularity and reconstruction, including partial edge tiles and outliers.
TEST(QuantizeTest, SimulateBatchEqualsPerImageDequantizeQuantize) {
  torch::manual_seed(11);
  auto x = torch::relu(torch::randn({6, 10, 9, 7}) * 2.0);
  x.index_put_({0, 0, 0, 0}, 40.0f);  // beyond every clip
  for (Granularity g : {Granularity::kTensor, Granularity::kChannel, Granularity::kRegion}) {
    for (auto recon : {Reconstruction::kLevel, Reconstruction::kCentroid}) {
      for (int bits : {1, 3, 8}) {
        QuantSpec spec = Spec(bits, g);
        spec.region[0] = 4, spec.region[1] = 4, spec.region[2] = 3;
        spec.reconstruction = recon;
        spec.clip = ClipMethod::kMse;
        auto p = Calibrate(spec, x).value();
        auto batch = SimulateBatch(p, x);
        ASSERT_TRUE(batch.ok()) << batch.status().ToString();
        for (int64_t i = 0; i < x.size(0); ++i) {
          auto q = Quantize(p, x[i]).value();
          auto one = Dequantize(p, q.symbols.data(), q.symbols.size(), nullptr, 0).value();
          ASSERT_TRUE(torch::equal(one, (*batch)[i]))
              << "granularity " << GranularityName(g) << " bits " << bits << " image " << i;
        }
      }
    }
  }
  QuantSpec dyn = Spec(2);
  dyn.params_in_frame = true;
  EXPECT_EQ(SimulateBatch(Calibrate(dyn, x).value(), x).status().code(), ErrorCode::kInvalidArgument);
  auto p = Calibrate(Spec(2), x).value();
  auto wrong = SimulateBatch(p, torch::zeros({2, 10, 9, 6}));
  EXPECT_EQ(wrong.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("[10,9,7]"), std::string::npos) << wrong.status().message();
}

}  // namespace
}  // namespace splitinfer::codec
