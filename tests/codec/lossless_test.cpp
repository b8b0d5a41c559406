#include "codec/lossless/lossless.h"

#include <gtest/gtest.h>

#include "test_seed.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "codec/lossless/cabac.h"
#include "codec/lossless/coders.h"

namespace splitinfer::codec {
namespace {

using ::splitinfer::testing::TestSeed;

constexpr CoderId kAllCoders[] = {CoderId::kNone, CoderId::kLzma, CoderId::kZstd, CoderId::kCabac,
                                  CoderId::kCabacTrained};
// The coders this build has (lzma needs liblzma at build time; see CoderBuiltIn).
std::vector<CoderId> BuiltCoders() {
  std::vector<CoderId> built;
  for (CoderId id : kAllCoders) {
    if (CoderBuiltIn(id)) built.push_back(id);
  }
  return built;
}
constexpr uint8_t kCanary = 0xA5;
constexpr size_t kGuard = 16;

SymbolGeometry Geometry(uint32_t c, uint32_t h, uint32_t w, int bits) {
  SymbolGeometry g;
  g.channels = c;
  g.height = h;
  g.width = w;
  g.bits = bits;
  return g;
}

std::string Describe(CoderId coder, const SymbolGeometry& g) {
  return std::string(CoderName(coder)) + " " + std::to_string(g.channels) + "x" + std::to_string(g.height) + "x" +
         std::to_string(g.width) + " at " + std::to_string(g.bits) + " bits";
}

uint8_t Quantize(float x, int bits) {
  const int top = (1 << bits) - 1;
  return static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(x * top)), 0, top));
}

// Post-ReLU-like maps with the structure real feature maps have: a few Gaussian blobs shared
// by all channels (the "object"), a per-channel gain and bias (some channels fire on the object,
// some on the background, some never), a little noise, ReLU, quantised on [0, 1].
std::vector<uint8_t> FeatureLikeMap(std::mt19937& rng, const SymbolGeometry& g, float threshold_shift = 0) {
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uni(0, 1);
  const size_t area = size_t{g.height} * g.width;
  std::vector<float> field(area, 0);
  const int blobs = 1 + static_cast<int>(rng() % 3);
  for (int b = 0; b < blobs; ++b) {
    const float cy = uni(rng) * g.height, cx = uni(rng) * g.width;
    const float r = 1.0f + uni(rng) * 0.3f * static_cast<float>(std::max(g.height, g.width));
    for (uint32_t y = 0; y < g.height; ++y)
      for (uint32_t x = 0; x < g.width; ++x)
        field[y * g.width + x] += std::exp(-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / (2 * r * r));
  }
  std::vector<uint8_t> out(g.count());
  std::mt19937 channel_rng(12345);  // the same "filters" for every map of a geometry
  for (uint32_t c = 0; c < g.channels; ++c) {
    const float gain = std::normal_distribution<float>(0, 1.2f)(channel_rng);
    const float bias = std::normal_distribution<float>(-0.3f, 0.3f)(channel_rng) - threshold_shift;
    for (size_t i = 0; i < area; ++i) {
      const float v = std::max(0.0f, gain * field[i] + bias + 0.05f * normal(rng));
      out[c * area + i] = Quantize(v, g.bits);
    }
  }
  return out;
}

enum class Kind { kUniform, kSparse, kStructured };

std::vector<uint8_t> Generate(std::mt19937& rng, const SymbolGeometry& g, Kind kind) {
  std::vector<uint8_t> s(g.count());
  const uint32_t top = (1u << g.bits) - 1;
  switch (kind) {
    case Kind::kUniform:
      for (auto& v : s) v = static_cast<uint8_t>(rng() & top);
      break;
    case Kind::kSparse:
      for (auto& v : s) v = rng() % 10 == 0 ? static_cast<uint8_t>(1 + rng() % top) : 0;
      if (g.bits == 1) {
        for (auto& v : s) v = rng() % 10 == 0;
      }
      break;
    case Kind::kStructured:
      s = FeatureLikeMap(rng, g);
      break;
  }
  return s;
}

// Encodes, decodes into a guarded buffer, and checks the round trip; returns the payload.
std::vector<uint8_t> RoundTrip(CoderId coder, const std::vector<uint8_t>& symbols, const SymbolGeometry& g,
                               const CoderOptions& options) {
  auto encoded = EncodeSymbols(coder, symbols.data(), g, options);
  EXPECT_TRUE(encoded.ok()) << encoded.status().ToString();
  if (!encoded.ok()) return {};
  std::vector<uint8_t> decoded(symbols.size() + kGuard, kCanary);
  const Status st = DecodeSymbols(coder, encoded->data(), encoded->size(), g, options, decoded.data());
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(std::equal(symbols.begin(), symbols.end(), decoded.begin())) << "round trip differs";
  for (size_t i = symbols.size(); i < decoded.size(); ++i) EXPECT_EQ(decoded[i], kCanary) << "wrote past count()";
  return encoded.value();
}

CabacModel Train(const std::vector<std::vector<uint8_t>>& maps, const SymbolGeometry& g) {
  std::vector<const uint8_t*> pointers;
  for (const auto& m : maps) pointers.push_back(m.data());
  auto model = TrainCabacModel(pointers, g);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return std::move(model).value();
}

TEST(LosslessTest, CoderNamesRoundTrip) {
  for (CoderId id : kAllCoders) {
    auto back = CoderFromName(CoderName(id));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back.value(), id);
  }
  EXPECT_STREQ(CoderName(CoderId::kCabacTrained), "cabac-trained");
  auto bad = CoderFromName("lz4");
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("cabac-trained"), std::string::npos) << "lists the known names";
  EXPECT_EQ(CoderFromName("").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(CoderName(static_cast<CoderId>(200)), "unknown");
}

bool IsCabac(CoderId coder) { return coder == CoderId::kCabac || coder == CoderId::kCabacTrained; }

TEST(LosslessTest, RoundTripEveryCoderBitWidthAndGeometry) {
  std::mt19937 rng(TestSeed());
  std::vector<SymbolGeometry> shapes = {Geometry(1, 1, 1, 1),  Geometry(1, 1, 7, 1),  Geometry(1, 9, 1, 1),
                                        Geometry(3, 5, 7, 1),  Geometry(2, 1, 9, 1),  Geometry(5, 13, 3, 1),
                                        Geometry(7, 8, 8, 1),  Geometry(16, 14, 14, 1)};
  for (int i = 0; i < 4; ++i) {
    shapes.push_back(Geometry(1 + rng() % 9, 1 + rng() % 17, 1 + rng() % 17, 1));
  }
  for (int bits = 1; bits <= 8; ++bits) {
    for (SymbolGeometry g : shapes) {
      g.bits = bits;
      // The trained model sees maps of every kind, then codes fresh ones.
      std::vector<std::vector<uint8_t>> calibration;
      for (Kind k : {Kind::kUniform, Kind::kSparse, Kind::kStructured, Kind::kStructured}) {
        calibration.push_back(Generate(rng, g, k));
      }
      const CabacModel model = Train(calibration, g);
      CoderOptions options;
      options.cabac_model = &model;
      for (Kind k : {Kind::kUniform, Kind::kSparse, Kind::kStructured}) {
        const std::vector<uint8_t> symbols = Generate(rng, g, k);
        for (CoderId coder : BuiltCoders()) {
          // Both cabac layouts: frames of version 2 and of version 1.
          for (int layout : {kCabacLayoutGroups, kCabacLayoutPlain}) {
            if (layout == kCabacLayoutPlain && !IsCabac(coder)) continue;
            options.cabac_layout = layout;
            SCOPED_TRACE(Describe(coder, g) + " kind " + std::to_string(static_cast<int>(k)) + " layout " +
                         std::to_string(layout));
            RoundTrip(coder, symbols, g, options);
            if (::testing::Test::HasFailure()) return;
          }
        }
      }
    }
  }
}

TEST(LosslessTest, EmptyGeometryRoundTrips) {
  for (const SymbolGeometry& g : {Geometry(0, 5, 5, 2), Geometry(3, 0, 4, 1), Geometry(2, 3, 0, 8)}) {
    for (CoderId coder : {CoderId::kNone, CoderId::kLzma, CoderId::kZstd, CoderId::kCabac}) {
      if (!CoderBuiltIn(coder)) continue;
      SCOPED_TRACE(Describe(coder, g));
      auto encoded = EncodeSymbols(coder, nullptr, g, {});
      ASSERT_TRUE(encoded.ok()) << encoded.status().ToString();
      uint8_t out = kCanary;
      EXPECT_TRUE(DecodeSymbols(coder, encoded->data(), encoded->size(), g, {}, &out).ok());
      EXPECT_EQ(out, kCanary);
      std::vector<uint8_t> longer = encoded.value();
      longer.push_back(0);
      EXPECT_EQ(DecodeSymbols(coder, longer.data(), longer.size(), g, {}, &out).code(), ErrorCode::kFramePayload);
    }
  }
}

TEST(LosslessTest, LevelsAreHonouredAndChecked) {
  std::mt19937 rng(TestSeed() + 1);
  const SymbolGeometry g = Geometry(8, 14, 14, 2);
  const std::vector<uint8_t> symbols = FeatureLikeMap(rng, g);
  for (int preset = 0; preset <= 9 && CoderBuiltIn(CoderId::kLzma); ++preset) {
    CoderOptions o;
    o.level = preset;
    SCOPED_TRACE("lzma preset " + std::to_string(preset));
    RoundTrip(CoderId::kLzma, symbols, g, o);
  }
  for (int level : {1, 3, 19}) {
    CoderOptions o;
    o.level = level;
    SCOPED_TRACE("zstd level " + std::to_string(level));
    RoundTrip(CoderId::kZstd, symbols, g, o);
  }
  for (auto [coder, level] : {std::pair{CoderId::kLzma, 10}, std::pair{CoderId::kLzma, -2},
                              std::pair{CoderId::kZstd, 0}, std::pair{CoderId::kZstd, 20}}) {
    CoderOptions o;
    o.level = level;
    EXPECT_EQ(EncodeSymbols(coder, symbols.data(), g, o).status().code(), ErrorCode::kInvalidArgument)
        << CoderName(coder) << " level " << level;
  }
}

TEST(LosslessTest, BadArgumentsAreRejected) {
  std::vector<uint8_t> symbols(60, 1);
  uint8_t out[60];
  for (int bits : {0, 9, -1}) {
    const SymbolGeometry g = Geometry(3, 4, 5, bits);
    EXPECT_EQ(EncodeSymbols(CoderId::kCabac, symbols.data(), g, {}).status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(DecodeSymbols(CoderId::kCabac, symbols.data(), 4, g, {}, out).code(), ErrorCode::kInvalidArgument);
  }
  symbols[17] = 2;  // does not fit in 1 bit
  for (CoderId coder : kAllCoders) {
    CoderOptions o;
    const SymbolGeometry g = Geometry(3, 4, 5, 1);
    std::vector<std::vector<uint8_t>> calibration = {std::vector<uint8_t>(60, 0)};
    const CabacModel model = Train(calibration, g);
    o.cabac_model = &model;
    auto r = EncodeSymbols(coder, symbols.data(), g, o);
    EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange) << CoderName(coder);
    EXPECT_NE(r.status().message().find("index 17"), std::string::npos) << r.status().message();
  }
  const SymbolGeometry huge = Geometry(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 1);
  EXPECT_EQ(EncodeSymbols(CoderId::kNone, symbols.data(), huge, {}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeSymbols(CoderId::kCabac, symbols.data(), 4, huge, {}, out).code(), ErrorCode::kInvalidArgument);
  const CoderId unknown = static_cast<CoderId>(9);
  EXPECT_EQ(EncodeSymbols(unknown, symbols.data(), Geometry(1, 1, 1, 1), {}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeSymbols(unknown, symbols.data(), 1, Geometry(1, 1, 1, 1), {}, out).code(),
            ErrorCode::kInvalidArgument);
}

TEST(LosslessTest, CabacTrainedNeedsAMatchingModel) {
  std::mt19937 rng(TestSeed() + 2);
  const SymbolGeometry g = Geometry(4, 6, 6, 2);
  const std::vector<uint8_t> symbols = FeatureLikeMap(rng, g);
  uint8_t out[144];
  EXPECT_EQ(EncodeSymbols(CoderId::kCabacTrained, symbols.data(), g, {}).status().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(DecodeSymbols(CoderId::kCabacTrained, symbols.data(), 10, g, {}, out).code(),
            ErrorCode::kFailedPrecondition);
  for (const SymbolGeometry& other : {Geometry(5, 6, 6, 2), Geometry(4, 6, 6, 1), Geometry(4, 6, 7, 2),
                                      Geometry(4, 5, 6, 2)}) {
    std::vector<std::vector<uint8_t>> calibration = {FeatureLikeMap(rng, other)};
    const CabacModel model = Train(calibration, other);
    CoderOptions o;
    o.cabac_model = &model;
    EXPECT_EQ(EncodeSymbols(CoderId::kCabacTrained, symbols.data(), g, o).status().code(),
              ErrorCode::kFailedPrecondition);
    EXPECT_EQ(DecodeSymbols(CoderId::kCabacTrained, symbols.data(), 10, g, o, out).code(),
              ErrorCode::kFailedPrecondition);
  }
}


// A payload must decode to exactly count() symbols: truncations, appended bytes, flipped bits
// and random bytes give kFramePayload and never a crash or a write past count().
//
// The one exception is inherent in a code without redundancy: the cabac decoder accepts exactly
// the encoder's outputs (it checks that the stream ends the way the encoder ends a stream, byte
// for byte), so a damaged stream that happens to be the encoding of some other map decodes to
// that map. The test checks exactly that: accepted means "re-encodes to the same bytes". (lzma
// and zstd carry lengths and end markers, so a truncated or extended payload always fails; the
// frame's length field and CRC32C catch what the payload cannot.)
// The arithmetic coder's output bound is a checked error in every build, not an assert: given
// a buffer smaller than the stream, it says so instead of writing past it.
TEST(LosslessTest, CabacOutputPastItsBufferIsAnError) {
  std::mt19937 rng(::splitinfer::testing::TestSeed());
  SymbolGeometry g{8, 8, 8, 4};
  std::vector<uint8_t> symbols(g.count());
  for (auto& v : symbols) v = static_cast<uint8_t>(rng() % 16);  // noise: hundreds of bytes
  for (int layout : {kCabacLayoutPlain, kCabacLayoutGroups}) {
  auto fits = internal::CabacEncode(symbols.data(), g, nullptr, layout);
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
  EXPECT_GT(fits->size(), 100u);
  for (size_t capacity : {size_t{1}, size_t{8}, fits->size() / 2}) {
    auto small = internal::CabacEncode(symbols.data(), g, nullptr, layout, capacity);
    EXPECT_EQ(small.status().code(), ErrorCode::kInternal) << capacity;
    EXPECT_NE(small.status().message().find("did not fit its " + std::to_string(capacity) + "-byte buffer"),
              std::string::npos)
        << small.status().message();
  }
  }
}

TEST(LosslessTest, CorruptPayloadsAreRejected) {
  std::mt19937 rng(TestSeed() + 3);
  for (int bits : {1, 2, 5}) {
    const SymbolGeometry g = Geometry(4, 7, 9, bits);
    std::vector<std::vector<uint8_t>> calibration = {FeatureLikeMap(rng, g), FeatureLikeMap(rng, g)};
    const CabacModel model = Train(calibration, g);
    CoderOptions options;
    options.cabac_model = &model;
    const std::vector<uint8_t> symbols = FeatureLikeMap(rng, g);
    for (CoderId coder : BuiltCoders()) {
    for (int layout : {kCabacLayoutGroups, kCabacLayoutPlain}) {
      if (layout == kCabacLayoutPlain && !IsCabac(coder)) continue;
      options.cabac_layout = layout;
      SCOPED_TRACE(Describe(coder, g) + " layout " + std::to_string(layout));
      const std::vector<uint8_t> payload = RoundTrip(coder, symbols, g, options);
      ASSERT_FALSE(payload.empty());
      std::vector<uint8_t> out(g.count() + kGuard, kCanary);
      // `may_decode`: a format without redundancy here (none, and lzma/zstd for flipped bits).
      auto check = [&](const std::vector<uint8_t>& bytes, bool may_decode, const std::string& what) {
        std::fill(out.begin(), out.end(), kCanary);
        const Status st = DecodeSymbols(coder, bytes.data(), bytes.size(), g, options, out.data());
        for (size_t i = g.count(); i < out.size(); ++i) ASSERT_EQ(out[i], kCanary) << what << ": wrote past count()";
        if (!st.ok()) {
          EXPECT_EQ(st.code(), ErrorCode::kFramePayload) << what << ": " << st.ToString();
        } else if (IsCabac(coder)) {
          EXPECT_FALSE(std::equal(symbols.begin(), symbols.end(), out.begin()) && bytes != payload) << what;
          auto again = EncodeSymbols(coder, out.data(), g, options);
          ASSERT_TRUE(again.ok());
          EXPECT_EQ(again.value(), bytes) << what << ": accepted a stream the encoder does not produce";
        } else {
          EXPECT_TRUE(may_decode) << what << ": decoded";
        }
      };
      for (size_t n = 0; n < payload.size(); ++n) {
        check(std::vector<uint8_t>(payload.begin(), payload.begin() + static_cast<ptrdiff_t>(n)), false,
              "truncated to " + std::to_string(n) + " bytes");
      }
      for (uint8_t extra : {uint8_t{0}, uint8_t{0xFF}, static_cast<uint8_t>(rng())}) {
        std::vector<uint8_t> longer = payload;
        longer.push_back(extra);
        check(longer, false, "one trailing byte " + std::to_string(extra));
        longer.insert(longer.end(), 7, extra);
        check(longer, false, "eight trailing bytes");
      }
      for (size_t bit = 0; bit < payload.size() * 8; ++bit) {
        std::vector<uint8_t> flipped = payload;
        flipped[bit / 8] = static_cast<uint8_t>(flipped[bit / 8] ^ (1u << (bit % 8)));
        check(flipped, coder != CoderId::kCabac && coder != CoderId::kCabacTrained, "bit " + std::to_string(bit));
      }
      for (int trial = 0; trial < 300; ++trial) {
        std::vector<uint8_t> junk(rng() % 80);
        for (auto& b : junk) b = static_cast<uint8_t>(rng());
        check(junk, coder == CoderId::kNone, "random bytes");
      }
      if (::testing::Test::HasFailure()) return;
    }
    }
  }
}

TEST(LosslessTest, PackedPayloadsMustBeCanonical) {
  // 3 symbols of 3 bits use 9 of 16 bits: the padding must be zero.
  const SymbolGeometry g = Geometry(1, 1, 3, 3);
  const uint8_t symbols[] = {5, 3, 7};
  auto encoded = EncodeSymbols(CoderId::kNone, symbols, g, {});
  ASSERT_TRUE(encoded.ok());
  std::vector<uint8_t> bytes = encoded.value();
  ASSERT_EQ(bytes.size(), 2u);
  bytes[1] |= 0x80;
  uint8_t out[3];
  EXPECT_EQ(DecodeSymbols(CoderId::kNone, bytes.data(), bytes.size(), g, {}, out).code(), ErrorCode::kFramePayload);
}

// The cabac payload is part of the wire format: this pins the bytes of a fixed input so that a
// change to the coder cannot pass unnoticed (if it is intended, it needs a new coder id or a
// frame version, see docs/bitstream_format.md, and new values here).
TEST(LosslessTest, CabacBytesArePinned) {
  const SymbolGeometry g = Geometry(3, 5, 6, 2);
  std::vector<uint8_t> symbols(g.count());
  uint32_t state = 1;
  for (auto& s : symbols) {
    state = state * 1103515245u + 12345u;  // a fixed LCG: the same on every platform
    const uint32_t r = (state >> 16) & 0x7FFF;
    s = static_cast<uint8_t>(r % 7 == 0 ? 1 + r % 3 : 0);
  }
  auto hex_of = [&](int layout) {
    CoderOptions o;
    o.cabac_layout = layout;
    auto encoded = EncodeSymbols(CoderId::kCabac, symbols.data(), g, o);
    EXPECT_TRUE(encoded.ok());
    std::string hex;
    for (uint8_t b : encoded.value()) {
      static const char* digits = "0123456789abcdef";
      hex += digits[b >> 4];
      hex += digits[b & 15];
    }
    return hex;
  };
  EXPECT_EQ(hex_of(kCabacLayoutPlain), "b78cff010ecdd3f399f3");  // frame version 1
  EXPECT_EQ(hex_of(kCabacLayoutGroups), "90e277df004f1644b0a1e5");  // frame version 2
}

TEST(LosslessTest, UnknownCabacLayoutIsRefused) {
  const SymbolGeometry g = Geometry(1, 2, 2, 1);
  const uint8_t symbols[4] = {0, 1, 0, 0};
  uint8_t out[4];
  for (int layout : {0, 3}) {
    CoderOptions o;
    o.cabac_layout = layout;
    auto e = EncodeSymbols(CoderId::kCabac, symbols, g, o);
    EXPECT_EQ(e.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find("cabac layout " + std::to_string(layout)), std::string::npos);
    EXPECT_EQ(DecodeSymbols(CoderId::kCabac, symbols, 1, g, o, out).code(), ErrorCode::kInvalidArgument);
    // Coders without layouts ignore it.
    EXPECT_TRUE(EncodeSymbols(CoderId::kNone, symbols, g, o).ok());
  }
}

TEST(LosslessTest, CabacModelSerialisationRoundTrips) {
  std::mt19937 rng(TestSeed() + 4);
  for (int bits : {1, 2, 4}) {
    const SymbolGeometry g = Geometry(6, 9, 11, bits);
    std::vector<std::vector<uint8_t>> calibration;
    for (int i = 0; i < 5; ++i) calibration.push_back(FeatureLikeMap(rng, g));
    const CabacModel model = Train(calibration, g);
    const std::vector<uint8_t> bytes = model.Serialize();
    auto parsed = CabacModel::Parse(bytes.data(), bytes.size());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(parsed->Serialize(), bytes);
    EXPECT_EQ(parsed->geometry().channels, g.channels);
    EXPECT_EQ(parsed->geometry().bits, bits);
    const std::vector<uint8_t> symbols = FeatureLikeMap(rng, g);
    CoderOptions a, b;
    a.cabac_model = &model;
    b.cabac_model = &parsed.value();
    auto ea = EncodeSymbols(CoderId::kCabacTrained, symbols.data(), g, a);
    auto eb = EncodeSymbols(CoderId::kCabacTrained, symbols.data(), g, b);
    ASSERT_TRUE(ea.ok() && eb.ok());
    EXPECT_EQ(ea.value(), eb.value());
  }
}

// Rewrites the trailing checksum so that a deliberately bad field reaches its own check.
std::vector<uint8_t> Reseal(std::vector<uint8_t> bytes) {
  const uint32_t h = Fnv1a32(bytes.data(), bytes.size() - 4);
  for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<uint8_t>(h >> (8 * i));
  return bytes;
}

TEST(LosslessTest, CabacModelParseRejectsGarbage) {
  std::mt19937 rng(TestSeed() + 5);
  const SymbolGeometry g = Geometry(4, 5, 5, 2);
  std::vector<std::vector<uint8_t>> calibration = {FeatureLikeMap(rng, g), FeatureLikeMap(rng, g)};
  const std::vector<uint8_t> good = Train(calibration, g).Serialize();
  auto code = [](const std::vector<uint8_t>& b) { return CabacModel::Parse(b.data(), b.size()).status().code(); };
  EXPECT_EQ(CabacModel::Parse(nullptr, 0).status().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(code({}), ErrorCode::kDataLoss);
  EXPECT_EQ(code(std::vector<uint8_t>(good.begin(), good.begin() + 10)), ErrorCode::kDataLoss);
  EXPECT_EQ(code(std::vector<uint8_t>(good.begin(), good.end() - 1)), ErrorCode::kDataLoss);
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_EQ(code(longer), ErrorCode::kDataLoss);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<uint8_t> junk(rng() % 2000);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    if (junk.size() >= 4 && rng() % 2) std::copy(good.begin(), good.begin() + 4, junk.begin());  // right magic
    EXPECT_EQ(code(junk), ErrorCode::kDataLoss);
  }
  std::vector<uint8_t> bad = good;
  bad[0] = 'X';
  EXPECT_EQ(code(Reseal(bad)), ErrorCode::kDataLoss) << "magic";
  bad = good;
  bad[4] = 2;
  EXPECT_EQ(code(Reseal(bad)), ErrorCode::kDataLoss) << "version";
  bad = good;
  bad[5] = 9;
  EXPECT_EQ(code(Reseal(bad)), ErrorCode::kDataLoss) << "bits";
  bad = good;
  bad[8] = 5;  // 5 channels: the size no longer matches
  EXPECT_EQ(code(Reseal(bad)), ErrorCode::kDataLoss) << "channels";
  bad = good;
  bad[11] = 0x40;  // 2^30 channels: over the limit, and must not allocate
  EXPECT_EQ(code(Reseal(bad)), ErrorCode::kDataLoss) << "huge channel count";
  bad = good;
  bad[good.size() / 2] ^= 1;
  EXPECT_EQ(code(bad), ErrorCode::kDataLoss) << "checksum";
  bad = good;
  bad[20 + 8 * 2] = 3;  // channel 2's first reference: channel 2 is not coded before itself
  EXPECT_EQ(code(Reseal(bad)), ErrorCode::kDataLoss) << "reference";
  bad = good;
  const size_t first_context = 20 + 8 * 4;
  bad[first_context] = 0;
  bad[first_context + 1] = 0;  // probability 0
  EXPECT_EQ(code(Reseal(bad)), ErrorCode::kDataLoss) << "probability";
  EXPECT_TRUE(CabacModel::Parse(good.data(), good.size()).ok());
}

TEST(LosslessTest, TrainingChecksItsInput) {
  const SymbolGeometry g = Geometry(2, 3, 3, 1);
  std::vector<uint8_t> ok(18, 1), bad(18, 1);
  bad[5] = 2;
  EXPECT_EQ(TrainCabacModel({}, g).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(TrainCabacModel({ok.data(), nullptr}, g).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(TrainCabacModel({ok.data(), bad.data()}, g).status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(TrainCabacModel({ok.data()}, Geometry(2, 3, 3, 0)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(TrainCabacModel({ok.data()}, Geometry(0, 3, 3, 1)).status().code(), ErrorCode::kInvalidArgument);
  // Too many contexts: refused before the (never read) map is touched.
  EXPECT_EQ(TrainCabacModel({ok.data()}, Geometry(1u << 20, 1, 1, 8)).status().code(), ErrorCode::kOutOfRange);
}

// The encoder writes into a buffer sized by a worst-case bound (debug builds assert it): code
// inputs that a model predicts badly, and incompressible ones.
TEST(LosslessTest, BadlyPredictedInputsRoundTrip) {
  std::mt19937 rng(TestSeed() + 6);
  for (int bits : {1, 2, 8}) {
    const SymbolGeometry g = Geometry(8, 16, 16, bits);
    SCOPED_TRACE("bits " + std::to_string(bits));
    std::vector<std::vector<uint8_t>> zeros(20, std::vector<uint8_t>(g.count(), 0));
    std::vector<std::vector<uint8_t>> sparse;
    for (int i = 0; i < 20; ++i) sparse.push_back(Generate(rng, g, Kind::kSparse));
    const std::vector<uint8_t> top(g.count(), static_cast<uint8_t>((1 << bits) - 1));
    for (const auto* calibration : {&zeros, &sparse}) {
      const CabacModel model = Train(*calibration, g);
      CoderOptions o;
      o.cabac_model = &model;
      RoundTrip(CoderId::kCabacTrained, top, g, o);
      RoundTrip(CoderId::kCabacTrained, Generate(rng, g, Kind::kUniform), g, o);
    }
    for (int layout : {kCabacLayoutGroups, kCabacLayoutPlain}) {
      CoderOptions o;
      o.cabac_layout = layout;
      RoundTrip(CoderId::kCabac, Generate(rng, g, Kind::kUniform), g, o);
      RoundTrip(CoderId::kCabac, top, g, o);
    }
  }
}

// Sizes summed over maps of a geometry.
struct Sizes {
  double none = 0, lzma = 0, zstd = 0, cabac = 0, trained = 0;
};

Sizes MeasureStructured(std::mt19937& rng, const SymbolGeometry& g, int maps, float threshold_shift) {
  std::vector<std::vector<uint8_t>> calibration;
  for (int i = 0; i < 50; ++i) calibration.push_back(FeatureLikeMap(rng, g, threshold_shift));
  const CabacModel model = Train(calibration, g);
  CoderOptions o;
  o.cabac_model = &model;
  Sizes s;
  for (int i = 0; i < maps; ++i) {
    const std::vector<uint8_t> symbols = FeatureLikeMap(rng, g, threshold_shift);
    s.none += static_cast<double>(RoundTrip(CoderId::kNone, symbols, g, o).size());
    if (CoderBuiltIn(CoderId::kLzma)) s.lzma += static_cast<double>(RoundTrip(CoderId::kLzma, symbols, g, o).size());
    s.zstd += static_cast<double>(RoundTrip(CoderId::kZstd, symbols, g, o).size());
    s.cabac += static_cast<double>(RoundTrip(CoderId::kCabac, symbols, g, o).size());
    s.trained += static_cast<double>(RoundTrip(CoderId::kCabacTrained, symbols, g, o).size());
  }
  return s;
}

TEST(LosslessTest, CabacBeatsGenericCodersOnStructuredMaps) {
  std::mt19937 rng(TestSeed() + 7);
  for (const SymbolGeometry& g : {Geometry(64, 14, 14, 1), Geometry(64, 14, 14, 2), Geometry(16, 28, 28, 1)}) {
    for (float shift : {0.0f, 0.3f}) {  // 0.3: sparser, as post-ReLU maps thresholded to 1 bit
      const Sizes s = MeasureStructured(rng, g, 10, shift);
      SCOPED_TRACE(Describe(CoderId::kCabac, g) + " shift " + std::to_string(shift) + ": none " +
                   std::to_string(s.none) + " lzma " + std::to_string(s.lzma) + " zstd " + std::to_string(s.zstd) +
                   " cabac " + std::to_string(s.cabac) + " trained " + std::to_string(s.trained));
      if (CoderBuiltIn(CoderId::kLzma)) EXPECT_LT(s.cabac, 0.9 * s.lzma);
      EXPECT_LT(s.cabac, 0.9 * s.zstd);
      EXPECT_LT(s.trained, s.cabac);
    }
  }
}

// A build without liblzma keeps the coder id (frames naming it parse) but refuses to code with
// it, naming the library; the Debian build has it, where this test has nothing to check.
TEST(LosslessTest, LzmaWithoutLiblzmaIsAClearError) {
  if (CoderBuiltIn(CoderId::kLzma)) GTEST_SKIP() << "this build has liblzma";
  const SymbolGeometry g = Geometry(2, 3, 4, 1);
  const std::vector<uint8_t> symbols(g.count(), 1);
  auto encoded = EncodeSymbols(CoderId::kLzma, symbols.data(), g, {});
  EXPECT_EQ(encoded.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(encoded.status().message().find("liblzma"), std::string::npos) << encoded.status().message();
  std::vector<uint8_t> out(g.count());
  const uint8_t bytes[4] = {1, 2, 3, 4};
  EXPECT_EQ(DecodeSymbols(CoderId::kLzma, bytes, sizeof bytes, g, {}, out.data()).code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(CoderBuiltIn(CoderId::kZstd) && CoderBuiltIn(CoderId::kCabac) && CoderBuiltIn(CoderId::kNone));
}

TEST(LosslessTest, Order0Bytes) {
  const std::vector<uint8_t> same(100, 3);
  EXPECT_DOUBLE_EQ(Order0Bytes(same.data(), same.size(), 2), 0.0);
  std::vector<uint8_t> half(16);
  for (size_t i = 0; i < half.size(); ++i) half[i] = i % 2;
  EXPECT_DOUBLE_EQ(Order0Bytes(half.data(), half.size(), 1), 2.0);  // 16 symbols x 1 bit
  std::vector<uint8_t> quarter = {0, 1, 2, 3, 0, 1, 2, 3};
  EXPECT_DOUBLE_EQ(Order0Bytes(quarter.data(), quarter.size(), 2), 2.0);  // 8 x 2 bits
  EXPECT_DOUBLE_EQ(Order0Bytes(nullptr, 0, 1), 0.0);
}

}  // namespace
}  // namespace splitinfer::codec
