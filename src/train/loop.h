// Pieces every training loop here shares (the supervised trainer and the compression-aware
// methods), so that they shuffle, limit data and build optimizers the same way.
#pragma once

#include <memory>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "core/status.h"
#include "data/dataset.h"
#include "train/config.h"

namespace splitinfer::train {

// A permutation of [0, n) for one epoch from its own generator, so a resumed run draws exactly
// the order the uninterrupted run would have.
std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch);

// The configured dataset split, limited to limit_train / limit_test examples when those are > 0.
Result<std::unique_ptr<data::Dataset>> OpenSplit(const DataConfig& c, data::Split split);

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& c, std::vector<torch::Tensor> params);
void SetLearningRate(torch::optim::Optimizer& opt, double lr);

}  // namespace splitinfer::train
