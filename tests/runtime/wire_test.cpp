#include "runtime/wire.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace splitinfer::runtime {
namespace {

std::string Raw(const std::vector<std::string>& elements) {
  std::string raw;
  for (const auto& e : elements) {
    const uint32_t n = static_cast<uint32_t>(e.size());
    for (int b = 0; b < 4; ++b) raw.push_back(static_cast<char>((n >> (8 * b)) & 0xFF));
    raw += e;
  }
  return raw;
}

inference::ModelInferRequest BytesRequest(int64_t count) {
  inference::ModelInferRequest r;
  auto* in = r.add_inputs();
  in->set_name("frame");
  in->set_datatype("BYTES");
  in->add_shape(count);
  return r;
}

TEST(WireTest, BytesFromRawAndFromContents) {
  auto r = BytesRequest(2);
  r.add_raw_input_contents(Raw({"abc", ""}));
  auto e = BytesInput(r, 0, {});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0], "abc");
  EXPECT_EQ((*e)[1], "");

  auto c = BytesRequest(1);
  c.mutable_inputs(0)->mutable_contents()->add_bytes_contents("xyz");
  auto e2 = BytesInput(c, 0, {});
  ASSERT_TRUE(e2.ok());
  EXPECT_EQ((*e2)[0], "xyz");
}

TEST(WireTest, BadRawBytesAreSpecificErrors) {
  auto truncated = BytesRequest(1);
  truncated.add_raw_input_contents(std::string("\x05\x00", 2));
  auto s = BytesInput(truncated, 0, {}).status();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ends inside the length"), std::string::npos) << s.message();

  auto overrun = BytesRequest(1);
  overrun.add_raw_input_contents(Raw({"abc"}).substr(0, 6));
  s = BytesInput(overrun, 0, {}).status();
  EXPECT_NE(s.message().find("declares 3 bytes but only 2 remain"), std::string::npos) << s.message();

  auto trailing = BytesRequest(1);
  trailing.add_raw_input_contents(Raw({"abc"}) + "zz");
  s = BytesInput(trailing, 0, {}).status();
  EXPECT_NE(s.message().find("2 bytes after its 1 elements"), std::string::npos) << s.message();

  auto count = BytesRequest(3);
  count.mutable_inputs(0)->mutable_contents()->add_bytes_contents("a");
  s = BytesInput(count, 0, {}).status();
  EXPECT_NE(s.message().find("3 elements but 1"), std::string::npos) << s.message();

  auto not_bytes = BytesRequest(1);
  not_bytes.mutable_inputs(0)->set_datatype("FP32");
  EXPECT_NE(BytesInput(not_bytes, 0, {}).status().message().find("must be BYTES"), std::string::npos);

  auto raw_count = BytesRequest(1);
  raw_count.add_raw_input_contents(Raw({"a"}));
  raw_count.add_raw_input_contents(Raw({"b"}));
  EXPECT_NE(BytesInput(raw_count, 0, {}).status().message().find("2 entries for 1 inputs"), std::string::npos);
}

TEST(WireTest, LimitsAreCheckedBeforeReading) {
  auto r = BytesRequest(1000);
  RequestLimits limits;
  limits.max_batch = 16;
  auto s = BytesInput(r, 0, limits).status();
  EXPECT_EQ(s.code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(s.message().find("more than 16 elements (the server's limit)"), std::string::npos) << s.message();
  // A shape whose product overflows 64 bits is refused, not wrapped around.
  auto huge = BytesRequest(int64_t{1} << 40);
  huge.mutable_inputs(0)->add_shape(int64_t{1} << 40);
  EXPECT_EQ(BytesInput(huge, 0, limits).status().code(), ErrorCode::kResourceExhausted);
  auto negative = BytesRequest(-1);
  EXPECT_EQ(BytesInput(negative, 0, limits).status().code(), ErrorCode::kInvalidArgument);
}

TEST(WireTest, NumericInputs) {
  inference::ModelInferRequest r;
  auto* in = r.add_inputs();
  in->set_name("image");
  in->set_datatype("UINT8");
  for (int64_t d : {1, 2, 2}) in->add_shape(d);
  for (uint32_t v : {0u, 1u, 2u, 255u}) in->mutable_contents()->add_uint_contents(v);
  std::string storage;
  auto n = NumericInputAt(r, 0, {}, storage);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->bytes, std::string("\x00\x01\x02\xff", 4));
  in->mutable_contents()->set_uint_contents(3, 256);
  EXPECT_NE(NumericInputAt(r, 0, {}, storage).status().message().find("256 is not a UINT8"), std::string::npos);

  inference::ModelInferRequest raw;
  auto* f = raw.add_inputs();
  f->set_name("image");
  f->set_datatype("FP32");
  f->add_shape(3);
  raw.add_raw_input_contents(std::string(11, '\0'));
  auto s = NumericInputAt(raw, 0, {}, storage).status();
  EXPECT_NE(s.message().find("has 11 raw bytes; its shape 3 of FP32 needs 12"), std::string::npos) << s.message();
}

TEST(WireTest, PeekPngReadsTheHeaderOnly) {
  // Signature + IHDR for a 28x28 8-bit grey image, its CRC left zero (the rest of the file is not
  // needed). 33 bytes: the literal spells out every one (an earlier version was 29 long and read
  // past its end, found by the sanitizer lane).
  const char bytes[] = "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x1c\x00\x00\x00\x1c\x08\x00\x00\x00\x00"
                       "\x00\x00\x00\x00";
  static_assert(sizeof(bytes) - 1 == 33, "signature 8 + length 4 + type 4 + IHDR data 13 + CRC 4");
  std::string png(bytes, sizeof(bytes) - 1);
  auto info = PeekPng(png);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->width, 28u);
  EXPECT_EQ(info->height, 28u);
  EXPECT_EQ(info->channels, 1);
  EXPECT_EQ(PeekPng("GIF89a").status().code(), ErrorCode::kInvalidArgument);
}

TEST(WireTest, ParametersAndCodes) {
  inference::ModelInferRequest r;
  SetParam(*r.mutable_parameters(), "n", int64_t{7});
  SetParam(*r.mutable_parameters(), "s", std::string("x"));
  EXPECT_EQ(IntParam(r.parameters(), "n").value(), 7);
  EXPECT_FALSE(IntParam(r.parameters(), "s").has_value());  // a string is not an int
  EXPECT_EQ(StringParam(r.parameters(), "s").value(), "x");
  EXPECT_EQ(GrpcCode(ErrorCode::kFrameCrcMismatch), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrpcCode(ErrorCode::kMismatch), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(GrpcCode(ErrorCode::kResourceExhausted), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")).code(), ErrorCode::kUnavailable);
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
}

TEST(WireTest, OnlyCallsThatCanSucceedLaterAreRetried) {
  using grpc::StatusCode;
  EXPECT_TRUE(Retryable(grpc::Status(StatusCode::UNAVAILABLE, "failed to connect to all addresses")));
  EXPECT_TRUE(Retryable(grpc::Status(StatusCode::CANCELLED, "")));  // dropped by a draining server
  // The message the server really sends when full (ToGrpc prefixes the code name).
  EXPECT_TRUE(Retryable(ToGrpc(ResourceExhausted(std::string(kServerBusy) + ": 64 images in flight, limit 64"))));
  // A request above a size limit fails the same way every time.
  EXPECT_FALSE(Retryable(grpc::Status(StatusCode::RESOURCE_EXHAUSTED,
                                      "Received message larger than max (5000000 vs. 4194304)")));
  EXPECT_FALSE(Retryable(ToGrpc(ResourceExhausted("300 images in one request; the limit is 256"))));
  EXPECT_FALSE(Retryable(grpc::Status(StatusCode::INVALID_ARGUMENT, "FRAME_CRC_MISMATCH")));
  EXPECT_FALSE(Retryable(grpc::Status(StatusCode::DEADLINE_EXCEEDED, "")));
  EXPECT_FALSE(Retryable(grpc::Status::OK));
}

TEST(WireTest, DetectionsRoundTripAndMalformedRepliesAreNamed) {
  const std::vector<std::vector<WireBox>> images = {
      {{1, 2, 30, 40, 0.9f, 3}, {5, 6, 7, 8, 0.5f, 0}}, {}, {{0, 0, 128, 128, 0.01f, 9}}};
  inference::ModelInferResponse r;
  AddDetectionOutputs(images, true, true, true, &r);
  ASSERT_EQ(r.outputs_size(), 4);
  EXPECT_EQ(r.outputs(0).name(), "boxes");
  EXPECT_EQ(r.outputs(0).shape(0), 3);
  EXPECT_EQ(r.outputs(0).shape(1), 4);
  EXPECT_EQ(r.outputs(2).datatype(), "INT32");
  EXPECT_EQ(r.outputs(3).name(), "counts");
  EXPECT_EQ(r.raw_output_contents(3).size(), 3u * 4);
  auto back = ReadDetectionOutputs(r, 3, 10);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 3u);
  ASSERT_EQ((*back)[0].size(), 2u);
  EXPECT_TRUE((*back)[1].empty());
  EXPECT_EQ((*back)[0][0].x1, 30);
  EXPECT_EQ((*back)[0][0].y1, 40);
  EXPECT_EQ((*back)[0][0].label, 3);
  EXPECT_FLOAT_EQ((*back)[2][0].score, 0.01f);
  // Only the outputs asked for, counts always.
  inference::ModelInferResponse some;
  AddDetectionOutputs(images, false, true, false, &some);
  ASSERT_EQ(some.outputs_size(), 2);
  EXPECT_EQ(some.outputs(1).name(), "counts");

  auto expect = [](const inference::ModelInferResponse& bad, int64_t n, const std::string& text) {
    auto s = ReadDetectionOutputs(bad, n, 10).status();
    EXPECT_EQ(s.code(), ErrorCode::kDataLoss) << text;
    EXPECT_NE(s.message().find(text), std::string::npos) << "'" << text << "' not in: " << s.message();
  };
  expect(some, 3, "no 'boxes' output");
  expect(r, 2, "counts boxes for 3 images; the request had 2");
  auto bump = [&](int output, size_t at, const void* value) {
    inference::ModelInferResponse c = r;
    std::memcpy(&(*c.mutable_raw_output_contents(output))[at], value, 4);
    return c;
  };
  const int32_t many = 7, minus = -1, eleven = 10;
  expect(bump(3, 0, &many), 3, "image 0 claims 7");
  expect(bump(3, 0, &minus), 3, "image 0 claims -1");
  const float nan = std::nanf("");
  expect(bump(0, 4, &nan), 3, "box 0 of the reply has a non-finite value");
  expect(bump(1, 8, &nan), 3, "box 2 of the reply has a non-finite value");
  expect(bump(2, 4, &eleven), 3, "box 1 of the reply has class 10; the model has 10");
  inference::ModelInferResponse short_raw = r;
  short_raw.mutable_raw_output_contents(0)->pop_back();
  expect(short_raw, 3, "'boxes' output has 47 bytes; its shape [3x4] needs 48");
  inference::ModelInferResponse typed = r;
  typed.mutable_outputs(2)->set_datatype("INT64");
  expect(typed, 3, "'classes' output is INT64 of rank 1; a detector's is INT32 of rank 1");
  const int32_t one = 1;  // counts 1, 0, 1: two of the three boxes
  expect(bump(3, 0, &one), 3, "add up to 2 boxes, not its 3");
}

}  // namespace
}  // namespace splitinfer::runtime
