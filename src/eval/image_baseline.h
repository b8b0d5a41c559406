// The "send the input image losslessly" baseline of the rate-accuracy study: what it costs to
// ship the raw input to the server (server-only inference) with the best standard lossless
// image coders, PNG and lossless WebP. Any split codec has to beat these bytes to be worth it.
//
// Needs OpenCV (libopencv-dev); a build without it keeps this declaration and returns
// UNIMPLEMENTED, so callers need no #ifdef.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "core/status.h"

namespace splitinfer::data {
class Dataset;
}  // namespace splitinfer::data

namespace splitinfer::eval {

struct ImageBaseline {
  double png_bytes = 0;   // mean bytes per image, PNG at compression level 9
  double webp_bytes = 0;  // mean bytes per image, lossless WebP
  int64_t images = 0;     // how many images were measured
};

// Mean size of each of the first `limit` images of `dataset` (0 = all; clamped to its size)
// encoded losslessly as PNG (IMWRITE_PNG_COMPRESSION 9) and as WebP (IMWRITE_WEBP_QUALITY 101,
// which OpenCV encodes losslessly). Images may be uint8 (as data::Dataset yields them) or
// floating point in [0, 1]; floats must be exactly k/255 (they come from 8-bit files), which is
// checked before rounding to 8 bit, so the baseline never measures a lossy input. The first
// image is decoded back from both formats and must give the same pixels (INTERNAL if not: the
// coder was not lossless). 1, 3 (RGB) or 4 (RGBA) channels.
// INVALID_ARGUMENT for a negative limit, an empty dataset, an unsupported channel count or
// dtype, or values that are not 8-bit; UNIMPLEMENTED without OpenCV.
Result<ImageBaseline> MeasureLosslessImages(const data::Dataset& dataset, int64_t limit);

// The lossy counterpart, for a baseline at a quality: each image of a batch (uint8 [N, C, H, W],
// 1 or 3 channels) through JPEG at `quality` (1..100, OpenCV's libjpeg with its defaults) and
// back, as the server would see it; `bytes` (if given) gets the sum of the JPEG sizes added.
// INVALID_ARGUMENT for another shape, dtype or quality; UNIMPLEMENTED without OpenCV.
Result<torch::Tensor> JpegRoundTrip(const torch::Tensor& images, int quality, double* bytes);

}  // namespace splitinfer::eval
