#include "data/transforms.h"

#include <torch/torch.h>

namespace splitinfer::data {

torch::Tensor SmoothRandomImages(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto g = torch::rand({n, c, h / 8 + 1, w / 8 + 1}, gen);
  return (torch::nn::functional::interpolate(g, torch::nn::functional::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{h, w})
                                                    .mode(torch::kBilinear)
                                                    .align_corners(false)) *
          255)
      .round()
      .to(torch::kUInt8);
}

torch::Tensor ToFloatNormalized(const torch::Tensor& images_u8, const Normalization& norm) {
  const int64_t c = images_u8.size(1);
  TORCH_CHECK(static_cast<int64_t>(norm.mean.size()) == c && static_cast<int64_t>(norm.std.size()) == c,
              "normalization has ", norm.mean.size(), " channels, images have ", c);
  auto mean = torch::tensor(norm.mean, torch::kFloat32).view({1, c, 1, 1}).to(images_u8.device());
  auto std = torch::tensor(norm.std, torch::kFloat32).view({1, c, 1, 1}).to(images_u8.device());
  return (images_u8.to(torch::kFloat32).div_(255.0f) - mean) / std;
}

torch::Tensor RandomCropWithPadding(const torch::Tensor& images, int64_t padding, torch::Generator& gen) {
  if (padding <= 0) return images;
  const int64_t n = images.size(0), h = images.size(2), w = images.size(3);
  auto padded = torch::constant_pad_nd(images, {padding, padding, padding, padding}, 0);
  // One gather per batch: row/col index grids offset per image.
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  auto dy = torch::randint(0, 2 * padding + 1, {n}, gen, opts);
  auto dx = torch::randint(0, 2 * padding + 1, {n}, gen, opts);
  auto rows = (dy.view({n, 1}) + torch::arange(h, opts).view({1, h}));  // [n, h]
  auto cols = (dx.view({n, 1}) + torch::arange(w, opts).view({1, w}));  // [n, w]
  const int64_t c = images.size(1), pw = w + 2 * padding;
  // Flat index into padded [n, c, ph, pw] per (n, h, w), shared over channels.
  auto flat = rows.view({n, h, 1}) * pw + cols.view({n, 1, w});  // [n, h, w]
  auto src = padded.reshape({n, c, -1});
  auto idx = flat.view({n, 1, h * w}).expand({n, c, h * w});
  return src.gather(2, idx).view({n, c, h, w});
}

torch::Tensor RandomHorizontalFlip(const torch::Tensor& images, double p, torch::Generator& gen) {
  if (p <= 0.0) return images;
  const int64_t n = images.size(0);
  auto mask = torch::rand({n}, gen) < p;
  auto flipped = images.flip({3});
  return torch::where(mask.view({n, 1, 1, 1}), flipped, images);
}

torch::Tensor Resize(const torch::Tensor& images, int64_t height, int64_t width) {
  const bool is_u8 = images.scalar_type() == torch::kUInt8;
  auto x = is_u8 ? images.to(torch::kFloat32) : images;
  auto y = torch::nn::functional::interpolate(
      x, torch::nn::functional::InterpolateFuncOptions()
             .size(std::vector<int64_t>{height, width})
             .mode(torch::kBilinear)
             .align_corners(false));
  return is_u8 ? y.round().clamp(0, 255).to(torch::kUInt8) : y;
}

torch::Tensor TrainTransform(const torch::Tensor& images_u8, const Normalization& norm, const AugmentOptions& aug,
                             torch::Generator& gen) {
  auto x = RandomCropWithPadding(images_u8, aug.crop_padding, gen);
  x = RandomHorizontalFlip(x, aug.flip_probability, gen);
  return ToFloatNormalized(x, norm);
}

}  // namespace splitinfer::data
