#include "runtime/jpeg.h"

#include <memory>
#include <string>

#include <turbojpeg.h>

namespace splitinfer::runtime {

namespace {

struct TjFree {
  void operator()(void* h) const { tjDestroy(h); }
};
using Handle = std::unique_ptr<void, TjFree>;

std::string TjError(tjhandle h) { return tjGetErrorStr2(h); }

}  // namespace

Result<JpegInfo> PeekJpeg(std::string_view jpeg) {
  // SOI (FF D8) then a marker: checked here so that a PNG or a frame sent as image_jpeg gets a
  // plain answer rather than libjpeg's message about markers.
  if (jpeg.size() < 4 || static_cast<uint8_t>(jpeg[0]) != 0xFF || static_cast<uint8_t>(jpeg[1]) != 0xD8 ||
      static_cast<uint8_t>(jpeg[2]) != 0xFF) {
    return InvalidArgument("an image_jpeg element is not a JPEG file (" + std::to_string(jpeg.size()) +
                           " bytes; a JPEG starts with FF D8 FF)");
  }
  Handle h(tjInitDecompress());
  if (!h) return Internal("libturbojpeg: cannot create a decompressor");
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(h.get(), reinterpret_cast<const unsigned char*>(jpeg.data()),
                          static_cast<unsigned long>(jpeg.size()), &width, &height, &subsampling, &colorspace) != 0) {
    return InvalidArgument("corrupt JPEG header: " + TjError(h.get()));
  }
  JpegInfo info;
  info.width = width;
  info.height = height;
  info.channels = colorspace == TJCS_GRAY ? 1 : colorspace == TJCS_RGB || colorspace == TJCS_YCbCr ? 3 : 4;
  return info;
}

Result<std::vector<uint8_t>> EncodeJpeg(const uint8_t* chw, int channels, int height, int width, int quality) {
  if ((channels != 1 && channels != 3) || height < 1 || width < 1) {
    return InvalidArgument("EncodeJpeg: need 1 or 3 channels and a non-empty image, got " + std::to_string(channels) +
                           "x" + std::to_string(height) + "x" + std::to_string(width));
  }
  if (quality < 1 || quality > 100) {
    return InvalidArgument("JPEG quality " + std::to_string(quality) + " is outside 1..100");
  }
  const size_t plane = static_cast<size_t>(height) * width;
  std::vector<uint8_t> hwc(plane * channels);
  for (int c = 0; c < channels; ++c) {
    for (size_t i = 0; i < plane; ++i) hwc[i * channels + c] = chw[c * plane + i];
  }
  Handle h(tjInitCompress());
  if (!h) return Internal("libturbojpeg: cannot create a compressor");
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(h.get(), hwc.data(), width, /*pitch=*/0, height, channels == 1 ? TJPF_GRAY : TJPF_RGB,
                             &out, &size, channels == 1 ? TJSAMP_GRAY : TJSAMP_420, quality, /*flags=*/0);
  std::unique_ptr<unsigned char, decltype(&tjFree)> owned(out, &tjFree);
  if (rc != 0) return Internal("libturbojpeg: " + TjError(h.get()));
  return std::vector<uint8_t>(out, out + size);
}

Result<std::vector<uint8_t>> DecodeJpeg(std::string_view jpeg, int channels, int height, int width) {
  if (channels != 1 && channels != 3) {
    return InvalidArgument("DecodeJpeg: need 1 or 3 channels, got " + std::to_string(channels));
  }
  SI_ASSIGN_OR_RETURN(JpegInfo info, PeekJpeg(jpeg));
  if (info.width != width || info.height != height) {
    return InvalidArgument("JPEG is " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                           " pixels; the model takes " + std::to_string(width) + "x" + std::to_string(height));
  }
  if (info.channels == 4) return InvalidArgument("JPEG in CMYK or YCCK; send a grey or colour (YCbCr) JPEG");
  Handle h(tjInitDecompress());
  if (!h) return Internal("libturbojpeg: cannot create a decompressor");
  const size_t plane = static_cast<size_t>(height) * width;
  std::vector<uint8_t> hwc(plane * channels);
  if (tjDecompress2(h.get(), reinterpret_cast<const unsigned char*>(jpeg.data()), static_cast<unsigned long>(jpeg.size()),
                    hwc.data(), width, /*pitch=*/0, height, channels == 1 ? TJPF_GRAY : TJPF_RGB, /*flags=*/0) != 0) {
    // A truncated or damaged scan is an error, not a warning: a half-decoded image would be
    // answered as if it were whole.
    return InvalidArgument("corrupt JPEG: " + TjError(h.get()));
  }
  std::vector<uint8_t> chw(hwc.size());
  for (int c = 0; c < channels; ++c) {
    for (size_t i = 0; i < plane; ++i) chw[c * plane + i] = hwc[i * channels + c];
  }
  return chw;
}

}  // namespace splitinfer::runtime
