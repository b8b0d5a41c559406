// Batch transforms: uint8 [N, C, H, W] in, float [N, C, H, W] out.
//
// Augmentation draws from an explicit torch::Generator so that training is reproducible from
// --seed. All ops are vectorised over the batch (no per-image loop in Python-style code).
#pragma once

#include <optional>

#include <torch/types.h>

#include "data/dataset.h"

namespace splitinfer::data {

// uint8 -> float in [0, 1] -> (x - mean) / std per channel.
torch::Tensor ToFloatNormalized(const torch::Tensor& images_u8, const Normalization& norm);

// Zero-pads by `padding` (zero = black in the original image) and crops back to H x W at a
// random offset per image.
torch::Tensor RandomCropWithPadding(const torch::Tensor& images, int64_t padding, torch::Generator& gen);

// Mirrors each image left-right with probability p.
torch::Tensor RandomHorizontalFlip(const torch::Tensor& images, double p, torch::Generator& gen);

// Bilinear resize of a batch to size x size (antialiased when shrinking is not needed here).
torch::Tensor Resize(const torch::Tensor& images, int64_t height, int64_t width);

// n uint8 images [n, c, h, w] of smooth noise (a coarse random field, bilinearly upsampled):
// stand-ins where a model has no dataset (zoo models with random weights). Times of the codec
// and the network on them are representative; bytes are not those of real images.
torch::Tensor SmoothRandomImages(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed);

struct AugmentOptions {
  int64_t crop_padding = 0;  // 0 = no random crop
  double flip_probability = 0.0;
};

// The training pipeline: uint8 batch -> augmented (uint8 domain) -> normalised float.
torch::Tensor TrainTransform(const torch::Tensor& images_u8, const Normalization& norm,
                             const AugmentOptions& aug, torch::Generator& gen);

}  // namespace splitinfer::data
