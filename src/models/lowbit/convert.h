// models/lowbit: a trained LibTorch head (blocks 0..k) as a kernels::HeadGraph, and the
// conversions between torch tensors and kernels::Tensor3.
//
//   checkpoint + split --ExtractHead--> float graph (batch norm folded into the convs)
//                      --CheckAgainstTorch--> max difference to the LibTorch head on real images
//                      --kernels::QuantizeGraph--> low-bit graph --kernels::SaveHead--> file
//
// Supported blocks: ResNet-style heads of native chains (the zoo, checkpoints) and of TorchScript
// chains (tools/export_torchscript.py) alike, read through one view of a module. Blocks are
// recognised by their children's names: a stem {conv, bn} (resnet_fmnist) or {conv1, bn1}
// (+ 3x3/2 max-pool: the zoo's torchvision ResNets), basic blocks {conv1, bn1, conv2, bn2,
// [shortcut|downsample]}, bottlenecks (+ conv3, bn3), and sequences of them; a lone Conv2d,
// BatchNorm2d, ReLU or MaxPool2d block (a scripted torchvision ResNet's stem is four blocks)
// folds into the op before it. Anything else is UNIMPLEMENTED naming the block; a recognised
// structure whose forward differs is caught by CheckAgainstTorch.
#pragma once

#include <string>

#include <torch/types.h>

#include "core/status.h"
#include "kernels/head.h"
#include "models/split_model.h"

namespace splitinfer::models::lowbit {

Result<kernels::HeadGraph> ExtractHead(SplitModel& model, const std::string& model_name, const SplitPoint& split,
                                       const std::vector<int64_t>& input_shape);

// Max |graph(x) - head(x)| over the images (normalised, [N, C, H, W]) relative to max |head(x)|.
Result<double> CheckAgainstTorch(const kernels::HeadGraph& graph, SplitModel& model, const SplitPoint& split,
                                 const torch::Tensor& images);

kernels::Tensor3 ToTensor3(const torch::Tensor& chw);      // one image [C, H, W] (or [1, C, H, W])
torch::Tensor FromTensor3(const kernels::Tensor3& t);      // [1, C, H, W] float

}  // namespace splitinfer::models::lowbit
