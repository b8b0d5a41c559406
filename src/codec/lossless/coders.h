// codec/lossless, private: the individual coders behind EncodeSymbols/DecodeSymbols.
//
// lossless.cpp validates the geometry, the options and the symbols once and dispatches here, so
// these functions may assume: 1 <= bits <= 8, count() does not overflow, every symbol fits.
// Decoders still treat `data` as hostile: they never write past their output, never allocate
// more than a bound derived from the geometry, and return kFramePayload for anything that does
// not decode to exactly the expected number of bytes or symbols with nothing left over (the
// cabac decoder is stricter still: see "Decoder rule" in cabac.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/lossless/lossless.h"
#include "core/status.h"

namespace splitinfer::codec::internal {

// INVALID_ARGUMENT unless 1 <= bits <= 8 and count() (and count() * bits) fits comfortably in
// size_t: count() <= kMaxSymbols.
inline constexpr uint64_t kMaxSymbols = uint64_t{1} << 40;
Status ValidateGeometry(const SymbolGeometry& geometry);

// Whether liblzma was found at build time (lzma_coder.cpp) or not (lzma_off.cpp, whose
// LzmaCompress/LzmaDecompress return FAILED_PRECONDITION).
bool LzmaBuiltIn();
// Raw LZMA2 (no .xz container) of already packed bytes. `preset` 0..9.
Result<std::vector<uint8_t>> LzmaCompress(const uint8_t* packed, size_t packed_size, int preset);
// Decodes into exactly `packed_size` bytes; the dictionary size is derived from packed_size alone.
Status LzmaDecompress(const uint8_t* data, size_t size, uint8_t* packed, size_t packed_size);

// One zstd frame (content size recorded) of already packed bytes. `level` 1..19.
Result<std::vector<uint8_t>> ZstdCompress(const uint8_t* packed, size_t packed_size, int level);
Status ZstdDecompress(const uint8_t* data, size_t size, uint8_t* packed, size_t packed_size);

// The context-adaptive binary arithmetic coder (cabac.cpp). `model` null: every context starts
// from the fixed untrained state (CoderId::kCabac); otherwise from the model (kCabacTrained),
// which the caller has checked against the geometry. INTERNAL if the output ever reached the
// buffer's proven bound (RangeEncoder::MaxEncodedBytes): a bug, reported instead of written past.
// `capacity` 0 is that bound; tests pass a smaller one to see the check work.
// `layout` is kCabacLayoutPlain or kCabacLayoutGroups (checked by the caller).
Result<std::vector<uint8_t>> CabacEncode(const uint8_t* symbols, const SymbolGeometry& geometry, const CabacModel* model,
                                         int layout, size_t capacity = 0);
Status CabacDecode(const uint8_t* data, size_t size, const SymbolGeometry& geometry, const CabacModel* model,
                   int layout, uint8_t* symbols);

}  // namespace splitinfer::codec::internal
