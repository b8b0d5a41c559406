#include "bottleneck/fake_quant.h"

#include <cmath>

#include <torch/torch.h>

namespace splitinfer::bottleneck {

torch::Tensor RoundSte(const torch::Tensor& v) { return v + (torch::round(v) - v).detach(); }

torch::Tensor FakeQuantize(const torch::Tensor& x, const torch::Tensor& lo, const torch::Tensor& hi, int bits) {
  TORCH_CHECK(bits >= 1 && bits <= 8, "FakeQuantize: bits must be 1..8, got ", bits);
  const double max_q = static_cast<double>((1 << bits) - 1);
  // The codec maps a range no wider than kTinyRange (1e-12) to its lower end (its Inverse is 0
  // there); the same here, and the clamp only keeps that branch's unused division finite.
  auto span = hi - lo;
  auto live = span > 1e-12;
  // The codec's own float operations in its order (quantize.cpp: Inverse, QuantizeOne,
  // LevelTable): v = (x - lo) * ((L-1) / span), q = floor(v + 0.5), x' = lo + q * (span / (L-1)).
  // Dividing by the step instead rounds differently at exact bin edges, and there one element
  // lands a whole step away from what the server will see.
  // Both divisions tensor by tensor: with a scalar divisor CUDA's kernel multiplies by its
  // reciprocal instead, a last-bit difference from the codec's (hi - lo) / (L - 1).
  auto levels = torch::full({}, static_cast<float>(max_q), span.options());
  auto inv = torch::where(live, levels / span.clamp_min(1e-12), torch::zeros_like(span));
  auto step = span / levels;
  // torch::min/max with tensors pass the gradient to whichever side is selected: PACT's
  // gradient for the clip comes from the elements that were clipped.
  auto xc = torch::max(torch::min(x, hi), lo);
  auto v = (xc - lo) * inv;
  // Round half up as the codec does (torch::round is half-to-even); straight-through gradient.
  auto q = v + (torch::floor(v + 0.5f) - v).detach();
  return lo + q * step;
}

torch::Tensor ClusteringLoss(const torch::Tensor& x, const torch::Tensor& lo, const torch::Tensor& hi, int bits) {
  TORCH_CHECK(bits >= 1 && bits <= 8, "ClusteringLoss: bits must be 1..8, got ", bits);
  const double max_q = static_cast<double>((1 << bits) - 1);
  auto step = (hi - lo).clamp_min(1e-6) / max_q;
  // Which level is nearest is a discrete choice (no gradient); the distance to it moves x and,
  // through the level's position, a learned range.
  auto q = torch::floor((x.detach() - lo.detach()) / step.detach() + 0.5).clamp(0, max_q);
  // In units of the step, so that one λ means the same pull at every bit width and feature scale.
  return ((x - (lo + q * step)) / step.detach()).pow(2).mean();
}

torch::Tensor ClusteringLoss(const torch::Tensor& x, double lo, double hi, int bits) {
  TORCH_CHECK(hi > lo, "ClusteringLoss: empty range [", lo, ", ", hi, "]");
  auto o = x.options().requires_grad(false);
  return ClusteringLoss(x, torch::full({}, lo, o), torch::full({}, hi, o), bits);
}

Result<LambdaSchedule> LambdaScheduleFromName(const std::string& name) {
  if (name == "constant") return LambdaSchedule::kConstant;
  if (name == "linear") return LambdaSchedule::kLinear;
  if (name == "exponential") return LambdaSchedule::kExponential;
  if (name == "step") return LambdaSchedule::kStep;
  return InvalidArgument("unknown lambda schedule '" + name + "'; use constant, linear, exponential or step");
}

const char* LambdaScheduleName(LambdaSchedule s) {
  switch (s) {
    case LambdaSchedule::kConstant: return "constant";
    case LambdaSchedule::kLinear: return "linear";
    case LambdaSchedule::kExponential: return "exponential";
    case LambdaSchedule::kStep: return "step";
  }
  return "?";
}

double ClusteringWeight(LambdaSchedule schedule, double lambda, double t) {
  t = std::min(1.0, std::max(0.0, t));
  switch (schedule) {
    case LambdaSchedule::kConstant: return lambda;
    case LambdaSchedule::kLinear: return lambda * t;
    case LambdaSchedule::kExponential: return lambda * std::expm1(5.0 * t) / std::expm1(5.0);
    case LambdaSchedule::kStep: return lambda * std::min(1.0, std::floor(t * 4.0) / 3.0);
  }
  return lambda;
}

Result<RangeTensors> ToRangeTensors(const codec::QuantParams& q, size_t feature_rank, const torch::Device& device) {
  if (q.spec.params_in_frame) return InvalidArgument("dynamic ranges (params_in_frame) have no fixed range to train");
  std::vector<int64_t> shape{1};
  if (q.spec.granularity == codec::Granularity::kChannel) {
    shape.push_back(static_cast<int64_t>(q.lo.size()));
    for (size_t i = 1; i < feature_rank; ++i) shape.push_back(1);
  } else if (q.spec.granularity != codec::Granularity::kTensor) {
    return InvalidArgument("ranges of region tiles do not broadcast over a feature; use tensor or channel granularity");
  }
  if (q.lo.size() != q.hi.size() || q.lo.empty()) return InvalidArgument("the quantizer has no ranges");
  auto lo = torch::tensor(q.lo).reshape(shape).to(device);
  auto hi = torch::tensor(q.hi).reshape(shape).to(device);
  return RangeTensors{lo, hi};
}

Status SetRanges(const RangeTensors& r, codec::QuantParams* q) {
  auto lo = r.lo.detach().to(torch::kCPU).to(torch::kFloat).contiguous().reshape({-1});
  auto hi = r.hi.detach().to(torch::kCPU).to(torch::kFloat).contiguous().reshape({-1});
  if (static_cast<size_t>(lo.numel()) != q->lo.size() || static_cast<size_t>(hi.numel()) != q->hi.size()) {
    return InvalidArgument("learned ranges: " + std::to_string(hi.numel()) + " for a quantizer of " +
                           std::to_string(q->hi.size()) + " regions");
  }
  for (int64_t i = 0; i < lo.numel(); ++i) {
    const float l = lo.data_ptr<float>()[i], h = hi.data_ptr<float>()[i];
    if (!std::isfinite(l) || !std::isfinite(h) || !(h >= l)) {
      return InvalidArgument("learned range " + std::to_string(i) + " is [" + std::to_string(l) + ", " +
                             std::to_string(h) + "]: not a range (lower the learning rate)");
    }
  }
  q->lo.assign(lo.data_ptr<float>(), lo.data_ptr<float>() + lo.numel());
  q->hi.assign(hi.data_ptr<float>(), hi.data_ptr<float>() + hi.numel());
  return Status::Ok();
}

LearnedClipImpl::LearnedClipImpl(double init_hi) {
  hi_ = register_parameter("hi", torch::full({1}, init_hi > 0 ? init_hi : 1.0));
}

torch::Tensor LearnedClipImpl::forward(const torch::Tensor& x, int bits) {
  auto lo = torch::zeros({1}, hi_.options());
  return FakeQuantize(x, lo, hi_.abs() + 1e-6, bits);
}

double LearnedClipImpl::hi() const { return std::abs(hi_.item<double>()) + 1e-6; }

void LearnedClipImpl::set_hi(double v) {
  torch::NoGradGuard g;
  hi_.fill_(v);
}

}  // namespace splitinfer::bottleneck
