// codec/lossless: symbols <-> bytes without loss. No LibTorch.
//
//   symbols (b bits each) --+-- none : Pack ------------------------------> bytes
//                           +-- lzma : Pack -> raw LZMA2 (no .xz container) -> bytes
//                           +-- zstd : Pack -> zstd frame -------------------> bytes
//                           +-- cabac: context-adaptive binary arithmetic coding of bit planes
//
// The coders see a symbol map as C x H x W (SymbolGeometry); the frame's dims are folded into
// that shape (rank 1 -> 1x1xW, rank 2 -> 1xHxW, rank 4 NxCxHxW -> (N*C)xHxW) so that "left",
// "above" and "previous channel" mean the same for every coder. Coder ids are on the wire:
// explicit, append-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace splitinfer::codec {

enum class CoderId : uint8_t {
  kNone = 0,
  kLzma = 1,
  kZstd = 2,
  kCabac = 3,         // adaptive contexts starting from p = 1/2: the frame alone decodes
  kCabacTrained = 4,  // contexts start from a CabacModel shipped with the pipeline
};
inline constexpr int kMaxCoderId = 4;

const char* CoderName(CoderId id);
// False for a known coder whose library this build lacks (lzma without liblzma): encoding or
// decoding with it returns FAILED_PRECONDITION naming the library.
bool CoderBuiltIn(CoderId id);
// INVALID_ARGUMENT listing the names for an unknown one. Accepts "none", "lzma", "zstd",
// "cabac", "cabac-trained".
Result<CoderId> CoderFromName(const std::string& name);

struct SymbolGeometry {
  uint32_t channels = 1, height = 1, width = 1;
  int bits = 1;  // 1..8
  size_t count() const { return size_t{channels} * height * width; }
};

// Initial context probabilities learned from calibration symbols (see TrainCabacModel).
// Serialisable so the node and the server load the same one.
class CabacModel;

// The cabac payload's layout (cabac.cpp, "Quiet groups"). The frame version decides it: frame
// version 1 carries layout 1, version 2 layout 2 (DecodeFrameSymbols and DecodeFeature set it from
// the frame); the other coders' payloads are the same in both.
inline constexpr int kCabacLayoutPlain = 1;   // every symbol's significance coded
inline constexpr int kCabacLayoutGroups = 2;  // quiet runs of 8 symbols: one decision when all zero

struct CoderOptions {
  int level = -1;                        // lzma preset 0..9 (default 6); zstd level 1..19 (default 3)
  const CabacModel* cabac_model = nullptr;  // required for kCabacTrained
  int cabac_layout = kCabacLayoutGroups;    // kCabacLayoutPlain or kCabacLayoutGroups
};

// Encodes `geometry.count()` symbols, each < 2^bits (checked: OUT_OF_RANGE otherwise).
Result<std::vector<uint8_t>> EncodeSymbols(CoderId coder, const uint8_t* symbols, const SymbolGeometry& geometry,
                                           const CoderOptions& options);

// Decodes exactly geometry.count() symbols into `symbols`. Never writes past count(), never
// allocates more than a bound derived from the geometry. Errors: kFramePayload when the bytes
// do not decode to exactly that many symbols (corrupt, truncated, trailing garbage);
// kFailedPrecondition for kCabacTrained without a model.
Status DecodeSymbols(CoderId coder, const uint8_t* data, size_t size, const SymbolGeometry& geometry,
                     const CoderOptions& options, uint8_t* symbols);

// Order-0 entropy of the symbols in bytes (sum of -log2 p over the empirical distribution,
// / 8): the yardstick the benchmarks print beside measured sizes.
double Order0Bytes(const uint8_t* symbols, size_t count, int bits);

}  // namespace splitinfer::codec
