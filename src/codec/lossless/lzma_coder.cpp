// codec/lossless: raw LZMA2 through liblzma, as in the TCL paper (no .xz container: the frame
// already carries the length, the coder id and a CRC, so the container's 60-odd bytes of
// headers, index and check would be pure overhead at 50-1000 bytes per frame).
//
// Raw LZMA2 carries no dictionary size, so both sides derive it from the packed size:
//   dict = max(4096, next power of two >= packed size), capped at the preset's dictionary.
// A dictionary larger than the data cannot help the encoder, and deriving it keeps the
// decoder's memory a function of the geometry instead of a field an attacker controls. The
// decoder does not know the preset, so it caps at the largest preset dictionary (64 MiB): that
// is >= whatever the encoder used, and LZMA2 only needs dict_decoder >= dict_encoder.
#include <lzma.h>

#include <string>

#include "codec/lossless/coders.h"

namespace splitinfer::codec::internal {
namespace {

constexpr uint32_t kLargestPresetDict = uint32_t{1} << 26;  // presets 8 and 9

uint32_t DictSizeFor(size_t packed_size, uint32_t cap) {
  uint64_t dict = LZMA_DICT_SIZE_MIN;
  while (dict < packed_size && dict < cap) dict <<= 1;
  return static_cast<uint32_t>(dict < cap ? dict : cap < LZMA_DICT_SIZE_MIN ? LZMA_DICT_SIZE_MIN : cap);
}

}  // namespace

bool LzmaBuiltIn() { return true; }

Result<std::vector<uint8_t>> LzmaCompress(const uint8_t* packed, size_t packed_size, int preset) {
  lzma_options_lzma options;
  if (lzma_lzma_preset(&options, static_cast<uint32_t>(preset))) {
    return InvalidArgument("lzma preset " + std::to_string(preset) + " is outside 0..9");
  }
  options.dict_size = DictSizeFor(packed_size, options.dict_size);
  const lzma_filter filters[2] = {{LZMA_FILTER_LZMA2, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  // LZMA2 stores incompressible data in uncompressed chunks (<= 64 KiB, 3 header bytes each)
  // plus a 1-byte end marker, so this bound is loose but safe.
  std::vector<uint8_t> out(packed_size + packed_size / 1024 + 64);
  size_t out_pos = 0;
  const lzma_ret ret = lzma_raw_buffer_encode(filters, nullptr, packed, packed_size, out.data(), &out_pos, out.size());
  if (ret != LZMA_OK) return Internal("lzma_raw_buffer_encode failed with code " + std::to_string(ret));
  out.resize(out_pos);
  return out;
}

Status LzmaDecompress(const uint8_t* data, size_t size, uint8_t* packed, size_t packed_size) {
  lzma_options_lzma options{};
  options.dict_size = DictSizeFor(packed_size, kLargestPresetDict);
  const lzma_filter filters[2] = {{LZMA_FILTER_LZMA2, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  size_t in_pos = 0, out_pos = 0;
  // The output buffer is exactly the expected size: a stream that wants to produce more stops
  // with LZMA_BUF_ERROR, one that ends early leaves out_pos short, and one followed by more
  // bytes leaves in_pos short; all three are payload errors.
  const lzma_ret ret = lzma_raw_buffer_decode(filters, nullptr, data, &in_pos, size, packed, &out_pos, packed_size);
  if (ret == LZMA_MEM_ERROR) return Internal("lzma decoder could not allocate its dictionary");
  if (ret != LZMA_OK && ret != LZMA_STREAM_END) {
    return Status(ErrorCode::kFramePayload, "lzma payload does not decode (liblzma code " + std::to_string(ret) + ")");
  }
  if (out_pos != packed_size) {
    return Status(ErrorCode::kFramePayload, "lzma payload decodes to " + std::to_string(out_pos) + " bytes, expected " +
                                                std::to_string(packed_size));
  }
  if (in_pos != size) {
    return Status(ErrorCode::kFramePayload,
                  "lzma payload has " + std::to_string(size - in_pos) + " trailing bytes after the end marker");
  }
  return Status::Ok();
}

}  // namespace splitinfer::codec::internal
