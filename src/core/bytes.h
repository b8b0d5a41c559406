// Byte-level primitives for the wire: LEB128 varints, CRC32C, bounded reading.
// No LibTorch. Every read is bounds-checked and reports failure instead of reading past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace splitinfer {

// Unsigned LEB128: 7 bits per byte, low groups first, high bit = "more follows".
// At most 10 bytes for a uint64_t.
void PutVarint(std::vector<uint8_t>& out, uint64_t value);
size_t VarintSize(uint64_t value);

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI, ext4 and gRPC's
// compression tests; uses the SSE4.2 instruction where the CPU has it.
// `crc` is the CRC of the bytes before `data` (0 for none), so that
// Crc32c(b, nb, Crc32c(a, na)) == Crc32c(a followed by b).
uint32_t Crc32c(const uint8_t* data, size_t size, uint32_t crc = 0);

namespace internal {
// The two implementations behind Crc32c, exposed so that tests can hold each against a bitwise
// reference. Crc32cSse42 may only be called when HasSse42() is true.
uint32_t Crc32cPortable(const uint8_t* data, size_t size, uint32_t crc);  // slicing-by-8 tables
uint32_t Crc32cSse42(const uint8_t* data, size_t size, uint32_t crc);
bool HasSse42();
}  // namespace internal

void PutU32LE(std::vector<uint8_t>& out, uint32_t value);
void PutU16LE(std::vector<uint8_t>& out, uint16_t value);

// Why a varint could not be read: parsers map kTruncated and kMalformed to different errors.
enum class VarintRead : uint8_t {
  kOk = 0,
  kTruncated = 1,  // the buffer ends while the continuation bit says more bytes follow
  kMalformed = 2,  // longer than 10 bytes, overflows 64 bits, or not the shortest encoding
};

// Reads from a byte span without ever going past its end. Each getter returns false on
// truncation or a malformed varint and then leaves the reader where it was before the call.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool GetU8(uint8_t* v);
  bool GetU32LE(uint32_t* v);
  // Only the shortest encoding of a value is accepted (a trailing 0x00 group, as in 0x80 0x00,
  // is malformed), so that every value has exactly one encoding on the wire.
  bool GetVarint(uint64_t* v) { return ReadVarint(v) == VarintRead::kOk; }
  VarintRead ReadVarint(uint64_t* v);
  bool Skip(size_t n);
  // Points *p at the next n bytes and advances; false if fewer than n remain.
  bool GetSpan(size_t n, const uint8_t** p);
  size_t position() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// IEEE 754 binary16 conversion (round to nearest even), for side information.
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);

}  // namespace splitinfer
