#include "data/detection.h"

#include <map>

#include "data/scenes.h"

#include <filesystem>

#include <torch/torch.h>

namespace splitinfer::data {

namespace fs = std::filesystem;

std::vector<std::string> CocoDetectionDataset::class_names() const {
  std::vector<std::string> names;
  for (const auto& c : coco_.categories) names.push_back(c.name);
  return names;
}

std::pair<torch::Tensor, torch::Tensor> CollateDetection(const std::vector<DetectionSample>& samples) {
  std::vector<torch::Tensor> images, targets;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    images.push_back(s.image);
    const int64_t n = s.boxes.size(0);
    if (n == 0) continue;
    auto t = torch::empty({n, 6}, torch::kFloat);
    t.select(1, 0).fill_(static_cast<double>(i));
    t.select(1, 1).copy_(s.labels.to(torch::kFloat));
    t.narrow(1, 2, 4).copy_(s.boxes);
    targets.push_back(t);
  }
  return {torch::stack(images), targets.empty() ? torch::zeros({0, 6}) : torch::cat(targets)};
}

Result<std::unique_ptr<CocoDetectionDataset>> CocoDetectionDataset::Open(const std::string& dir, Split split,
                                                                         int64_t size, int64_t channels) {
  if (size < 32 || size > 4096) return InvalidArgument("a detector's input side must be 32..4096, not " + std::to_string(size));
  if (channels != 1 && channels != 3) return InvalidArgument("images are read as 1 (grayscale) or 3 (RGB) channels");
  const bool train = split == Split::kTrain;
  // splitinfer's names first, then COCO's own.
  const std::vector<std::pair<std::string, std::string>> layouts =
      train ? std::vector<std::pair<std::string, std::string>>{{"instances_train.json", "train"},
                                                               {"instances_train2017.json", "train2017"}}
            : std::vector<std::pair<std::string, std::string>>{{"instances_test.json", "test"},
                                                               {"instances_val2017.json", "val2017"}};
  std::string tried;
  for (const auto& [file, images] : layouts) {
    const fs::path ann = fs::path(dir) / "annotations" / file;
    tried += (tried.empty() ? "" : " or ") + ann.string();
    std::error_code ec;
    if (!fs::is_regular_file(ann, ec)) continue;
    auto ds = std::unique_ptr<CocoDetectionDataset>(new CocoDetectionDataset());
    SI_ASSIGN_OR_RETURN(ds->coco_, LoadCocoAnnotations(ann.string()));
    ds->annotation_file_ = ann.string();
    ds->image_dir_ = (fs::path(dir) / images).string();
    if (!fs::is_directory(ds->image_dir_, ec)) {
      return NotFound("coco:" + dir + ": " + ann.string() + " is there but its image folder " + ds->image_dir_ +
                      " is not");
    }
    if (ds->coco_.images.empty()) return InvalidArgument(ann.string() + " lists no images");
    ds->size_ = size;
    ds->channels_ = channels;
    return ds;
  }
  return NotFound("coco:" + dir + ": no " + std::string(train ? "training" : "test") + " annotations (looked for " +
                  tried + "); `splitinfer data make-scenes` writes this layout");
}

Result<std::unique_ptr<CocoDetectionDataset>> OpenDetectionDataset(const DatasetRef& ref, Split split, int64_t size,
                                                                   int64_t channels, bool progress) {
  if (ref.kind == kCoco) {
    if (ref.dir.empty()) return InvalidArgument("coco: needs a folder (coco:DIR)");
    return CocoDetectionDataset::Open(ref.dir, split, size, channels);
  }
  if (ref.kind == kScenes) {
    const std::string config = ref.dir.empty() ? "configs/data/scenes.yaml" : ref.dir;
    SI_ASSIGN_OR_RETURN(const std::string dir, EnsureScenes(config, progress));
    return CocoDetectionDataset::Open(dir, split, size, channels);
  }
  const std::string given = ref.kind.empty() ? ref.dir : ref.dir.empty() ? ref.kind : ref.kind + ":" + ref.dir;
  return InvalidArgument("'" + given +
                         "' is no detection dataset: give coco:DIR (a COCO-format folder) or scenes:CONFIG (scenes "
                         "made from a parameter file such as configs/data/scenes.yaml)");
}

Result<torch::Tensor> DetectionImages::image(int64_t index) const {
  if (index < 0 || index >= size()) {
    return OutOfRange("image index " + std::to_string(index) + " outside 0.." + std::to_string(size() - 1));
  }
  SI_ASSIGN_OR_RETURN(DetectionSample s, d_->sample(index));
  return s.image;
}

std::vector<int64_t> DetectionImages::image_shape() const {
  return {d_->channels(), d_->input_size(), d_->input_size()};
}

std::vector<std::array<double, 2>> LetterboxedBoxSizes(const CocoDetectionDataset& dataset) {
  const CocoAnnotations& coco = dataset.annotations();
  const double s = static_cast<double>(dataset.input_size());
  std::map<int64_t, double> scale;
  for (const auto& im : coco.images) scale[im.id] = std::min(s / im.height, s / im.width);
  std::vector<std::array<double, 2>> sizes;
  for (const auto& an : coco.annotations) {
    if (an.iscrowd || !(an.w > 0) || !(an.h > 0)) continue;
    sizes.push_back({an.w * scale.at(an.image_id), an.h * scale.at(an.image_id)});
  }
  return sizes;
}

}  // namespace splitinfer::data

#ifndef SPLITINFER_WITH_OPENCV

namespace splitinfer::data {
Result<DetectionSample> CocoDetectionDataset::sample(int64_t, const DetectionAugment*, uint64_t) const {
  return Unimplemented("reading detection images needs OpenCV, which this build lacks (apt-get install "
                       "libopencv-dev, then rebuild)");
}
}  // namespace splitinfer::data

#else

#include <algorithm>
#include <cmath>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/random.h"
#include "core/system.h"

namespace splitinfer::data {
namespace {

constexpr size_t kMaxImageFileBytes = size_t{256} << 20;

}  // namespace

Result<DetectionSample> CocoDetectionDataset::sample(int64_t index, const DetectionAugment* aug, uint64_t seed) const {
  if (index < 0 || index >= size()) {
    return OutOfRange("image " + std::to_string(index) + " of a dataset of " + std::to_string(size()));
  }
  const CocoImage& info = coco_.images[static_cast<size_t>(index)];
  const std::string path = (fs::path(image_dir_) / info.file_name).string();
  auto bytes = ReadBinaryFile(path, "image", kMaxImageFileBytes);
  if (!bytes.ok()) {
    return DataLoss(path + " (listed in " + annotation_file_ + " as image " + std::to_string(info.id) +
                    "): " + bytes.status().message());
  }
  cv::Mat img;
  try {
    const cv::Mat raw(1, static_cast<int>(bytes->size()), CV_8UC1, bytes->data());
    img = cv::imdecode(raw, channels_ == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    img = cv::Mat();
  }
  if (img.empty()) return DataLoss(path + " is not an image OpenCV can decode (PNG, JPEG, ...)");
  if (img.cols != info.width || img.rows != info.height) {
    return DataLoss(path + " is " + std::to_string(img.cols) + "x" + std::to_string(img.rows) + " but " +
                    annotation_file_ + " says " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                    ": the boxes would not match it");
  }
  if (channels_ == 3) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
  // Letterbox: the whole image, aspect kept, centred on a grey square.
  const int S = static_cast<int>(size_);
  const double r = std::min(static_cast<double>(S) / img.rows, static_cast<double>(S) / img.cols);
  const int nw = std::max(1, static_cast<int>(std::lround(img.cols * r)));
  const int nh = std::max(1, static_cast<int>(std::lround(img.rows * r)));
  cv::Mat resized = img;
  if (nw != img.cols || nh != img.rows) cv::resize(img, resized, cv::Size(nw, nh), 0, 0, r < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  const int left = (S - nw) / 2, top = (S - nh) / 2;
  cv::Mat boxed(S, S, resized.type(), cv::Scalar::all(kLetterboxFill));
  resized.copyTo(boxed(cv::Rect(left, top, nw, nh)));
  DetectionSample s;
  s.image_id = info.id;
  s.scale = r;
  s.pad_x = left;
  s.pad_y = top;
  // Box corners in the letterboxed image; then, with augmentation, x' = a x + b, y' = c y + d.
  double a = r, b = left, c = r, d = top;
  if (aug) {
    SplitMix64 rng(seed ^ (static_cast<uint64_t>(index) * 0xD1B54A32D192ED03ull));
    const double z = rng.Uniform(aug->min_scale, aug->max_scale);
    const double tx = rng.Uniform(-aug->translate, aug->translate) * S;
    const double ty = rng.Uniform(-aug->translate, aug->translate) * S;
    const bool flip = aug->hflip && (rng.Next() & 1);
    // Zoom about the centre, shift, then mirror: one affine warp of the letterboxed image.
    double m00 = z, m02 = (1 - z) * S / 2.0 + tx;
    const double m11 = z, m12 = (1 - z) * S / 2.0 + ty;
    if (flip) {
      m00 = -m00;
      m02 = S - m02;
    }
    // OpenCV puts pixel i's centre at i, the boxes at i + 0.5 (pixel i covers [i, i + 1)): the
    // same map in OpenCV's coordinates has its offset moved by half a pixel times (scale - 1).
    const cv::Mat M = (cv::Mat_<double>(2, 3) << m00, 0, m02 + 0.5 * (m00 - 1), 0, m11, m12 + 0.5 * (m11 - 1));
    cv::Mat warped;
    cv::warpAffine(boxed, warped, M, cv::Size(S, S), cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                   cv::Scalar::all(kLetterboxFill));
    boxed = warped;
    b = m00 * b + m02;
    a = m00 * a;
    d = m11 * d + m12;
    c = m11 * c;
  }
  std::vector<float> boxes;
  std::vector<int64_t> labels;
  auto it = coco_.by_image.find(info.id);
  if (it != coco_.by_image.end()) {
    for (size_t k : it->second) {
      const CocoAnnotation& an = coco_.annotations[k];
      if (an.iscrowd) continue;
      double x0 = a * an.x + b, x1 = a * (an.x + an.w) + b;
      if (x0 > x1) std::swap(x0, x1);  // mirrored
      const double y0 = c * an.y + d, y1 = c * (an.y + an.h) + d;
      const double full = (x1 - x0) * (y1 - y0);
      const double cx0 = std::clamp(x0, 0.0, double(S)), cx1 = std::clamp(x1, 0.0, double(S));
      const double cy0 = std::clamp(y0, 0.0, double(S)), cy1 = std::clamp(y1, 0.0, double(S));
      const double kept = (cx1 - cx0) * (cy1 - cy0);
      const double min_visible = aug ? aug->min_visible : 0.0;
      if (cx1 - cx0 < 1.0 || cy1 - cy0 < 1.0 || !(full > 0) || kept < min_visible * full) continue;
      boxes.insert(boxes.end(), {static_cast<float>(cx0), static_cast<float>(cy0), static_cast<float>(cx1 - cx0),
                                 static_cast<float>(cy1 - cy0)});
      labels.push_back(coco_.category_index.at(an.category_id));
    }
  }
  cv::Mat chw;
  if (boxed.channels() == 1) {
    chw = boxed;
  } else {
    std::vector<cv::Mat> planes;
    cv::split(boxed, planes);
    cv::vconcat(planes, chw);
  }
  s.image = torch::from_blob(chw.data, {static_cast<int64_t>(boxed.channels()), S, S}, torch::kUInt8).clone();
  const int64_t n = static_cast<int64_t>(labels.size());
  s.boxes = n ? torch::from_blob(boxes.data(), {n, 4}, torch::kFloat).clone() : torch::zeros({0, 4});
  s.labels = n ? torch::from_blob(labels.data(), {n}, torch::kInt64).clone() : torch::zeros({0}, torch::kInt64);
  return s;
}

}  // namespace splitinfer::data

#endif
