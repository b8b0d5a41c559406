// splitinfer data: labelled image datasets.
//
// A Dataset yields uint8 images [C, H, W] with an int64 label; every image of one dataset has
// the same shape (folder datasets resize on load), so batches are plain stacks. Float
// conversion, normalisation and augmentation are batch transforms (data/transforms.h), applied
// after batching because per-image ops in a loop dominate CPU training time on small images.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/status.h"

namespace splitinfer::data {

enum class Split { kTrain, kTest };

struct Normalization {
  std::vector<double> mean;  // per channel, on images scaled to [0, 1]
  std::vector<double> std;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // uint8 [C, H, W]; the label is in [0, num_classes()).
  virtual Result<torch::Tensor> image(int64_t index) const = 0;
  // Precondition: 0 <= index < size() (callers index by the dataset's own size; image() and
  // batch() are the checked entry points for indices from outside).
  virtual int64_t label(int64_t index) const = 0;
  virtual std::vector<std::string> class_names() const = 0;
  virtual std::vector<int64_t> image_shape() const = 0;  // {C, H, W}
  virtual std::string name() const = 0;
  int64_t num_classes() const { return static_cast<int64_t>(class_names().size()); }

  // Stacks the given examples: images uint8 [N, C, H, W], labels int64 [N].
  virtual Result<std::pair<torch::Tensor, torch::Tensor>> batch(const std::vector<int64_t>& indices) const;
};

// All images held in one tensor (Fashion-MNIST: 47 MB for the training set).
class InMemoryDataset : public Dataset {
 public:
  InMemoryDataset(std::string name, torch::Tensor images, torch::Tensor labels,
                  std::vector<std::string> class_names);
  int64_t size() const override { return images_.size(0); }
  Result<torch::Tensor> image(int64_t index) const override;
  int64_t label(int64_t index) const override;
  std::vector<std::string> class_names() const override { return class_names_; }
  std::vector<int64_t> image_shape() const override;
  std::string name() const override { return name_; }
  // One index_select instead of N slices and N label reads.
  Result<std::pair<torch::Tensor, torch::Tensor>> batch(const std::vector<int64_t>& indices) const override;
  const torch::Tensor& images() const { return images_; }
  const torch::Tensor& labels() const { return labels_; }
  // The first n examples (tests, quick runs). n is clamped to size().
  InMemoryDataset take(int64_t n) const;

 private:
  std::string name_;
  torch::Tensor images_;  // uint8 [N, C, H, W]
  torch::Tensor labels_;  // int64 [N]
  std::vector<std::string> class_names_;
};

}  // namespace splitinfer::data
