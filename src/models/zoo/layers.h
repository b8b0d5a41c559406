// Small pieces shared by several zoo architectures.
#pragma once

#include <torch/types.h>

namespace splitinfer::models {

// torchvision.ops.stochastic_depth, "row" mode: drops the residual branch per sample while
// training, rescaling survivors; identity in eval (so it never affects split equality).
torch::Tensor StochasticDepth(const torch::Tensor& x, double p, bool training);

}  // namespace splitinfer::models
