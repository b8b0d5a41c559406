#include "core/bytes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace splitinfer {
namespace {

// Random inputs from a printed seed; SPLITINFER_TEST_SEED=<n> replays a failing run.
uint32_t TestSeed() {
  const char* env = std::getenv("SPLITINFER_TEST_SEED");
  const uint32_t seed = env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : std::random_device{}();
  std::printf("bytes_test seed: %u (SPLITINFER_TEST_SEED=%u to replay)\n", seed, seed);
  return seed;
}

// ------------------------------------------------------------------------------------- varints

std::vector<uint8_t> Varint(uint64_t v) {
  std::vector<uint8_t> out;
  PutVarint(out, v);
  return out;
}

TEST(VarintTest, KnownEncodings) {
  EXPECT_EQ(Varint(0), (std::vector<uint8_t>{0x00}));
  EXPECT_EQ(Varint(1), (std::vector<uint8_t>{0x01}));
  EXPECT_EQ(Varint(127), (std::vector<uint8_t>{0x7F}));
  EXPECT_EQ(Varint(128), (std::vector<uint8_t>{0x80, 0x01}));
  EXPECT_EQ(Varint(300), (std::vector<uint8_t>{0xAC, 0x02}));
  EXPECT_EQ(Varint(0xFFFFFFFFu), (std::vector<uint8_t>{0xFF, 0xFF, 0xFF, 0xFF, 0x0F}));
  EXPECT_EQ(Varint(~uint64_t{0}),
            (std::vector<uint8_t>{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
}

TEST(VarintTest, RoundTripEdgeValues) {
  const uint64_t values[] = {0,
                             1,
                             127,
                             128,
                             16383,
                             16384,
                             (uint64_t{1} << 21) - 1,
                             uint64_t{1} << 21,
                             0xFFFFFFFFu,
                             uint64_t{1} << 32,
                             (uint64_t{1} << 63) - 1,
                             uint64_t{1} << 63,
                             ~uint64_t{0}};
  for (uint64_t v : values) {
    const std::vector<uint8_t> enc = Varint(v);
    EXPECT_EQ(enc.size(), VarintSize(v)) << v;
    ByteReader r(enc.data(), enc.size());
    uint64_t got = 0;
    ASSERT_TRUE(r.GetVarint(&got)) << v;
    EXPECT_EQ(got, v);
    EXPECT_EQ(r.remaining(), 0u);
  }
}

TEST(VarintTest, RoundTripRandomSequence) {
  std::mt19937_64 rng(TestSeed());
  std::vector<uint64_t> values;
  std::vector<uint8_t> buf;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    values.push_back(v);
    PutVarint(buf, v);
  }
  ByteReader r(buf.data(), buf.size());
  for (uint64_t v : values) {
    uint64_t got;
    ASSERT_TRUE(r.GetVarint(&got));
    ASSERT_EQ(got, v);
  }
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(VarintTest, TruncatedIsReportedAsTruncatedAndDoesNotMove) {
  const std::vector<uint8_t> enc = Varint(~uint64_t{0});
  for (size_t n = 0; n < enc.size(); ++n) {
    ByteReader r(enc.data(), n);
    uint64_t v = 42;
    EXPECT_EQ(r.ReadVarint(&v), VarintRead::kTruncated) << n;
    EXPECT_EQ(r.position(), 0u);
    EXPECT_EQ(v, 42u);
  }
}

TEST(VarintTest, OverLongAndOverflowingAreMalformed) {
  const std::vector<std::vector<uint8_t>> bad = {
      // 11 bytes
      {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
      // 10th byte with more than bit 63
      {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02},
      {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
      // not the shortest encoding (padding with zero groups)
      {0x80, 0x00},
      {0x81, 0x80, 0x00},
      {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00},
  };
  for (const auto& b : bad) {
    ByteReader r(b.data(), b.size());
    uint64_t v;
    EXPECT_EQ(r.ReadVarint(&v), VarintRead::kMalformed) << b.size();
    EXPECT_FALSE(ByteReader(b.data(), b.size()).GetVarint(&v));
    EXPECT_EQ(r.position(), 0u);
  }
}

// ------------------------------------------------------------------------------- ByteReader

TEST(ByteReaderTest, NeverReadsPastTheEnd) {
  const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05};
  ByteReader r(data, 5);
  uint32_t u32;
  ASSERT_TRUE(r.GetU32LE(&u32));
  EXPECT_EQ(u32, 0x04030201u);
  EXPECT_FALSE(r.GetU32LE(&u32));
  EXPECT_EQ(r.position(), 4u);
  const uint8_t* p = nullptr;
  EXPECT_FALSE(r.GetSpan(2, &p));
  EXPECT_FALSE(r.GetSpan(~size_t{0}, &p));
  EXPECT_FALSE(r.Skip(~size_t{0}));
  ASSERT_TRUE(r.GetSpan(1, &p));
  EXPECT_EQ(*p, 0x05);
  uint8_t u8;
  EXPECT_FALSE(r.GetU8(&u8));
  EXPECT_TRUE(r.Skip(0));
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(ByteReaderTest, PutU32LEIsLittleEndian) {
  std::vector<uint8_t> out;
  PutU32LE(out, 0xE3069283u);
  EXPECT_EQ(out, (std::vector<uint8_t>{0x83, 0x92, 0x06, 0xE3}));
}

// ------------------------------------------------------------------------------------ CRC32C

// The definition: one bit at a time, reflected polynomial, init and final xor all ones.
uint32_t BitwiseCrc32c(const uint8_t* data, size_t size, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

TEST(Crc32cTest, KnownVectors) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc32c(reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xE3069283u);
  // RFC 3720 (iSCSI), appendix B.4.
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(dec.data(), dec.size()), 0x113FDB5Cu);
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
}

TEST(Crc32cTest, EveryImplementationMatchesTheBitwiseReference) {
  std::mt19937 rng(TestSeed());
  std::vector<uint8_t> buf(4096 + 16);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::printf("SSE4.2 path %s\n", internal::HasSse42() ? "available: tested" : "not available: skipped");
  for (int iter = 0; iter < 2000; ++iter) {
    const size_t offset = rng() % 16;  // misaligned starts
    const size_t len = iter < 100 ? static_cast<size_t>(iter) : rng() % 4096;
    const uint32_t init = (iter % 3 == 0) ? 0u : static_cast<uint32_t>(rng());
    const uint8_t* p = buf.data() + offset;
    const uint32_t want = BitwiseCrc32c(p, len, init);
    ASSERT_EQ(internal::Crc32cPortable(p, len, init), want) << "len " << len << " offset " << offset;
    if (internal::HasSse42()) {
      ASSERT_EQ(internal::Crc32cSse42(p, len, init), want) << "len " << len;
    }
    ASSERT_EQ(Crc32c(p, len, init), want);
  }
}

TEST(Crc32cTest, Chains) {
  std::mt19937 rng(TestSeed());
  std::vector<uint8_t> buf(1000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  const uint32_t whole = Crc32c(buf.data(), buf.size());
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{500}, size_t{999}, size_t{1000}}) {
    EXPECT_EQ(Crc32c(buf.data() + cut, buf.size() - cut, Crc32c(buf.data(), cut)), whole) << cut;
  }
}

// ----------------------------------------------------------------------------------- binary16

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Slow reference: the nearest half by exhaustive search over the positive halves (monotonic in
// their bit pattern), ties to the even pattern; 65536 stands in for the pattern 0x7C00 (inf), so
// values from 65520 up round to inf exactly as IEEE 754 round-to-nearest-even overflows.
uint16_t ReferenceFloatToHalf(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  auto value = [](uint16_t h) { return h == 0x7C00 ? 65536.0 : static_cast<double>(HalfToFloat(h)); };
  if (a >= 65536.0) return sign | 0x7C00;
  uint16_t lo = 0, hi = 0x7C00;  // value(lo) <= a < value(hi)
  while (hi - lo > 1) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi) / 2);
    (value(mid) <= a ? lo : hi) = mid;
  }
  const double dlo = a - value(lo), dhi = value(hi) - a;
  uint16_t h;
  if (dlo < dhi) h = lo;
  else if (dhi < dlo) h = hi;
  else h = (lo & 1) ? hi : lo;
  return sign | h;
}

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(0.5f), 0x3800);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(6.103515625e-05f), 0x0400);     // smallest normal 2^-14
  EXPECT_EQ(FloatToHalf(5.9604644775390625e-08f), 0x0001);  // smallest subnormal 2^-24
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x0001), 5.9604644775390625e-08f);
  EXPECT_EQ(HalfToFloat(0x03FF), 6.097555160522461e-05f);  // largest subnormal
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7C00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
}

TEST(HalfTest, NanStaysNan) {
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::quiet_NaN()) & 0x7C00, 0x7C00);
  EXPECT_NE(FloatToHalf(std::numeric_limits<float>::quiet_NaN()) & 0x03FF, 0);
  // A float NaN whose payload is only in the low 13 bits must not become inf.
  const uint16_t h = FloatToHalf(FromBits(0x7F800001u));
  EXPECT_EQ(h & 0x7C00, 0x7C00);
  EXPECT_NE(h & 0x03FF, 0);
  EXPECT_TRUE(std::isnan(HalfToFloat(h)));
}

TEST(HalfTest, EveryHalfRoundTripsExactly) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
    const bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    if (!nan) {
      ASSERT_EQ(ReferenceFloatToHalf(f), h) << std::hex << h;
    }
  }
}

TEST(HalfTest, RoundsToNearestEvenLikeTheReference) {
  // Around every half: the midpoints to its neighbours (ties) and one float ulp either side.
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    const double lo = HalfToFloat(static_cast<uint16_t>(h));
    const double hi = h + 1 == 0x7C00 ? 65536.0 : HalfToFloat(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((lo + hi) / 2);  // exact in float
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      ASSERT_EQ(FloatToHalf(f), ReferenceFloatToHalf(f)) << std::hexfloat << f;
      ASSERT_EQ(FloatToHalf(-f), ReferenceFloatToHalf(-f)) << std::hexfloat << -f;
    }
  }
  std::mt19937 rng(TestSeed());
  for (int i = 0; i < 1000000; ++i) {
    // Random floats concentrated on the half range (exponents 2^-27 .. 2^17) plus any pattern.
    uint32_t u = rng();
    if (i % 2 == 0) u = (u & 0x807FFFFFu) | ((100 + rng() % 44) << 23);
    const float f = FromBits(u);
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalf(f), ReferenceFloatToHalf(f)) << std::hexfloat << f;
  }
}

TEST(HalfTest, OverflowAndUnderflowBoundaries) {
  EXPECT_EQ(FloatToHalf(65519.99f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);  // tie between 65504 and "65536": even -> inf
  EXPECT_EQ(FloatToHalf(1e10f), 0x7C00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 2^-24 -> 0
  EXPECT_EQ(FloatToHalf(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);  // tie between 1 and 2 -> 2
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::denorm_min()), 0x8000);
  EXPECT_EQ(Bits(HalfToFloat(FloatToHalf(1.0f / 3.0f))), Bits(0.333251953125f));
}

}  // namespace
}  // namespace splitinfer
