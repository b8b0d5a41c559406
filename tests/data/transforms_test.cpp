#include "data/transforms.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

namespace splitinfer::data {
namespace {

torch::Tensor Ramp(int64_t n, int64_t c, int64_t h, int64_t w) {
  return torch::arange(n * c * h * w, torch::kInt64).remainder(251).to(torch::kUInt8).view({n, c, h, w});
}

TEST(TransformsTest, NormalizeMatchesFormula) {
  auto x = torch::tensor({0, 255}, torch::kUInt8).view({1, 1, 1, 2});
  auto y = ToFloatNormalized(x, {{0.5}, {0.25}});
  EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(y[0][0][0][1].item<float>(), 2.0f);
}

// Reference: a per-image loop written the obvious way.
torch::Tensor ReferenceCrop(const torch::Tensor& x, int64_t pad, const torch::Tensor& out) {
  // Find, for each image, the offset that reproduces `out` from the padded input.
  auto padded = torch::constant_pad_nd(x, {pad, pad, pad, pad}, 0);
  const int64_t h = x.size(2), w = x.size(3);
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < x.size(0); ++i) {
    bool found = false;
    for (int64_t dy = 0; dy <= 2 * pad && !found; ++dy) {
      for (int64_t dx = 0; dx <= 2 * pad && !found; ++dx) {
        auto crop = padded[i].slice(1, dy, dy + h).slice(2, dx, dx + w);
        if (torch::equal(crop, out[i])) {
          rows.push_back(crop);
          found = true;
        }
      }
    }
    if (!found) return torch::Tensor();
  }
  return torch::stack(rows);
}

TEST(TransformsTest, RandomCropIsACropOfThePaddedImage) {
  auto x = Ramp(16, 2, 7, 9);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(123);
  auto y = RandomCropWithPadding(x, 2, gen);
  ASSERT_EQ(y.sizes(), x.sizes());
  auto ref = ReferenceCrop(x, 2, y);
  ASSERT_TRUE(ref.defined()) << "some output is not a crop of its padded input";
  // With 16 images and 25 offsets, not every image can have the centre offset.
  EXPECT_FALSE(torch::equal(y, x));
}

TEST(TransformsTest, ZeroPaddingIsIdentity) {
  auto x = Ramp(4, 1, 5, 5);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  EXPECT_TRUE(torch::equal(RandomCropWithPadding(x, 0, gen), x));
}

TEST(TransformsTest, FlipMirrorsSomeImagesExactly) {
  auto x = Ramp(64, 1, 4, 6);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  auto y = RandomHorizontalFlip(x, 0.5, gen);
  int flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    const bool same = torch::equal(y[i], x[i]);
    const bool mirrored = torch::equal(y[i], x[i].flip({2}));
    ASSERT_TRUE(same || mirrored) << "image " << i;
    flipped += mirrored ? 1 : 0;
  }
  EXPECT_GT(flipped, 10);
  EXPECT_LT(flipped, 54);
}

TEST(TransformsTest, SameSeedSameAugmentation) {
  auto x = Ramp(8, 1, 28, 28);
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(42);
  auto g2 = at::make_generator<at::CPUGeneratorImpl>(42);
  AugmentOptions aug{2, 0.5};
  EXPECT_TRUE(torch::equal(TrainTransform(x, {{0.3}, {0.3}}, aug, g1), TrainTransform(x, {{0.3}, {0.3}}, aug, g2)));
}

TEST(TransformsTest, ResizeKeepsDtypeAndSize) {
  auto x = Ramp(2, 3, 10, 20);
  auto y = Resize(x, 5, 7);
  EXPECT_EQ(y.scalar_type(), torch::kUInt8);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 3, 5, 7}));
  auto solid = torch::full({1, 3, 8, 8}, 200, torch::kUInt8);
  EXPECT_TRUE(torch::equal(Resize(solid, 3, 3), torch::full({1, 3, 3, 3}, 200, torch::kUInt8)));
}

}  // namespace
}  // namespace splitinfer::data
