// Image-folder datasets read with OpenCV (JPEG/PNG): one sub-folder per class
// (root/<class>/*.{jpg,jpeg,png}), and the TinyImageNet-200 layout
// (train/<wnid>/images/*.JPEG; val/images/*.JPEG labelled by val/val_annotations.txt).
// Images are decoded lazily on image(i) and resized to the dataset's fixed H x W, so batches
// stack. Only available when built with OpenCV (SPLITINFER_WITH_OPENCV); otherwise the
// loaders return UNIMPLEMENTED naming the missing library.
#pragma once

#include <string>

#include "data/dataset.h"

namespace splitinfer::data {

struct ImageFolderOptions {
  int64_t height = 224;
  int64_t width = 224;
  bool grayscale = false;  // 1 channel instead of 3 (RGB order)
};

// root/<class>/<image>; classes sorted by name (as torchvision's ImageFolder). NOT_FOUND for a
// missing root, INVALID_ARGUMENT for a root with no class folders or no images.
Result<std::unique_ptr<Dataset>> LoadImageFolder(const std::string& root, const ImageFolderOptions& options);

// TinyImageNet-200: root/wnids.txt (optional: else train/ sub-folders), root/train/<wnid>/images,
// root/val/images + root/val/val_annotations.txt ("<file>\t<wnid>\t..."). Split kTest = val.
Result<std::unique_ptr<Dataset>> LoadTinyImageNet(const std::string& root, Split split,
                                                  const ImageFolderOptions& options);

}  // namespace splitinfer::data
