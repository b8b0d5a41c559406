// yolov3_tiny: Darknet's YOLOv3-tiny (cfg/yolov3-tiny.cfg in pjreddie/darknet) as a BlockChain.
//
//   stage1..stage4: conv 3x3 (16, 32, 64, 128 at width 16) + BN + LeakyReLU(0.1), max-pool 2/2
//   stage5:         conv 3x3 256 + BN + leaky          <- the route's source (darknet layer 8)
//   neck_heads:     max-pool 2/2, conv 512, max-pool 2/1 (zero-padded right and bottom, as
//                   darknet and ultralytics do), conv 1024, conv 1x1 256 -> [conv 512, conv 1x1
//                   A(5+C) with bias: the stride-32 head]; conv 1x1 128, upsample x2, concat with
//                   stage5's output, conv 256, conv 1x1 A(5+C) with bias: the stride-16 head
//
// Every split point carries one tensor: stage5's output is both the neck's input and the route's
// source, so a cut after stage1..stage5 sends what the server needs. A cut inside the neck (after
// its max-pools or its 512/1024 convolutions) would have to send stage5's map as well; those are
// refused by name (find_split) rather than sent as two tensors.
//
// The output packs both heads into one tensor [N, A(5+C), H32*W32 + H16*W16]: the stride-32
// cells first (row-major), then the stride-16 cells; per cell and anchor the raw tx, ty, tw, th,
// objectness and class logits, in darknet's channel order (anchor-major). Decoding (anchors,
// sigmoid/exp, NMS) is the detector's task code, not the network's.
#include <torch/torch.h>

#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

constexpr int64_t kAnchorsPerScale = 3;

struct ConvBnLeakyImpl : torch::nn::Module {
  ConvBnLeakyImpl(int64_t in, int64_t out, int64_t k)
      : conv(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).padding(k / 2).bias(false)))),
        bn(register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).momentum(0.03).eps(1e-4)))) {}
  torch::Tensor forward(const torch::Tensor& x) { return torch::leaky_relu(bn(conv(x)), 0.1); }
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d bn;
};
TORCH_MODULE(ConvBnLeaky);

struct PooledStageImpl : torch::nn::Module {
  PooledStageImpl(int64_t in, int64_t out) : conv(register_module("conv", ConvBnLeaky(in, out, 3))) {}
  torch::Tensor forward(const torch::Tensor& x) { return torch::max_pool2d(conv(x), 2, 2); }
  ConvBnLeaky conv;
};
TORCH_MODULE(PooledStage);

struct NeckHeadsImpl : torch::nn::Module {
  NeckHeadsImpl(int64_t w, int64_t outputs)
      : conv6(register_module("conv6", ConvBnLeaky(16 * w, 32 * w, 3))),
        conv7(register_module("conv7", ConvBnLeaky(32 * w, 64 * w, 3))),
        reduce(register_module("reduce", ConvBnLeaky(64 * w, 16 * w, 1))),
        conv_big(register_module("conv_big", ConvBnLeaky(16 * w, 32 * w, 3))),
        head_big(register_module("head_big", torch::nn::Conv2d(torch::nn::Conv2dOptions(32 * w, outputs, 1)))),
        lateral(register_module("lateral", ConvBnLeaky(16 * w, 8 * w, 1))),
        conv_small(register_module("conv_small", ConvBnLeaky(8 * w + 16 * w, 16 * w, 3))),
        head_small(register_module("head_small", torch::nn::Conv2d(torch::nn::Conv2dOptions(16 * w, outputs, 1)))) {}
  torch::Tensor forward(const torch::Tensor& route) {  // route: stage5's output, stride 16
    auto x = conv6(torch::max_pool2d(route, 2, 2));
    x = torch::max_pool2d(torch::constant_pad_nd(x, {0, 1, 0, 1}, 0), 2, 1);
    const auto r = reduce(conv7(x));
    const auto big = head_big(conv_big(r));  // stride 32
    auto up = torch::upsample_nearest2d(lateral(r), {route.size(2), route.size(3)});
    const auto small = head_small(conv_small(torch::cat({up, route}, 1)));  // stride 16
    return torch::cat({big.flatten(2), small.flatten(2)}, 2);
  }
  ConvBnLeaky conv6, conv7, reduce, conv_big;
  torch::nn::Conv2d head_big;
  ConvBnLeaky lateral, conv_small;
  torch::nn::Conv2d head_small;
};
TORCH_MODULE(NeckHeads);

}  // namespace

BlockChain MakeYoloV3Tiny(const ModelOptions& options) {
  // Darknet's widths are 16 x 2^k; `width` scales them all (16 = the published network).
  const int64_t w = options.width > 0 ? options.width : 16;
  BlockChain chain("yolov3_tiny");
  int64_t in = options.in_channels;
  for (int s = 0; s < 4; ++s) {
    chain->add("stage" + std::to_string(s + 1), PooledStage(in, w << s), /*split_after=*/true);
    in = w << s;
  }
  chain->add("stage5", ConvBnLeaky(in, 16 * w, 3), /*split_after=*/true);
  chain->add("neck_heads", NeckHeads(w, kAnchorsPerScale * (5 + options.num_classes)), /*split_after=*/false);
  for (const char* inside : {"stage6", "conv7", "neck"}) {
    chain->refuse_split(inside, "a cut inside yolov3_tiny's neck would have to send stage5's map as well (the route "
                                "to the stride-16 head reuses it), and frames carry one tensor; cut at stage1..stage5");
  }
  return chain;
}

}  // namespace splitinfer::models
