// models/lowbit: a trained LibTorch head (blocks 0..k) as a kernels::HeadGraph, and the
// conversions between torch tensors and kernels::Tensor3.
//
//   checkpoint + split --ExtractHead--> float graph (batch norm folded into the convs)
//                      --CheckAgainstTorch--> max difference to the LibTorch head on real images
//                      --kernels::QuantizeGraph--> low-bit graph --kernels::SaveHead--> file
//
// Supported blocks: ResNet-style heads, recognised by their children's names: a stem
// {conv, bn} (resnet_fmnist) or {conv1, bn1} (+ 3x3/2 max-pool: torchvision ResNets), basic
// blocks {conv1, bn1, conv2, bn2, [shortcut|downsample]}, bottlenecks (+ conv3, bn3), and
// sequences of them. Anything else is UNIMPLEMENTED naming the block; a recognised structure
// whose forward differs is caught by CheckAgainstTorch.
#pragma once

#include <string>

#include <torch/types.h>

#include "core/status.h"
#include "kernels/head.h"
#include "models/split_model.h"

namespace splitinfer::models::lowbit {

Result<kernels::HeadGraph> ExtractHead(BlockChain& model, const std::string& model_name, const SplitPoint& split,
                                       const std::vector<int64_t>& input_shape);

// Max |graph(x) - head(x)| over the images (normalised, [N, C, H, W]) relative to max |head(x)|.
Result<double> CheckAgainstTorch(const kernels::HeadGraph& graph, BlockChain& model, const SplitPoint& split,
                                 const torch::Tensor& images);

kernels::Tensor3 ToTensor3(const torch::Tensor& chw);      // one image [C, H, W] (or [1, C, H, W])
torch::Tensor FromTensor3(const kernels::Tensor3& t);      // [1, C, H, W] float

}  // namespace splitinfer::models::lowbit
