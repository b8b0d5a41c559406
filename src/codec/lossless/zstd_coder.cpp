// codec/lossless: one zstd frame of the packed bytes. The frame records its content size, and
// the decoder checks that size against the geometry before touching the payload, then
// decompresses in one call into the exact-size output (single-shot decompression writes matches
// straight into the output, so no window buffer sized by the frame header is allocated).
#include <zstd.h>

#include <string>

#include "codec/lossless/coders.h"

namespace splitinfer::codec::internal {

Result<std::vector<uint8_t>> ZstdCompress(const uint8_t* packed, size_t packed_size, int level) {
  std::vector<uint8_t> out(ZSTD_compressBound(packed_size));
  const size_t n = ZSTD_compress(out.data(), out.size(), packed, packed_size, level);
  if (ZSTD_isError(n)) return Internal(std::string("ZSTD_compress failed: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Status ZstdDecompress(const uint8_t* data, size_t size, uint8_t* packed, size_t packed_size) {
  auto payload_error = [](std::string m) { return Status(ErrorCode::kFramePayload, "zstd payload: " + std::move(m)); };
  const unsigned long long content = ZSTD_getFrameContentSize(data, size);
  if (content == ZSTD_CONTENTSIZE_ERROR) return payload_error("not a zstd frame");
  if (content == ZSTD_CONTENTSIZE_UNKNOWN) return payload_error("frame does not record its content size");
  if (content != packed_size) {
    return payload_error("frame holds " + std::to_string(content) + " bytes, the geometry needs " +
                         std::to_string(packed_size));
  }
  // ZSTD_decompress would also decode further concatenated frames: exactly one frame is valid.
  const size_t frame_size = ZSTD_findFrameCompressedSize(data, size);
  if (ZSTD_isError(frame_size)) return payload_error(std::string("truncated or corrupt (") + ZSTD_getErrorName(frame_size) + ")");
  if (frame_size != size) return payload_error(std::to_string(size - frame_size) + " trailing bytes after the frame");
  const size_t n = ZSTD_decompress(packed, packed_size, data, size);
  if (ZSTD_isError(n)) return payload_error(std::string("corrupt (") + ZSTD_getErrorName(n) + ")");
  if (n != packed_size) return payload_error("decodes to " + std::to_string(n) + " bytes, expected " + std::to_string(packed_size));
  return Status::Ok();
}

}  // namespace splitinfer::codec::internal
