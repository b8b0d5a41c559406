// ConvNeXt-Tiny as a block chain, equivalent to torchvision's convnext_tiny.
//
//   stem (conv 4x4/4, LayerNorm2d) | stage1 | stage2 | stage3 | stage4 | classifier
//   stageK (K >= 2) = downsample (LayerNorm2d, conv 2x2/2) followed by CNBlocks
//
// torchvision keeps each downsample as its own feature layer after a stage; here it opens the
// next stage, so a cut "after stageK" sends the un-downsampled map, the natural end of a stage.
// Mapping from torchvision (parameter registration order is the same):
//   features.0.{0,1}            -> stem.{conv,norm}
//   features.{1,3,5,7}.i        -> stage{1..4}.i      (CNBlock: block.{0,2,3,5} -> dwconv, norm,
//                                                       pwconv1, pwconv2; layer_scale as is)
//   features.{2,4,6}.{0,1}      -> stage{2..4}.downsample.{norm,conv}
//   classifier.{0,2}            -> classifier.{norm,fc}
#include <string>
#include <vector>

#include <torch/torch.h>

#include "models/zoo/layers.h"
#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

namespace nn = torch::nn;

constexpr double kNormEps = 1e-6;
constexpr double kLayerScaleInit = 1e-6;
constexpr double kStochasticDepthProb = 0.1;  // torchvision's convnext_tiny default

// LayerNorm over channels of an NCHW map. weight/bias live directly on the module (as in
// torchvision, where LayerNorm2d subclasses nn.LayerNorm).
struct LayerNorm2dImpl : nn::Module {
  explicit LayerNorm2dImpl(int64_t channels)
      : channels(channels),
        weight(register_parameter("weight", torch::ones({channels}))),
        bias(register_parameter("bias", torch::zeros({channels}))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::layer_norm(x.permute({0, 2, 3, 1}), {channels}, weight, bias, kNormEps);
    return x.permute({0, 3, 1, 2});
  }

  int64_t channels;
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(LayerNorm2d);

struct CNBlockImpl : nn::Module {
  CNBlockImpl(int64_t dim, double stochastic_depth_prob)
      : stochastic_depth_prob(stochastic_depth_prob),
        layer_scale(register_parameter("layer_scale", torch::full({dim, 1, 1}, kLayerScaleInit))),
        dwconv(register_module(
            "dwconv", nn::Conv2d(nn::Conv2dOptions(dim, dim, /*kernel_size=*/7).padding(3).groups(dim)))),
        norm(register_module("norm", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(kNormEps)))),
        pwconv1(register_module("pwconv1", nn::Linear(dim, 4 * dim))),
        pwconv2(register_module("pwconv2", nn::Linear(4 * dim, dim))) {}

  torch::Tensor forward(torch::Tensor x) {
    // The pointwise layers are Linear on channels-last, as in the paper and torchvision.
    torch::Tensor r = dwconv(x).permute({0, 2, 3, 1});
    r = pwconv2(torch::gelu(pwconv1(norm(r))));
    r = layer_scale * r.permute({0, 3, 1, 2});
    return StochasticDepth(r, stochastic_depth_prob, is_training()) + x;
  }

  double stochastic_depth_prob;
  torch::Tensor layer_scale;
  nn::Conv2d dwconv;
  nn::LayerNorm norm;
  nn::Linear pwconv1;
  nn::Linear pwconv2;
};
TORCH_MODULE(CNBlock);

struct StemImpl : nn::Module {
  StemImpl(int64_t in_channels, int64_t dim)
      : conv(register_module("conv",
                             nn::Conv2d(nn::Conv2dOptions(in_channels, dim, /*kernel_size=*/4).stride(4)))),
        norm(register_module("norm", LayerNorm2d(dim))) {}

  torch::Tensor forward(torch::Tensor x) { return norm(conv(x)); }

  nn::Conv2d conv;
  LayerNorm2d norm;
};
TORCH_MODULE(Stem);

struct DownsampleImpl : nn::Module {
  DownsampleImpl(int64_t in, int64_t out)
      : norm(register_module("norm", LayerNorm2d(in))),
        conv(register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, /*kernel_size=*/2).stride(2)))) {}

  torch::Tensor forward(torch::Tensor x) { return conv(norm(x)); }

  LayerNorm2d norm;
  nn::Conv2d conv;
};
TORCH_MODULE(Downsample);

// Optional downsample, then CNBlocks registered as "0", "1", ...
struct StageImpl : nn::Module {
  StageImpl(int64_t in, int64_t dim, const std::vector<double>& block_drop_probs) {
    if (in != dim) downsample = register_module("downsample", Downsample(in, dim));
    for (size_t i = 0; i < block_drop_probs.size(); ++i) {
      blocks.push_back(register_module(std::to_string(i), CNBlock(dim, block_drop_probs[i])));
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    if (downsample) x = downsample(x);
    for (auto& block : blocks) x = block(x);
    return x;
  }

  Downsample downsample{nullptr};
  std::vector<CNBlock> blocks;
};
TORCH_MODULE(Stage);

struct ClassifierImpl : nn::Module {
  ClassifierImpl(int64_t dim, int64_t num_classes)
      : norm(register_module("norm", LayerNorm2d(dim))), fc(register_module("fc", nn::Linear(dim, num_classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    return fc(torch::flatten(norm(torch::adaptive_avg_pool2d(x, {1, 1})), /*start_dim=*/1));
  }

  LayerNorm2d norm;
  nn::Linear fc;
};
TORCH_MODULE(Classifier);

}  // namespace

BlockChain MakeConvNeXtTiny(const ModelOptions& options) {
  TORCH_CHECK(options.width == 0, "convnext_tiny has a fixed width; ModelOptions::width must be 0, got ",
              options.width);
  const std::vector<int64_t> depths = {3, 3, 9, 3};
  const std::vector<int64_t> dims = {96, 192, 384, 768};

  BlockChain chain("convnext_tiny");
  chain->add("stem", Stem(options.in_channels, dims[0]), /*split_after=*/true);

  // The drop probability rises linearly from 0 at the first block to the maximum at the last.
  int64_t total_blocks = 0;
  for (int64_t d : depths) total_blocks += d;
  int64_t block_id = 0;
  int64_t in = dims[0];
  for (size_t s = 0; s < depths.size(); ++s) {
    std::vector<double> probs;
    for (int64_t i = 0; i < depths[s]; ++i, ++block_id) {
      probs.push_back(kStochasticDepthProb * static_cast<double>(block_id) / (total_blocks - 1.0));
    }
    chain->add("stage" + std::to_string(s + 1), Stage(in, dims[s], probs), /*split_after=*/true);
    in = dims[s];
  }
  chain->add("classifier", Classifier(in, options.num_classes), /*split_after=*/false);

  // torchvision: trunc_normal_(std=0.02) with the default absolute bounds +-2, i.e. 100 std
  // away, so a plain normal draws from the same distribution. Biases zero.
  for (auto& m : chain->modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      nn::init::normal_(conv->weight, /*mean=*/0.0, /*std=*/0.02);
      nn::init::zeros_(conv->bias);
    } else if (auto* linear = m->as<nn::Linear>()) {
      nn::init::normal_(linear->weight, /*mean=*/0.0, /*std=*/0.02);
      nn::init::zeros_(linear->bias);
    }
  }
  return chain;
}

}  // namespace splitinfer::models
