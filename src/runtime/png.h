// runtime/png: the server-only baseline's image encoding (the node sends the input image as a
// PNG, as an application without split computing would). libpng's simplified API; no LibTorch.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace splitinfer::runtime {

// 8-bit pixels in C x H x W order (C = 1 grey, 3 RGB) -> PNG bytes (default compression).
Result<std::vector<uint8_t>> EncodePng(const uint8_t* chw, int channels, int height, int width);

// PNG bytes -> C x H x W pixels; the image must be exactly channels x height x width (checked
// from the header before any pixel buffer is allocated). Grey, RGB, palette and alpha inputs
// are converted to the requested channel count by libpng.
Result<std::vector<uint8_t>> DecodePng(std::string_view png, int channels, int height, int width);

}  // namespace splitinfer::runtime
