// Image-folder datasets read with OpenCV (JPEG/PNG): one sub-folder per class
// (root/<class>/*.{jpg,jpeg,png}), and the TinyImageNet-200 layout
// (train/<wnid>/images/*.JPEG; val/images/*.JPEG labelled by val/val_annotations.txt).
// Images are decoded lazily on image(i) and brought to the dataset's fixed H x W (by default as
// torchvision's classifiers expect: resize the shorter side, then cut out the centre), so
// batches stack. Only available when built with OpenCV (SPLITINFER_WITH_OPENCV); otherwise the
// loaders return UNIMPLEMENTED naming the missing library.
#pragma once

#include <string>

#include "data/dataset.h"

namespace splitinfer::data {

// How an image of another size becomes height x width.
//   kCenterCrop  torchvision's Resize(resize_size) + CenterCrop((height, width)): the shorter
//                side is scaled to resize_size keeping the aspect ratio, then the centre
//                height x width is cut out. What models trained on ImageNet-style folders saw.
//   kStretch     each axis scaled to fit: keeps the whole image but distorts its aspect.
enum class ResizePolicy { kCenterCrop, kStretch };
const char* ResizePolicyName(ResizePolicy p);  // "center_crop", "stretch"
// INVALID_ARGUMENT naming the valid names.
Result<ResizePolicy> ResizePolicyFromName(const std::string& name);
// kCenterCrop's default shorter side for a height x width crop: the larger side / 0.875, as
// torchvision's 256 for 224 (rounded).
int64_t DefaultResizeSize(int64_t height, int64_t width);

struct ImageFolderOptions {
  int64_t height = 224;
  int64_t width = 224;
  bool grayscale = false;  // 1 channel instead of 3 (RGB order)
  ResizePolicy resize = ResizePolicy::kCenterCrop;
  int64_t resize_size = 0;  // kCenterCrop: the shorter side before the crop; 0 = DefaultResizeSize
};

// root/<class>/<image>; classes sorted by name (as torchvision's ImageFolder). NOT_FOUND for a
// missing root, INVALID_ARGUMENT for a root with no class folders or no images.
Result<std::unique_ptr<Dataset>> LoadImageFolder(const std::string& root, const ImageFolderOptions& options);

// TinyImageNet-200: root/wnids.txt (optional: else train/ sub-folders), root/train/<wnid>/images,
// root/val/images + root/val/val_annotations.txt ("<file>\t<wnid>\t..."). Split kTest = val.
Result<std::unique_ptr<Dataset>> LoadTinyImageNet(const std::string& root, Split split,
                                                  const ImageFolderOptions& options);

}  // namespace splitinfer::data
