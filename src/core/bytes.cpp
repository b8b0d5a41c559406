#include "core/bytes.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define SPLITINFER_HAVE_SSE42_PATH 1
#endif

namespace splitinfer {

// ---------------------------------------------------------------------------------------------
// Varints

void PutVarint(std::vector<uint8_t>& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

void PutU16LE(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value));
  out.push_back(static_cast<uint8_t>(value >> 8));
}

void PutU32LE(std::vector<uint8_t>& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// ---------------------------------------------------------------------------------------------
// ByteReader

bool ByteReader::GetU8(uint8_t* v) {
  if (pos_ >= size_) return false;
  *v = data_[pos_++];
  return true;
}

bool ByteReader::GetU32LE(uint32_t* v) {
  if (size_ - pos_ < 4) return false;
  const uint8_t* p = data_ + pos_;
  *v = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
  pos_ += 4;
  return true;
}

VarintRead ByteReader::ReadVarint(uint64_t* v) {
  uint64_t result = 0;
  size_t p = pos_;
  for (int i = 0; i < 10; ++i) {
    if (p >= size_) return VarintRead::kTruncated;
    const uint8_t b = data_[p++];
    // The 10th byte holds only bit 63: anything more overflows or continues past 10 bytes.
    if (i == 9 && b > 1) return VarintRead::kMalformed;
    result |= uint64_t{b & 0x7Fu} << (7 * i);
    if ((b & 0x80) == 0) {
      if (b == 0 && i > 0) return VarintRead::kMalformed;  // a trailing zero group: not shortest
      *v = result;
      pos_ = p;
      return VarintRead::kOk;
    }
  }
  return VarintRead::kMalformed;  // unreachable: the 10th byte either ends or is rejected above
}

bool ByteReader::Skip(size_t n) {
  if (size_ - pos_ < n) return false;
  pos_ += n;
  return true;
}

bool ByteReader::GetSpan(size_t n, const uint8_t** p) {
  if (size_ - pos_ < n) return false;
  *p = data_ + pos_;
  pos_ += n;
  return true;
}

// ---------------------------------------------------------------------------------------------
// CRC-32C

namespace {

constexpr uint32_t kCrc32cPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables MakeCrcTables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
  return t;
}

constexpr CrcTables kCrcTables = MakeCrcTables();

inline uint64_t LoadU64LE(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];  // compilers fold this into one load
  return v;
}

}  // namespace

namespace internal {

uint32_t Crc32cPortable(const uint8_t* data, size_t size, uint32_t crc) {
  uint32_t c = ~crc;
  while (size >= 8) {
    const uint64_t w = LoadU64LE(data) ^ c;
    c = kCrcTables[7][w & 0xFF] ^ kCrcTables[6][(w >> 8) & 0xFF] ^ kCrcTables[5][(w >> 16) & 0xFF] ^
        kCrcTables[4][(w >> 24) & 0xFF] ^ kCrcTables[3][(w >> 32) & 0xFF] ^ kCrcTables[2][(w >> 40) & 0xFF] ^
        kCrcTables[1][(w >> 48) & 0xFF] ^ kCrcTables[0][w >> 56];
    data += 8;
    size -= 8;
  }
  while (size-- > 0) c = (c >> 8) ^ kCrcTables[0][(c ^ *data++) & 0xFF];
  return ~c;
}

#ifdef SPLITINFER_HAVE_SSE42_PATH
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(const uint8_t* data, size_t size, uint32_t crc) {
  uint64_t c = ~crc;
  while (size >= 8) {
    uint64_t w;
    std::memcpy(&w, data, 8);  // x86 is little-endian: the same byte order as the tables
    c = _mm_crc32_u64(c, w);
    data += 8;
    size -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (size-- > 0) c32 = _mm_crc32_u8(c32, *data++);
  return ~c32;
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#else
uint32_t Crc32cSse42(const uint8_t* data, size_t size, uint32_t crc) { return Crc32cPortable(data, size, crc); }
bool HasSse42() { return false; }
#endif

}  // namespace internal

uint32_t Crc32c(const uint8_t* data, size_t size, uint32_t crc) {
  return internal::HasSse42() ? internal::Crc32cSse42(data, size, crc) : internal::Crc32cPortable(data, size, crc);
}

// ---------------------------------------------------------------------------------------------
// binary16

namespace {
uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

uint16_t FloatToHalf(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t a = x & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) {  // inf or NaN
    if (a == 0x7F800000u) return sign | 0x7C00;
    // Keep the top payload bits (so half -> float -> half is the identity on every NaN); a
    // payload that lives only in the low bits becomes the quiet NaN.
    uint16_t m = static_cast<uint16_t>((a >> 13) & 0x3FF);
    if (m == 0) m = 0x200;
    return sign | 0x7C00 | m;
  }
  if (a >= 0x477FF000u) return sign | 0x7C00;  // >= 65520 = 65504 + half an ulp: rounds to inf
  if (a >= 0x38800000u) {                       // >= 2^-14: a normal half
    uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3FF);
    const uint32_t rem = a & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // a carry into the exponent is correct
    return static_cast<uint16_t>(sign | h);
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25: rounds to (signed) zero; 2^-25 is a tie -> even
  // Subnormal half: value = m * 2^-24 with m = mant24 * 2^(e - 150 + 24).
  const uint32_t e = a >> 23;
  const uint32_t mant = (a & 0x7FFFFF) | 0x800000;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t m = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (m & 1))) ++m;  // m == 0x400 is the smallest normal
  return static_cast<uint16_t>(sign | m);
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t e = (h >> 10) & 0x1F;
  const uint32_t m = h & 0x3FF;
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return BitsFloat(FloatBits(v) | sign);
  }
  if (e == 31) return BitsFloat(sign | 0x7F800000u | (m << 13));
  return BitsFloat(sign | ((e + 112) << 23) | (m << 13));
}

}  // namespace splitinfer
