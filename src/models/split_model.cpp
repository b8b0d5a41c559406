#include "models/split_model.h"

#include <torch/torch.h>

namespace splitinfer::models {

Result<SplitPoint> SplitModel::find_split(const std::string& name) const {
  std::string valid;
  for (const auto& s : split_points()) {
    if (s.name == name) return s;
    valid += (valid.empty() ? "" : ", ") + s.name;
  }
  return NotFound("unknown split point '" + name + "' for model " + model_name() +
                  "; valid split points: " + valid);
}

void BlockChainImpl::add_any(const std::string& name, torch::nn::AnyModule module, bool split_after) {
  names_.push_back(name);
  blocks_.push_back(std::move(module));
  if (split_after) splits_.push_back({name, static_cast<int64_t>(names_.size()) - 1});
}

torch::Tensor BlockChainImpl::run_blocks(const torch::Tensor& x, int64_t begin, int64_t end) {
  TORCH_CHECK(begin >= 0 && begin <= end && end <= num_blocks(), "block range [", begin, ", ", end,
              ") outside 0..", num_blocks());
  // LibTorch 1.13 sends a batch-1 float convolution whose input has at most 20,480 elements to
  // its native kernel instead of oneDNN ("native is faster for some cases", with MKL BLAS); on
  // Debian's build (reference BLAS) that kernel is ~18x slower than oneDNN for a 64x14x14 map.
  // A batch of two takes the oneDNN path, so a lone image at inference runs twice and the first
  // copy is kept: 0.23 ms instead of 2.6 ms for one 3x3 64-channel convolution on one core.
  // BatchNorm in eval mode uses running statistics, so the copies do not interact.
  if (x.dim() >= 1 && x.size(0) == 1 && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
      !torch::GradMode::is_enabled() && !is_training() && begin < end) {
    torch::Tensor h = torch::cat({x, x});
    for (int64_t i = begin; i < end; ++i) h = blocks_[i].forward(h);
    return h.narrow(0, 0, 1).contiguous();
  }
  torch::Tensor h = x;
  for (int64_t i = begin; i < end; ++i) h = blocks_[i].forward(h);
  return h;
}

int64_t BlockChainImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace splitinfer::models
