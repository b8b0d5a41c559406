#include "data/dataset.h"

#include <torch/torch.h>

namespace splitinfer::data {

Result<std::pair<torch::Tensor, torch::Tensor>> Dataset::batch(const std::vector<int64_t>& indices) const {
  std::vector<torch::Tensor> images;
  images.reserve(indices.size());
  std::vector<int64_t> labels;
  labels.reserve(indices.size());
  for (int64_t i : indices) {
    if (i < 0 || i >= size()) {
      return OutOfRange("example index " + std::to_string(i) + " outside 0.." + std::to_string(size() - 1));
    }
    SI_ASSIGN_OR_RETURN(torch::Tensor img, image(i));
    images.push_back(std::move(img));
    labels.push_back(label(i));
  }
  if (images.empty()) return InvalidArgument("empty batch");
  return std::make_pair(torch::stack(images), torch::tensor(labels, torch::kInt64));
}

InMemoryDataset::InMemoryDataset(std::string name, torch::Tensor images, torch::Tensor labels,
                                 std::vector<std::string> class_names)
    : name_(std::move(name)),
      images_(std::move(images)),
      labels_(std::move(labels)),
      class_names_(std::move(class_names)) {
  TORCH_CHECK(images_.dim() == 4 && images_.scalar_type() == torch::kUInt8, "images must be uint8 [N,C,H,W]");
  TORCH_CHECK(labels_.dim() == 1 && labels_.size(0) == images_.size(0), "one label per image");
}

Result<torch::Tensor> InMemoryDataset::image(int64_t index) const {
  if (index < 0 || index >= size()) {
    return OutOfRange("example index " + std::to_string(index) + " outside 0.." + std::to_string(size() - 1));
  }
  return images_[index];
}

Result<std::pair<torch::Tensor, torch::Tensor>> InMemoryDataset::batch(const std::vector<int64_t>& indices) const {
  if (indices.empty()) return InvalidArgument("empty batch");
  for (int64_t i : indices) {
    if (i < 0 || i >= size()) {
      return OutOfRange("example index " + std::to_string(i) + " outside 0.." + std::to_string(size() - 1));
    }
  }
  auto idx = torch::tensor(indices, torch::kInt64);
  return std::make_pair(images_.index_select(0, idx), labels_.index_select(0, idx));
}

int64_t InMemoryDataset::label(int64_t index) const { return labels_[index].item<int64_t>(); }

std::vector<int64_t> InMemoryDataset::image_shape() const {
  return {images_.size(1), images_.size(2), images_.size(3)};
}

InMemoryDataset InMemoryDataset::take(int64_t n) const {
  n = std::max<int64_t>(0, std::min(n, size()));
  return InMemoryDataset(name_, images_.slice(0, 0, n), labels_.slice(0, 0, n), class_names_);
}

}  // namespace splitinfer::data
