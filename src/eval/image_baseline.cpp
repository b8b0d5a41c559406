#include "eval/image_baseline.h"

#ifdef SPLITINFER_WITH_OPENCV

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/types.h>

#include "data/dataset.h"

namespace splitinfer::eval {
namespace {

// A float image read from an 8-bit file holds k/255 rounded to float32, so x*255 lies within a
// few float ulps of the integer k; anything further off was resized, normalised or augmented,
// and measuring it as "the input image" would be wrong.
constexpr double kEightBitTolerance = 1e-3;

// uint8 [C, H, W] (or float in [0, 1]) -> an 8-bit H x W Mat in OpenCV's channel order
// (BGR / BGRA), so the encoders see the image as they would see it loaded from a file.
Result<cv::Mat> ToMat(const torch::Tensor& image, int64_t index, const std::string& name) {
  const std::string what = "image " + std::to_string(index) + " of " + name;
  if (image.dim() != 3) {
    return InvalidArgument(what + " must have shape [C, H, W], got " + std::to_string(image.dim()) + " dims");
  }
  const int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  if (c != 1 && c != 3 && c != 4) {
    return InvalidArgument(what + " has " + std::to_string(c) + " channels; PNG and WebP take 1, 3 or 4");
  }
  // WebP's limit (16383) is the tighter one; PNG's is far larger.
  if (h < 1 || w < 1 || h > 16383 || w > 16383) {
    return InvalidArgument(what + " is " + std::to_string(h) + "x" + std::to_string(w) + "; sides must be 1..16383");
  }
  torch::Tensor u8;
  if (image.scalar_type() == torch::kUInt8) {
    u8 = image.to(torch::kCPU).contiguous();
  } else if (image.is_floating_point()) {
    const torch::Tensor scaled = image.to(torch::kCPU, torch::kDouble) * 255.0;
    const torch::Tensor rounded = scaled.round();
    const double off = (scaled - rounded).abs().max().item<double>();
    const double lo = rounded.min().item<double>(), hi = rounded.max().item<double>();
    if (!(off <= kEightBitTolerance) || lo < 0 || hi > 255) {
      return InvalidArgument(what + " is not an 8-bit image scaled to [0, 1] (x*255 is up to " + std::to_string(off) +
                             " from an integer, range [" + std::to_string(lo / 255) + ", " + std::to_string(hi / 255) +
                             "]); pass the dataset's images before normalisation or resizing");
    }
    u8 = rounded.to(torch::kUInt8).contiguous();
  } else {
    return InvalidArgument(what + " has dtype " + std::string(c10::toString(image.scalar_type())) +
                           "; expected uint8 or floating point in [0, 1]");
  }
  const uint8_t* src = u8.data_ptr<uint8_t>();
  const int channels = static_cast<int>(c);
  cv::Mat mat(static_cast<int>(h), static_cast<int>(w), CV_8UC(channels));
  for (int64_t y = 0; y < h; ++y) {
    uint8_t* row = mat.ptr<uint8_t>(static_cast<int>(y));
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t k = 0; k < c; ++k) {
        const int64_t cv_k = (c >= 3 && k < 3) ? 2 - k : k;  // RGB(A) -> BGR(A)
        row[x * c + cv_k] = src[(k * h + y) * w + x];
      }
    }
  }
  return mat;
}

// OpenCV's WebP encoder widens grey images to BGR, so a 1-channel original may come back with
// 3 (equal) channels; every one of them must match.
bool SamePixels(const cv::Mat& original, const cv::Mat& decoded) {
  if (decoded.empty() || decoded.rows != original.rows || decoded.cols != original.cols ||
      decoded.depth() != CV_8U) {
    return false;
  }
  if (decoded.channels() == original.channels()) return cv::norm(original, decoded, cv::NORM_INF) == 0;
  if (original.channels() != 1 || decoded.channels() < 3) return false;
  for (int k = 0; k < 3; ++k) {
    cv::Mat plane;
    cv::extractChannel(decoded, plane, k);
    if (cv::norm(original, plane, cv::NORM_INF) != 0) return false;
  }
  return true;
}

}  // namespace

Result<ImageBaseline> MeasureLosslessImages(const data::Dataset& dataset, int64_t limit) {
  if (limit < 0) return InvalidArgument("image limit must be >= 0 (0 = all), got " + std::to_string(limit));
  const int64_t n = limit == 0 ? dataset.size() : std::min(limit, dataset.size());
  if (n <= 0) return InvalidArgument("dataset " + dataset.name() + " has no images to measure");
  const std::vector<int> png_params = {cv::IMWRITE_PNG_COMPRESSION, 9};
  const std::vector<int> webp_params = {cv::IMWRITE_WEBP_QUALITY, 101};  // > 100: lossless
  double png_total = 0, webp_total = 0;
  std::vector<uchar> png, webp;
  try {
    for (int64_t i = 0; i < n; ++i) {
      SI_ASSIGN_OR_RETURN(const torch::Tensor image, dataset.image(i));
      SI_ASSIGN_OR_RETURN(const cv::Mat mat, ToMat(image, i, dataset.name()));
      if (!cv::imencode(".png", mat, png, png_params)) {
        return Internal("OpenCV could not encode image " + std::to_string(i) + " as PNG");
      }
      if (!cv::imencode(".webp", mat, webp, webp_params)) {
        return Internal("OpenCV could not encode image " + std::to_string(i) + " as WebP");
      }
      // Checking one image proves the settings are lossless; all would double the run time.
      if (i == 0) {
        if (!SamePixels(mat, cv::imdecode(png, cv::IMREAD_UNCHANGED))) {
          return Internal("PNG round trip of image 0 of " + dataset.name() + " changed pixels: not lossless");
        }
        if (!SamePixels(mat, cv::imdecode(webp, cv::IMREAD_UNCHANGED))) {
          return Internal("WebP round trip of image 0 of " + dataset.name() +
                          " changed pixels: this OpenCV does not encode quality 101 losslessly");
        }
      }
      png_total += static_cast<double>(png.size());
      webp_total += static_cast<double>(webp.size());
    }
  } catch (const std::exception& e) {  // cv::Exception (e.g. no WebP codec in this OpenCV), c10::Error
    return Internal(std::string("lossless image baseline failed: ") + e.what());
  }
  ImageBaseline b;
  b.images = n;
  b.png_bytes = png_total / static_cast<double>(n);
  b.webp_bytes = webp_total / static_cast<double>(n);
  return b;
}

Result<torch::Tensor> JpegRoundTrip(const torch::Tensor& images, int quality, double* bytes) {
  if (quality < 1 || quality > 100) return InvalidArgument("JPEG quality must be 1..100, got " + std::to_string(quality));
  if (images.dim() != 4 || images.scalar_type() != torch::kUInt8 || (images.size(1) != 1 && images.size(1) != 3)) {
    return InvalidArgument("JPEG round trip takes uint8 images [N, 1 or 3, H, W]");
  }
  const std::vector<int> params = {cv::IMWRITE_JPEG_QUALITY, quality};
  const int64_t c = images.size(1), h = images.size(2), w = images.size(3);
  torch::Tensor out = torch::empty_like(images, torch::TensorOptions().device(torch::kCPU));
  std::vector<uchar> jpeg;
  for (int64_t i = 0; i < images.size(0); ++i) {
    SI_ASSIGN_OR_RETURN(cv::Mat mat, ToMat(images[i], i, "the batch"));
    if (!cv::imencode(".jpg", mat, jpeg, params)) return Internal("OpenCV could not encode JPEG");
    if (bytes != nullptr) *bytes += static_cast<double>(jpeg.size());
    const cv::Mat back = cv::imdecode(jpeg, c == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
    if (back.empty() || back.rows != h || back.cols != w) return Internal("OpenCV could not decode its own JPEG");
    uint8_t* dst = out[i].data_ptr<uint8_t>();
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* row = back.ptr<uint8_t>(static_cast<int>(y));
      for (int64_t x = 0; x < w; ++x) {
        for (int64_t k = 0; k < c; ++k) dst[(k * h + y) * w + x] = row[x * c + (c == 3 ? 2 - k : k)];  // BGR -> RGB
      }
    }
  }
  return out;
}

}  // namespace splitinfer::eval

#else  // !SPLITINFER_WITH_OPENCV

namespace splitinfer::eval {

Result<ImageBaseline> MeasureLosslessImages(const data::Dataset&, int64_t) {
  return Unimplemented("the lossless input-image baseline needs OpenCV: install libopencv-dev and rebuild");
}

Result<torch::Tensor> JpegRoundTrip(const torch::Tensor&, int, double*) {
  return Unimplemented("the JPEG input-image baseline needs OpenCV: install libopencv-dev and rebuild");
}

}  // namespace splitinfer::eval

#endif  // SPLITINFER_WITH_OPENCV
