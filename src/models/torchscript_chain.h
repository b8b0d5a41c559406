// TorchScript import: a scripted/traced module whose forward is a chain of its top-level
// children (as torchvision's classifiers are, and as tools/export_torchscript.py writes them)
// becomes a SplitModel with one block per child, split by child name.
#pragma once

#include <memory>
#include <string>

#include "models/split_model.h"

namespace splitinfer::models {

// NOT_FOUND for a missing file, DATA_LOSS for a file LibTorch cannot read, INVALID_ARGUMENT
// for a module with no children.
Result<std::unique_ptr<SplitModel>> LoadTorchScriptChain(const std::string& path);

}  // namespace splitinfer::models
