// Pieces every training loop here shares (the supervised trainer and the compression-aware
// methods), so that they shuffle, limit data and build optimizers the same way.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "core/status.h"
#include "data/dataset.h"
#include "models/checkpoint.h"
#include "train/config.h"

namespace splitinfer::train {

// Appended to a divergence error: a non-finite loss with a sane learning rate can also be oneDNN
// 3.x's AVX-512 convolution backward (models/build_info.h), which the CLI avoids unless the user
// set the ISA.
inline constexpr char kDivergedHint[] =
    "; with LibTorch 2.x on an AVX-512 CPU, also try ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN 3.x's AVX-512 "
    "convolution backward can give NaN gradients)";

// `v` with `digits` decimals, for progress lines and logs.
std::string Fixed(double v, int digits);

// A permutation of [0, n) for one epoch from its own generator, so a resumed run draws exactly
// the order the uninterrupted run would have.
std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch);

// The configured dataset split, limited to limit_train / limit_test examples when those are > 0.
// With c.holdout > 0 the training split leaves the held-out images out (before the limit).
Result<std::unique_ptr<data::Dataset>> OpenSplit(const DataConfig& c, data::Split split);
// The c.holdout training images kept out of training, for choosing settings without the test
// set; FAILED_PRECONDITION when c.holdout is 0, OUT_OF_RANGE when it is not below the training
// set's size.
Result<std::unique_ptr<data::Dataset>> OpenHoldout(const DataConfig& c);
// Which `count` of `n` training images are held out (sorted): a fixed draw, the same for every
// run, method, machine and compiler.
inline constexpr uint64_t kHoldoutSeed = 20261207;
std::vector<int64_t> HeldOutIndices(int64_t n, int64_t count);

// `c` with folder images read as the model reads them: at its input's C x H x W (when
// c.image_size is 0, the default), so a model made at 32x32 reads its folder at 32x32, and with
// its resize policy where c names none.
DataConfig SizedFor(DataConfig c, const models::CheckpointMeta& meta);

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& c, std::vector<torch::Tensor> params);
void SetLearningRate(torch::optim::Optimizer& opt, double lr);

// The state every loop here writes after each epoch, so that an interrupted run resumes where it
// stopped and ends where an uninterrupted one would: the module's tensors, the optimizer's
// (AdamW moments, SGD momentum), the settings the run started with and the epochs done.
struct EpochState {
  std::string path;          // FILE.state.pt; written as FILE.state.pt.tmp, then renamed
  std::string module_key;    // the module's archive key ("model", "root": kept for files already written)
  std::string config;        // the run's settings as text; a resume under other settings is refused
  std::string start_over;    // what the user does to discard the file, e.g. "delete it or pass --restart"
};

// Epochs done: 0 when there is no file. DATA_LOSS for a file that is not such a state or is
// damaged; MISMATCH for other settings, or a module whose tensors differ (naming the first).
Result<int64_t> LoadEpochState(const EpochState& state, torch::nn::Module& module, torch::optim::Optimizer& opt,
                               const torch::Device& device);
Status SaveEpochState(const EpochState& state, torch::nn::Module& module, torch::optim::Optimizer& opt,
                      int64_t epochs_done);

}  // namespace splitinfer::train
