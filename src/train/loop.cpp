#include "train/loop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "data/datasets.h"

namespace splitinfer::train {

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& c, std::vector<torch::Tensor> params) {
  if (c.name == "adamw") {
    return std::make_unique<torch::optim::AdamW>(std::move(params),
                                                 torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(
      std::move(params),
      torch::optim::SGDOptions(c.lr).momentum(c.momentum).nesterov(c.nesterov && c.momentum > 0).weight_decay(
          c.weight_decay));
}

void SetLearningRate(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

// A permutation of [0, n) for one epoch, from its own generator (resumable, reproducible).
std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  auto perm = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64));
  return std::vector<int64_t>(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
}

namespace {
// Limits a dataset for smoke runs and tests without copying folder datasets.
class LimitedDataset : public data::Dataset {
 public:
  LimitedDataset(std::unique_ptr<data::Dataset> inner, int64_t limit)
      : inner_(std::move(inner)), n_(limit > 0 ? std::min(limit, inner_->size()) : inner_->size()) {}
  int64_t size() const override { return n_; }
  Result<torch::Tensor> image(int64_t i) const override { return inner_->image(i); }
  int64_t label(int64_t i) const override { return inner_->label(i); }
  std::vector<std::string> class_names() const override { return inner_->class_names(); }
  std::vector<int64_t> image_shape() const override { return inner_->image_shape(); }
  std::string name() const override { return inner_->name(); }
  Result<std::pair<torch::Tensor, torch::Tensor>> batch(const std::vector<int64_t>& idx) const override {
    for (int64_t i : idx) {
      if (i < 0 || i >= n_) return OutOfRange("example index " + std::to_string(i) + " outside 0.." + std::to_string(n_ - 1));
    }
    return inner_->batch(idx);
  }

 private:
  std::unique_ptr<data::Dataset> inner_;
  int64_t n_;
};

}  // namespace

Result<std::unique_ptr<data::Dataset>> OpenSplit(const DataConfig& c, data::Split split) {
  SI_ASSIGN_OR_RETURN(auto d, data::OpenDataset(c.dataset, c.dir, split, c.image_size));
  const int64_t limit = split == data::Split::kTrain ? c.limit_train : c.limit_test;
  return std::unique_ptr<data::Dataset>(std::make_unique<LimitedDataset>(std::move(d), limit));
}


}  // namespace splitinfer::train
