// The model reference every command takes, spelled one way: --model (--checkpoint, its older
// spelling, still works) and the flags that describe a TorchScript file without metadata.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "core/status.h"
#include "models/model_ref.h"

namespace splitinfer::cli {

struct ModelArgs {
  std::string ref;
  std::string input_shape, mean, std, classes, split_points, resize;
};

// Adds --model/--checkpoint (required when `required`) and --input-shape, --mean, --std,
// --classes, --split-points to `cmd`.
void AddModelOptions(CLI::App* cmd, ModelArgs& args, bool required = true);

// The metadata flags as given; INVALID_ARGUMENT naming the flag for a malformed one.
Result<models::ModelMetaFlags> MetaFlags(const ModelArgs& args);

}  // namespace splitinfer::cli
