// splitinfer models: networks as ordered chains of named blocks that can be cut.
//
//   input -> block 0 -> block 1 -> ... -> block k | block k+1 -> ... -> block n-1 -> logits
//            \________ head(x, k): node ________/   \_______ tail(f, k): server ______/
//
// A split point names a block k: blocks 0..k run on the node, k+1..n-1 on the server. The
// contract every implementation keeps (and tests/models checks for every model and split):
// tail(head(x, s), s) equals forward(x) exactly in eval mode, because both run the very same
// block modules in the very same order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>
#include <ATen/ops/cat.h>

#include "core/status.h"

namespace splitinfer::models {

struct SplitPoint {
  std::string name;  // e.g. "stem", "layer1", "encoder_3"
  int64_t block = 0;  // index of the last block that runs on the node
};

// True when `x` is a lone CPU float32 image at inference (grad mode off) and this process runs
// on Netlib's reference BLAS: LibTorch 1.13 runs small batch-1 convolutions through its native
// kernel, which calls BLAS, ~5x slower than a batch of two (the oneDNN path) there. Callers that
// run a whole sub-network then duplicate the image and keep the first result (RunAsBatchOfTwo).
// With BLIS or OpenBLAS behind libblas.so.3 (scripts/install-deps.sh) the lone image is faster.
bool SlowBatch1Path(const torch::Tensor& x);

// fn(x) computed as fn([x, x])[0:1] when SlowBatch1Path(x), else fn(x). Only for networks whose
// samples do not interact (eval-mode BatchNorm, no batch statistics).
template <typename Fn>
torch::Tensor RunAsBatchOfTwo(const torch::Tensor& x, Fn&& fn) {
  if (!SlowBatch1Path(x)) return fn(x);
  return fn(torch::cat({x, x})).narrow(0, 0, 1).contiguous();
}

// Anything that can be cut: native LibTorch chains and imported TorchScript chains.
class SplitModel {
 public:
  virtual ~SplitModel() = default;

  virtual std::string model_name() const = 0;
  virtual std::vector<std::string> block_names() const = 0;
  virtual std::vector<SplitPoint> split_points() const = 0;
  // Runs blocks [begin, end) on x. begin <= end <= num_blocks().
  virtual torch::Tensor run_blocks(const torch::Tensor& x, int64_t begin, int64_t end) = 0;
  virtual void set_eval() = 0;
  virtual void set_train(bool on) = 0;
  virtual void to_device(const torch::Device& device) = 0;
  // Every parameter and buffer as one torch::nn::Module (the very tensors the model runs with,
  // not copies): what an optimizer updates and what a training state saves and restores.
  virtual std::shared_ptr<torch::nn::Module> state_module() = 0;
  // Block b's parameters, and train/eval mode for block b alone (fine-tuning a tail).
  virtual std::vector<torch::Tensor> block_parameters(int64_t b) = 0;
  virtual void set_block_train(int64_t b, bool on) = 0;
  // What dominates block b's compute, for the planner's per-operator device factors: "conv"
  // (any convolution), "matmul" (linear layers, no convolution) or "other".
  virtual std::string block_op(int64_t b) const = 0;

  int64_t num_blocks() const { return static_cast<int64_t>(block_names().size()); }
  torch::Tensor forward_all(const torch::Tensor& x) { return run_blocks(x, 0, num_blocks()); }
  torch::Tensor head(const torch::Tensor& x, const SplitPoint& s) { return run_blocks(x, 0, s.block + 1); }
  torch::Tensor tail(const torch::Tensor& f, const SplitPoint& s) {
    return run_blocks(f, s.block + 1, num_blocks());
  }
  // Names that are not split points for a stated reason: (name, reason).
  virtual std::vector<std::pair<std::string, std::string>> refused_splits() const { return {}; }
  // NOT_FOUND naming the valid split points when `name` is not one of them; INVALID_ARGUMENT
  // with the reason when the model refuses a cut there (refused_splits).
  Result<SplitPoint> find_split(const std::string& name) const;
};

// A native model: blocks registered as named children, so parameters(), train(), to() and
// torch::save see the whole network, and checkpoints key parameters by "<block>.<param>".
class BlockChainImpl : public torch::nn::Module, public SplitModel {
 public:
  explicit BlockChainImpl(std::string model_name) : model_name_(std::move(model_name)) {}

  // Appends a block. `split_after` marks "cut after this block" as a named split point.
  template <typename ModuleHolder>
  void add(const std::string& name, ModuleHolder module, bool split_after) {
    register_module(name, module.ptr());
    add_any(name, torch::nn::AnyModule(std::move(module)), split_after);
  }

  std::string model_name() const override { return model_name_; }
  std::vector<std::string> block_names() const override { return names_; }
  std::vector<SplitPoint> split_points() const override { return splits_; }
  torch::Tensor run_blocks(const torch::Tensor& x, int64_t begin, int64_t end) override;
  void set_eval() override { eval(); }
  void set_train(bool on) override { train(on); }
  void to_device(const torch::Device& device) override { to(device); }
  std::shared_ptr<torch::nn::Module> state_module() override { return shared_from_this(); }
  std::vector<torch::Tensor> block_parameters(int64_t b) override {
    return blocks_.at(static_cast<size_t>(b)).ptr()->parameters();
  }
  void set_block_train(int64_t b, bool on) override { blocks_.at(static_cast<size_t>(b)).ptr()->train(on); }
  std::string block_op(int64_t b) const override;
  torch::Tensor forward(const torch::Tensor& x) { return forward_all(x); }

  int64_t parameter_count() const;
  // A name that is not a split point for a stated reason (find_split returns it as
  // INVALID_ARGUMENT), e.g. a cut that would have to send two tensors.
  void refuse_split(const std::string& name, const std::string& reason) { refused_.emplace_back(name, reason); }
  std::vector<std::pair<std::string, std::string>> refused_splits() const override { return refused_; }

 private:
  void add_any(const std::string& name, torch::nn::AnyModule module, bool split_after);

  std::string model_name_;
  std::vector<std::string> names_;
  std::vector<torch::nn::AnyModule> blocks_;
  std::vector<SplitPoint> splits_;
  std::vector<std::pair<std::string, std::string>> refused_;
};
TORCH_MODULE(BlockChain);

// nn::Sequential with a plain forward(Tensor) so that it can be stored in an AnyModule (the
// stock one's forward is a template). Children keep Sequential's names: "0", "1", ...
class SequentialBlockImpl : public torch::nn::SequentialImpl {
 public:
  using SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return SequentialImpl::forward(std::move(x)); }
};
TORCH_MODULE(SequentialBlock);

// Shared by the zoo: options every architecture understands.
struct ModelOptions {
  int64_t num_classes = 1000;
  int64_t in_channels = 3;
  int64_t width = 0;  // architecture-specific base width; 0 = the architecture's default
  int64_t depth = 0;  // architecture-specific blocks per stage; 0 = the architecture's default
};

}  // namespace splitinfer::models
