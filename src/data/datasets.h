// Opening a dataset by name, as configs and the CLI name them:
//   fmnist        Fashion-MNIST from Debian's dataset-fashion-mnist (dir optional)
//   imagefolder   dir/train/<class>/*, dir/test/<class>/* (or dir/val/<class>/*)
//   tinyimagenet  TinyImageNet-200 layout under dir
//   coco          a COCO-format detection folder (data/detection.h); classification commands refuse it
//   scenes        coco scenes made from a parameter file (scenes:CONFIG, data/scenes.h EnsureScenes)
#pragma once

#include <memory>
#include <string>

#include "data/dataset.h"
#include "data/image_folder.h"

namespace splitinfer::data {

// How folder datasets read their images (Fashion-MNIST is always 1 x 28 x 28).
struct ImageOptions {
  int64_t height = 0, width = 0;  // 0 = 224 (TinyImageNet: 64)
  int64_t channels = 0;           // 1 (grayscale) or 3 (RGB); 0 = 3
  ResizePolicy resize = ResizePolicy::kCenterCrop;
  int64_t resize_size = 0;  // kCenterCrop's shorter side; 0 = DefaultResizeSize
};
Result<std::unique_ptr<Dataset>> OpenDataset(const std::string& kind, const std::string& dir, Split split,
                                             const ImageOptions& images = {});

// A dataset reference as every command's --data gives it: "fmnist", "imagefolder:DIR",
// "tinyimagenet:DIR", or a bare DIR (its kind then comes from the model's metadata: kind "").
// "fmnist-test", the node's older spelling, is "fmnist".
// The dataset kinds OpenDataset knows, by the names configs and --data use.
inline constexpr const char* kFashionMnist = "fmnist";
inline constexpr const char* kImageFolder = "imagefolder";
inline constexpr const char* kTinyImageNet = "tinyimagenet";
inline constexpr const char* kCoco = "coco";  // detection (data/detection.h)
inline constexpr const char* kScenes = "scenes";  // detection: scenes:CONFIG (data/scenes.h)

struct DatasetRef {
  std::string kind, dir;
};
DatasetRef ParseDatasetRef(const std::string& text);

// Fashion-MNIST: its own statistics; folder datasets: the ImageNet statistics torchvision uses.
Normalization DefaultNormalization(const std::string& kind);

}  // namespace splitinfer::data
