// Training configuration (YAML). Unknown keys are errors that name the key and the keys that
// are valid there: a typo must never silently train with a default.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "data/datasets.h"
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
