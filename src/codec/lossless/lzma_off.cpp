// codec/lossless: the lzma coder of a build without liblzma (see src/codec/CMakeLists.txt).
// The coder id stays known, so a frame that names it gets this clear refusal rather than
// "unknown coder"; every other coder works as usual.
#include "codec/lossless/coders.h"

namespace splitinfer::codec::internal {
namespace {

Status NotBuiltIn() {
  return FailedPrecondition(
      "coder lzma is not built into this splitinfer: liblzma was not found when it was built "
      "(install liblzma-dev and rebuild, or use the zstd or cabac coder)");
}

}  // namespace

bool LzmaBuiltIn() { return false; }

Result<std::vector<uint8_t>> LzmaCompress(const uint8_t*, size_t, int) { return NotBuiltIn(); }

Status LzmaDecompress(const uint8_t*, size_t, uint8_t*, size_t) { return NotBuiltIn(); }

}  // namespace splitinfer::codec::internal
