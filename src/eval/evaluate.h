// Evaluation: top-1 / top-5 of a (possibly split) model on a dataset.
//
// With a split point the images go through head() and tail() separately, the path the node
// and server take, and the feature shape and float bytes at the cut are reported.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/status.h"
#include "data/dataset.h"
#include "models/split_model.h"

namespace splitinfer::eval {

struct EvalOptions {
  int64_t batch_size = 500;
  int64_t limit = 0;  // 0 = the whole dataset
  torch::Device device = torch::kCPU;
  bool progress = false;  // a progress bar on stderr
  // With a split: called with each batch's features at the cut (float [B, ...], on the
  // evaluation device), e.g. to dump them for codec development.
  std::function<void(const torch::Tensor&)> feature_sink;
};

struct EvalResult {
  double top1 = 0;   // percent
  double top5 = -1;  // percent; -1 when the dataset has <= 10 classes
  int64_t images = 0;
  double seconds = 0;
  std::vector<int64_t> feature_shape;  // per image, at the split (empty without a split)
  int64_t feature_float_bytes = 0;     // float32 bytes per image at the split
};

Result<EvalResult> Evaluate(models::SplitModel& model, const data::Dataset& dataset, const data::Normalization& norm,
                            const std::optional<models::SplitPoint>& split, const EvalOptions& options);

// Number of rows of `logits` whose top-k contains the label.
int64_t CountTopK(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k);

}  // namespace splitinfer::eval
