#include "runtime/png.h"

#include <cstring>
#include <string>

#include <png.h>

namespace splitinfer::runtime {

namespace {
uint32_t FormatFor(int channels) { return channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB; }
}  // namespace

Result<std::vector<uint8_t>> EncodePng(const uint8_t* chw, int channels, int height, int width) {
  if ((channels != 1 && channels != 3) || height < 1 || width < 1) {
    return InvalidArgument("EncodePng: need 1 or 3 channels and a non-empty image, got " + std::to_string(channels) +
                           "x" + std::to_string(height) + "x" + std::to_string(width));
  }
  // libpng wants interleaved rows (H x W x C).
  const size_t plane = static_cast<size_t>(height) * width;
  std::vector<uint8_t> hwc(plane * channels);
  for (int c = 0; c < channels; ++c) {
    for (size_t i = 0; i < plane; ++i) hwc[i * channels + c] = chw[c * plane + i];
  }
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = FormatFor(channels);
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&image, nullptr, &size, 0, hwc.data(), 0, nullptr)) {
    return Internal(std::string("libpng: ") + image.message);
  }
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&image, out.data(), &size, 0, hwc.data(), 0, nullptr)) {
    return Internal(std::string("libpng: ") + image.message);
  }
  out.resize(size);
  return out;
}

Result<std::vector<uint8_t>> DecodePng(std::string_view png, int channels, int height, int width) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, png.data(), png.size())) {
    return InvalidArgument(std::string("not a readable PNG: ") + image.message);
  }
  if (image.width != static_cast<png_uint_32>(width) || image.height != static_cast<png_uint_32>(height)) {
    const std::string got = std::to_string(image.width) + "x" + std::to_string(image.height);
    png_image_free(&image);
    return InvalidArgument("PNG is " + got + " pixels; the model takes " + std::to_string(width) + "x" +
                           std::to_string(height));
  }
  image.format = FormatFor(channels);
  const size_t plane = static_cast<size_t>(height) * width;
  std::vector<uint8_t> hwc(plane * channels);
  if (!png_image_finish_read(&image, nullptr, hwc.data(), 0, nullptr)) {
    return InvalidArgument(std::string("corrupt PNG: ") + image.message);
  }
  std::vector<uint8_t> chw(hwc.size());
  for (int c = 0; c < channels; ++c) {
    for (size_t i = 0; i < plane; ++i) chw[c * plane + i] = hwc[i * channels + c];
  }
  return chw;
}

}  // namespace splitinfer::runtime
