// Opening a dataset by name, as configs and the CLI name them:
//   fmnist        Fashion-MNIST from Debian's dataset-fashion-mnist (dir optional)
//   imagefolder   dir/train/<class>/*, dir/test/<class>/* (or dir/val/<class>/*)
//   tinyimagenet  TinyImageNet-200 layout under dir
#pragma once

#include <memory>
#include <string>

#include "data/dataset.h"

namespace splitinfer::data {

// image_size: folder datasets resize to this square size (0 = 224; TinyImageNet: 64).
Result<std::unique_ptr<Dataset>> OpenDataset(const std::string& kind, const std::string& dir, Split split,
                                             int64_t image_size = 0);

// A dataset reference as every command's --data gives it: "fmnist", "imagefolder:DIR",
// "tinyimagenet:DIR", or a bare DIR (its kind then comes from the model's metadata: kind "").
struct DatasetRef {
  std::string kind, dir;
};
DatasetRef ParseDatasetRef(const std::string& text);

// Fashion-MNIST: its own statistics; folder datasets: the ImageNet statistics torchvision uses.
Normalization DefaultNormalization(const std::string& kind);

}  // namespace splitinfer::data
