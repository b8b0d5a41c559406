// ResNet-18 / ResNet-50 as block chains, equivalent to torchvision's resnet18 / resnet50
// (v1.5: the Bottleneck downsamples on its 3x3 conv, not on the first 1x1).
//
//   stem (conv1 7x7/2, bn1, relu, maxpool 3x3/2) | layer1 | layer2 | layer3 | layer4 | classifier
//
// Parameter names match torchvision's below the block prefix: torchvision "conv1.weight" is
// "stem.conv1.weight", "fc.weight" is "classifier.fc.weight", "layer2.0.downsample.1.weight" is
// the same name here. Registration order equals torchvision's, so named_parameters() pair up.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

namespace nn = torch::nn;

nn::Conv2d Conv3x3(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, /*kernel_size=*/3).stride(stride).padding(1).bias(false));
}

nn::Conv2d Conv1x1(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, /*kernel_size=*/1).stride(stride).bias(false));
}

// The projection shortcut, or an empty Sequential when the identity fits. A Sequential (not
// named members) so its children are "downsample.0" / "downsample.1" as in torchvision.
nn::Sequential MakeDownsample(int64_t in, int64_t out, int64_t stride) {
  if (stride == 1 && in == out) return nullptr;
  return nn::Sequential(Conv1x1(in, out, stride), nn::BatchNorm2d(out));
}

struct BasicBlockImpl : nn::Module {
  static constexpr int64_t kExpansion = 1;

  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1(register_module("conv1", Conv3x3(in, planes, stride))),
        bn1(register_module("bn1", nn::BatchNorm2d(planes))),
        conv2(register_module("conv2", Conv3x3(planes, planes, /*stride=*/1))),
        bn2(register_module("bn2", nn::BatchNorm2d(planes))),
        downsample(MakeDownsample(in, planes * kExpansion, stride)) {
    if (downsample) register_module("downsample", downsample);
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1(conv1(x)));
    out = bn2(conv2(out));
    return torch::relu(out + (downsample ? downsample->forward(x) : x));
  }

  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Sequential downsample;
};
TORCH_MODULE(BasicBlock);

struct BottleneckImpl : nn::Module {
  static constexpr int64_t kExpansion = 4;

  BottleneckImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1(register_module("conv1", Conv1x1(in, planes, /*stride=*/1))),
        bn1(register_module("bn1", nn::BatchNorm2d(planes))),
        // v1.5: the stride sits on the 3x3 conv (better accuracy than v1's strided 1x1).
        conv2(register_module("conv2", Conv3x3(planes, planes, stride))),
        bn2(register_module("bn2", nn::BatchNorm2d(planes))),
        conv3(register_module("conv3", Conv1x1(planes, planes * kExpansion, /*stride=*/1))),
        bn3(register_module("bn3", nn::BatchNorm2d(planes * kExpansion))),
        downsample(MakeDownsample(in, planes * kExpansion, stride)) {
    if (downsample) register_module("downsample", downsample);
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1(conv1(x)));
    out = torch::relu(bn2(conv2(out)));
    out = bn3(conv3(out));
    return torch::relu(out + (downsample ? downsample->forward(x) : x));
  }

  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Conv2d conv3;
  nn::BatchNorm2d bn3;
  nn::Sequential downsample;
};
TORCH_MODULE(Bottleneck);

struct StemImpl : nn::Module {
  explicit StemImpl(int64_t in_channels)
      : conv1(register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in_channels, 64, /*kernel_size=*/7)
                                                      .stride(2)
                                                      .padding(3)
                                                      .bias(false)))),
        bn1(register_module("bn1", nn::BatchNorm2d(64))) {}

  torch::Tensor forward(torch::Tensor x) {
    return torch::max_pool2d(torch::relu(bn1(conv1(x))), /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
  }

  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
};
TORCH_MODULE(Stem);

// One stage of residual blocks. Blocks are registered as "0", "1", ... directly on the stage
// so the names read "layer1.0.conv1.weight" exactly as torchvision's Sequential does.
struct ResLayerImpl : nn::Module {
  template <typename Block>
  static std::shared_ptr<ResLayerImpl> Make(int64_t* in, int64_t planes, int64_t num_blocks, int64_t stride) {
    auto layer = std::make_shared<ResLayerImpl>();
    for (int64_t i = 0; i < num_blocks; ++i) {
      Block block(*in, planes, i == 0 ? stride : 1);
      layer->register_module(std::to_string(i), block.ptr());
      layer->blocks.emplace_back(std::move(block));
      *in = planes * Block::Impl::kExpansion;
    }
    return layer;
  }

  torch::Tensor forward(torch::Tensor x) {
    for (auto& block : blocks) x = block.forward(x);
    return x;
  }

  std::vector<nn::AnyModule> blocks;
};
TORCH_MODULE(ResLayer);

struct ClassifierImpl : nn::Module {
  ClassifierImpl(int64_t features, int64_t num_classes)
      : fc(register_module("fc", nn::Linear(features, num_classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    return fc(torch::flatten(torch::adaptive_avg_pool2d(x, {1, 1}), /*start_dim=*/1));
  }

  nn::Linear fc;
};
TORCH_MODULE(Classifier);

template <typename Block>
BlockChain MakeResNet(const std::string& name, const std::vector<int64_t>& layers, const ModelOptions& options) {
  TORCH_CHECK(options.width == 0, name, " has a fixed width; ModelOptions::width must be 0, got ",
              options.width);
  BlockChain chain(name);
  chain->add("stem", Stem(options.in_channels), /*split_after=*/true);
  int64_t in = 64;
  const int64_t planes[] = {64, 128, 256, 512};
  for (size_t i = 0; i < layers.size(); ++i) {
    ResLayer layer(ResLayerImpl::Make<Block>(&in, planes[i], layers[i], /*stride=*/i == 0 ? 1 : 2));
    chain->add("layer" + std::to_string(i + 1), layer, /*split_after=*/true);
  }
  chain->add("classifier", Classifier(in, options.num_classes), /*split_after=*/false);

  // torchvision's init: He-normal (fan_out) convs, unit BN; Linear keeps its default init,
  // which LibTorch shares with PyTorch.
  for (auto& m : chain->modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, /*a=*/0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = m->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    }
  }
  return chain;
}

}  // namespace

BlockChain MakeResNet18(const ModelOptions& options) {
  return MakeResNet<BasicBlock>("resnet18", {2, 2, 2, 2}, options);
}

BlockChain MakeResNet50(const ModelOptions& options) {
  return MakeResNet<Bottleneck>("resnet50", {3, 4, 6, 3}, options);
}

}  // namespace splitinfer::models
