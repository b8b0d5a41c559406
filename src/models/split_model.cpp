#include "models/split_model.h"

#include <torch/torch.h>

#include "models/build_info.h"

namespace splitinfer::models {

Result<SplitPoint> SplitModel::find_split(const std::string& name) const {
  std::string valid;
  for (const auto& s : split_points()) {
    if (s.name == name) return s;
    valid += (valid.empty() ? "" : ", ") + s.name;
  }
  for (const auto& [refused, reason] : refused_splits()) {
    if (refused == name) {
      return InvalidArgument("split point '" + name + "' of " + model_name() + " is refused: " + reason +
                             " (valid split points: " + valid + ")");
    }
  }
  return NotFound("unknown split point '" + name + "' for model " + model_name() +
                  "; valid split points: " + valid);
}

void BlockChainImpl::add_any(const std::string& name, torch::nn::AnyModule module, bool split_after) {
  names_.push_back(name);
  blocks_.push_back(std::move(module));
  if (split_after) splits_.push_back({name, static_cast<int64_t>(names_.size()) - 1});
}

std::string BlockChainImpl::block_op(int64_t b) const {
  bool conv = false, linear = false;
  for (const auto& m : blocks_.at(static_cast<size_t>(b)).ptr()->modules(/*include_self=*/true)) {
    if (dynamic_cast<const torch::nn::Conv2dImpl*>(m.get())) conv = true;
    if (dynamic_cast<const torch::nn::LinearImpl*>(m.get())) linear = true;
  }
  return conv ? "conv" : linear ? "matmul" : "other";
}

bool SlowBatch1Path(const torch::Tensor& x) {
  // LibTorch 1.13 (aten/src/ATen/native/Convolution.cpp, use_mkldnn) sends a batch-1 float
  // convolution whose input has at most 20,480 elements to its native kernel, which calls BLAS
  // ("native is faster for some cases"). That holds with an optimized BLAS and fails badly with
  // Netlib's reference BLAS: there ResNet-18 at 28 pixels takes 54.6 ms at batch 1 and 9.6 ms at
  // batch 2, and with BLIS 4.7 and 8.1 ms (bench/batch1_path.py, bench/README.md). So only a
  // process on the reference BLAS (a machine without BLIS or OpenBLAS) takes the batch of two.
  // Inputs larger than kLargeInput per image (a 224x224 RGB image, ResNet-50's 14x14x1024 maps)
  // mostly stay above that limit inside the network, where a batch of two only doubles the work.
  static const bool reference_blas = DescribeCompute().reference_blas();
  constexpr int64_t kLargeInput = 65536;
  return reference_blas && x.defined() && x.dim() >= 1 && x.size(0) == 1 && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat && !torch::GradMode::is_enabled() && x.numel() <= kLargeInput;
}

torch::Tensor BlockChainImpl::run_blocks(const torch::Tensor& x, int64_t begin, int64_t end) {
  TORCH_CHECK(begin >= 0 && begin <= end && end <= num_blocks(), "block range [", begin, ", ", end,
              ") outside 0..", num_blocks());
  // A lone image runs as a batch of two: 0.23 ms instead of 2.6 ms for one 3x3 64-channel
  // convolution on one core (see SlowBatch1Path).
  if (begin < end && !is_training() && SlowBatch1Path(x)) {
    return RunAsBatchOfTwo(x, [&](const torch::Tensor& y) { return run_blocks(y, begin, end); });
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
