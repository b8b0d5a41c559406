// Session frames (docs/bitstream_format.md, "Session frames"): round trips against the full
// frame they replace, the 4-byte overhead, one crafted frame per error, and the key that keeps a
// frame of one session from decoding under another's header.
#include "codec/frame/session.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "codec/frame/frame.h"
#include "test_seed.h"

namespace splitinfer::codec {
namespace {

using ::splitinfer::testing::TestSeed;

FrameHeader ShippedHeader() {  // models/fmnist_best.yaml's frames: 8x4x4, 2 bits, cabac
  FrameHeader h;
  h.pipeline_id = 26;
  h.dims = {8, 4, 4};
  h.quant.bits = 2;
  h.coder = CoderId::kCabac;
  return h;
}

FrameHeader WithSideInfo() {  // ranges sent per frame: one half per channel
  FrameHeader h;
  h.pipeline_id = 7;
  h.dims = {4, 3, 3};
  h.quant.bits = 4;
  h.quant.granularity = Granularity::kChannel;
  h.quant.params_in_frame = true;
  h.coder = CoderId::kZstd;
  return h;
}

std::vector<uint8_t> HalfOnes(size_t halves) {  // 1.0 as a half is 0x3C00
  std::vector<uint8_t> v;
  for (size_t i = 0; i < halves; ++i) {
    v.push_back(0x00);
    v.push_back(0x3C);
  }
  return v;
}

TEST(SessionFrameTest, RoundTripCarriesOnlyWhatVaries) {
  std::mt19937 rng(TestSeed());
  for (const FrameHeader& h : {ShippedHeader(), WithSideInfo()}) {
    auto session = OpenSession(h);
    ASSERT_TRUE(session.ok()) << session.status().ToString();
    const auto side = HalfOnes(static_cast<size_t>(ExpectedSideInfoSize(h)) / 2);
    for (size_t payload_size : {0, 1, 27, 300}) {
      std::vector<uint8_t> payload(payload_size);
      for (auto& b : payload) b = static_cast<uint8_t>(rng());
      auto frame = WriteSessionFrame(*session, side.data(), side.size(), payload.data(), payload.size());
      ASSERT_TRUE(frame.ok()) << frame.status().ToString();
      ASSERT_EQ(frame->size(), kSessionFrameOverhead + side.size() + payload_size);
      EXPECT_TRUE(IsSessionFrame(frame->data(), frame->size()));
      auto full = WriteFrame(h, side.data(), side.size(), payload.data(), payload.size());
      ASSERT_TRUE(full.ok());
      EXPECT_FALSE(IsSessionFrame(full->data(), full->size()));
      // The full frame of the shipped pipeline has 15 bytes of header and CRC; a session frame 4.
      EXPECT_GE(full->size() - frame->size(), 8u) << "payload " << payload_size;

      auto view = ParseSessionFrame(*session, frame->data(), frame->size());
      ASSERT_TRUE(view.ok()) << view.status().ToString();
      EXPECT_EQ(view->header.pipeline_id, h.pipeline_id);
      EXPECT_EQ(view->header.dims, h.dims);
      EXPECT_EQ(view->header.coder, h.coder);
      ASSERT_EQ(view->side_info_size, side.size());
      EXPECT_EQ(std::vector<uint8_t>(view->side_info, view->side_info + view->side_info_size), side);
      ASSERT_EQ(view->payload_size, payload_size);
      EXPECT_EQ(std::vector<uint8_t>(view->payload, view->payload + view->payload_size), payload);
    }
  }
}

TEST(SessionFrameTest, ShippedPipelineOverheadIsFourBytes) {
  const FrameHeader h = ShippedHeader();
  auto session = OpenSession(h);
  ASSERT_TRUE(session.ok());
  const std::vector<uint8_t> payload(27, 0x5A);
  auto frame = WriteSessionFrame(*session, nullptr, 0, payload.data(), payload.size());
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(frame->size(), 4u + 27u);
  auto full = WriteFrame(h, nullptr, 0, payload.data(), payload.size());
  ASSERT_TRUE(full.ok());
  // docs/bitstream_format.md, "Session frames": 4 bytes against the full frame's 11 + 4.
  EXPECT_EQ(HeaderSize(h, payload.size()), 11u);
  EXPECT_EQ(full->size(), 11u + 27u + 4u);
}

TEST(SessionFrameTest, FullFramesRewrittenOnlyUnderTheirOwnSession) {
  const FrameHeader h = WithSideInfo();
  auto session = OpenSession(h);
  ASSERT_TRUE(session.ok());
  const auto side = HalfOnes(4);
  const std::vector<uint8_t> payload{9, 8, 7, 6, 5, 4};
  auto full = WriteFrame(h, side.data(), side.size(), payload.data(), payload.size());
  ASSERT_TRUE(full.ok());
  auto rewritten = SessionFrameOf(*session, full->data(), full->size());
  ASSERT_TRUE(rewritten.ok()) << rewritten.status().ToString();
  auto direct = WriteSessionFrame(*session, side.data(), side.size(), payload.data(), payload.size());
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(*rewritten, *direct);
  auto size = SessionFrameSize(full->data(), full->size());
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, direct->size());
  EXPECT_EQ(*size, kSessionFrameOverhead + side.size() + payload.size());

  // A frame whose header moved on (another bit width) is refused, not coded under the old key.
  FrameHeader other = h;
  other.quant.bits = 2;
  auto moved = WriteFrame(other, side.data(), side.size(), payload.data(), payload.size());
  ASSERT_TRUE(moved.ok());
  auto refused = SessionFrameOf(*session, moved->data(), moved->size());
  EXPECT_EQ(refused.status().code(), ErrorCode::kMismatch);
  EXPECT_NE(refused.status().message().find("open a new session"), std::string::npos) << refused.status().message();
  // Not a full frame at all: the frame parser's own error.
  EXPECT_EQ(SessionFrameSize(direct->data(), direct->size()).status().code(), ErrorCode::kFrameBadMagic);
}

TEST(SessionFrameTest, EveryErrorIsNamed) {
  auto session = OpenSession(WithSideInfo());
  ASSERT_TRUE(session.ok());
  const auto side = HalfOnes(4);
  const std::vector<uint8_t> payload{1, 2, 3, 4, 5};
  auto good = WriteSessionFrame(*session, side.data(), side.size(), payload.data(), payload.size());
  ASSERT_TRUE(good.ok());

  EXPECT_EQ(ParseSessionFrame(*session, good->data(), 0).status().code(), ErrorCode::kFrameTruncated);
  // Cut inside the side information.
  auto cut = ParseSessionFrame(*session, good->data(), kSessionFrameOverhead + 3);
  EXPECT_EQ(cut.status().code(), ErrorCode::kFrameTruncated);
  EXPECT_NE(cut.status().message().find("side information"), std::string::npos) << cut.status().message();

  auto full = WriteFrame(session->header, side.data(), side.size(), payload.data(), payload.size());
  ASSERT_TRUE(full.ok());
  auto not_session = ParseSessionFrame(*session, full->data(), full->size());
  EXPECT_EQ(not_session.status().code(), ErrorCode::kFrameBadMagic);
  EXPECT_NE(not_session.status().message().find("0xF5"), std::string::npos) << not_session.status().message();

  FrameLimits tight;
  tight.max_frame_bytes = good->size() - 1;
  EXPECT_EQ(ParseSessionFrame(*session, good->data(), good->size(), tight).status().code(),
            ErrorCode::kFrameLengthOverrun);

  // Every single-bit flip after the tag is caught by the CRC-24.
  for (size_t byte = 1; byte < good->size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = *good;
      bad[byte] ^= static_cast<uint8_t>(1 << bit);
      EXPECT_EQ(ParseSessionFrame(*session, bad.data(), bad.size()).status().code(), ErrorCode::kFrameCrcMismatch)
          << "byte " << byte << " bit " << bit;
    }
  }

  // A side-information value that is not finite (0x7C00 is +inf as a half), under a valid CRC.
  auto inf_side = side;
  inf_side[1] = 0x7C;
  auto inf = WriteSessionFrame(*session, inf_side.data(), inf_side.size(), payload.data(), payload.size());
  ASSERT_TRUE(inf.ok());
  EXPECT_EQ(ParseSessionFrame(*session, inf->data(), inf->size()).status().code(), ErrorCode::kFrameSideInfo);

  // The writer refuses side information of another size than the header implies.
  auto wrong = WriteSessionFrame(*session, side.data(), side.size() - 2, payload.data(), payload.size());
  EXPECT_EQ(wrong.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("implies 8"), std::string::npos) << wrong.status().message();

  // OpenSession checks the header as WriteFrame does.
  FrameHeader bad_header = session->header;
  bad_header.quant.bits = 9;
  EXPECT_FALSE(OpenSession(bad_header).ok());
}

// A frame coded in one session does not parse in a session whose header differs in any field
// (the key is in the CRC), so it cannot decode to other symbols unnoticed.
TEST(SessionFrameTest, AFrameOfAnotherSessionFailsItsCrc) {
  const FrameHeader base = ShippedHeader();
  auto a = OpenSession(base);
  ASSERT_TRUE(a.ok());
  const std::vector<uint8_t> payload(27, 0x33);
  auto frame = WriteSessionFrame(*a, nullptr, 0, payload.data(), payload.size());
  ASSERT_TRUE(frame.ok());
  std::vector<FrameHeader> others(6, base);
  others[0].pipeline_id = 27;
  others[1].dims = {8, 2, 8};
  others[2].quant.bits = 3;
  others[3].coder = CoderId::kZstd;
  others[4].version = kOldestFrameVersion;
  others[5].quant.granularity = Granularity::kChannel;
  for (size_t i = 0; i < others.size(); ++i) {
    auto b = OpenSession(others[i]);
    ASSERT_TRUE(b.ok()) << i << ": " << b.status().ToString();
    EXPECT_NE(b->key, a->key) << i;
    auto parsed = ParseSessionFrame(*b, frame->data(), frame->size());
    EXPECT_EQ(parsed.status().code(), ErrorCode::kFrameCrcMismatch) << i;
  }
  // The key depends on the header alone.
  auto again = SessionKey(base);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, a->key);
}

}  // namespace
}  // namespace splitinfer::codec
