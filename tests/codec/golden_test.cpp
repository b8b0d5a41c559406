// Golden frames (tests/golden/v1 and v2, docs/bitstream_format.md): bytes written once by
// tests/golden/make_golden.cpp that every later build must parse and decode to the stored
// symbols. This test never writes them. A failure here is a format break: fix the decoder, or
// bump the version and add tests/golden/v<N+1> (keeping v1 decodable).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "codec/frame/frame.h"
#include "codec/lossless/cabac.h"
#include "codec/lossless/lossless.h"

namespace splitinfer::codec {
namespace {

namespace fs = std::filesystem;

// One directory per frame version, each with the same set of frames (v2 differs from v1 in the
// cabac payloads only, but every file is frozen on its own).
fs::path GoldenDir(int version) {
  return fs::path(SPLITINFER_SOURCE_DIR) / "tests" / "golden" / ("v" + std::to_string(version));
}

// What each golden frame is, so that a mislabelled or swapped file is caught and the coverage
// the README promises is checked.
struct Golden {
  const char* name;
  CoderId coder;
  int bits;
  Granularity granularity;
  bool params_in_frame;
  Reconstruction reconstruction;
  size_t rank;
};

const Golden kGoldens[] = {
    {"none_b1_tensor", CoderId::kNone, 1, Granularity::kTensor, false, Reconstruction::kLevel, 3},
    {"lzma_b1_tensor", CoderId::kLzma, 1, Granularity::kTensor, false, Reconstruction::kLevel, 3},
    {"zstd_b1_tensor", CoderId::kZstd, 1, Granularity::kTensor, false, Reconstruction::kLevel, 3},
    {"cabac_b1_tensor", CoderId::kCabac, 1, Granularity::kTensor, false, Reconstruction::kLevel, 3},
    {"cabac_trained_b1_tensor", CoderId::kCabacTrained, 1, Granularity::kTensor, false, Reconstruction::kLevel, 3},
    {"zstd_b2_channel_dynamic", CoderId::kZstd, 2, Granularity::kChannel, true, Reconstruction::kLevel, 3},
    {"cabac_b2_region_affine_dynamic", CoderId::kCabac, 2, Granularity::kRegion, true, Reconstruction::kLevel, 3},
    {"cabac_trained_b2_channel", CoderId::kCabacTrained, 2, Granularity::kChannel, false, Reconstruction::kLevel, 3},
    {"none_b3_region_symmetric_dynamic_rank4", CoderId::kNone, 3, Granularity::kRegion, true, Reconstruction::kLevel, 4},
    {"lzma_b3_channel_centroid_dynamic", CoderId::kLzma, 3, Granularity::kChannel, true, Reconstruction::kCentroid, 3},
    {"cabac_b3_tensor_symmetric", CoderId::kCabac, 3, Granularity::kTensor, false, Reconstruction::kLevel, 3},
    {"cabac_b8_tensor_affine_dynamic_rank2", CoderId::kCabac, 8, Granularity::kTensor, true, Reconstruction::kLevel, 2},
    {"zstd_b8_tensor_centroid_rank1", CoderId::kZstd, 8, Granularity::kTensor, false, Reconstruction::kCentroid, 1},
    {"lzma_b8_region_affine_dynamic_rank4", CoderId::kLzma, 8, Granularity::kRegion, true, Reconstruction::kLevel, 4},
    {"none_b1_single_element", CoderId::kNone, 1, Granularity::kTensor, false, Reconstruction::kLevel, 1},
};

struct VersionedGolden {
  int version;
  Golden golden;
};
std::vector<VersionedGolden> AllGoldens() {
  std::vector<VersionedGolden> out;
  for (int version = kOldestFrameVersion; version <= kFrameVersion; ++version) {
    for (const Golden& g : kGoldens) out.push_back({version, g});
  }
  return out;
}

void PrintTo(const VersionedGolden& g, std::ostream* os) { *os << "v" << g.version << "_" << g.golden.name; }

std::vector<uint8_t> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class GoldenTest : public ::testing::TestWithParam<VersionedGolden> {};

TEST_P(GoldenTest, DecodesToTheStoredSymbols) {
  const Golden& g = GetParam().golden;
  const fs::path dir = GoldenDir(GetParam().version);
  const std::vector<uint8_t> frame = ReadFile(dir / (std::string(g.name) + ".frame"));
  const std::vector<uint8_t> want = ReadFile(dir / (std::string(g.name) + ".symbols"));
  ASSERT_FALSE(frame.empty());

  Result<FrameView> parsed = ParseFrame(frame.data(), frame.size());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const FrameView& v = parsed.value();
  EXPECT_EQ(v.header.version, GetParam().version);
  EXPECT_EQ(v.header.coder, g.coder);
  EXPECT_EQ(v.header.quant.bits, g.bits);
  EXPECT_EQ(v.header.quant.granularity, g.granularity);
  EXPECT_EQ(v.header.quant.params_in_frame, g.params_in_frame);
  EXPECT_EQ(v.header.quant.reconstruction, g.reconstruction);
  EXPECT_EQ(v.header.dims.size(), g.rank);
  const SymbolGeometry geometry = GeometryOf(v.header);
  ASSERT_EQ(geometry.count(), want.size());

  if (!CoderBuiltIn(g.coder)) GTEST_SKIP() << CoderName(g.coder) << " is not built in (no liblzma)";
  CoderOptions options;
  Result<CabacModel> model = InvalidArgument("no model");
  if (g.coder == CoderId::kCabacTrained) {
    const std::vector<uint8_t> bytes = ReadFile(dir / (std::string(g.name) + ".model"));
    model = CabacModel::Parse(bytes.data(), bytes.size());
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    options.cabac_model = &model.value();
  }
  std::vector<uint8_t> got(geometry.count(), 0xEE);
  const Status s = DecodeFrameSymbols(v, options, got.data());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(got == want) << g.name << ": decoded symbols differ from " << g.name << ".symbols";

  // The frame layer is byte-stable: writing the parsed frame reproduces the golden bytes.
  Result<std::vector<uint8_t>> rewritten = WriteFrame(v.header, v.side_info, v.side_info_size, v.payload, v.payload_size);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status().ToString();
  EXPECT_TRUE(rewritten.value() == frame);
  // So is bit packing (coder none is nothing else).
  if (g.coder == CoderId::kNone) {
    Result<std::vector<uint8_t>> payload = EncodeSymbols(CoderId::kNone, want.data(), geometry, CoderOptions{});
    ASSERT_TRUE(payload.ok());
    EXPECT_TRUE(std::equal(payload->begin(), payload->end(), v.payload, v.payload + v.payload_size) &&
                payload->size() == v.payload_size);
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, GoldenTest, ::testing::ValuesIn(AllGoldens()),
                         [](const ::testing::TestParamInfo<VersionedGolden>& info) {
                           return "v" + std::to_string(info.param.version) + "_" + info.param.golden.name;
                         });

TEST(GoldenSetTest, EveryFrameInTheDirectoryIsListed) {
  std::set<std::string> listed;
  for (const Golden& g : kGoldens) listed.insert(g.name);
  for (int version = kOldestFrameVersion; version <= kFrameVersion; ++version) {
    size_t frames = 0;
    for (const auto& e : fs::directory_iterator(GoldenDir(version))) {
      if (e.path().extension() != ".frame") continue;
      ++frames;
      EXPECT_TRUE(listed.count(e.path().stem().string())) << e.path() << " is not listed in golden_test.cpp";
    }
    EXPECT_EQ(frames, listed.size()) << GoldenDir(version);
  }
}

// Version 2 changed the cabac payloads only: every other file of v2 is byte for byte the v1 file
// but for the version byte and the CRC, and every symbol file is the same.
TEST(GoldenSetTest, VersionTwoChangedOnlyTheCabacPayloads) {
  for (const Golden& g : kGoldens) {
    SCOPED_TRACE(g.name);
    const std::vector<uint8_t> a = ReadFile(GoldenDir(1) / (std::string(g.name) + ".frame"));
    const std::vector<uint8_t> b = ReadFile(GoldenDir(2) / (std::string(g.name) + ".frame"));
    EXPECT_TRUE(ReadFile(GoldenDir(1) / (std::string(g.name) + ".symbols")) ==
                ReadFile(GoldenDir(2) / (std::string(g.name) + ".symbols")));
    ASSERT_GE(a.size(), 7u);
    ASSERT_GE(b.size(), 7u);
    EXPECT_EQ(a[2], 1);
    EXPECT_EQ(b[2], 2);
    if (g.coder != CoderId::kCabac && g.coder != CoderId::kCabacTrained) {
      EXPECT_TRUE(a.size() == b.size() && std::equal(a.begin() + 3, a.end() - 4, b.begin() + 3));
    }
  }
}

TEST(GoldenSetTest, CoversEveryCoderBitWidthAndLayout) {
  std::set<int> coders, bits, granularities;
  bool dynamic = false, calibrated = false, centroid = false;
  for (const Golden& g : kGoldens) {
    coders.insert(static_cast<int>(g.coder));
    bits.insert(g.bits);
    granularities.insert(static_cast<int>(g.granularity));
    (g.params_in_frame ? dynamic : calibrated) = true;
    centroid |= g.reconstruction == Reconstruction::kCentroid;
  }
  EXPECT_EQ(coders.size(), static_cast<size_t>(kMaxCoderId + 1));
  for (int b : {1, 2, 3, 8}) EXPECT_TRUE(bits.count(b)) << b;
  EXPECT_EQ(granularities.size(), 3u);
  EXPECT_TRUE(dynamic && calibrated && centroid);
}

}  // namespace
}  // namespace splitinfer::codec
