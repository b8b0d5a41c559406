#include "train/loop.h"

#include <algorithm>
#include <cassert>
#include <filesystem>
#include <random>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/datasets.h"
#include "models/checkpoint.h"

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

namespace {
// Settings that may change between a run and its resumption: how many threads the CPU uses
// (another machine, another core count). It changes the order of float reductions, so such a
// resumed run is not bit-identical to an uninterrupted one, but it is the same training.
const char* const kResumableKeys[] = {"threads"};

// "" when a state written under `saved` may resume under `now`; else the top-level keys that
// differ (settings written as JSON objects), or "" with differs = true for other text.
std::string SettingsDiffer(const std::string& saved, const std::string& now, bool* differs) {
  *differs = false;
  if (saved == now) return "";
  *differs = true;
  auto a = nlohmann::json::parse(saved, nullptr, /*allow_exceptions=*/false);
  auto b = nlohmann::json::parse(now, nullptr, /*allow_exceptions=*/false);
  if (!a.is_object() || !b.is_object()) return "";
  for (const char* k : kResumableKeys) a.erase(k), b.erase(k);
  std::string keys;
  for (const auto& [k, v] : b.items()) {
    if (!a.contains(k) || a[k] != v) keys += (keys.empty() ? "" : ", ") + k;
  }
  for (const auto& [k, v] : a.items()) {
    if (!b.contains(k)) keys += (keys.empty() ? "" : ", ") + k;
  }
  *differs = !keys.empty();
  return keys;
}
}  // namespace

Result<int64_t> LoadEpochState(const EpochState& s, torch::nn::Module& module, torch::optim::Optimizer& opt,
                               const torch::Device& device) {
  if (!std::filesystem::exists(s.path)) return int64_t{0};
  try {
    torch::serialize::InputArchive state;
    state.load_from(s.path, device);
    c10::IValue saved_config, done;
    if (!state.try_read("config", saved_config) || !state.try_read("epochs_done", done) || !saved_config.isString() ||
        !done.isInt()) {
      return DataLoss(s.path + " is not a splitinfer training state; " + s.start_over);
    }
    bool differs = false;
    const std::string keys = SettingsDiffer(saved_config.toStringRef(), s.config, &differs);
    if (differs) {
      return Mismatch(s.path + " was written with other settings" + (keys.empty() ? "" : " (" + keys + ")") + "; " +
                      s.start_over);
    }
    torch::serialize::InputArchive module_archive, opt_archive;
    if (!state.try_read(s.module_key, module_archive) || !state.try_read("optimizer", opt_archive)) {
      return DataLoss(s.path + " lacks the " + s.module_key + " or the optimizer; " + s.start_over);
    }
    SI_RETURN_IF_ERROR(models::LoadModuleChecked(module, module_archive, "", s.path, s.module_key));
    opt.load(opt_archive);
    return static_cast<int64_t>(done.toInt());
  } catch (const c10::Error& e) {
    return DataLoss("cannot resume from " + s.path + ": " + e.what_without_backtrace() + "; " + s.start_over);
  }
}

Status SaveEpochState(const EpochState& s, torch::nn::Module& module, torch::optim::Optimizer& opt,
                      int64_t epochs_done) {
  try {
    torch::serialize::OutputArchive state, module_archive, opt_archive;
    module.save(module_archive);
    opt.save(opt_archive);
    state.write(s.module_key, module_archive);
    state.write("optimizer", opt_archive);
    state.write("config", c10::IValue(s.config));
    state.write("epochs_done", c10::IValue(epochs_done));
    // Atomic: a run killed while writing leaves the previous epoch's state.
    state.save_to(s.path + ".tmp");
    std::filesystem::rename(s.path + ".tmp", s.path);
  } catch (const std::exception& e) {
    return IoError("cannot write " + s.path + ": " + e.what());
  }
  return Status::Ok();
}

std::string Fixed(double v, int digits) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

// A permutation of [0, n) for one epoch, from its own generator (resumable, reproducible).
std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  auto perm = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64));
  return std::vector<int64_t>(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
}

namespace {
// Some examples of another dataset, in the given order: the first N (smoke runs and tests), or
// the part of the training set a held-out split leaves for training (or keeps out). A view:
// folder datasets are not copied.
class SubsetDataset : public data::Dataset {
 public:
  SubsetDataset(std::shared_ptr<data::Dataset> inner, std::vector<int64_t> indices)
      : inner_(std::move(inner)), indices_(std::move(indices)) {}
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Result<torch::Tensor> image(int64_t i) const override {
    if (i < 0 || i >= size()) return OutOfRange(Outside(i));
    return inner_->image(indices_[i]);
  }
  int64_t label(int64_t i) const override {
    assert(i >= 0 && i < size());  // the interface's precondition (data/dataset.h)
    return inner_->label(indices_[static_cast<size_t>(i)]);
  }
  std::vector<std::string> class_names() const override { return inner_->class_names(); }
  std::vector<int64_t> image_shape() const override { return inner_->image_shape(); }
  std::string name() const override { return inner_->name(); }
  Result<std::pair<torch::Tensor, torch::Tensor>> batch(const std::vector<int64_t>& idx) const override {
    std::vector<int64_t> mapped;
    mapped.reserve(idx.size());
    for (int64_t i : idx) {
      if (i < 0 || i >= size()) return OutOfRange(Outside(i));
      mapped.push_back(indices_[i]);
    }
    return inner_->batch(mapped);
  }

 private:
  std::string Outside(int64_t i) const {
    return "example index " + std::to_string(i) + " outside 0.." + std::to_string(size() - 1);
  }
  std::shared_ptr<data::Dataset> inner_;
  std::vector<int64_t> indices_;
};

std::vector<int64_t> FirstN(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

Result<std::unique_ptr<data::Dataset>> OpenImages(const DataConfig& c, data::Split split) {
  data::ImageOptions images;
  images.height = c.height > 0 ? c.height : c.image_size;
  images.width = c.width > 0 ? c.width : c.image_size;
  images.channels = c.channels;
  if (!c.resize.empty()) {
    SI_ASSIGN_OR_RETURN(images.resize, data::ResizePolicyFromName(c.resize));
  }
  images.resize_size = c.resize_size;
  return data::OpenDataset(c.dataset, c.dir, split, images);
}

// The training set split in two by c.holdout: {kept for training, held out}, each in index order.
Result<std::pair<std::vector<int64_t>, std::vector<int64_t>>> SplitTraining(const DataConfig& c, int64_t n) {
  if (c.holdout >= n) {
    return OutOfRange("data.holdout = " + std::to_string(c.holdout) + " is not below the training set's " +
                      std::to_string(n) + " images; hold out fewer");
  }
  std::vector<bool> held(static_cast<size_t>(n), false);
  for (int64_t i : HeldOutIndices(n, c.holdout)) held[static_cast<size_t>(i)] = true;
  std::pair<std::vector<int64_t>, std::vector<int64_t>> out;
  for (int64_t i = 0; i < n; ++i) (held[static_cast<size_t>(i)] ? out.second : out.first).push_back(i);
  return out;
}
}  // namespace

std::vector<int64_t> HeldOutIndices(int64_t n, int64_t count) {
  // Fisher-Yates with mt19937_64, whose output the standard fixes (std::shuffle's algorithm is
  // the library's own): the same images on every machine and compiler.
  std::vector<int64_t> p = FirstN(n);
  std::mt19937_64 gen(kHoldoutSeed);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(gen() % static_cast<uint64_t>(i + 1))]);
  }
  p.resize(static_cast<size_t>(std::max<int64_t>(0, std::min(count, n))));
  std::sort(p.begin(), p.end());
  return p;
}

DataConfig SizedFor(DataConfig c, const models::CheckpointMeta& meta) {
  if (c.image_size == 0 && meta.input_shape.size() == 3) {
    c.channels = meta.input_shape[0];
    c.height = meta.input_shape[1];
    c.width = meta.input_shape[2];
  }
  if (c.resize.empty()) {
    c.resize = meta.resize;
    if (c.resize_size == 0) c.resize_size = meta.resize_size;
  }
  return c;
}

Result<std::unique_ptr<data::Dataset>> OpenSplit(const DataConfig& c, data::Split split) {
  SI_ASSIGN_OR_RETURN(std::unique_ptr<data::Dataset> d, OpenImages(c, split));
  const int64_t limit = split == data::Split::kTrain ? c.limit_train : c.limit_test;
  if (split == data::Split::kTrain && c.holdout > 0) {
    SI_ASSIGN_OR_RETURN(auto parts, SplitTraining(c, d->size()));
    std::vector<int64_t> kept = std::move(parts.first);
    if (limit > 0 && limit < static_cast<int64_t>(kept.size())) kept.resize(static_cast<size_t>(limit));
    return std::unique_ptr<data::Dataset>(std::make_unique<SubsetDataset>(std::move(d), std::move(kept)));
  }
  if (limit <= 0 || limit >= d->size()) return d;
  return std::unique_ptr<data::Dataset>(std::make_unique<SubsetDataset>(std::move(d), FirstN(limit)));
}

Result<std::unique_ptr<data::Dataset>> OpenHoldout(const DataConfig& c) {
  if (c.holdout <= 0) return FailedPrecondition("no held-out images: set data.holdout to how many training images to keep out");
  SI_ASSIGN_OR_RETURN(std::unique_ptr<data::Dataset> d, OpenImages(c, data::Split::kTrain));
  SI_ASSIGN_OR_RETURN(auto parts, SplitTraining(c, d->size()));
  return std::unique_ptr<data::Dataset>(std::make_unique<SubsetDataset>(std::move(d), std::move(parts.second)));
}

}  // namespace splitinfer::train
