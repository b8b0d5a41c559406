#include "eval/image_baseline.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/dataset.h"

namespace splitinfer::eval {
namespace {

// PNG and WebP containers add a few dozen bytes of signature, chunk headers and CRCs.
constexpr double kHeaderAllowance = 100;
constexpr uint32_t kSeed = 20240611;

// Just enough Dataset to hand the measurement a list of images.
class TinyDataset : public data::Dataset {
 public:
  explicit TinyDataset(std::vector<torch::Tensor> images) : images_(std::move(images)) {}
  int64_t size() const override { return static_cast<int64_t>(images_.size()); }
  Result<torch::Tensor> image(int64_t index) const override { return images_.at(static_cast<size_t>(index)); }
  int64_t label(int64_t) const override { return 0; }
  std::vector<std::string> class_names() const override { return {"only"}; }
  std::vector<int64_t> image_shape() const override {
    return images_.empty() ? std::vector<int64_t>{} : images_[0].sizes().vec();
  }
  std::string name() const override { return "tiny"; }

 private:
  std::vector<torch::Tensor> images_;
};

torch::Tensor HorizontalGradient() {
  return (torch::arange(28, torch::kInt32) * 9).to(torch::kUInt8).view({1, 1, 28}).expand({1, 28, 28}).contiguous();
}
torch::Tensor VerticalGradient() { return HorizontalGradient().transpose(1, 2).contiguous(); }
torch::Tensor Flat() { return torch::full({1, 28, 28}, 117, torch::kUInt8); }

torch::Tensor Noise(std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  auto t = torch::empty({1, 28, 28}, torch::kUInt8);
  auto* p = t.data_ptr<uint8_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<uint8_t>(byte(rng));
  return t;
}

std::vector<torch::Tensor> SmoothImages() { return {HorizontalGradient(), VerticalGradient(), Flat()}; }

#ifdef SPLITINFER_WITH_OPENCV

TEST(ImageBaselineTest, SmoothImagesCostLessThanTheirRawPixels) {
  TinyDataset d(SmoothImages());
  auto r = MeasureLosslessImages(d, 0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->images, 3);
  EXPECT_GT(r->png_bytes, 0);
  EXPECT_GT(r->webp_bytes, 0);
  EXPECT_LT(r->png_bytes, 28 * 28 + kHeaderAllowance);
  EXPECT_LT(r->webp_bytes, 28 * 28 + kHeaderAllowance);
}

TEST(ImageBaselineTest, NoiseCostsMoreThanGradients) {
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  std::mt19937 rng(kSeed);
  TinyDataset noise({Noise(rng), Noise(rng)});
  TinyDataset smooth(SmoothImages());
  auto n = MeasureLosslessImages(noise, 0);
  auto s = MeasureLosslessImages(smooth, 0);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_TRUE(s.ok());
  EXPECT_GT(n->png_bytes, s->png_bytes);
  EXPECT_GT(n->webp_bytes, s->webp_bytes);
  EXPECT_GE(n->png_bytes, 28 * 28 * 0.9);  // uniform noise does not compress
}

TEST(ImageBaselineTest, LimitTakesTheFirstImagesAndIsClamped) {
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  std::mt19937 rng(kSeed);
  std::vector<torch::Tensor> images = SmoothImages();
  images.push_back(Noise(rng));
  images.push_back(Noise(rng));
  TinyDataset all(images);
  TinyDataset first_two({images[0], images[1]});

  auto two = MeasureLosslessImages(all, 2);
  auto expected = MeasureLosslessImages(first_two, 0);
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(two->images, 2);
  EXPECT_EQ(two->png_bytes, expected->png_bytes);
  EXPECT_EQ(two->webp_bytes, expected->webp_bytes);

  EXPECT_EQ(MeasureLosslessImages(all, 0)->images, 5);
  EXPECT_EQ(MeasureLosslessImages(all, 100)->images, 5);
  EXPECT_EQ(MeasureLosslessImages(all, -1).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(MeasureLosslessImages(TinyDataset({}), 0).status().code(), ErrorCode::kInvalidArgument);
}

TEST(ImageBaselineTest, FloatImagesInUnitRangeMeasureLikeTheirBytes) {
  std::vector<torch::Tensor> floats;
  for (const auto& t : SmoothImages()) floats.push_back(t.to(torch::kFloat32) / 255.0);
  auto f = MeasureLosslessImages(TinyDataset(floats), 0);
  auto u = MeasureLosslessImages(TinyDataset(SmoothImages()), 0);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(f->png_bytes, u->png_bytes);
  EXPECT_EQ(f->webp_bytes, u->webp_bytes);

  // Normalised (or resized) images are not the 8-bit input: measuring them would be wrong.
  auto normalised = (HorizontalGradient().to(torch::kFloat32) / 255.0 - 0.286) / 0.353;
  EXPECT_EQ(MeasureLosslessImages(TinyDataset({normalised}), 0).status().code(), ErrorCode::kInvalidArgument);
  auto between_levels = HorizontalGradient().to(torch::kFloat32) / 255.0 + 0.4 / 255.0;
  EXPECT_EQ(MeasureLosslessImages(TinyDataset({between_levels}), 0).status().code(), ErrorCode::kInvalidArgument);
}

TEST(ImageBaselineTest, ColourImagesAndBadShapes) {
  auto rgb = torch::stack({HorizontalGradient()[0], VerticalGradient()[0], Flat()[0]});  // [3, 28, 28]
  auto r = MeasureLosslessImages(TinyDataset({rgb}), 0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->png_bytes, 0);
  EXPECT_LT(r->png_bytes, 3 * 28 * 28 + kHeaderAllowance);

  EXPECT_EQ(MeasureLosslessImages(TinyDataset({torch::zeros({2, 8, 8}, torch::kUInt8)}), 0).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(MeasureLosslessImages(TinyDataset({torch::zeros({8, 8}, torch::kUInt8)}), 0).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(MeasureLosslessImages(TinyDataset({torch::zeros({1, 8, 8}, torch::kInt32)}), 0).status().code(),
            ErrorCode::kInvalidArgument);
}

// JPEG for the lossy baseline: lower quality, fewer bytes and a farther image; colour comes back
// in its own channel order; bad batches and qualities are refused.
TEST(ImageBaselineTest, JpegRoundTripTradesBytesForPixels) {
  torch::manual_seed(5);
  const auto grey = (torch::rand({2, 1, 32, 32}) * 255).to(torch::kUInt8);
  double high_bytes = 0, low_bytes = 0;
  auto high = JpegRoundTrip(grey, 95, &high_bytes);
  auto low = JpegRoundTrip(grey, 10, &low_bytes);
  ASSERT_TRUE(high.ok() && low.ok()) << high.status().ToString();
  EXPECT_EQ(high->sizes(), grey.sizes());
  EXPECT_LT(low_bytes, high_bytes);
  const auto err = [&](const torch::Tensor& t) { return (t.to(torch::kFloat) - grey.to(torch::kFloat)).abs().mean().item<double>(); };
  EXPECT_LT(err(*high), err(*low));
  auto rgb = torch::zeros({1, 3, 16, 16}, torch::kUInt8);
  rgb[0][0].fill_(200);  // a flat red image stays red
  auto back = JpegRoundTrip(rgb, 95, nullptr);
  ASSERT_TRUE(back.ok());
  EXPECT_NEAR((*back)[0][0][8][8].item<int>(), 200, 4);
  EXPECT_NEAR((*back)[0][2][8][8].item<int>(), 0, 4);
  EXPECT_EQ(JpegRoundTrip(grey, 0, nullptr).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(JpegRoundTrip(grey.to(torch::kFloat), 50, nullptr).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(JpegRoundTrip(torch::zeros({1, 2, 8, 8}, torch::kUInt8), 50, nullptr).status().code(),
            ErrorCode::kInvalidArgument);
}

#else  // !SPLITINFER_WITH_OPENCV

TEST(ImageBaselineTest, UnimplementedWithoutOpenCv) {
  EXPECT_EQ(MeasureLosslessImages(TinyDataset(SmoothImages()), 0).status().code(), ErrorCode::kUnimplemented);
  GTEST_SKIP() << "built without OpenCV: the lossless image baseline is not available";
}

#endif  // SPLITINFER_WITH_OPENCV

}  // namespace
}  // namespace splitinfer::eval
