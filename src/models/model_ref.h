// Model references: what every command's --model names, resolved in one place.
//
//   a zoo name          resnet50, resnet_fmnist   the architecture with random weights from a
//                                                  fixed seed (for bytes and latency; no accuracy)
//   a checkpoint        runs/r/checkpoint.pt       written by `splitinfer train` or a method:
//                                                  native weights + metadata in the archive
//   a TorchScript chain r18.pt                     a scripted module whose forward runs its
//                                                  children in order (tools/export_torchscript.py)
//
// Files are told apart by what is in them, never by their name: a LibTorch archive whose
// pickled module carries "splitinfer_meta" is a checkpoint; any other TorchScript archive is a
// chain. A chain needs what splitinfer knows of its inputs and outputs beside its weights
// (input shape, normalisation, class names, split points), found in this order of precedence:
// command-line flags (ModelMetaFlags), the archive's extra file "splitinfer.json", FILE.json
// beside the file. A chain with none of these is refused with the three ways to give it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/status.h"
#include "models/checkpoint.h"
#include "models/model_flags.h"
#include "models/split_model.h"

namespace splitinfer::models {

enum class ModelKind { kZoo, kCheckpoint, kTorchScript };
const char* ModelKindName(ModelKind kind);  // "zoo", "checkpoint", "torchscript"

// Parsers for the flags' text forms, INVALID_ARGUMENT naming the flag and the expected form.
Result<std::vector<int64_t>> ParseInputShape(const std::string& text);  // "3x224x224" or "3,224,224"
Result<std::vector<double>> ParseNumberList(const std::string& flag, const std::string& text);  // "0.5,0.5,0.5"
// "--classes": a count ("10": classes named 0..9), a file with one name per line, or names
// separated by commas ("cat,dog").
Result<std::vector<std::string>> ParseClassNames(const std::string& text);

// A zoo name opens with random weights drawn after torch::manual_seed(kZooWeightSeed) (so it
// reseeds LibTorch's global generator): every process that opens the same name gets the same
// network.
inline constexpr uint64_t kZooWeightSeed = 20261207;

struct OpenedModel {
  ModelKind kind = ModelKind::kZoo;
  std::string ref;                  // as given
  std::shared_ptr<SplitModel> net;  // every kind; in eval mode on the requested device
  BlockChain native{nullptr};       // zoo and checkpoint: the same network as a trainable native chain
  CheckpointMeta meta;              // zoo: its defaults (ZooDefaults), no dataset (random weights)
  std::string meta_source;          // where meta came from, for messages and reports
};

// Which kind `ref` is, from the file's content (or the zoo's names). NOT_FOUND for neither a
// file nor a zoo name (listing the zoo); DATA_LOSS for a file that is no PyTorch archive.
Result<ModelKind> DetectModelKind(const std::string& ref);

// Opens `ref` on `device`. Beyond DetectModelKind's errors: FAILED_PRECONDITION for a chain
// without metadata; INVALID_ARGUMENT for flags on a zoo model or a checkpoint (their metadata
// is theirs), or flags that contradict each other; MISMATCH when the chain's output on the
// metadata's input shape does not have one score per class.
Result<OpenedModel> OpenModel(const std::string& ref, const torch::Device& device, const ModelMetaFlags& flags = {});

// Writes `net` with `meta` to `path` in the form it was read in: a native chain as a splitinfer
// checkpoint (FILE.json beside it), a TorchScript chain as TorchScript with the metadata
// embedded (format splitinfer-torchscript), so that OpenModel reads either back. The model is
// moved to the CPU first.
Status SaveModel(const std::string& path, SplitModel& net, const CheckpointMeta& meta);

}  // namespace splitinfer::models
