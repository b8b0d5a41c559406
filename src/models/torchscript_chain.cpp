#include "models/torchscript_chain.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <torch/script.h>

namespace splitinfer::models {
namespace {

// Scripting may mangle class names ("...linear.___torch_mangle_7.Linear") when two instances
// of one Python class get different TorchScript types; drop those segments before comparing.
std::string UnmangledTypeName(const torch::jit::Module& m) {
  const auto& qualified = m.type()->name();
  if (!qualified) return "";
  std::string name;
  for (const auto& atom : qualified->atoms()) {
    if (atom.rfind("___torch_mangle_", 0) == 0) continue;
    name += (name.empty() ? "" : ".") + atom;
  }
  return name;
}

constexpr const char* kLinear = "__torch__.torch.nn.modules.linear.Linear";
constexpr const char* kSequential = "__torch__.torch.nn.modules.container.Sequential";
constexpr const char* kDropout = "__torch__.torch.nn.modules.dropout.Dropout";

// torchvision's forward() flattens between the global pool and the classifier in code, not in
// a child: before `fc` (a Linear: ResNet, RegNet) or before `classifier` (a Sequential opening
// with [Dropout,] Linear: EfficientNet, MobileNetV3, VGG, AlexNet). Such a child gets the
// flatten, so a directly scripted torchvision model cuts and runs like its forward().
bool WantsFlatInput(const torch::jit::Module& child) {
  const std::string type = UnmangledTypeName(child);
  if (type == kLinear) return true;
  if (type != kSequential) return false;
  for (const auto& layer : child.children()) {
    const std::string layer_type = UnmangledTypeName(layer);
    if (layer_type != kDropout) return layer_type == kLinear;
  }
  return false;
}

class TorchScriptChain : public SplitModel {
 public:
  TorchScriptChain(std::string name, torch::jit::Module module)
      : name_(std::move(name)), module_(std::move(module)) {
    for (const auto& child : module_.named_children()) {
      names_.push_back(child.name);
      blocks_.push_back(child.value);
      flatten_before_.push_back(WantsFlatInput(child.value));
    }
    for (size_t i = 0; i + 1 < names_.size(); ++i) splits_.push_back({names_[i], static_cast<int64_t>(i)});
  }

  // Keeps only the named split points (in block order). INVALID_ARGUMENT naming the blocks
  // for a name that is not one that can be cut after.
  Status restrict_splits(const std::vector<std::string>& keep, const std::string& origin) {
    if (keep.empty()) return Status::Ok();
    std::vector<SplitPoint> kept;
    for (const auto& name : keep) {
      auto it = std::find_if(splits_.begin(), splits_.end(), [&](const SplitPoint& s) { return s.name == name; });
      if (it == splits_.end()) {
        std::string valid;
        for (const auto& s : splits_) valid += (valid.empty() ? "" : ", ") + s.name;
        return InvalidArgument(origin + ": split point '" + name + "' is not a block that can be cut after (" + valid +
                               ")");
      }
      kept.push_back(*it);
    }
    std::sort(kept.begin(), kept.end(), [](const SplitPoint& a, const SplitPoint& b) { return a.block < b.block; });
    splits_ = std::move(kept);
    return Status::Ok();
  }

  std::string block_op(int64_t b) const override {
    bool conv = false, linear = false;
    for (const auto& m : blocks_.at(static_cast<size_t>(b)).modules()) {
      const std::string type = UnmangledTypeName(m);
      if (type.find(".conv.Conv") != std::string::npos) conv = true;
      if (type == kLinear) linear = true;
    }
    return conv ? "conv" : linear ? "matmul" : "other";
  }

  std::string model_name() const override { return name_; }
  std::vector<std::string> block_names() const override { return names_; }
  std::vector<SplitPoint> split_points() const override { return splits_; }

  torch::Tensor run_blocks(const torch::Tensor& x, int64_t begin, int64_t end) override {
    TORCH_CHECK(begin >= 0 && begin <= end && end <= num_blocks(), "block range [", begin, ", ", end,
                ") outside 0..", num_blocks());
    torch::Tensor h = x;
    for (int64_t i = begin; i < end; ++i) {
      if (flatten_before_[i] && h.dim() > 2) h = h.flatten(/*start_dim=*/1);
      try {
        h = blocks_[i].forward({h}).toTensor();
      } catch (const c10::Error&) {
        throw;
      } catch (const std::exception& e) {
        // The interpreter throws std::runtime_error (JITException); rethrow as c10::Error so
        // callers convert one exception type at their stage boundary, as for native chains.
        TORCH_CHECK(false, "TorchScript block '", names_[i], "' of ", name_, " failed: ", e.what());
      }
    }
    return h;
  }

  const torch::jit::Module* block(int64_t b) const {
    return b >= 0 && b < num_blocks() ? &blocks_[static_cast<size_t>(b)] : nullptr;
  }

  void set_eval() override { module_.eval(); }
  void set_train(bool on) override { module_.train(on); }
  // Module::to moves each tensor with set_data, so the holder's tensors stay the module's.
  void to_device(const torch::Device& device) override { module_.to(device); }

  std::vector<torch::Tensor> block_parameters(int64_t b) override {
    std::vector<torch::Tensor> out;
    for (const auto& p : blocks_.at(static_cast<size_t>(b)).parameters()) out.push_back(p);
    return out;
  }
  void set_block_train(int64_t b, bool on) override { blocks_.at(static_cast<size_t>(b)).train(on); }

  std::shared_ptr<torch::nn::Module> state_module() override {
    if (!state_) {
      // torch::nn::Module names may not contain '.', TorchScript's paths do: "layer1.0.conv1.weight"
      // is kept as "layer1__0__conv1__weight" (archive keys must be identifiers). register_* stores
      // the tensor itself (no copy).
      state_ = std::make_shared<torch::nn::Module>("TorchScriptState");
      auto key = [](std::string name) {
        std::string out;
        for (char c : name) out += c == '.' ? std::string("__") : std::string(1, c);
        return out;
      };
      for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
        state_->register_parameter(key(p.name), p.value, /*requires_grad=*/true);
      }
      for (const auto& b : module_.named_buffers(/*recurse=*/true)) state_->register_buffer(key(b.name), b.value);
    }
    return state_;
  }

  Status save(const std::string& path, const std::string& meta_json) {
    try {
      const std::string tmp = path + ".tmp";
      module_.save(tmp, {{kTorchScriptMetaFile, meta_json}});
      std::filesystem::rename(tmp, path);
    } catch (const std::exception& e) {
      return IoError("cannot write TorchScript file " + path + ": " + e.what());
    }
    return Status::Ok();
  }

 private:
  std::string name_;
  torch::jit::Module module_;  // owns the children below (jit modules are shared handles)
  std::vector<std::string> names_;
  std::vector<torch::jit::Module> blocks_;
  std::vector<bool> flatten_before_;
  std::vector<SplitPoint> splits_;
  std::shared_ptr<torch::nn::Module> state_;
};

}  // namespace

Result<TorchScriptFile> LoadTorchScriptFile(const std::string& path, const std::vector<std::string>& split_points,
                                            const std::string& name) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return NotFound("TorchScript file not found: " + path);
  }
  torch::jit::Module module;
  torch::jit::ExtraFilesMap extra{{kTorchScriptMetaFile, ""}};
  try {
    module = torch::jit::load(path, torch::kCPU, extra);
  } catch (const c10::Error& e) {
    return DataLoss("cannot read TorchScript file " + path +
                    " (not a torch.jit.save archive, truncated, or from a newer PyTorch): " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return DataLoss("cannot read TorchScript file " + path + ": " + e.what());
  }
  if (module.named_children().size() == 0) {
    return InvalidArgument("TorchScript module in " + path +
                           " has no child modules to split (export it with tools/export_torchscript.py)");
  }
  auto chain = std::make_unique<TorchScriptChain>(name.empty() ? std::filesystem::path(path).stem().string() : name,
                                                  std::move(module));
  SI_RETURN_IF_ERROR(chain->restrict_splits(split_points, path));
  TorchScriptFile f;
  f.chain = std::move(chain);
  f.embedded_meta = extra[kTorchScriptMetaFile];
  return f;
}

const torch::jit::Module* TorchScriptBlock(const SplitModel& chain, int64_t b) {
  const auto* scripted = dynamic_cast<const TorchScriptChain*>(&chain);
  return scripted == nullptr ? nullptr : scripted->block(b);
}

Status SaveTorchScriptChain(SplitModel& chain, const std::string& path, const std::string& meta_json) {
  auto* scripted = dynamic_cast<TorchScriptChain*>(&chain);
  if (scripted == nullptr) return InvalidArgument(chain.model_name() + " is not a TorchScript chain");
  return scripted->save(path, meta_json);
}

Result<std::unique_ptr<SplitModel>> LoadTorchScriptChain(const std::string& path) {
  SI_ASSIGN_OR_RETURN(TorchScriptFile f, LoadTorchScriptFile(path));
  return std::move(f.chain);
}

}  // namespace splitinfer::models
