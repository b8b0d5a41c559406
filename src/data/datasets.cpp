#include "data/datasets.h"

#include <filesystem>

#include "data/fashion_mnist.h"
#include "data/image_folder.h"

namespace splitinfer::data {
namespace {

ImageFolderOptions FolderOptions(const ImageOptions& images, int64_t default_side) {
  ImageFolderOptions o;
  o.height = images.height > 0 ? images.height : default_side;
  o.width = images.width > 0 ? images.width : default_side;
  o.grayscale = images.channels == 1;
  o.resize = images.resize;
  o.resize_size = images.resize_size;
  return o;
}

}  // namespace

Result<std::unique_ptr<Dataset>> OpenDataset(const std::string& kind, const std::string& dir, Split split,
                                             const ImageOptions& images) {
  const int64_t channels = images.channels;
  if (channels != 0 && channels != 1 && channels != 3) {
    return InvalidArgument("images with " + std::to_string(channels) + " channels: only 1 (grayscale) or 3 (RGB)");
  }
  if (kind == "fmnist") {
    SI_ASSIGN_OR_RETURN(InMemoryDataset d, LoadFashionMnist(split, dir.empty() ? kFashionMnistDefaultDir : dir));
    return std::unique_ptr<Dataset>(std::make_unique<InMemoryDataset>(std::move(d)));
  }
  if (dir.empty()) return InvalidArgument("dataset '" + kind + "' needs a directory (data.dir / --data DIR)");
  if (kind == "imagefolder") {
    const ImageFolderOptions o = FolderOptions(images, 224);
    namespace fs = std::filesystem;
    std::string sub = split == Split::kTrain ? "train" : "test";
    if (split == Split::kTest && !fs::exists(fs::path(dir) / sub) && fs::exists(fs::path(dir) / "val")) sub = "val";
    return LoadImageFolder((fs::path(dir) / sub).string(), o);
  }
  if (kind == "tinyimagenet") {
    return LoadTinyImageNet(dir, split, FolderOptions(images, 64));
  }
  if (kind == kCoco || kind == kScenes) {
    // COCO folders hold boxes, not one class per image (data/detection.h reads them).
    return InvalidArgument(kind + ":" + dir + " is a detection dataset (boxes per image); this command reads images "
                           "with one class each: fmnist, imagefolder:DIR or tinyimagenet:DIR");
  }
  return InvalidArgument("unknown dataset '" + kind + "'; known: fmnist, imagefolder, tinyimagenet, coco and scenes (detection)");
}

DatasetRef ParseDatasetRef(const std::string& text) {
  if (text == kFashionMnist || text == "fmnist-test") return {kFashionMnist, ""};
  if (text == kScenes) return {kScenes, ""};  // the committed parameters (configs/data/scenes.yaml)
  for (const char* kind : {kFashionMnist, kImageFolder, kTinyImageNet, kCoco, kScenes}) {
    const std::string prefix = std::string(kind) + ":";
    if (text.rfind(prefix, 0) == 0) return {kind, text.substr(prefix.size())};
  }
  return {"", text};
}

Normalization DefaultNormalization(const std::string& kind) {
  if (kind == "fmnist") return FashionMnistNormalization();
  return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
}

}  // namespace splitinfer::data
