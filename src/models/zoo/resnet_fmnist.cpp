// resnet_fmnist: a small residual network for 28x28 grayscale images.
//
// Sized for CPU training (about 75 s per Fashion-MNIST epoch on 2 cores at width 64) while the
// stem's feature map (64 x 14 x 14) is the shape the codec's benchmarks use.
#include <torch/torch.h>

#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

torch::nn::Conv2dOptions Conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false);
}

struct StemImpl : torch::nn::Module {
  StemImpl(int64_t in, int64_t width)
      : conv(register_module("conv", torch::nn::Conv2d(Conv(in, width, /*k=*/3, /*stride=*/2)))),
        bn(register_module("bn", torch::nn::BatchNorm2d(width))) {}
  torch::Tensor forward(const torch::Tensor& x) { return torch::relu(bn(conv(x))); }
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d bn;
};
TORCH_MODULE(Stem);

struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module("conv1", torch::nn::Conv2d(Conv(in, out, 3, stride)))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(out))),
        conv2(register_module("conv2", torch::nn::Conv2d(Conv(out, out, 3, 1)))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      shortcut = register_module("shortcut", torch::nn::Sequential(torch::nn::Conv2d(Conv(in, out, 1, stride)),
                                                                   torch::nn::BatchNorm2d(out)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    return torch::relu(y + (shortcut.is_empty() ? x : shortcut->forward(x)));
  }
  torch::nn::Conv2d conv1, conv2;
  torch::nn::BatchNorm2d bn1, bn2;
  torch::nn::Sequential shortcut{nullptr};
};
TORCH_MODULE(BasicBlock);

struct ClassifierImpl : torch::nn::Module {
  ClassifierImpl(int64_t in, int64_t classes) : fc(register_module("fc", torch::nn::Linear(in, classes))) {}
  torch::Tensor forward(const torch::Tensor& x) { return fc(x.mean({2, 3})); }
  torch::nn::Linear fc;
};
TORCH_MODULE(Classifier);

}  // namespace

BlockChain MakeResNetFmnist(const ModelOptions& options) {
  const int64_t width = options.width > 0 ? options.width : 64;
  const int64_t depth = options.depth > 0 ? options.depth : 1;
  BlockChain chain("resnet_fmnist");
  chain->add("stem", Stem(options.in_channels, width), /*split_after=*/true);
  int64_t in = width;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out = width << stage;
    SequentialBlock blocks;
    for (int64_t b = 0; b < depth; ++b) {
      blocks->push_back(BasicBlock(in, out, /*stride=*/(b == 0 && stage > 0) ? 2 : 1));
      in = out;
    }
    chain->add("stage" + std::to_string(stage + 1), blocks, /*split_after=*/true);
  }
  chain->add("classifier", Classifier(in, options.num_classes), /*split_after=*/false);
  return chain;
}

}  // namespace splitinfer::models
