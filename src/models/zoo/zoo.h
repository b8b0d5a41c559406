// The model zoo: every architecture splitinfer can cut, built as a BlockChain.
//
// ImageNet architectures match torchvision's parameter counts exactly (tests/models checks
// each), so weights exported from torchvision line up by shape. Split points: after the stem
// and after each stage (ViT: after patch embedding and after each encoder layer).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "models/split_model.h"

namespace splitinfer::models {

// NOT_FOUND listing the known names for an unknown model.
Result<BlockChain> CreateModel(const std::string& name, const ModelOptions& options);

// What a zoo model is built for when no checkpoint says otherwise (random weights: profiles,
// benchmarks, `splitinfer models`): resnet_fmnist takes 1x28x28 Fashion-MNIST images into 10
// classes, every other model 3x224x224 ImageNet-normalised images into 1000. Random weights
// were trained on nothing, so a zoo name names no dataset: commands that read images take --data.
struct ZooDefaults {
  ModelOptions options;
  std::string task = "classify";  // CheckpointMeta::task; yolov3_tiny: "detect"
  std::vector<std::array<double, 2>> anchors;  // detect: the architecture's published anchors
  std::vector<int64_t> input_shape;  // {C, H, W}
  // The normalisation of the data the architecture is made for: Fashion-MNIST's for
  // resnet_fmnist, ImageNet's otherwise (the numbers of data::DefaultNormalization; models does
  // not depend on data, and tests/models checks that the two agree).
  std::vector<double> norm_mean, norm_std;
};
ZooDefaults DefaultsFor(const std::string& name);
std::vector<std::string> ModelNames();

// Small residual network for 28x28 grayscale (Fashion-MNIST). Blocks: stem (conv3x3 stride 2
// -> width x 14 x 14), stage1 (width, 14x14), stage2 (2*width, 7x7), stage3 (4*width, 4x4),
// classifier. `depth` = basic blocks per stage (default 1).
BlockChain MakeResNetFmnist(const ModelOptions& options);

// torchvision-equivalent ImageNet architectures (224x224 RGB input).
BlockChain MakeResNet18(const ModelOptions& options);         // 11,689,512 params
BlockChain MakeResNet50(const ModelOptions& options);         // 25,557,032 params
BlockChain MakeConvNeXtTiny(const ModelOptions& options);     // 28,589,128 params
BlockChain MakeEfficientNetV2S(const ModelOptions& options);  // 21,458,488 params
BlockChain MakeViTB16(const ModelOptions& options);           // 86,567,656 params

// Darknet's YOLOv3-tiny (src/models/zoo/yolo.cpp): 8,852,366 params at 80 classes, 3 channels,
// width 16 (the cfg's; tests/models computes the count from the cfg). `width` scales every
// layer (16 x 2^k channels); its output packs both heads (see yolo.cpp). Its zoo defaults are
// the cfg's: 3x416x416 inputs scaled to [0, 1] (no mean/std), 80 classes, the COCO anchors.
BlockChain MakeYoloV3Tiny(const ModelOptions& options);

}  // namespace splitinfer::models
