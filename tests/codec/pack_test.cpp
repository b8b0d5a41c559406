#include "codec/pack/pack.h"

#include <gtest/gtest.h>

#include "test_seed.h"

#include <cstdlib>
#include <iostream>
#include <random>
#include <vector>

namespace splitinfer::codec {
namespace {

using ::splitinfer::testing::TestSeed;

// Guard bytes after every output buffer: the fast paths must never write past the end.
constexpr size_t kGuard = 16;
constexpr uint8_t kCanary = 0xA5;

std::vector<size_t> Lengths(std::mt19937& rng) {
  std::vector<size_t> n = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 12544};
  std::uniform_int_distribution<size_t> any(0, 5000);
  for (int i = 0; i < 40; ++i) n.push_back(any(rng));
  return n;
}

std::vector<uint8_t> RandomSymbols(std::mt19937& rng, size_t n, int bits) {
  std::vector<uint8_t> s(n);
  for (auto& v : s) v = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
  return s;
}

TEST(PackTest, FastPackMatchesReferenceByteForByte) {
  std::mt19937 rng(TestSeed());
  for (int bits = 1; bits <= 8; ++bits) {
    for (size_t n : Lengths(rng)) {
      SCOPED_TRACE("bits " + std::to_string(bits) + " count " + std::to_string(n));
      const std::vector<uint8_t> symbols = RandomSymbols(rng, n, bits);
      const size_t size = PackedSize(n, bits);
      std::vector<uint8_t> fast(size + kGuard, kCanary), ref(size + kGuard, kCanary);
      Pack(symbols.data(), n, bits, fast.data());
      ReferencePack(symbols.data(), n, bits, ref.data());
      ASSERT_EQ(fast, ref);
      for (size_t i = size; i < fast.size(); ++i) ASSERT_EQ(fast[i], kCanary) << "wrote past the end at " << i;
    }
  }
}

TEST(PackTest, FastUnpackMatchesReferenceAndRoundTrips) {
  std::mt19937 rng(TestSeed() + 1);
  for (int bits = 1; bits <= 8; ++bits) {
    for (size_t n : Lengths(rng)) {
      SCOPED_TRACE("bits " + std::to_string(bits) + " count " + std::to_string(n));
      // Arbitrary bytes, including nonzero padding bits, which both must ignore.
      std::vector<uint8_t> packed(PackedSize(n, bits));
      for (auto& b : packed) b = static_cast<uint8_t>(rng());
      std::vector<uint8_t> fast(n + kGuard, kCanary), ref(n + kGuard, kCanary);
      Unpack(packed.data(), n, bits, fast.data());
      ReferenceUnpack(packed.data(), n, bits, ref.data());
      ASSERT_EQ(fast, ref);
      for (size_t i = n; i < fast.size(); ++i) ASSERT_EQ(fast[i], kCanary) << "wrote past the end at " << i;

      const std::vector<uint8_t> symbols = RandomSymbols(rng, n, bits);
      std::vector<uint8_t> bytes(PackedSize(n, bits)), back(n);
      Pack(symbols.data(), n, bits, bytes.data());
      Unpack(bytes.data(), n, bits, back.data());
      ASSERT_EQ(back, symbols);
    }
  }
}

TEST(PackTest, LayoutIsLsbFirst) {
  // Pinned by the frame format: symbol i at stream bits [i*b, i*b+b), stream bit k = bit k%8 of
  // byte k/8, padding zero.
  const uint8_t one_bit[] = {1, 0, 1, 1, 0, 0, 0, 0, 1};
  uint8_t out[2];
  Pack(one_bit, 9, 1, out);
  EXPECT_EQ(out[0], 0x0D);
  EXPECT_EQ(out[1], 0x01);
  const uint8_t three_bit[] = {5, 3, 7};  // 101 | 011 | 111 -> bits 1,0,1,1,1,0,1,1 | 1
  Pack(three_bit, 3, 3, out);
  EXPECT_EQ(out[0], 0xDD);
  EXPECT_EQ(out[1], 0x01);
  const uint8_t two_bit[] = {1, 2, 3, 0, 2};
  Pack(two_bit, 5, 2, out);
  EXPECT_EQ(out[0], 0x39);  // 01 | 10<<2 | 11<<4 | 00<<6
  EXPECT_EQ(out[1], 0x02);
}

TEST(PackTest, CheckSymbolsNamesTheFirstOffender) {
  std::vector<uint8_t> s(10000, 1);
  EXPECT_TRUE(CheckSymbols(s.data(), s.size(), 1).ok());
  s[9000] = 4;
  s[9500] = 200;
  Status st = CheckSymbols(s.data(), s.size(), 2);
  EXPECT_EQ(st.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(st.message().find("index 9000"), std::string::npos) << st.message();
  st = CheckSymbols(s.data(), s.size(), 3);  // 4 fits, 200 does not
  EXPECT_EQ(st.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(st.message().find("index 9500"), std::string::npos) << st.message();
  EXPECT_TRUE(CheckSymbols(s.data(), s.size(), 8).ok());
  s[9500] = 128;
  EXPECT_TRUE(CheckSymbols(s.data(), s.size(), 8).ok());
  EXPECT_EQ(CheckSymbols(s.data(), s.size(), 7).code(), ErrorCode::kOutOfRange);
  EXPECT_TRUE(CheckSymbols(s.data(), s.size(), 8).ok());
  EXPECT_TRUE(CheckSymbols(s.data(), 0, 1).ok());
  EXPECT_EQ(CheckSymbols(s.data(), s.size(), 0).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CheckSymbols(s.data(), s.size(), 9).code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer::codec
