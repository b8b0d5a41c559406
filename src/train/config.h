// Training configuration (YAML). Unknown keys are errors that name the key and the keys that
// are valid there: a typo must never silently train with a default.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "data/datasets.h"
#include "data/detection.h"
#include "data/transforms.h"
#include "models/split_model.h"

namespace splitinfer::config {
class MapReader;
}  // namespace splitinfer::config

namespace splitinfer::train {

struct ModelConfig {
  std::string name = "resnet_fmnist";
  models::ModelOptions options{/*num_classes=*/10, /*in_channels=*/1, /*width=*/0, /*depth=*/0};
};

struct DataConfig {
  std::string dataset = data::kFashionMnist;  // fmnist | imagefolder | tinyimagenet (data/datasets.h)
  std::string dir;                 // empty = the dataset's default location
  int64_t limit_train = 0;         // 0 = all (small values for tests and smoke runs)
  int64_t limit_test = 0;
  // Training images kept out of training and calibration, to choose settings on without
  // looking at the test set (OpenHoldout); the same images for every run and machine. 0 = none.
  int64_t holdout = 0;
  int64_t image_size = 0;          // folder datasets: resize to this square size (0 = 224/64 default)
  // Folder datasets: how images of another size reach image_size (data::ResizePolicy's names;
  // "" = the model's, else center_crop) and center_crop's shorter side (0 = the model's, else
  // image_size / 0.875).
  std::string resize;
  int64_t resize_size = 0;
  // Not config keys: set from the model by SizedFor.
  int64_t height = 0, width = 0, channels = 0;
};

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | adamw
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 5e-4;
};

struct ScheduleConfig {
  std::string name = "onecycle";  // onecycle | cosine | constant
  double warmup_fraction = 0.15;  // onecycle: fraction of steps rising to lr; cosine: linear warm-up
  double final_lr_fraction = 1e-3;
};

// Detectors (a model whose task is detect, e.g. yolov3_tiny) train on a detection dataset
// (data.dataset coco or scenes, data.image_size = the square input side) with these instead of
// `augment:` (which is for classifiers and is refused for a detector).
struct DetectConfig {
  bool given = false;  // a `detect:` mapping was in the file (only then is it part of the config's JSON)
  // Width and height in input pixels, 6, smallest first; empty = k-means on the letterboxed
  // training boxes (detect/anchors.h, seeded with seed + 1), written into the checkpoint.
  std::vector<std::array<double, 2>> anchors;
  data::DetectionAugment augment{/*min_scale=*/0.75, /*max_scale=*/1.25, /*translate=*/0.1, /*hflip=*/true,
                                 /*min_visible=*/0.2};
  // The loss's gains (detect/loss.h). Defaults: YOLOv5's, scaled as it scales them for two
  // heads, 10 classes and a 128-pixel input (box 0.05 x 3/2; class 0.5 x 10/80 x 3/2;
  // objectness 1.0 x (128/640)^2 x 3/2).
  double box_gain = 0.075, class_gain = 0.09375, objectness_gain = 0.06;
  double nms_iou = 0.45;  // per-class NMS when the test split is measured after each epoch
};

struct TrainConfig {
  ModelConfig model;
  DataConfig data;
  data::AugmentOptions augment{/*crop_padding=*/2, /*flip_probability=*/0.5};
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  int64_t epochs = 30;
  int64_t batch_size = 128;
  int64_t eval_batch_size = 500;
  double label_smoothing = 0.0;
  bool amp = true;  // mixed precision (bf16 autocast) where the device has it (CUDA)
  uint64_t seed = 0;
  int64_t threads = 0;  // 0 = every core
  // Start from this checkpoint's weights instead of random ones (a second, fine-tuning stage).
  // Relative paths are relative to the working directory. The model must match.
  std::string init_checkpoint;
  DetectConfig detect;
  bool augment_given = false;  // an `augment:` mapping was in the file
};

// Reads a `data:` mapping (training and study configs share it, so the keys and checks are one):
// dataset, dir, limit_train, limit_test, image_size, resize, resize_size. INVALID_ARGUMENT names
// an unknown key, a wrong type or a dataset/resize outside its list.
Status ReadDataConfig(config::MapReader& data, DataConfig* out);

// Parses YAML text; `origin` names the file in error messages.
Result<TrainConfig> ParseTrainConfig(const std::string& yaml_text, const std::string& origin);
Result<TrainConfig> LoadTrainConfig(const std::string& path);

nlohmann::json ToJson(const TrainConfig& config);

}  // namespace splitinfer::train
