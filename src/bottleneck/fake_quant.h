// bottleneck/fake_quant: the quantizer as seen by training.
//
// Training cannot back-propagate through the codec's integer symbols, so methods that learn
// with quantization in the loop use these differentiable stand-ins. Their forward pass is the
// codec's (codec/quantize: q = clamp(floor((x - lo) * (L-1)/(hi-lo) + 0.5), 0, L-1),
// x^ = lo + q * step); their backward pass is the straight-through estimator for x and an
// LSQ/PACT-style gradient for the clip, so the range itself can be learned (QAT, autoencoders).
//
// ClusteringLoss is TCL's regulariser: the distance of each activation to its nearest level, so
// that after fine-tuning the features already sit on the grid plain PTQ will use.
#pragma once

#include <cstdint>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "codec/quantize/quantize.h"
#include "core/status.h"

namespace splitinfer::bottleneck {

// round(v) forward, identity backward.
torch::Tensor RoundSte(const torch::Tensor& v);

// Uniform fake quantization of x over [lo, hi] (tensors broadcastable to x) with 2^bits levels.
// Gradients: identity to x inside the range, zero outside; to hi (and lo) through the clamp
// (PACT) and through the step size (LSQ).
torch::Tensor FakeQuantize(const torch::Tensor& x, const torch::Tensor& lo, const torch::Tensor& hi, int bits);

// A static per-tensor or per-channel quantizer's ranges as tensors that broadcast over a batch
// of features [N, C, ...] of `feature_rank` dims per image (shape {1} or {1, C, 1, ...}), on
// `device`; INVALID_ARGUMENT for dynamic ranges and region tiles (they do not broadcast).
struct RangeTensors {
  torch::Tensor lo, hi;
};
Result<RangeTensors> ToRangeTensors(const codec::QuantParams& q, size_t feature_rank, const torch::Device& device);
// The ranges written back (learned ones), same layout; INVALID_ARGUMENT when the counts differ
// or a range is reversed or not finite (lo == hi is a dead region the codec maps to lo).
Status SetRanges(const RangeTensors& r, codec::QuantParams* q);

// TCL: mean over elements of the squared distance from x to its nearest level of the b-bit grid
// over [lo, hi] (values beyond the range: distance to the end level), in units of the grid's
// step (so 0.25 is "every value halfway between two levels" at any bit width or scale).
// Gradient flows to x only.
torch::Tensor ClusteringLoss(const torch::Tensor& x, double lo, double hi, int bits);
// The same with the range as tensors: gradient also reaches lo/hi (TCL with learned levels).
torch::Tensor ClusteringLoss(const torch::Tensor& x, const torch::Tensor& lo, const torch::Tensor& hi, int bits);

// How λ grows with training time t in [0, 1] (TCL's "time-dependent" weight).
enum class LambdaSchedule : uint8_t { kConstant, kLinear, kExponential, kStep };
Result<LambdaSchedule> LambdaScheduleFromName(const std::string& name);  // constant|linear|exponential|step
const char* LambdaScheduleName(LambdaSchedule s);
//   constant: λ;  linear: λ t;  exponential: λ (e^{5t} - 1) / (e^5 - 1);  step: λ·{0, 1/3, 2/3, 1} by quarter.
double ClusteringWeight(LambdaSchedule schedule, double lambda, double t);

// A learnable zero-based clip [0, hi] for post-ReLU features (hi > 0), shared by QAT and the
// autoencoders' latents. Stored as a parameter so that optimizers and checkpoints see it.
class LearnedClipImpl : public torch::nn::Module {
 public:
  explicit LearnedClipImpl(double init_hi = 1.0);
  // Fake-quantized x at `bits` over [0, hi].
  torch::Tensor forward(const torch::Tensor& x, int bits);
  double hi() const;
  void set_hi(double v);

 private:
  torch::Tensor hi_;
};
TORCH_MODULE(LearnedClip);

}  // namespace splitinfer::bottleneck
