// Frame writer/parser: round trips over random headers, the overhead claim, and one crafted
// frame per error code (docs/bitstream_format.md, "Errors and validation order").
#include "codec/frame/frame.h"

#include <gtest/gtest.h>

#include "test_seed.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "core/bytes.h"

// ---- allocation watch: the parser must never allocate by an unchecked field. The whole test
// binary's operator new records the largest request made while a ScopedAllocationWatch is live.
namespace {
std::atomic<bool> g_watch{false};
std::atomic<size_t> g_largest{0};
}  // namespace

// GCC cannot see that the malloc below pairs with the free in operator delete.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(size_t n) {
  if (g_watch.load(std::memory_order_relaxed)) {
    size_t prev = g_largest.load(std::memory_order_relaxed);
    while (n > prev && !g_largest.compare_exchange_weak(prev, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace splitinfer::codec {
namespace {

struct ScopedAllocationWatch {
  ScopedAllocationWatch() {
    g_largest = 0;
    g_watch = true;
  }
  ~ScopedAllocationWatch() { g_watch = false; }
  size_t largest() const { return g_largest.load(); }
};

using ::splitinfer::testing::TestSeed;

#define EXPECT_CODE(expr, want)                                                                     \
  do {                                                                                              \
    const auto& si_r_ = (expr);                                                                     \
    EXPECT_EQ(si_r_.status().code(), (want)) << ErrorCodeName(si_r_.status().code()) << ": "        \
                                             << si_r_.status().message();                           \
  } while (0)

// ---- byte-level builder for crafted frames --------------------------------------------------

uint8_t FlagsA(int bits, int range, int granularity, int reconstruction) {
  return static_cast<uint8_t>((bits - 1) | range << 3 | granularity << 5 | reconstruction << 7);
}
uint8_t FlagsB(int coder, int rank, bool params_in_frame, bool reserved = false) {
  return static_cast<uint8_t>(coder | (rank - 1) << 4 | (params_in_frame ? 0x40 : 0) | (reserved ? 0x80 : 0));
}

struct Raw {
  std::vector<uint8_t> b;
  Raw& u8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Raw& var(uint64_t v) {
    PutVarint(b, v);
    return *this;
  }
  Raw& bytes(const std::vector<uint8_t>& v) {
    b.insert(b.end(), v.begin(), v.end());
    return *this;
  }
  Raw& head() { return u8(kFrameMagic0).u8(kFrameMagic1).u8(kFrameVersion); }
  std::vector<uint8_t> WithCrc() const {
    std::vector<uint8_t> out = b;
    PutU32LE(out, Crc32c(out.data(), out.size()));
    return out;
  }
};

// Recomputes the trailing CRC after an edit, so that only the intended fault remains.
void Resign(std::vector<uint8_t>& f) {
  const uint32_t c = Crc32c(f.data(), f.size() - 4);
  for (int i = 0; i < 4; ++i) f[f.size() - 4 + i] = static_cast<uint8_t>(c >> (8 * i));
}

Result<FrameView> Parse(const std::vector<uint8_t>& f, const FrameLimits& limits = {}) {
  return ParseFrame(f.data(), f.size(), limits);
}

std::vector<uint8_t> HalfBytes(const std::vector<float>& values) {
  std::vector<uint8_t> out;
  for (float v : values) {
    const uint16_t h = FloatToHalf(v);
    out.push_back(static_cast<uint8_t>(h));
    out.push_back(static_cast<uint8_t>(h >> 8));
  }
  return out;
}

std::vector<uint8_t> MustWrite(const FrameHeader& h, const std::vector<uint8_t>& side, const std::vector<uint8_t>& payload) {
  auto r = WriteFrame(h, side.data(), side.size(), payload.data(), payload.size());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : std::vector<uint8_t>{};
}

FrameHeader Header(std::vector<uint32_t> dims, int bits = 1, CoderId coder = CoderId::kNone) {
  FrameHeader h;
  h.pipeline_id = 7;
  h.dims = std::move(dims);
  h.quant.bits = bits;
  h.coder = coder;
  return h;
}

// A handful of valid frames covering every optional part (region dims, side info, centroids).
struct Sample {
  std::string name;
  FrameHeader header;
  std::vector<uint8_t> frame;
  size_t body_offset;  // where side info starts
};

std::vector<Sample> Samples() {
  std::vector<Sample> out;
  auto add = [&](std::string name, const FrameHeader& h, size_t payload_size) {
    std::vector<uint8_t> side;
    for (uint64_t i = 0; i < ExpectedSideInfoSize(h) / 2; ++i) {
      const auto two = HalfBytes({0.25f * static_cast<float>(i % 13)});
      side.insert(side.end(), two.begin(), two.end());
    }
    std::vector<uint8_t> payload(payload_size);
    for (size_t i = 0; i < payload_size; ++i) payload[i] = static_cast<uint8_t>(i * 37 + 11);
    std::vector<uint8_t> f = MustWrite(h, side, payload);
    out.push_back({std::move(name), h, std::move(f), HeaderSize(h, payload_size)});
  };
  add("tensor_1bit", Header({64, 14, 14}), 1568);
  FrameHeader h = Header({2, 3, 5, 7}, 3, CoderId::kZstd);
  h.quant.granularity = Granularity::kRegion;
  h.quant.range = RangeKind::kAffine;
  h.quant.region[0] = 4, h.quant.region[1] = 2, h.quant.region[2] = 3;
  h.quant.params_in_frame = true;
  add("region_affine_dynamic", h, 40);
  h = Header({6, 4, 4}, 2, CoderId::kCabac);
  h.quant.granularity = Granularity::kChannel;
  h.quant.reconstruction = Reconstruction::kCentroid;
  h.quant.params_in_frame = true;
  add("channel_centroid_dynamic", h, 9);
  h = Header({300}, 8, CoderId::kLzma);
  h.pipeline_id = 0xFFFFFFFFu;
  add("rank1_8bit_empty_payload", h, 0);
  return out;
}

// -------------------------------------------------------------------------------- round trips

void ExpectSameHeader(const FrameHeader& a, const FrameHeader& b) {
  EXPECT_EQ(a.pipeline_id, b.pipeline_id);
  EXPECT_EQ(a.dims, b.dims);
  EXPECT_EQ(a.coder, b.coder);
  EXPECT_EQ(a.quant.bits, b.quant.bits);
  EXPECT_EQ(a.quant.range, b.quant.range);
  EXPECT_EQ(a.quant.granularity, b.quant.granularity);
  EXPECT_EQ(a.quant.reconstruction, b.quant.reconstruction);
  EXPECT_EQ(a.quant.params_in_frame, b.quant.params_in_frame);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(a.quant.region[k], b.quant.region[k]);
}

TEST(FrameTest, RoundTripRandomHeaders) {
  std::mt19937 rng(TestSeed());
  auto uniform = [&](uint32_t lo, uint32_t hi) { return lo + static_cast<uint32_t>(rng() % (uint64_t{hi} - lo + 1)); };
  for (int iter = 0; iter < 3000; ++iter) {
    FrameHeader h;
    h.pipeline_id = iter % 4 == 0 ? static_cast<uint32_t>(rng()) : uniform(0, 300);
    const int rank = static_cast<int>(uniform(1, 4));
    for (int i = 0; i < rank; ++i) h.dims.push_back(iter % 7 == 0 ? uniform(1, 20000) : uniform(1, 40));
    for (size_t i = 0; ElementCount(h.dims) > (1u << 22); ++i) h.dims[i] = uniform(1, 40);
    h.quant.bits = static_cast<int>(uniform(1, 8));
    h.quant.range = static_cast<RangeKind>(uniform(0, 2));
    h.quant.granularity = static_cast<Granularity>(uniform(0, 2));
    h.quant.reconstruction = static_cast<Reconstruction>(uniform(0, 1));
    h.quant.params_in_frame = uniform(0, 1) == 1;
    h.coder = static_cast<CoderId>(uniform(0, kMaxCoderId));
    const SymbolGeometry g = GeometryOf(h);
    if (h.quant.granularity == Granularity::kRegion) {
      h.quant.region[0] = uniform(1, g.channels);
      h.quant.region[1] = uniform(1, g.height);
      h.quant.region[2] = uniform(1, g.width);
    }
    if (ExpectedSideInfoSize(h) > (1u << 20)) h.quant.params_in_frame = false;
    std::vector<uint8_t> side(ExpectedSideInfoSize(h));
    for (size_t i = 0; i + 1 < side.size(); i += 2) {
      const uint16_t half = static_cast<uint16_t>(rng() & 0xFBFF);  // exponent never all ones: finite
      side[i] = static_cast<uint8_t>(half);
      side[i + 1] = static_cast<uint8_t>(half >> 8);
    }
    std::vector<uint8_t> payload(iter % 5 == 0 ? uniform(0, 20000) : uniform(0, 200));
    for (auto& p : payload) p = static_cast<uint8_t>(rng());

    auto written = WriteFrame(h, side.data(), side.size(), payload.data(), payload.size());
    ASSERT_TRUE(written.ok()) << written.status().ToString();
    const std::vector<uint8_t>& f = written.value();
    ASSERT_EQ(f.size(), HeaderSize(h, payload.size()) + side.size() + payload.size() + 4);
    auto parsed = Parse(f);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    ExpectSameHeader(parsed->header, h);
    ASSERT_EQ(parsed->side_info_size, side.size());
    ASSERT_EQ(parsed->payload_size, payload.size());
    EXPECT_TRUE(std::equal(side.begin(), side.end(), parsed->side_info));
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), parsed->payload));
    EXPECT_EQ(parsed->payload + parsed->payload_size + 4, f.data() + f.size());
    if (HasFailure()) {
      ADD_FAILURE() << "iteration " << iter;
      return;
    }
  }
}

TEST(FrameTest, RegionFieldsAreIgnoredUnlessGranularityIsRegion) {
  FrameHeader h = Header({8, 4, 4});
  h.quant.region[0] = 99;  // stale, not on the wire
  const std::vector<uint8_t> f = MustWrite(h, {}, {1, 2, 3});
  auto p = Parse(f);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->header.quant.region[0], 0u);
}

// The claim in frame.h, the issue and the spec: 12 header bytes + 4 CRC bytes.
TEST(FrameTest, OneBitPerTensorFrameHasSixteenBytesOfOverhead) {
  FrameHeader h = Header({64, 14, 14});
  h.pipeline_id = 3;
  const size_t packed = 64 * 14 * 14 / 8;  // 1568 bytes: coder none
  const std::vector<uint8_t> payload(packed, 0x5A);
  const std::vector<uint8_t> f = MustWrite(h, {}, payload);
  EXPECT_EQ(HeaderSize(h, packed), 12u);
  EXPECT_EQ(f.size() - payload.size(), 16u);
  std::printf("overhead of a 1-bit 64x14x14 per-tensor frame: %zu bytes (header %zu + CRC 4)\n",
              f.size() - payload.size(), HeaderSize(h, packed));
  // Any payload of 128..16383 bytes (a 2-byte payload_len) costs the same; under 128, one less.
  EXPECT_EQ(HeaderSize(h, 128), 12u);
  EXPECT_EQ(HeaderSize(h, 16383), 12u);
  EXPECT_EQ(HeaderSize(h, 100), 11u);
}

// ------------------------------------------------------------------------------ geometry helpers

TEST(FrameTest, FoldingAndRegionCounts) {
  EXPECT_EQ(GeometryOf(Header({5})).width, 5u);
  EXPECT_EQ(GeometryOf(Header({5})).channels, 1u);
  EXPECT_EQ(GeometryOf(Header({3, 5})).height, 3u);
  const SymbolGeometry g4 = GeometryOf(Header({2, 3, 5, 7}, 4));
  EXPECT_EQ(g4.channels, 6u);
  EXPECT_EQ(g4.height, 5u);
  EXPECT_EQ(g4.width, 7u);
  EXPECT_EQ(g4.bits, 4);
  EXPECT_EQ(ElementCount({2, 3, 5, 7}), 210u);
  EXPECT_EQ(ElementCount({}), 0u);
  EXPECT_EQ(ElementCount({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}), ~uint64_t{0});  // saturates

  FrameHeader h = Header({2, 3, 5, 7});
  EXPECT_EQ(RegionCount(h), 1u);
  h.quant.granularity = Granularity::kChannel;
  EXPECT_EQ(RegionCount(h), 6u);
  h.quant.granularity = Granularity::kRegion;
  h.quant.region[0] = 4, h.quant.region[1] = 2, h.quant.region[2] = 3;
  EXPECT_EQ(RegionCount(h), 2u * 3u * 3u);
  EXPECT_EQ(ExpectedSideInfoSize(h), 0u);
  h.quant.params_in_frame = true;
  EXPECT_EQ(ExpectedSideInfoSize(h), 18u * 2);
  h.quant.range = RangeKind::kAffine;
  EXPECT_EQ(ExpectedSideInfoSize(h), 18u * 4);
  h.quant.reconstruction = Reconstruction::kCentroid;
  h.quant.bits = 3;
  EXPECT_EQ(ExpectedSideInfoSize(h), 18u * 8 * 2);
}

TEST(FrameTest, RegionsTileTheGeometryInRegionOrder) {
  FrameHeader h = Header({2, 3, 5, 7});
  h.quant.granularity = Granularity::kRegion;
  h.quant.region[0] = 4, h.quant.region[1] = 2, h.quant.region[2] = 3;
  const SymbolGeometry g = GeometryOf(h);
  std::vector<int> owner(g.count(), -1);
  RegionBox prev{};
  for (uint64_t r = 0; r < RegionCount(h); ++r) {
    const RegionBox b = RegionAt(h, r);
    if (r > 0) {  // channel tiles major, then row tiles, then column tiles
      const auto key = [](const RegionBox& x) { return std::make_tuple(x.c0, x.h0, x.w0); };
      EXPECT_LT(key(prev), key(b));
    }
    prev = b;
    for (uint32_t c = b.c0; c < b.c1; ++c)
      for (uint32_t y = b.h0; y < b.h1; ++y)
        for (uint32_t x = b.w0; x < b.w1; ++x) {
          int& o = owner[(size_t{c} * g.height + y) * g.width + x];
          EXPECT_EQ(o, -1);
          o = static_cast<int>(r);
        }
  }
  for (int o : owner) EXPECT_NE(o, -1);
  const RegionBox last = RegionAt(h, RegionCount(h) - 1);  // the partial corner tile
  EXPECT_EQ(last.c0, 4u);
  EXPECT_EQ(last.c1, 6u);
  EXPECT_EQ(last.h0, 4u);
  EXPECT_EQ(last.h1, 5u);
  EXPECT_EQ(last.w0, 6u);
  EXPECT_EQ(last.w1, 7u);
}

// ---------------------------------------------------------------------------------- bad input

TEST(FrameErrorTest, TruncationAtEveryByteIsTruncated) {
  for (const Sample& s : Samples()) {
    for (size_t n = 0; n < s.frame.size(); ++n) {
      auto r = ParseFrame(s.frame.data(), n);
      ASSERT_EQ(r.status().code(), ErrorCode::kFrameTruncated)
          << s.name << " cut at " << n << " of " << s.frame.size() << ": " << r.status().ToString();
    }
    EXPECT_TRUE(Parse(s.frame).ok()) << s.name;
  }
}

TEST(FrameErrorTest, WrongMagic) {
  std::vector<uint8_t> f = Samples()[0].frame;
  f[0] = 0x28;  // a zstd frame's first byte
  EXPECT_CODE(Parse(f), ErrorCode::kFrameBadMagic);
  f = Samples()[0].frame;
  f[1] ^= 0x01;
  EXPECT_CODE(Parse(f), ErrorCode::kFrameBadMagic);
  EXPECT_CODE(Parse({0x00}), ErrorCode::kFrameBadMagic);  // one wrong byte already says "not a frame"
  EXPECT_CODE(Parse({0xF5, 0x00}), ErrorCode::kFrameBadMagic);
  EXPECT_CODE(Parse({}), ErrorCode::kFrameTruncated);
}

TEST(FrameErrorTest, UnknownVersion) {
  for (uint8_t version : {0, 3, 255}) {
    std::vector<uint8_t> f = Samples()[0].frame;
    f[2] = version;
    Resign(f);
    EXPECT_CODE(Parse(f), ErrorCode::kFrameBadVersion);
  }
  // The version is checked before anything after it: a v3 frame may have any layout.
  EXPECT_CODE(Parse({0xF5, 0x1A, 0x03}), ErrorCode::kFrameBadVersion);
  // The writer refuses versions it cannot write, and writes the older one it can.
  FrameHeader h;
  h.dims = {2, 2, 2};
  const uint8_t payload[1] = {0};
  h.version = 3;
  EXPECT_CODE(WriteFrame(h, nullptr, 0, payload, 1), ErrorCode::kFrameBadVersion);
  h.version = 0;
  EXPECT_CODE(WriteFrame(h, nullptr, 0, payload, 1), ErrorCode::kFrameBadVersion);
}

// Versions 1 and 2 share the header: a frame differs only in its version byte (and CRC), and
// parsing reports which it is, for the decoder to pick the cabac layout.
TEST(FrameTest, VersionOneAndTwoShareTheLayout) {
  for (const auto& sample : Samples()) {
    auto v2 = ParseFrame(sample.frame.data(), sample.frame.size());
    ASSERT_TRUE(v2.ok()) << v2.status().ToString();
    EXPECT_EQ(v2->header.version, kFrameVersion);
    FrameHeader h = v2->header;
    h.version = 1;
    auto written = WriteFrame(h, v2->side_info, v2->side_info_size, v2->payload, v2->payload_size);
    ASSERT_TRUE(written.ok()) << written.status().ToString();
    ASSERT_EQ(written->size(), sample.frame.size());
    EXPECT_EQ((*written)[2], 1);
    EXPECT_TRUE(std::equal(written->begin() + 3, written->end() - 4, sample.frame.begin() + 3));
    auto v1 = ParseFrame(written->data(), written->size());
    ASSERT_TRUE(v1.ok()) << v1.status().ToString();
    EXPECT_EQ(v1->header.version, 1);
    EXPECT_EQ(CabacLayoutOf(v1->header.version), kCabacLayoutPlain);
    EXPECT_EQ(CabacLayoutOf(v2->header.version), kCabacLayoutGroups);
  }
}

TEST(FrameErrorTest, ReservedBitSet) {
  const auto f = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 3, false, /*reserved=*/true))
                     .var(0).var(4).var(2).var(2).var(0).var(2).bytes({0, 0}).WithCrc();
  EXPECT_CODE(Parse(f), ErrorCode::kFrameBadField);
}

TEST(FrameErrorTest, InvalidEnums) {
  auto frame = [](uint8_t a, uint8_t b) {
    return Raw().head().u8(a).u8(b).var(0).var(4).var(2).var(2).var(0).var(2).bytes({0, 0}).WithCrc();
  };
  EXPECT_TRUE(Parse(frame(FlagsA(1, 0, 0, 0), FlagsB(0, 3, false))).ok());
  EXPECT_CODE(Parse(frame(FlagsA(1, 0, /*granularity=*/3, 0), FlagsB(0, 3, false))), ErrorCode::kFrameBadField);
  EXPECT_CODE(Parse(frame(FlagsA(1, /*range=*/3, 0, 0), FlagsB(0, 3, false))), ErrorCode::kFrameBadField);
  EXPECT_CODE(Parse(frame(FlagsA(1, 0, 0, 0), FlagsB(/*coder=*/15, 3, false))), ErrorCode::kFrameBadField);
  EXPECT_CODE(Parse(frame(FlagsA(1, 0, 0, 0), FlagsB(kMaxCoderId + 1, 3, false))), ErrorCode::kFrameBadField);
  // Bad enums are reported even when the frame is cut right after them.
  EXPECT_CODE(Parse(Raw().head().u8(FlagsA(1, 0, 3, 0)).b), ErrorCode::kFrameBadField);
}

TEST(FrameErrorTest, MalformedVarintsAreBadFields) {
  // pipeline_id over 32 bits
  auto f = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 1, false)).var(uint64_t{1} << 32)
               .var(8).var(0).var(1).u8(0).WithCrc();
  EXPECT_CODE(Parse(f), ErrorCode::kFrameBadField);
  // pipeline_id not in its shortest form
  f = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 1, false)).u8(0x80).u8(0x00)
          .var(8).var(0).var(1).u8(0).WithCrc();
  EXPECT_CODE(Parse(f), ErrorCode::kFrameBadField);
  // an 11-byte payload_len
  Raw r = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 1, false)).var(0).var(8).var(0);
  for (int i = 0; i < 10; ++i) r.u8(0x80);
  r.u8(0x01);
  EXPECT_CODE(Parse(r.WithCrc()), ErrorCode::kFrameBadField);
}

TEST(FrameErrorTest, ImpossibleShapes) {
  auto dims_frame = [](std::vector<uint64_t> dims) {
    Raw r = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, static_cast<int>(dims.size()), false)).var(0);
    for (uint64_t d : dims) r.var(d);
    return r.var(0).var(1).u8(0).WithCrc();
  };
  EXPECT_TRUE(Parse(dims_frame({2, 2, 2})).ok());
  EXPECT_CODE(Parse(dims_frame({64, 0, 14})), ErrorCode::kFrameBadShape);
  EXPECT_CODE(Parse(dims_frame({(1u << 20) + 1})), ErrorCode::kFrameBadShape);          // over max_dim
  EXPECT_CODE(Parse(dims_frame({uint64_t{1} << 40})), ErrorCode::kFrameBadShape);        // over 32 bits
  {
    // 2^60 elements: rejected from the header alone, without allocating anything sized by it.
    const auto f = dims_frame({1u << 20, 1u << 20, 1u << 20});
    ScopedAllocationWatch watch;
    auto r = Parse(f);
    EXPECT_CODE(r, ErrorCode::kFrameBadShape);
    EXPECT_LT(watch.largest(), 4096u);
  }
  EXPECT_CODE(Parse(dims_frame({1u << 13, 1u << 13, 1u << 1})), ErrorCode::kFrameBadShape);  // 2^27 > 2^26
  // A server may tighten the limits per pipeline.
  FrameLimits tight;
  tight.max_elements = 7;
  EXPECT_CODE(Parse(dims_frame({2, 2, 2}), tight), ErrorCode::kFrameBadShape);
  tight = {};
  tight.max_dim = 1;
  EXPECT_CODE(Parse(dims_frame({2, 1, 1}), tight), ErrorCode::kFrameBadShape);
  // Folded N*C must fit a SymbolGeometry even when the element limit is generous.
  FrameLimits huge;
  huge.max_elements = uint64_t{1} << 40;
  huge.max_dim = 1u << 20;
  EXPECT_CODE(Parse(dims_frame({1u << 17, 1u << 17, 1, 1}), huge), ErrorCode::kFrameBadShape);
}

TEST(FrameErrorTest, RegionTileOutsideTheGeometry) {
  auto region_frame = [](uint64_t rc, uint64_t rh, uint64_t rw) {
    return Raw().head().u8(FlagsA(1, 0, 2, 0)).u8(FlagsB(0, 3, false)).var(0).var(4).var(2).var(2)
        .var(rc).var(rh).var(rw).var(0).var(2).bytes({0, 0}).WithCrc();
  };
  EXPECT_TRUE(Parse(region_frame(4, 2, 2)).ok());
  EXPECT_TRUE(Parse(region_frame(3, 1, 2)).ok());
  EXPECT_CODE(Parse(region_frame(5, 2, 2)), ErrorCode::kFrameBadShape);
  EXPECT_CODE(Parse(region_frame(4, 3, 2)), ErrorCode::kFrameBadShape);
  EXPECT_CODE(Parse(region_frame(4, 2, 1000)), ErrorCode::kFrameBadShape);
  EXPECT_CODE(Parse(region_frame(0, 1, 1)), ErrorCode::kFrameBadShape);
}

TEST(FrameErrorTest, SideLenMustMatchTheHeader) {
  // params in frame, zero-based, per tensor: one half expected.
  auto f = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 1, true)).var(0).var(8)
               .var(4).var(1).bytes(HalfBytes({1.0f, 2.0f})).u8(0).WithCrc();
  EXPECT_CODE(Parse(f), ErrorCode::kFrameSideInfo);
  f = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 1, true)).var(0).var(8)
          .var(2).var(1).bytes(HalfBytes({1.0f})).u8(0).WithCrc();
  EXPECT_TRUE(Parse(f).ok());
  // params not in frame: side_len must be 0.
  f = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 1, false)).var(0).var(8)
          .var(2).var(1).bytes(HalfBytes({1.0f})).u8(0).WithCrc();
  EXPECT_CODE(Parse(f), ErrorCode::kFrameSideInfo);
  // centroid reconstruction, 2 bits, channel granularity over 3 channels: 3 * 4 halves.
  const std::vector<float> centroids(12, 0.5f);
  f = Raw().head().u8(FlagsA(2, 0, 1, 1)).u8(FlagsB(0, 3, true)).var(0).var(3).var(1).var(1)
          .var(24).var(1).bytes(HalfBytes(centroids)).u8(0).WithCrc();
  EXPECT_TRUE(Parse(f).ok());
}

TEST(FrameErrorTest, NonFiniteSideInfo) {
  for (uint16_t bad : {uint16_t{0x7E00}, uint16_t{0x7C00}, uint16_t{0xFC00}, uint16_t{0x7C01}}) {
    auto f = Raw().head().u8(FlagsA(1, 2, 0, 0)).u8(FlagsB(0, 1, true)).var(0).var(8)
                 .var(4).var(1).bytes(HalfBytes({-1.0f})).u8(static_cast<uint8_t>(bad)).u8(static_cast<uint8_t>(bad >> 8))
                 .u8(0).WithCrc();
    EXPECT_CODE(Parse(f), ErrorCode::kFrameSideInfo);
  }
}

TEST(FrameErrorTest, LengthsPastTheEnd) {
  const std::vector<uint8_t> payload = {1, 2, 3, 4};
  auto with_payload_len = [&](uint64_t len) {
    return Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 1, false)).var(0).var(32)
        .var(0).var(len).bytes(payload).WithCrc();
  };
  EXPECT_TRUE(Parse(with_payload_len(4)).ok());
  {
    // A length no frame can have under the limits: an overrun, whatever the buffer holds.
    ScopedAllocationWatch watch;
    EXPECT_CODE(Parse(with_payload_len(uint64_t{1} << 40)), ErrorCode::kFrameLengthOverrun);
    EXPECT_CODE(Parse(with_payload_len(~uint64_t{0})), ErrorCode::kFrameLengthOverrun);
    EXPECT_LT(watch.largest(), 4096u);
  }
  FrameLimits tight;
  tight.max_frame_bytes = 64;
  EXPECT_CODE(Parse(with_payload_len(100), tight), ErrorCode::kFrameLengthOverrun);
  // A length within the limits that the buffer does not hold is indistinguishable from a
  // frame cut short: kFrameTruncated (documented in the spec).
  EXPECT_CODE(Parse(with_payload_len(5)), ErrorCode::kFrameTruncated);
  EXPECT_CODE(Parse(with_payload_len(100)), ErrorCode::kFrameTruncated);
  // A buffer over the limit.
  tight.max_frame_bytes = 10;
  EXPECT_CODE(Parse(with_payload_len(4), tight), ErrorCode::kFrameLengthOverrun);
}

TEST(FrameErrorTest, TrailingBytes) {
  std::vector<uint8_t> f = Samples()[0].frame;
  f.push_back(0x00);
  EXPECT_CODE(Parse(f), ErrorCode::kFrameLengthOverrun);
  // Two valid frames back to back are not one frame.
  const std::vector<uint8_t> one = Samples()[3].frame;
  std::vector<uint8_t> two = one;
  two.insert(two.end(), one.begin(), one.end());
  EXPECT_CODE(Parse(two), ErrorCode::kFrameLengthOverrun);
  // payload_len one less than what is there.
  const std::vector<uint8_t> payload = {1, 2, 3, 4};
  const auto short_len = Raw().head().u8(FlagsA(1, 0, 0, 0)).u8(FlagsB(0, 1, false)).var(0).var(32)
                             .var(0).var(3).bytes(payload).WithCrc();
  EXPECT_CODE(Parse(short_len), ErrorCode::kFrameLengthOverrun);
}

TEST(FrameErrorTest, EveryBitFlipIsCaught) {
  for (const Sample& s : Samples()) {
    for (size_t i = 0; i < s.frame.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::vector<uint8_t> f = s.frame;
        f[i] ^= static_cast<uint8_t>(1 << bit);
        auto r = Parse(f);
        ASSERT_FALSE(r.ok()) << s.name << " byte " << i << " bit " << bit;
        if (i >= s.body_offset) {
          // Side info, payload and CRC are only covered by the CRC.
          ASSERT_EQ(r.status().code(), ErrorCode::kFrameCrcMismatch)
              << s.name << " byte " << i << " bit " << bit << ": " << r.status().ToString();
        } else {
          // Header bytes fail as the field they break (magic, version, flags, shape, lengths) or,
          // when the flip leaves a consistent header, as a CRC mismatch.
          const int code = static_cast<int>(r.status().code());
          ASSERT_GE(code, static_cast<int>(ErrorCode::kFrameTruncated)) << r.status().ToString();
          ASSERT_LE(code, static_cast<int>(ErrorCode::kFrameSideInfo)) << r.status().ToString();
        }
      }
    }
  }
}

TEST(FrameErrorTest, ParserNeverAllocatesMoreThanTheHeader) {
  // Even for a valid frame the parser allocates only the dims vector: side info and payload are
  // views into the caller's buffer.
  const std::vector<uint8_t> f = Samples()[0].frame;
  ScopedAllocationWatch watch;
  auto r = Parse(f);
  ASSERT_TRUE(r.ok());
  EXPECT_GT(watch.largest(), 0u);  // the watch works: it saw the dims vector
  EXPECT_LE(watch.largest(), 4 * sizeof(uint32_t));
}

TEST(FrameErrorTest, SymbolsOutOfRange) {
  const std::vector<uint8_t> ok = {0, 1, 1, 0};
  EXPECT_TRUE(CheckSymbolRange(ok.data(), ok.size(), 1).ok());
  const std::vector<uint8_t> bad = {0, 1, 2, 0};
  const Status s = CheckSymbolRange(bad.data(), bad.size(), 1);
  EXPECT_EQ(s.code(), ErrorCode::kFrameSymbolRange);
  EXPECT_NE(s.message().find("symbol 2"), std::string::npos) << s.message();
  EXPECT_TRUE(CheckSymbolRange(bad.data(), bad.size(), 2).ok());
  const std::vector<uint8_t> all(1000, 255);
  EXPECT_TRUE(CheckSymbolRange(all.data(), all.size(), 8).ok());
  EXPECT_EQ(CheckSymbolRange(all.data(), all.size(), 7).code(), ErrorCode::kFrameSymbolRange);
  EXPECT_TRUE(CheckSymbolRange(nullptr, 0, 1).ok());
}

// --------------------------------------------------------------------------- writer validation

TEST(FrameWriteTest, RejectsWhatTheParserWouldReject) {
  const std::vector<uint8_t> payload = {1};
  auto write = [&](const FrameHeader& h, const std::vector<uint8_t>& side = {}) {
    return WriteFrame(h, side.data(), side.size(), payload.data(), payload.size());
  };
  EXPECT_TRUE(write(Header({4})).ok());
  EXPECT_CODE(write(Header({4}, 0)), ErrorCode::kFrameBadField);
  EXPECT_CODE(write(Header({4}, 9)), ErrorCode::kFrameBadField);
  FrameHeader h = Header({4});
  h.coder = static_cast<CoderId>(kMaxCoderId + 1);
  EXPECT_CODE(write(h), ErrorCode::kFrameBadField);
  h = Header({4});
  h.quant.granularity = static_cast<Granularity>(3);
  EXPECT_CODE(write(h), ErrorCode::kFrameBadField);
  EXPECT_CODE(write(Header({})), ErrorCode::kFrameBadShape);
  EXPECT_CODE(write(Header({1, 1, 1, 1, 1})), ErrorCode::kFrameBadShape);
  EXPECT_CODE(write(Header({4, 0})), ErrorCode::kFrameBadShape);
  EXPECT_CODE(write(Header({1u << 20, 1u << 20})), ErrorCode::kFrameBadShape);
  h = Header({4, 4, 4});
  h.quant.granularity = Granularity::kRegion;
  h.quant.region[0] = 5, h.quant.region[1] = 1, h.quant.region[2] = 1;
  EXPECT_CODE(write(h), ErrorCode::kFrameBadShape);
  h = Header({4});
  h.quant.params_in_frame = true;
  EXPECT_CODE(write(h), ErrorCode::kFrameSideInfo);  // no side info given
  EXPECT_TRUE(write(h, HalfBytes({3.0f})).ok());
  EXPECT_CODE(write(h, {0x00, 0x7E}), ErrorCode::kFrameSideInfo);  // NaN
  EXPECT_CODE(WriteFrame(Header({4}), nullptr, 0, nullptr, 5), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer::codec
