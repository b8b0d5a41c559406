// libFuzzer target: the server's view of an untrusted frame (docs/bitstream_format.md).
//
// ParseFrame must return a kFrame* code or a frame whose views lie inside the input and which
// re-serialises to exactly the input (every value has one encoding); the payload of a parsed
// frame must decode or fail with kFramePayload / kFrameSymbolRange, never crash, never read or
// write out of bounds (ASan), never allocate beyond what the limits allow (-rss_limit_mb).
//
// Build with -DSPLITINFER_FUZZ=ON (clang); without it, frame_fuzz_replay runs the stored corpus
// (tests/fuzz/corpus/frame) as a ctest case. Each input runs twice: as given (the CRC usually
// fails: the parser's structural checks) and with a corrected CRC (side info and decoders).
// Each input is also a session frame (codec/frame/session.h) of three fixed sessions (the
// shipped pipeline's header, ranges per frame, local regions), as given and with its CRC-24
// corrected.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "codec/frame/frame.h"
#include "codec/frame/session.h"
#include "core/bytes.h"
#include "fuzz_common.h"
#include "fuzz_fail.h"

namespace {

using namespace splitinfer;
using namespace splitinfer::codec;

[[noreturn]] void Fail(const char* what, const Status& s) { splitinfer_fuzz::Fail("frame_fuzz", what, s); }

// One frame through the server's path; aborts on any broken invariant.
void CheckFrame(const uint8_t* data, size_t size) {
  // A small server: 1 Mi symbols, 4 MiB frames, so that each input runs in microseconds.
  FrameLimits limits;
  limits.max_elements = uint64_t{1} << 20;
  limits.max_frame_bytes = size_t{1} << 22;

  Result<FrameView> parsed = ParseFrame(data, size, limits);
  if (!parsed.ok()) {
    const ErrorCode c = parsed.status().code();
    if (c < ErrorCode::kFrameTruncated || c > ErrorCode::kFrameSideInfo) Fail("unexpected parse error", parsed.status());
    return;
  }
  const FrameView& v = parsed.value();
  if (v.side_info != data + (size - 4 - v.payload_size - v.side_info_size) || v.payload != v.side_info + v.side_info_size ||
      v.payload + v.payload_size + 4 != data + size) {
    Fail("views do not tile the input", Status::Ok());
  }

  // Parsing inverts writing.
  Result<std::vector<uint8_t>> rewritten =
      WriteFrame(v.header, v.side_info, v.side_info_size, v.payload, v.payload_size);
  if (!rewritten.ok()) Fail("a parsed header does not write", rewritten.status());
  if (rewritten->size() != size || std::memcmp(rewritten->data(), data, size) != 0) {
    Fail("re-written frame differs from the input", Status::Ok());
  }

  const SymbolGeometry g = GeometryOf(v.header);
  if (g.count() > limits.max_elements) Fail("geometry over the element limit", Status::Ok());
  std::vector<uint8_t> symbols(g.count());
  CoderOptions options;
  options.cabac_model = splitinfer_fuzz::CabacModelFor(g);
  const Status s = DecodeFrameSymbols(v, options, symbols.data());
  if (!s.ok() && s.code() != ErrorCode::kFramePayload && s.code() != ErrorCode::kFrameSymbolRange &&
      s.code() != ErrorCode::kFailedPrecondition) {
    Fail("unexpected payload error", s);
  }
}

const std::vector<Session>& FuzzSessions() {
  static const std::vector<Session> sessions = [] {
    std::vector<Session> out;
    FrameHeader shipped;  // models/fmnist_best.yaml: 8x4x4, 2 bits, cabac
    shipped.pipeline_id = 26;
    shipped.dims = {8, 4, 4};
    shipped.quant.bits = 2;
    shipped.coder = CoderId::kCabac;
    FrameHeader ranges = shipped;  // per-channel ranges in every frame, zstd
    ranges.quant.granularity = Granularity::kChannel;
    ranges.quant.params_in_frame = true;
    ranges.coder = CoderId::kZstd;
    FrameHeader regions;  // affine local regions, 1 bit, 64x14x14
    regions.dims = {64, 14, 14};
    regions.quant.bits = 1;
    regions.quant.range = RangeKind::kAffine;
    regions.quant.granularity = Granularity::kRegion;
    regions.quant.params_in_frame = true;
    const uint32_t tile[3] = {8, 7, 7};
    std::copy(tile, tile + 3, regions.quant.region);
    regions.coder = CoderId::kCabac;
    for (const auto& h : {shipped, ranges, regions}) {
      auto s = OpenSession(h);
      if (!s.ok()) Fail("a fixed session does not open", s.status());
      out.push_back(*s);
    }
    return out;
  }();
  return sessions;
}

// One session frame through the server's path under `session`.
void CheckSessionFrame(const Session& session, const uint8_t* data, size_t size) {
  Result<FrameView> parsed = ParseSessionFrame(session, data, size);
  if (!parsed.ok()) {
    const ErrorCode c = parsed.status().code();
    if (c < ErrorCode::kFrameTruncated || c > ErrorCode::kFrameSideInfo) Fail("unexpected session error", parsed.status());
    return;
  }
  const FrameView& v = parsed.value();
  if (v.side_info != data + kSessionFrameOverhead || v.payload != v.side_info + v.side_info_size ||
      v.payload + v.payload_size != data + size) {
    Fail("session views do not tile the input", Status::Ok());
  }
  Result<std::vector<uint8_t>> rewritten =
      WriteSessionFrame(session, v.side_info, v.side_info_size, v.payload, v.payload_size);
  if (!rewritten.ok() || rewritten->size() != size || std::memcmp(rewritten->data(), data, size) != 0) {
    Fail("re-written session frame differs from the input", rewritten.status());
  }
  const SymbolGeometry g = GeometryOf(v.header);
  std::vector<uint8_t> symbols(g.count());
  CoderOptions options;
  options.cabac_model = splitinfer_fuzz::CabacModelFor(g);
  const Status s = DecodeFrameSymbols(v, options, symbols.data());
  if (!s.ok() && s.code() != ErrorCode::kFramePayload && s.code() != ErrorCode::kFrameSymbolRange) {
    Fail("unexpected session payload error", s);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const Session& session : FuzzSessions()) {
    CheckSessionFrame(session, data, size);
    // The same bytes as a session frame that passes its CRC-24 (tag forced too), so that the
    // side-info checks and the decoders see them.
    if (size >= kSessionFrameOverhead) {
      std::vector<uint8_t> body(data, data + size);
      const uint64_t side = ExpectedSideInfoSize(session.header);
      const size_t side_size = static_cast<size_t>(std::min<uint64_t>(side, size - kSessionFrameOverhead));
      if (side_size == side) {
        auto signed_copy = WriteSessionFrame(session, body.data() + kSessionFrameOverhead, side_size,
                                             body.data() + kSessionFrameOverhead + side_size,
                                             size - kSessionFrameOverhead - side_size);
        if (!signed_copy.ok()) Fail("a session frame does not write", signed_copy.status());
        CheckSessionFrame(session, signed_copy->data(), signed_copy->size());
      }
    }
  }
  CheckFrame(data, size);
  // A mutated frame almost never carries a matching CRC, which would stop every input at the
  // CRC check. So each input is also tried with its last 4 bytes replaced by the right CRC: that
  // copy reaches the side-info checks and the payload decoders.
  if (size >= 4) {
    std::vector<uint8_t> signed_copy(data, data + size);
    const uint32_t crc = Crc32c(signed_copy.data(), size - 4);
    for (int i = 0; i < 4; ++i) signed_copy[size - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
    CheckFrame(signed_copy.data(), size);
  }
  return 0;
}
