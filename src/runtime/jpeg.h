// runtime/jpeg: JPEG for the server-only path, as a camera sends it. A camera encodes JPEG in
// hardware, so an application without split computing would send the JPEG it already has, and a
// split only wins where its frame beats that (docs/planning.md). libjpeg-turbo's TurboJPEG API;
// no LibTorch. Built where libturbojpeg is (SPLITINFER_WITH_JPEG); without it the server refuses
// `image_jpeg` inputs and the node's --image-format jpeg, naming the package.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace splitinfer::runtime {

// What a JPEG's header says, read before any pixel buffer is allocated.
struct JpegInfo {
  int width = 0, height = 0;
  int channels = 0;  // 1 grey, 3 colour (YCbCr, CMYK and YCCK are refused by DecodeJpeg)
};
// INVALID_ARGUMENT for bytes that are not a JPEG or whose header is damaged.
Result<JpegInfo> PeekJpeg(std::string_view jpeg);

// 8-bit pixels in C x H x W order (C = 1 grey, 3 RGB) -> baseline JPEG at `quality` (1-100),
// 4:2:0 chroma for colour, as cameras and libjpeg's defaults write it.
Result<std::vector<uint8_t>> EncodeJpeg(const uint8_t* chw, int channels, int height, int width, int quality);

// JPEG bytes -> C x H x W pixels; the image must be exactly width x height (checked from the
// header first). Grey and colour JPEGs are converted to the requested channel count.
Result<std::vector<uint8_t>> DecodeJpeg(std::string_view jpeg, int channels, int height, int width);

}  // namespace splitinfer::runtime
