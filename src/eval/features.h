// Feature dumps: the float feature maps at a split point, saved for codec development,
// calibration and benchmarks (`splitinfer eval --split S --dump-features FILE`).
//   FILE.pt      a LibTorch-serialised tensor [N, ...] (torch::load / Python's torch.jit.load)
//   FILE (other) raw little-endian float32, C order, with FILE.json = {"shape": [...], "dtype": "float32"}
#pragma once

#include <string>

#include <torch/types.h>

#include "core/status.h"

namespace splitinfer::eval {

Status SaveFeatures(const std::string& path, const torch::Tensor& features);
// Validates the JSON shape against the file size before reading.
Result<torch::Tensor> LoadFeatures(const std::string& path);

}  // namespace splitinfer::eval
