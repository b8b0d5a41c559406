// The round-trip sweep: decode(encode(x)) equals the quantizer's reconstruction bit for bit for
// every bits x granularity x reconstruction x params-in-frame x coder, on random shapes.
#include "codec/feature_codec.h"

#include <gtest/gtest.h>

#include "core/bytes.h"
#include "test_seed.h"

#include <random>

#include <torch/torch.h>

namespace splitinfer::codec {
namespace {

using ::splitinfer::testing::TestSeed;

struct Case {
  int bits;
  Granularity granularity;
  Reconstruction reconstruction;
  bool dynamic;
  CoderId coder;
};

std::string Name(const Case& c) {
  return std::to_string(c.bits) + "bit/" + GranularityName(c.granularity) + "/" +
         (c.reconstruction == Reconstruction::kCentroid ? "centroid" : "level") + "/" +
         (c.dynamic ? "dynamic" : "static") + "/" + CoderName(c.coder);
}

TEST(FeatureCodecTest, RoundTripSweepIsBitExact) {
  std::mt19937_64 rng(TestSeed());
  torch::manual_seed(static_cast<int64_t>(TestSeed() & 0x7fffffff));
  int cases = 0;
  for (int bits = 1; bits <= 8; ++bits) {
    for (auto g : {Granularity::kTensor, Granularity::kChannel, Granularity::kRegion}) {
      for (auto recon : {Reconstruction::kLevel, Reconstruction::kCentroid}) {
        for (bool dynamic : {false, true}) {
          for (auto coder : {CoderId::kNone, CoderId::kLzma, CoderId::kZstd, CoderId::kCabac}) {
            if (!CoderBuiltIn(coder)) continue;  // lzma without liblzma
            const Case c{bits, g, recon, dynamic, coder};
            std::uniform_int_distribution<int> side(1, 12);
            const std::vector<int64_t> dims = {side(rng), side(rng), side(rng)};
            QuantSpec spec;
            spec.bits = bits;
            spec.granularity = g;
            spec.reconstruction = recon;
            spec.params_in_frame = dynamic;
            spec.range = static_cast<RangeKind>(rng() % 3);
            spec.region[0] = 1 + rng() % 4, spec.region[1] = 1 + rng() % 5, spec.region[2] = 1 + rng() % 5;
            auto samples = torch::randn({6, dims[0], dims[1], dims[2]});
            if (spec.range == RangeKind::kZeroBased) samples = torch::relu(samples);
            auto quant = Calibrate(spec, samples);
            ASSERT_TRUE(quant.ok()) << Name(c) << ": " << quant.status().ToString();
            FeatureCodec codec{quant.value(), coder, {}, /*pipeline_id=*/7};
            auto x = samples[5];
            auto encoded = EncodeFeature(codec, x);
            ASSERT_TRUE(encoded.ok()) << Name(c) << ": " << encoded.status().ToString();
            auto decoded = DecodeFeature(codec, encoded->frame.data(), encoded->frame.size());
            ASSERT_TRUE(decoded.ok()) << Name(c) << ": " << decoded.status().ToString();
            auto reference = Reconstruct(codec, x);
            ASSERT_TRUE(reference.ok());
            ASSERT_TRUE(torch::equal(decoded.value(), reference.value())) << Name(c) << " seed " << TestSeed();
            ++cases;
          }
        }
      }
    }
  }
  const int coders = CoderBuiltIn(CoderId::kLzma) ? 4 : 3;
  EXPECT_EQ(cases, 8 * 3 * 2 * 2 * coders);
}

FeatureCodec SmallCodec(uint32_t pipeline_id, int bits = 1) {
  QuantSpec spec;
  spec.bits = bits;
  auto q = Calibrate(spec, torch::relu(torch::randn({4, 8, 6, 6}))).value();
  return FeatureCodec{q, CoderId::kCabac, {}, pipeline_id};
}

TEST(FeatureCodecTest, FrameForAnotherPipelineIsAMismatch) {
  auto a = SmallCodec(1), b = SmallCodec(2);
  auto frame = EncodeFeature(a, torch::relu(torch::randn({8, 6, 6}))).value().frame;
  auto r = DecodeFeature(b, frame.data(), frame.size());
  ASSERT_EQ(r.status().code(), ErrorCode::kMismatch);
  EXPECT_NE(r.status().message().find("pipeline 1"), std::string::npos);
}

TEST(FeatureCodecTest, FrameWithOtherBitsIsAMismatch) {
  auto a = SmallCodec(1, 1), b = SmallCodec(1, 2);
  auto frame = EncodeFeature(a, torch::relu(torch::randn({8, 6, 6}))).value().frame;
  EXPECT_EQ(DecodeFeature(b, frame.data(), frame.size()).status().code(), ErrorCode::kMismatch);
}

// A node of an older release sends version 1 frames (cabac layout 1); they decode to the same
// reconstruction as version 2 ones. A version 1 frame relabelled as version 2 is refused here as
// a bad payload (the cabac decoder accepts only the bytes its encoder would write for what it
// decoded, so a payload of the other layout fails unless it happens to be one).
TEST(FeatureCodecTest, VersionOneFramesStillDecode) {
  torch::manual_seed(23);
  for (int bits : {1, 2}) {
    for (CoderId coder : {CoderId::kCabac, CoderId::kZstd}) {
      SCOPED_TRACE(std::to_string(bits) + " bits, " + CoderName(coder));
      FeatureCodec v2 = SmallCodec(5, bits);
      v2.coder = coder;
      FeatureCodec v1 = v2;
      v1.frame_version = 1;
      const torch::Tensor x = torch::relu(torch::randn({8, 6, 6}));
      const auto want = Reconstruct(v2, x).value();
      auto f1 = EncodeFeature(v1, x).value().frame, f2 = EncodeFeature(v2, x).value().frame;
      ASSERT_EQ(f1[2], 1);
      ASSERT_EQ(f2[2], 2);
      for (const auto* f : {&f1, &f2}) {
        auto got = DecodeFeature(v2, f->data(), f->size());  // the server's codec: any version
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        EXPECT_TRUE(torch::equal(got.value(), want));
      }
      if (coder != CoderId::kCabac) continue;
      auto relabelled = f1;  // the same payload read as layout 2
      relabelled[2] = 2;
      const uint32_t crc = Crc32c(relabelled.data(), relabelled.size() - 4);
      for (int i = 0; i < 4; ++i) relabelled[relabelled.size() - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
      EXPECT_EQ(DecodeFeature(v2, relabelled.data(), relabelled.size()).status().code(), ErrorCode::kFramePayload);
    }
  }
}

TEST(FeatureCodecTest, WrongShapeFeatureIsAMismatch) {
  auto a = SmallCodec(1);
  EXPECT_EQ(EncodeFeature(a, torch::zeros({8, 6, 5})).status().code(), ErrorCode::kMismatch);
}

TEST(FeatureCodecTest, CorruptFramesGiveFrameCodesNotCrashes) {
  torch::manual_seed(17);
  auto a = SmallCodec(3);
  auto frame = EncodeFeature(a, torch::relu(torch::randn({8, 6, 6}))).value().frame;
  auto truncated = DecodeFeature(a, frame.data(), frame.size() / 2);
  EXPECT_EQ(truncated.status().code(), ErrorCode::kFrameTruncated);
  // A flipped bit in the payload is caught by the CRC. (The middle byte of the frame may fall in
  // the side information instead, whose floats are checked before the CRC: kFrameSideInfo. This
  // test once flipped that byte, and failed whenever the flip made a float non-finite.)
  auto view = ParseFrame(frame.data(), frame.size());
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  ASSERT_GT(view->payload_size, 0u);
  const size_t in_payload = static_cast<size_t>(view->payload - frame.data()) + view->payload_size / 2;
  auto flipped = frame;
  flipped[in_payload] ^= 0x40;
  EXPECT_EQ(DecodeFeature(a, flipped.data(), flipped.size()).status().code(), ErrorCode::kFrameCrcMismatch);
  // Anywhere else, every single-bit flip is refused with a frame code, never accepted or a crash.
  for (size_t i = 0; i < frame.size(); ++i) {
    auto f = frame;
    f[i] ^= 0x40;
    const auto code = DecodeFeature(a, f.data(), f.size()).status().code();
    EXPECT_TRUE(static_cast<int>(code) >= static_cast<int>(ErrorCode::kFrameTruncated) || code == ErrorCode::kMismatch)
        << "byte " << i << ": code " << static_cast<int>(code);
  }
}

}  // namespace
}  // namespace splitinfer::codec
