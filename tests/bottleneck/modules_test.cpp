#include "bottleneck/modules.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

namespace splitinfer::bottleneck {
namespace {
namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("si_bottleneck_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(AutoencoderTest, ShapesWithAndWithoutDownsampling) {
  Autoencoder same(AutoencoderOptions{64, 8, false, true});
  auto f = torch::relu(torch::randn({2, 64, 14, 14}));
  auto z = same->encode(f);
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{2, 8, 14, 14}));
  EXPECT_GE(z.min().item<float>(), 0.0f);  // post-ReLU latent: the codec's zero-based range fits
  EXPECT_EQ(same->decode(z, 14, 14).sizes(), f.sizes());

  Autoencoder half(AutoencoderOptions{128, 16, true, true});
  auto g = torch::relu(torch::randn({2, 128, 7, 7}));
  auto zh = half->encode(g);
  EXPECT_EQ(zh.sizes(), (std::vector<int64_t>{2, 16, 4, 4}));  // odd sizes round up
  EXPECT_EQ(half->decode(zh, 7, 7).sizes(), g.sizes());
}

TEST(CompensatorTest, StartsAsTheIdentityOnPostReluMaps) {
  Compensator comp(CompensatorOptions{16, 8, true});
  comp->eval();
  auto x = torch::relu(torch::randn({3, 16, 5, 5}));
  EXPECT_TRUE(torch::equal(comp->forward(x), x));
}

TEST(SharedAutoencoderTest, ServesEveryPointAtEveryBitWidth) {
  SharedAutoencoderOptions o;
  o.points = {{"stage1", 64}, {"stage2", 128}, {"stage3", 256}};
  o.width = 96;
  o.latent_channels = 8;
  SharedAutoencoder sae(o);
  const std::vector<std::vector<int64_t>> shapes{{2, 64, 14, 14}, {2, 128, 7, 7}, {2, 256, 4, 4}};
  for (size_t k = 0; k < 3; ++k) {
    auto f = torch::relu(torch::randn(shapes[k]));
    auto z = sae->encode(f, k);
    EXPECT_EQ(z.size(1), 8);
    for (int bits : {1, 2, 4, 8}) {
      auto q = sae->quantize(z, k, bits);
      EXPECT_LE(std::get<0>(at::_unique(q)).numel(), int64_t{1} << bits);
      EXPECT_EQ(sae->decode(q, k).sizes(), f.sizes());
    }
  }
  EXPECT_EQ(sae->point_index("stage9").status().code(), ErrorCode::kNotFound);
  EXPECT_NE(sae->bits_index(3).status().message().find("1, 2, 4, 8"), std::string::npos);
}

// The design target: one shared autoencoder for resnet_fmnist's three stage outputs has at
// least 3x fewer parameters than one autoencoder per point (each as wide as its features).
TEST(SharedAutoencoderTest, AtLeastThreeTimesFewerParametersThanPerPointAutoencoders) {
  SharedAutoencoderOptions shared;
  shared.points = {{"stage1", 64}, {"stage2", 128}, {"stage3", 256}};
  shared.width = 96;
  int64_t per_point = 0;
  for (const auto& p : shared.points) {
    SharedAutoencoderOptions one;
    one.points = {p};
    one.width = p.channels;
    per_point += ParameterCount(*SharedAutoencoder(one));
  }
  const int64_t n = ParameterCount(*SharedAutoencoder(shared));
  EXPECT_GE(per_point, 3 * n) << per_point << " vs " << n;
}

TEST(ArtifactTest, RoundTripAndKindChecks) {
  auto dir = TempDir("artifact");
  AutoencoderOptions o{32, 4, true, true};
  Autoencoder ae(o);
  ae->clip->set_hi(2.5);
  const std::string path = (dir / "ae.pt").string();
  ASSERT_TRUE(SaveArtifact(path, *ae, {{"kind", "autoencoder"}, {"options", ToJson(o)}}).ok());
  EXPECT_TRUE(fs::exists(dir / "ae.json"));
  auto back = LoadAutoencoder(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_NEAR((*back)->clip->hi(), 2.5, 1e-5);
  auto x = torch::relu(torch::randn({1, 32, 6, 6}));
  ae->eval();
  EXPECT_TRUE(torch::equal((*back)->encode(x), ae->encode(x)));

  auto wrong_kind = LoadCompensator(path);
  ASSERT_FALSE(wrong_kind.ok());
  EXPECT_EQ(wrong_kind.status().code(), ErrorCode::kMismatch);
  EXPECT_NE(wrong_kind.status().message().find("autoencoder"), std::string::npos);
  EXPECT_EQ(LoadAutoencoder((dir / "none.pt").string()).status().code(), ErrorCode::kNotFound);
  std::ofstream((dir / "junk.pt").string()) << "junk";
  EXPECT_EQ(LoadAutoencoder((dir / "junk.pt").string()).status().code(), ErrorCode::kDataLoss);
  // Options that do not fit the stored weights: a MISMATCH naming the tensor, not a crash.
  AutoencoderOptions other{32, 6, true, true};
  ASSERT_TRUE(SaveArtifact((dir / "bad.pt").string(), *ae, {{"kind", "autoencoder"}, {"options", ToJson(other)}}).ok());
  auto bad = LoadAutoencoder((dir / "bad.pt").string());
  EXPECT_EQ(bad.status().code(), ErrorCode::kMismatch);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace splitinfer::bottleneck
