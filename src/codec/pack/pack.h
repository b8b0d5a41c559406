// codec/pack: b-bit symbols (1..8) <-> tightly packed bytes. No LibTorch.
//
//   symbols (one per byte, each < 2^b) --Pack--> ceil(n*b/8) bytes --Unpack--> symbols
//
// Bit order: symbol i occupies bits [i*b, i*b + b) of the stream, where stream bit k is bit
// (k % 8) of byte k / 8, i.e. LSB-first (as in DEFLATE). Trailing bits of the last byte are 0.
// This layout is part of the frame format (docs/bitstream_format.md): never change it silently.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace splitinfer::codec {

inline size_t PackedSize(size_t count, int bits) { return (count * static_cast<size_t>(bits) + 7) / 8; }

// Fast path (word-at-a-time, specialised per bit width). `out` must hold PackedSize bytes.
// Symbols >= 2^bits are a programming error (asserted in debug); callers validate first.
void Pack(const uint8_t* symbols, size_t count, int bits, uint8_t* out);
void Unpack(const uint8_t* packed, size_t count, int bits, uint8_t* symbols);

// Readable per-bit reference implementations that the fast ones must match byte for byte.
void ReferencePack(const uint8_t* symbols, size_t count, int bits, uint8_t* out);
void ReferenceUnpack(const uint8_t* packed, size_t count, int bits, uint8_t* symbols);

// OUT_OF_RANGE naming the first index whose symbol does not fit in `bits`.
Status CheckSymbols(const uint8_t* symbols, size_t count, int bits);

}  // namespace splitinfer::codec
