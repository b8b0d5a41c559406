// EfficientNetV2-S as a block chain, equivalent to torchvision's efficientnet_v2_s.
//
//   stem (conv 3x3/2, 24) | stage1 .. stage6 | head (conv 1x1 -> 1280) | classifier
//
// Stages 1-3 are FusedMBConv (one full 3x3 conv expands), 4-6 MBConv (1x1 expand, depthwise
// 3x3, squeeze-excitation, 1x1 project). All norms are BatchNorm with eps 1e-3, all
// activations SiLU. Mapping from torchvision (parameter registration order is the same):
//   features.0 -> stem, features.{1..6}.i -> stage{1..6}.i, features.7 -> head,
//   classifier.1 -> classifier.fc; inside a conv-norm-act "0"/"1" -> conv/bn; inside a block
//   "block.0..3" -> the present ones of expand, dwconv, se, project (FusedMBConv with ratio 1:
//   "block.0" -> conv); SqueezeExcitation fc1/fc2 keep their names.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "models/zoo/layers.h"
#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

namespace nn = torch::nn;

constexpr double kBatchNormEps = 1e-3;
constexpr double kStochasticDepthProb = 0.2;
constexpr double kDropout = 0.2;
constexpr int64_t kStemChannels = 24;
constexpr int64_t kHeadChannels = 1280;

// torchvision's _make_divisible(v, 8): round to the nearest multiple of 8, never more than
// 10 % down. (Every V2-S width is already a multiple of 8; kept so the config reads as upstream.)
int64_t MakeDivisible(double v, int64_t divisor = 8) {
  int64_t rounded = std::max<int64_t>(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * v) rounded += divisor;
  return rounded;
}

// Conv (no bias) + BatchNorm + optional SiLU, "same" padding: torchvision's Conv2dNormActivation.
struct ConvBnActImpl : nn::Module {
  ConvBnActImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool activation, int64_t groups = 1)
      : activation(activation),
        conv(register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                                                    .stride(stride)
                                                    .padding((kernel - 1) / 2)
                                                    .groups(groups)
                                                    .bias(false)))),
        bn(register_module("bn", nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(kBatchNormEps)))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = bn(conv(x));
    return activation ? torch::silu(x) : x;
  }

  bool activation;
  nn::Conv2d conv;
  nn::BatchNorm2d bn;
};
TORCH_MODULE(ConvBnAct);

struct SqueezeExcitationImpl : nn::Module {
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze)
      : fc1(register_module("fc1", nn::Conv2d(nn::Conv2dOptions(channels, squeeze, /*kernel_size=*/1)))),
        fc2(register_module("fc2", nn::Conv2d(nn::Conv2dOptions(squeeze, channels, /*kernel_size=*/1)))) {}

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor scale = fc2(torch::silu(fc1(torch::adaptive_avg_pool2d(x, {1, 1}))));
    return torch::sigmoid(scale) * x;
  }

  nn::Conv2d fc1;
  nn::Conv2d fc2;
};
TORCH_MODULE(SqueezeExcitation);

enum class BlockKind { kFusedMBConv, kMBConv };

struct StageConfig {
  BlockKind kind;
  double expand_ratio;
  int64_t kernel;
  int64_t stride;
  int64_t in;
  int64_t out;
  int64_t num_layers;
};

// torchvision's _efficientnet_conf("efficientnet_v2_s").
const std::vector<StageConfig>& V2SConfig() {
  static const std::vector<StageConfig> config = {
      {BlockKind::kFusedMBConv, 1, 3, 1, 24, 24, 2}, {BlockKind::kFusedMBConv, 4, 3, 2, 24, 48, 4},
      {BlockKind::kFusedMBConv, 4, 3, 2, 48, 64, 4}, {BlockKind::kMBConv, 4, 3, 2, 64, 128, 6},
      {BlockKind::kMBConv, 6, 3, 1, 128, 160, 9},    {BlockKind::kMBConv, 6, 3, 2, 160, 256, 15},
  };
  return config;
}

struct FusedMBConvImpl : nn::Module {
  FusedMBConvImpl(int64_t in, int64_t out, double expand_ratio, int64_t kernel, int64_t stride,
                  double stochastic_depth_prob)
      : use_residual(stride == 1 && in == out), stochastic_depth_prob(stochastic_depth_prob) {
    const int64_t expanded = MakeDivisible(in * expand_ratio);
    if (expanded != in) {
      expand = register_module("expand", ConvBnAct(in, expanded, kernel, stride, /*activation=*/true));
      project = register_module("project", ConvBnAct(expanded, out, /*kernel=*/1, /*stride=*/1, /*activation=*/false));
    } else {
      // Ratio 1: the single full conv maps in -> out directly.
      conv = register_module("conv", ConvBnAct(in, out, kernel, stride, /*activation=*/true));
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor r = conv ? conv(x) : project(expand(x));
    if (!use_residual) return r;
    return StochasticDepth(r, stochastic_depth_prob, is_training()) + x;
  }

  bool use_residual;
  double stochastic_depth_prob;
  ConvBnAct expand{nullptr};
  ConvBnAct project{nullptr};
  ConvBnAct conv{nullptr};
};
TORCH_MODULE(FusedMBConv);

struct MBConvImpl : nn::Module {
  MBConvImpl(int64_t in, int64_t out, double expand_ratio, int64_t kernel, int64_t stride,
             double stochastic_depth_prob)
      : use_residual(stride == 1 && in == out), stochastic_depth_prob(stochastic_depth_prob) {
    const int64_t expanded = MakeDivisible(in * expand_ratio);
    if (expanded != in) {
      expand = register_module("expand", ConvBnAct(in, expanded, /*kernel=*/1, /*stride=*/1, /*activation=*/true));
    }
    dwconv = register_module("dwconv", ConvBnAct(expanded, expanded, kernel, stride, /*activation=*/true,
                                                 /*groups=*/expanded));
    // Squeeze width follows the block's *input* width, as torchvision does.
    se = register_module("se", SqueezeExcitation(expanded, std::max<int64_t>(1, in / 4)));
    project = register_module("project", ConvBnAct(expanded, out, /*kernel=*/1, /*stride=*/1, /*activation=*/false));
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor r = expand ? expand(x) : x;
    r = project(se(dwconv(r)));
    if (!use_residual) return r;
    return StochasticDepth(r, stochastic_depth_prob, is_training()) + x;
  }

  bool use_residual;
  double stochastic_depth_prob;
  ConvBnAct expand{nullptr};
  ConvBnAct dwconv{nullptr};
  SqueezeExcitation se{nullptr};
  ConvBnAct project{nullptr};
};
TORCH_MODULE(MBConv);

// One config row: blocks registered as "0", "1", ...; only the first strides and changes width.
struct StageImpl : nn::Module {
  StageImpl(const StageConfig& c, const std::vector<double>& block_drop_probs) {
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const int64_t in = i == 0 ? c.in : c.out;
      const int64_t stride = i == 0 ? c.stride : 1;
      const std::string name = std::to_string(i);
      if (c.kind == BlockKind::kFusedMBConv) {
        FusedMBConv b(in, c.out, c.expand_ratio, c.kernel, stride, block_drop_probs[i]);
        register_module(name, b.ptr());
        blocks.emplace_back(std::move(b));
      } else {
        MBConv b(in, c.out, c.expand_ratio, c.kernel, stride, block_drop_probs[i]);
        register_module(name, b.ptr());
        blocks.emplace_back(std::move(b));
      }
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    for (auto& block : blocks) x = block.forward(x);
    return x;
  }

  std::vector<nn::AnyModule> blocks;
};
TORCH_MODULE(Stage);

struct ClassifierImpl : nn::Module {
  ClassifierImpl(int64_t features, int64_t num_classes)
      : dropout(register_module("dropout", nn::Dropout(kDropout))),
        fc(register_module("fc", nn::Linear(features, num_classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    return fc(dropout(torch::flatten(torch::adaptive_avg_pool2d(x, {1, 1}), /*start_dim=*/1)));
  }

  nn::Dropout dropout;
  nn::Linear fc;
};
TORCH_MODULE(Classifier);

}  // namespace

BlockChain MakeEfficientNetV2S(const ModelOptions& options) {
  TORCH_CHECK(options.width == 0,
              "efficientnet_v2_s has a fixed width; ModelOptions::width must be 0, got ", options.width);
  const auto& config = V2SConfig();

  BlockChain chain("efficientnet_v2_s");
  chain->add("stem", ConvBnAct(options.in_channels, kStemChannels, /*kernel=*/3, /*stride=*/2, /*activation=*/true),
             /*split_after=*/true);

  // Drop probability rises linearly with the block index over the whole network (torchvision
  // divides by the total block count, unlike ConvNeXt's total - 1).
  int64_t total_blocks = 0;
  for (const auto& c : config) total_blocks += c.num_layers;
  int64_t block_id = 0;
  for (size_t s = 0; s < config.size(); ++s) {
    std::vector<double> probs;
    for (int64_t i = 0; i < config[s].num_layers; ++i, ++block_id) {
      probs.push_back(kStochasticDepthProb * static_cast<double>(block_id) / static_cast<double>(total_blocks));
    }
    chain->add("stage" + std::to_string(s + 1), Stage(config[s], probs), /*split_after=*/true);
  }
  chain->add("head", ConvBnAct(config.back().out, kHeadChannels, /*kernel=*/1, /*stride=*/1, /*activation=*/true),
             /*split_after=*/true);
  chain->add("classifier", Classifier(kHeadChannels, options.num_classes), /*split_after=*/false);

  // torchvision's init: He-normal (fan_out) convs with zero bias, unit BN, Linear uniform in
  // +-1/sqrt(out_features) with zero bias.
  for (auto& m : chain->modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, /*a=*/0, torch::kFanOut);
      if (conv->bias.defined()) nn::init::zeros_(conv->bias);
    } else if (auto* bn = m->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    } else if (auto* linear = m->as<nn::Linear>()) {
      const double range = 1.0 / std::sqrt(static_cast<double>(linear->options.out_features()));
      nn::init::uniform_(linear->weight, -range, range);
      nn::init::zeros_(linear->bias);
    }
  }
  return chain;
}

}  // namespace splitinfer::models
