// codec/pack: fast and reference bit packing (layout: see pack.h).
//
// The fast path works on groups of 8 symbols, which always fill exactly `bits` whole bytes:
// a group is assembled into (or read from) one 64-bit little-endian word, so there is no
// per-bit or per-symbol branching and the compiler can keep everything in registers. Widths
// 1, 2, 4 and 8 get their own loops because they are the ones pipelines use most and each has
// a cheaper formulation (a multiply that gathers 8 one-bit flags into a byte, plain shifts,
// memcpy). The ragged tail (< 8 symbols) goes through the same word assembly, truncated.
//
// Symbols are masked to `bits` in every path, including the reference: an out-of-range symbol
// is a caller bug (asserted in debug builds), and masking keeps it from corrupting its
// neighbours in release builds and keeps fast == reference even then.
#include "codec/pack/pack.h"

#include <cassert>
#include <cstring>
#include <string>

namespace splitinfer::codec {
namespace {

constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

inline uint64_t Load64LE(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (!kLittleEndian) v = __builtin_bswap64(v);
  return v;
}

inline void Store64LE(uint8_t* p, uint64_t v) {
  if constexpr (!kLittleEndian) v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}

// The low `n` bytes of v, little-endian (n <= 8).
inline void StoreBytesLE(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

inline uint64_t LoadBytesLE(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// Up to 8 symbols of width `bits` -> one word, symbol k at bit k*bits.
inline uint64_t Gather(const uint8_t* s, size_t n, int bits) {
  const uint64_t mask = (1u << bits) - 1;
  uint64_t v = 0;
  for (size_t k = 0; k < n; ++k) v |= (s[k] & mask) << (k * bits);
  return v;
}

inline void Scatter(uint64_t v, size_t n, int bits, uint8_t* s) {
  const uint64_t mask = (1u << bits) - 1;
  for (size_t k = 0; k < n; ++k) s[k] = static_cast<uint8_t>((v >> (k * bits)) & mask);
}

// The tail after the last whole group of 8 symbols.
void PackTail(const uint8_t* symbols, size_t n, int bits, uint8_t* out) {
  if (n == 0) return;
  StoreBytesLE(out, Gather(symbols, n, bits), (n * bits + 7) / 8);
}

void UnpackTail(const uint8_t* packed, size_t n, int bits, uint8_t* symbols) {
  if (n == 0) return;
  Scatter(LoadBytesLE(packed, (n * bits + 7) / 8), n, bits, symbols);
}

void Pack1(const uint8_t* s, size_t groups, uint8_t* out) {
  // Eight 0/1 bytes at bit positions 0, 8, ..., 56; multiplying by sum_k 2^(56-7k) moves byte
  // k's flag to bit 56+k, and no two partial products overlap (8i-7j = 8i'-7j' forces i=i',
  // j=j' for i,j in 0..7), so there are no carries into the top byte.
  for (size_t g = 0; g < groups; ++g) {
    const uint64_t x = Load64LE(s + 8 * g) & 0x0101010101010101ull;
    out[g] = static_cast<uint8_t>((x * 0x0102040810204080ull) >> 56);
  }
}

void Unpack1(const uint8_t* in, size_t groups, uint8_t* s) {
  // Replicate the byte into all eight lanes, keep bit k in lane k, then turn each lane's
  // "nonzero" into 1: adding 0x7F sets bit 7 exactly when the lane is nonzero and never carries
  // into the next lane (at most 0x80 + 0x7F).
  for (size_t g = 0; g < groups; ++g) {
    const uint64_t x = (in[g] * 0x0101010101010101ull) & 0x8040201008040201ull;
    Store64LE(s + 8 * g, ((x + 0x7F7F7F7F7F7F7F7Full) >> 7) & 0x0101010101010101ull);
  }
}

void Pack2(const uint8_t* s, size_t groups, uint8_t* out) {
  for (size_t i = 0; i < 2 * groups; ++i) {
    const uint8_t* q = s + 4 * i;
    out[i] = static_cast<uint8_t>((q[0] & 3) | (q[1] & 3) << 2 | (q[2] & 3) << 4 | (q[3] & 3) << 6);
  }
}

void Unpack2(const uint8_t* in, size_t groups, uint8_t* s) {
  for (size_t i = 0; i < 2 * groups; ++i) {
    const uint8_t b = in[i];
    uint8_t* q = s + 4 * i;
    q[0] = b & 3;
    q[1] = (b >> 2) & 3;
    q[2] = (b >> 4) & 3;
    q[3] = b >> 6;
  }
}

void Pack4(const uint8_t* s, size_t groups, uint8_t* out) {
  for (size_t i = 0; i < 4 * groups; ++i) out[i] = static_cast<uint8_t>((s[2 * i] & 15) | (s[2 * i + 1] & 15) << 4);
}

void Unpack4(const uint8_t* in, size_t groups, uint8_t* s) {
  for (size_t i = 0; i < 4 * groups; ++i) {
    s[2 * i] = in[i] & 15;
    s[2 * i + 1] = in[i] >> 4;
  }
}

// 3, 5, 6, 7 bits: a group of 8 symbols is `bits` bytes (<= 7), assembled in one word.
void PackGeneric(const uint8_t* s, size_t groups, int bits, uint8_t* out) {
  for (size_t g = 0; g < groups; ++g) StoreBytesLE(out + g * bits, Gather(s + 8 * g, 8, bits), bits);
}

void UnpackGeneric(const uint8_t* in, size_t groups, int bits, uint8_t* s) {
  for (size_t g = 0; g < groups; ++g) Scatter(LoadBytesLE(in + g * bits, bits), 8, bits, s + 8 * g);
}

#ifndef NDEBUG
bool AllFit(const uint8_t* symbols, size_t count, int bits) { return CheckSymbols(symbols, count, bits).ok(); }
#endif

}  // namespace

void Pack(const uint8_t* symbols, size_t count, int bits, uint8_t* out) {
  assert(bits >= 1 && bits <= 8);
  assert(AllFit(symbols, count, bits));
  const size_t groups = count / 8;
  switch (bits) {
    case 1: Pack1(symbols, groups, out); break;
    case 2: Pack2(symbols, groups, out); break;
    case 4: Pack4(symbols, groups, out); break;
    case 8:
      if (count != 0) std::memcpy(out, symbols, count);  // memcpy wants non-null pointers even for 0
      return;
    default: PackGeneric(symbols, groups, bits, out); break;
  }
  PackTail(symbols + 8 * groups, count % 8, bits, out + groups * bits);
}

void Unpack(const uint8_t* packed, size_t count, int bits, uint8_t* symbols) {
  assert(bits >= 1 && bits <= 8);
  const size_t groups = count / 8;
  switch (bits) {
    case 1: Unpack1(packed, groups, symbols); break;
    case 2: Unpack2(packed, groups, symbols); break;
    case 4: Unpack4(packed, groups, symbols); break;
    case 8:
      if (count != 0) std::memcpy(symbols, packed, count);
      return;
    default: UnpackGeneric(packed, groups, bits, symbols); break;
  }
  UnpackTail(packed + groups * bits, count % 8, bits, symbols + 8 * groups);
}

void ReferencePack(const uint8_t* symbols, size_t count, int bits, uint8_t* out) {
  std::memset(out, 0, PackedSize(count, bits));
  for (size_t i = 0; i < count; ++i) {
    for (int j = 0; j < bits; ++j) {
      const size_t k = i * bits + j;  // stream bit k = bit (k % 8) of byte k / 8
      const int bit = (symbols[i] >> j) & 1;
      out[k / 8] = static_cast<uint8_t>(out[k / 8] | bit << (k % 8));
    }
  }
}

void ReferenceUnpack(const uint8_t* packed, size_t count, int bits, uint8_t* symbols) {
  for (size_t i = 0; i < count; ++i) {
    int value = 0;
    for (int j = 0; j < bits; ++j) {
      const size_t k = i * bits + j;
      value |= ((packed[k / 8] >> (k % 8)) & 1) << j;
    }
    symbols[i] = static_cast<uint8_t>(value);
  }
}

Status CheckSymbols(const uint8_t* symbols, size_t count, int bits) {
  if (bits < 1 || bits > 8) return InvalidArgument("bit width " + std::to_string(bits) + " is outside 1..8");
  if (bits == 8) return Status::Ok();
  // OR-reduce blocks first (vectorisable, no early exit), then locate the offender.
  const uint8_t over = static_cast<uint8_t>(0xFFu << bits);
  constexpr size_t kBlock = 4096;
  for (size_t start = 0; start < count; start += kBlock) {
    const size_t end = start + kBlock < count ? start + kBlock : count;
    uint8_t acc = 0;
    for (size_t i = start; i < end; ++i) acc |= symbols[i];
    if ((acc & over) == 0) continue;
    for (size_t i = start; i < end; ++i) {
      if (symbols[i] & over) {
        return OutOfRange("symbol " + std::to_string(symbols[i]) + " at index " + std::to_string(i) +
                          " does not fit in " + std::to_string(bits) + " bits");
      }
    }
  }
  return Status::Ok();
}

}  // namespace splitinfer::codec
