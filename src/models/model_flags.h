// The metadata flags of a model reference (models/model_ref.h), kept free of LibTorch so that
// option structs of LibTorch-free modules (plan's profile options) can carry them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace splitinfer::models {

// Metadata for a TorchScript file given on the command line; each field set overrides the
// file's own. Empty/zero fields override nothing.
struct ModelMetaFlags {
  std::vector<int64_t> input_shape;  // {C, H, W}
  std::vector<double> mean, std;
  std::vector<std::string> class_names;
  std::vector<std::string> split_points;
  std::string resize;       // "center_crop" or "stretch" (CheckpointMeta::resize)
  int64_t resize_size = 0;  // center_crop's shorter side
  bool any() const {
    return !input_shape.empty() || !mean.empty() || !std.empty() || !class_names.empty() || !split_points.empty() ||
           !resize.empty() || resize_size != 0;
  }
};

}  // namespace splitinfer::models
