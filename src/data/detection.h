// data/detection: a COCO-format detection dataset (`coco:DIR`) read for a detector: images
// through OpenCV, letterboxed to the detector's square input, boxes mapped with them, and the
// usual training augmentation (random scale and translation, horizontal flip) applied to image
// and boxes together.
//
// Layout of DIR (what `splitinfer data make-scenes` writes; COCO's own names also work):
//   DIR/annotations/instances_train.json + DIR/train/      (or instances_train2017.json + train2017/)
//   DIR/annotations/instances_test.json  + DIR/test/       (or instances_val2017.json + val2017/)
// The class index of a box is its category's position in the file's `categories` list.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "data/coco.h"
#include "data/dataset.h"
#include "data/datasets.h"

namespace splitinfer::data {

inline constexpr double kLetterboxFill = 114;  // YOLO's grey for padding and for warped-in borders

struct DetectionSample {
  torch::Tensor image;   // uint8 [C, S, S]
  torch::Tensor boxes;   // float32 [n, 4]: x, y, w, h in the letterboxed image's pixels
  torch::Tensor labels;  // int64 [n]: class index
  int64_t image_id = 0;
  // How the original image maps into the letterboxed one: x' = x * scale + pad_x (same for y).
  double scale = 1, pad_x = 0, pad_y = 0;
};

struct DetectionAugment {
  double min_scale = 1, max_scale = 1;  // zoom about the centre, uniform in [min, max]
  double translate = 0;                 // shift up to this fraction of the side, each axis
  bool hflip = false;                   // mirror half of the images
  double min_visible = 0.2;             // boxes keeping less of their area (cut by the border) are dropped
};

class CocoDetectionDataset {
 public:
  // `size`: the detector's square input side; `channels`: 1 (grayscale) or 3 (RGB).
  // NOT_FOUND naming the files looked for; the annotation file's own errors (data/coco.h).
  static Result<std::unique_ptr<CocoDetectionDataset>> Open(const std::string& dir, Split split, int64_t size,
                                                            int64_t channels);

  int64_t size() const { return static_cast<int64_t>(coco_.images.size()); }
  std::vector<std::string> class_names() const;
  const CocoAnnotations& annotations() const { return coco_; }
  const std::string& annotation_file() const { return annotation_file_; }
  int64_t input_size() const { return size_; }
  int64_t channels() const { return channels_; }

  // The image letterboxed with its boxes (crowd boxes left out: they are for evaluation only);
  // with `augment`, the random transform drawn from `seed`. DATA_LOSS naming the file when an
  // image is missing, unreadable or not of the size the annotations give.
  Result<DetectionSample> sample(int64_t index, const DetectionAugment* augment = nullptr, uint64_t seed = 0) const;

 private:
  CocoDetectionDataset() = default;
  CocoAnnotations coco_;
  std::string image_dir_, annotation_file_;
  int64_t size_ = 0, channels_ = 0;
};

// A detection dataset reference (data/datasets.h): coco:DIR, or scenes:CONFIG (the scenes of a
// parameter file, made once into the cache: data/scenes.h EnsureScenes). INVALID_ARGUMENT for
// any other kind, naming the two.
Result<std::unique_ptr<CocoDetectionDataset>> OpenDetectionDataset(const DatasetRef& ref, Split split, int64_t size,
                                                                   int64_t channels, bool progress = true);

// Every non-crowd box's width and height as the detector sees it (each image letterboxed to the
// input side: scaled by min(S / height, S / width)), for anchors by k-means.
std::vector<std::array<double, 2>> LetterboxedBoxSizes(const CocoDetectionDataset& dataset);

// A detection split seen as images alone (a data::Dataset): the letterboxed images at the
// detector's input, every label 0, the categories as class names. For what needs a detector's
// images without their boxes: calibrating a quantizer at its split, the input-image baselines.
// Nothing that learns from labels may take it (the methods that do refuse detectors).
class DetectionImages : public Dataset {
 public:
  explicit DetectionImages(std::unique_ptr<CocoDetectionDataset> detection) : d_(std::move(detection)) {}
  int64_t size() const override { return d_->size(); }
  Result<torch::Tensor> image(int64_t index) const override;
  int64_t label(int64_t) const override { return 0; }
  std::vector<std::string> class_names() const override { return d_->class_names(); }
  std::vector<int64_t> image_shape() const override;
  std::string name() const override { return d_->annotation_file(); }
  const CocoDetectionDataset& detection() const { return *d_; }

 private:
  std::unique_ptr<CocoDetectionDataset> d_;
};

// A batch as YOLO trains on it: images uint8 [B, C, S, S] and targets float32 [M, 6] =
// (batch index, class, x, y, w, h) for every box of every image.
std::pair<torch::Tensor, torch::Tensor> CollateDetection(const std::vector<DetectionSample>& samples);

}  // namespace splitinfer::data
