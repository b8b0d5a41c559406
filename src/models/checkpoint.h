// Checkpoints: one self-describing file per trained model.
//
// FILE.pt is a LibTorch archive holding the weights ("<block>.<param>") and, under the key
// "splitinfer_meta", a JSON string with everything needed to rebuild and use the model (name,
// options, input normalisation, class names, accuracy, the training config). FILE.json beside
// it holds the same JSON for people. Loading rebuilds the architecture from the metadata and
// checks every tensor's name and shape, so a checkpoint of another model is a MISMATCH error.
#pragma once

#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/serialize/input-archive.h>

#include "models/split_model.h"

namespace splitinfer::models {

inline constexpr int kCheckpointFormatVersion = 1;

// What a model's output means, and so which commands and metrics apply to it:
//   classify  one score per class, [N, num_classes] (top-1 accuracy)
//   detect    YOLOv3-tiny's two packed heads (detect/yolo.h), decoded with `anchors` into boxes
//             (COCO's AP); splitinfer's own yolov3_tiny checkpoints only
inline constexpr const char* kTaskClassify = "classify";
inline constexpr const char* kTaskDetect = "detect";

struct CheckpointMeta {
  std::string task = kTaskClassify;
  std::string model;  // zoo name
  ModelOptions options;
  std::vector<int64_t> input_shape;  // {C, H, W}
  std::vector<double> norm_mean, norm_std;
  std::vector<std::string> class_names;
  std::string dataset;
  double top1 = -1.0;  // test-set top-1 in percent at save time (-1 = not measured)
  int64_t epochs = 0;
  nlohmann::json train_config;  // the config used, verbatim
  // The split points a TorchScript chain's exporter recommends (empty: every block boundary).
  std::vector<std::string> split_points;
  // How images of another size reach input_shape's H x W (data::ResizePolicy's names):
  // "center_crop" (resize the shorter side to resize_size, 0 = H / 0.875, then cut out the
  // centre, as torchvision's models expect) or "stretch". Folder datasets only.
  std::string resize = "center_crop";
  int64_t resize_size = 0;
  // task detect: the anchors (width, height in input pixels, smallest area first: the stride-16
  // head uses the first three, the stride-32 head the last three) and the test split's COCO AP
  // and AP50 at save time (0..1; -1 = not measured). Detectors read square inputs (H = W),
  // letterboxed (data/detection.h).
  std::vector<std::array<double, 2>> anchors;
  double ap = -1, ap50 = -1;
};

inline bool IsDetector(const CheckpointMeta& meta) { return meta.task == kTaskDetect; }

// FAILED_PRECONDITION for a detector given to `what` (a command or step that works on class
// scores), naming the commands that do take detectors.
Status RequireClassifier(const CheckpointMeta& meta, const std::string& what);

// The same metadata describes a checkpoint (format "splitinfer-checkpoint", stored in the
// archive) and a TorchScript chain (format "splitinfer-torchscript": the archive's extra file
// "splitinfer.json", written by tools/export_torchscript.py, or FILE.json beside it). A
// TorchScript description needs only input_shape, normalization and class_names (or
// options.num_classes); its options are those of no zoo architecture.
inline constexpr const char* kCheckpointFormat = "splitinfer-checkpoint";
inline constexpr const char* kTorchScriptFormat = "splitinfer-torchscript";
nlohmann::json MetaToJson(const CheckpointMeta& meta, const char* format = kCheckpointFormat);
Result<CheckpointMeta> MetaFromJson(const nlohmann::json& j, const std::string& origin);

// Writes `path` and `path` with extension .json. Creates no directories.
Status SaveCheckpoint(const std::string& path, BlockChain& model, const CheckpointMeta& meta);

struct LoadedModel {
  BlockChain model{nullptr};
  CheckpointMeta meta;
};
// NOT_FOUND (missing file), DATA_LOSS (not a splitinfer checkpoint / corrupt), MISMATCH
// (weights do not fit the architecture the metadata names). The model is in eval mode.
Result<LoadedModel> LoadCheckpoint(const std::string& path, const torch::Device& device);

// A batch of `n` zero images of the checkpoint's input shape: for probing feature shapes.
torch::Tensor ExampleInput(const CheckpointMeta& meta, int64_t n, const torch::Device& device);

// Reads only the metadata (cheap; no model is built).
Result<CheckpointMeta> ReadCheckpointMeta(const std::string& path);

// Loads `module`'s parameters and buffers from `archive` (as written by Module::save), checking
// every name and shape first: MISMATCH naming the first tensor that is missing or differs.
// `path` and `what` only name things in the message.
Status LoadModuleChecked(torch::nn::Module& module, torch::serialize::InputArchive& archive,
                         const std::string& prefix, const std::string& path, const std::string& what);

// Copies the weights of `src` into `dst`, requiring identical names and shapes.
Status CopyWeights(torch::nn::Module& dst, const torch::nn::Module& src, const std::string& origin);

}  // namespace splitinfer::models
