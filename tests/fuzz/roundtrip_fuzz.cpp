// libFuzzer target: encode/decode round trips. The input chooses a header (shape, bits,
// quantizer layout, coder and its level, side information) and the symbols; the target writes
// the frame the way the node does and reads it back the way the server does, and aborts unless
// it gets the same header, side information and symbols back. It also cuts the frame at an
// input-chosen position, which must fail as kFrameTruncated.
//
// Build with -DSPLITINFER_FUZZ=ON (clang); without it, roundtrip_fuzz_replay runs the stored
// corpus (tests/fuzz/corpus/roundtrip) as a ctest case.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "codec/frame/frame.h"
#include "codec/lossless/lossless.h"
#include "fuzz_common.h"
#include "fuzz_fail.h"

namespace {

using namespace splitinfer;
using namespace splitinfer::codec;

constexpr uint64_t kMaxElements = uint64_t{1} << 12;  // cabac under coverage instrumentation is ~1 us a decision
// Wide shapes with a byte-oriented coder (none, zstd, lzma) go up to the size of a real early
// feature map (64x56x56 is 200,704 symbols), so that packing, the coders' buffers and the frame
// lengths are exercised past 16-bit sizes too.
constexpr uint64_t kMaxElementsLarge = uint64_t{1} << 18;
constexpr uint64_t kMaxSideInfo = uint64_t{1} << 16;

[[noreturn]] void Fail(const char* what, const Status& s = Status::Ok()) {
  splitinfer_fuzz::Fail("roundtrip_fuzz", what, s);
}

// Reads the input front to back; past the end it yields zeros (libFuzzer grows inputs as needed).
class Input {
 public:
  Input(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint8_t U8() { return i_ < n_ ? p_[i_++] : 0; }
  uint32_t U16() { return U8() | uint32_t{U8()} << 8; }
  uint32_t U32() { return U16() | U16() << 16; }
  const uint8_t* rest() const { return p_ + i_; }
  size_t rest_size() const { return n_ - std::min(i_, n_); }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  FrameHeader h;
  const uint8_t a = in.U8(), b = in.U8();
  QuantDesc& q = h.quant;
  q.bits = (a & 7) + 1;
  q.range = static_cast<RangeKind>((a >> 3) % 3);
  q.granularity = static_cast<Granularity>((a >> 5) % 3);
  q.reconstruction = static_cast<Reconstruction>(a >> 7);
  h.coder = static_cast<CoderId>(b % (kMaxCoderId + 1));
  const int rank = ((b >> 4) & 3) + 1;
  q.params_in_frame = (b >> 6) & 1;
  const bool wide = (b >> 7) & 1;  // a few long dims instead of several short ones
  h.pipeline_id = in.U32();
  for (int i = 0; i < rank; ++i) h.dims.push_back(1 + (wide ? in.U16() % 4096 : in.U8() % 64));
  const bool byte_coder = h.coder == CoderId::kNone || h.coder == CoderId::kZstd || h.coder == CoderId::kLzma;
  const uint64_t max_elements = wide && byte_coder ? kMaxElementsLarge : kMaxElements;
  for (size_t i = 0; ElementCount(h.dims) > max_elements; i = (i + 1) % h.dims.size()) h.dims[i] = (h.dims[i] + 1) / 2;
  const SymbolGeometry g = GeometryOf(h);
  if (q.granularity == Granularity::kRegion) {
    q.region[0] = 1 + in.U16() % g.channels;
    q.region[1] = 1 + in.U16() % g.height;
    q.region[2] = 1 + in.U16() % g.width;
  }
  if (ExpectedSideInfoSize(h) > kMaxSideInfo) q.params_in_frame = false;

  if (!CoderBuiltIn(h.coder)) h.coder = CoderId::kZstd;  // lzma in a build without liblzma
  CoderOptions options;
  const uint8_t level = in.U8();
  if (h.coder == CoderId::kLzma) options.level = level % 10;
  if (h.coder == CoderId::kZstd) options.level = 1 + level % 19;
  // Both frame versions: their cabac payloads differ (layout 1 or 2), and the decoder must take
  // the layout from the frame it parses.
  h.version = (level & 0x80) ? kFrameVersion : kOldestFrameVersion;
  options.cabac_layout = CabacLayoutOf(h.version);
  options.cabac_model = splitinfer_fuzz::CabacModelFor(g);
  if (h.coder == CoderId::kCabacTrained && options.cabac_model == nullptr) h.coder = CoderId::kCabac;

  std::vector<uint8_t> side(ExpectedSideInfoSize(h));
  for (size_t i = 0; i < side.size(); i += 2) {
    uint16_t half = static_cast<uint16_t>(in.U16());
    if ((half & 0x7C00) == 0x7C00) half &= 0xBFFF;  // finite: clear one exponent bit
    side[i] = static_cast<uint8_t>(half);
    side[i + 1] = static_cast<uint8_t>(half >> 8);
  }

  // Symbols: the rest of the input, cycled, in one of a few shapes (real maps are mostly runs).
  const uint8_t mode = in.U8();
  const uint32_t cut = in.U32();
  const uint8_t mask = static_cast<uint8_t>((1u << q.bits) - 1);
  std::vector<uint8_t> symbols(g.count());
  const uint8_t* src = in.rest();
  const size_t src_n = in.rest_size();
  for (size_t i = 0; i < symbols.size(); ++i) {
    const uint8_t s = src_n ? src[i % src_n] : 0;
    switch (mode % 4) {
      case 0: symbols[i] = s & mask; break;                                          // as given
      case 1: symbols[i] = src_n ? src[(i / 61) % src_n] & mask : 0; break;          // runs
      case 2: symbols[i] = (s & 0x0F) == 0 ? (s >> 4) & mask : 0; break;             // sparse
      default: symbols[i] = static_cast<uint8_t>((i * (s | 1)) >> 3) & mask; break;  // ramps
    }
  }

  Result<std::vector<uint8_t>> payload = EncodeSymbols(h.coder, symbols.data(), g, options);
  if (!payload.ok()) Fail("EncodeSymbols", payload.status());
  Result<std::vector<uint8_t>> frame = WriteFrame(h, side.data(), side.size(), payload->data(), payload->size());
  if (!frame.ok()) Fail("WriteFrame", frame.status());
  const std::vector<uint8_t>& f = frame.value();
  if (f.size() != HeaderSize(h, payload->size()) + side.size() + payload->size() + 4) Fail("frame size");

  Result<FrameView> parsed = ParseFrame(f.data(), f.size());
  if (!parsed.ok()) Fail("ParseFrame", parsed.status());
  const FrameView& v = parsed.value();
  const FrameHeader& got = v.header;
  bool same = got.pipeline_id == h.pipeline_id && got.dims == h.dims && got.coder == h.coder &&
              got.quant.bits == q.bits && got.quant.range == q.range && got.quant.granularity == q.granularity &&
              got.quant.reconstruction == q.reconstruction && got.quant.params_in_frame == q.params_in_frame;
  for (int k = 0; k < 3; ++k) same &= got.quant.region[k] == q.region[k];
  if (!same) Fail("parsed header differs");
  if (v.side_info_size != side.size() || !std::equal(side.begin(), side.end(), v.side_info)) Fail("side info differs");
  if (v.payload_size != payload->size() || !std::equal(payload->begin(), payload->end(), v.payload)) {
    Fail("payload differs");
  }

  std::vector<uint8_t> decoded(g.count(), 0xEE);
  const Status s = DecodeFrameSymbols(v, options, decoded.data());
  if (!s.ok()) Fail("DecodeFrameSymbols", s);
  if (decoded != symbols) Fail("decoded symbols differ");

  // Any proper prefix of a valid frame is truncated.
  const size_t n = cut % f.size();
  Result<FrameView> cut_frame = ParseFrame(f.data(), n);
  if (cut_frame.status().code() != ErrorCode::kFrameTruncated) Fail("a cut frame is not truncated", cut_frame.status());
  return 0;
}
