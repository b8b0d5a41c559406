// TorchScript import: a scripted/traced module whose forward is a chain of its top-level
// children (as torchvision's classifiers are, and as tools/export_torchscript.py writes them)
// becomes a SplitModel with one block per child, split by child name.
#pragma once

#include <memory>
#include <string>

#include "models/split_model.h"

namespace torch::jit {
struct Module;
}  // namespace torch::jit

namespace splitinfer::models {

// The name of the extra file (torch.jit.save(..., _extra_files=...)) that carries splitinfer's
// metadata inside a TorchScript archive (models/checkpoint.h, format "splitinfer-torchscript").
inline constexpr const char* kTorchScriptMetaFile = "splitinfer.json";

struct TorchScriptFile {
  std::unique_ptr<SplitModel> chain;
  std::string embedded_meta;  // the archive's splitinfer.json, "" when it has none
};

// NOT_FOUND for a missing file, DATA_LOSS for a file LibTorch cannot read, INVALID_ARGUMENT
// for a module with no children. `split_points`: the block names that may be cut after (empty:
// every block but the last); an unknown name is INVALID_ARGUMENT. `name`: the model's name
// (empty: the file's stem).
Result<TorchScriptFile> LoadTorchScriptFile(const std::string& path, const std::vector<std::string>& split_points = {},
                                            const std::string& name = "");
Result<std::unique_ptr<SplitModel>> LoadTorchScriptChain(const std::string& path);

// Block b of a chain loaded by LoadTorchScriptFile, as the scripted module it is (what the
// low-bit converter reads); null for any other SplitModel or a b out of range.
const torch::jit::Module* TorchScriptBlock(const SplitModel& chain, int64_t b);

// Writes a chain loaded by LoadTorchScriptFile (its current weights) as TorchScript with
// `meta_json` as its splitinfer.json; INVALID_ARGUMENT for any other SplitModel.
Status SaveTorchScriptChain(SplitModel& chain, const std::string& path, const std::string& meta_json);

}  // namespace splitinfer::models
