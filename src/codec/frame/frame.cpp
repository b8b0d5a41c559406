#include "codec/frame/frame.h"

#include <algorithm>
#include <limits>
#include <string>

#include "core/bytes.h"

namespace splitinfer::codec {
namespace {

// ------------------------------------------------------------------------------- field layout
// flagsA: bits 0-2 = bits - 1, bits 3-4 = RangeKind, bits 5-6 = Granularity, bit 7 = Reconstruction
// flagsB: bits 0-3 = coder id, bits 4-5 = rank - 1, bit 6 = params_in_frame, bit 7 reserved (0)
constexpr int kMaxRank = 4;
constexpr size_t kFixedHeaderBytes = 5;  // magic (2), version, flagsA, flagsB
constexpr size_t kCrcBytes = 4;

Status Truncated(std::string m) { return Status(ErrorCode::kFrameTruncated, std::move(m)); }
Status BadMagic(std::string m) { return Status(ErrorCode::kFrameBadMagic, std::move(m)); }
Status BadVersion(std::string m) { return Status(ErrorCode::kFrameBadVersion, std::move(m)); }
Status BadShape(std::string m) { return Status(ErrorCode::kFrameBadShape, std::move(m)); }
Status BadField(std::string m) { return Status(ErrorCode::kFrameBadField, std::move(m)); }
Status Overrun(std::string m) { return Status(ErrorCode::kFrameLengthOverrun, std::move(m)); }
Status SideInfoError(std::string m) { return Status(ErrorCode::kFrameSideInfo, std::move(m)); }

std::string Hex(uint64_t v, int width = 2) {
  static const char* digits = "0123456789ABCDEF";
  std::string s;
  for (int i = width - 1; i >= 0; --i) s += digits[(v >> (4 * i)) & 0xF];
  return "0x" + s;
}

uint64_t SaturatingMul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<uint64_t>::max() : r;
}

// The folded C x H x W geometry in 64 bits (rank 4 folds N*C, which a generous max_elements
// could push past 32 bits: the parser rejects that before a SymbolGeometry is made).
struct Folded {
  uint64_t c = 1, h = 1, w = 1;
};

Folded Fold(const std::vector<uint32_t>& dims) {
  Folded f;
  switch (dims.size()) {
    case 1: f.w = dims[0]; break;
    case 2: f.h = dims[0], f.w = dims[1]; break;
    case 3: f.c = dims[0], f.h = dims[1], f.w = dims[2]; break;
    case 4: f.c = uint64_t{dims[0]} * dims[1], f.h = dims[2], f.w = dims[3]; break;
    default: break;  // rank 0 or > 4 is invalid; callers have validated or will reject it
  }
  return f;
}

// Tile size per axis for the header's granularity (0 on an axis for an invalid region).
Folded TileOf(const FrameHeader& header, const Folded& g) {
  switch (header.quant.granularity) {
    case Granularity::kTensor: return g;
    case Granularity::kChannel: return {1, g.h, g.w};
    case Granularity::kRegion: return {header.quant.region[0], header.quant.region[1], header.quant.region[2]};
  }
  return {0, 0, 0};
}

uint64_t CeilDiv(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

// --- checks shared by the writer (on a FrameHeader) and the parser (field by field) -------

Status CheckDim(uint64_t d, size_t i, const FrameLimits& limits) {
  if (d == 0 || d > limits.max_dim) {
    return BadShape("dimension " + std::to_string(i) + " is " + std::to_string(d) + "; each must be in 1.." +
                    std::to_string(limits.max_dim));
  }
  return Status::Ok();
}

// `count` is the product so far; multiplies in d and checks the element limit (no overflow:
// count <= max_elements before, and the product is checked with overflow detection).
Status AccumulateCount(uint64_t* count, uint64_t d, const FrameLimits& limits) {
  uint64_t next;
  if (__builtin_mul_overflow(*count, d, &next) || next > limits.max_elements) {
    return BadShape("the dimensions hold more than " + std::to_string(limits.max_elements) +
                    " elements (the limit)");
  }
  *count = next;
  return Status::Ok();
}

Status CheckFolded(const Folded& g) {
  if (g.c > std::numeric_limits<uint32_t>::max()) {
    return BadShape("N x C = " + std::to_string(g.c) + " folded channels do not fit in 32 bits");
  }
  return Status::Ok();
}

Status CheckRegionDim(uint64_t r, int axis, const Folded& g) {
  static const char* names[3] = {"channels", "rows", "columns"};
  const uint64_t limit = axis == 0 ? g.c : axis == 1 ? g.h : g.w;
  if (r == 0 || r > limit) {
    return BadShape("region tile " + std::string(names[axis]) + " = " + std::to_string(r) + "; must be in 1.." +
                    std::to_string(limit) + " (the folded geometry)");
  }
  return Status::Ok();
}


Status ValidateHeader(const FrameHeader& h, const FrameLimits& limits) {
  if (h.version < kOldestFrameVersion || h.version > kFrameVersion) {
    return BadVersion("frame version " + std::to_string(h.version) + "; this build writes versions " +
                      std::to_string(kOldestFrameVersion) + " to " + std::to_string(kFrameVersion));
  }
  const QuantDesc& q = h.quant;
  if (q.bits < 1 || q.bits > 8) return BadField("bits = " + std::to_string(q.bits) + "; must be in 1..8");
  if (static_cast<int>(q.range) > 2) return BadField("range kind " + std::to_string(int(q.range)) + " is not defined");
  if (static_cast<int>(q.granularity) > 2) {
    return BadField("granularity " + std::to_string(int(q.granularity)) + " is not defined");
  }
  if (static_cast<int>(q.reconstruction) > 1) {
    return BadField("reconstruction " + std::to_string(int(q.reconstruction)) + " is not defined");
  }
  if (static_cast<int>(h.coder) > kMaxCoderId) {
    return BadField("coder id " + std::to_string(int(h.coder)) + " is not defined");
  }
  if (h.dims.empty() || h.dims.size() > kMaxRank) {
    return BadShape("rank " + std::to_string(h.dims.size()) + "; must be in 1..4");
  }
  uint64_t count = 1;
  for (size_t i = 0; i < h.dims.size(); ++i) {
    SI_RETURN_IF_ERROR(CheckDim(h.dims[i], i, limits));
    SI_RETURN_IF_ERROR(AccumulateCount(&count, h.dims[i], limits));
  }
  const Folded g = Fold(h.dims);
  SI_RETURN_IF_ERROR(CheckFolded(g));
  if (q.granularity == Granularity::kRegion) {
    for (int k = 0; k < 3; ++k) SI_RETURN_IF_ERROR(CheckRegionDim(q.region[k], k, g));
  }
  return Status::Ok();
}

}  // namespace

// ------------------------------------------------------------------------------------ geometry

uint64_t ElementCount(const std::vector<uint32_t>& dims) {
  if (dims.empty()) return 0;
  uint64_t n = 1;
  for (uint32_t d : dims) n = SaturatingMul(n, d);
  return n;
}

SymbolGeometry GeometryOf(const FrameHeader& header) {
  const Folded f = Fold(header.dims);
  SymbolGeometry g;
  g.channels = static_cast<uint32_t>(f.c);
  g.height = static_cast<uint32_t>(f.h);
  g.width = static_cast<uint32_t>(f.w);
  g.bits = header.quant.bits;
  return g;
}

uint64_t RegionCount(const FrameHeader& header) {
  const Folded g = Fold(header.dims);
  const Folded t = TileOf(header, g);
  if (t.c == 0 || t.h == 0 || t.w == 0) return 0;
  return SaturatingMul(SaturatingMul(CeilDiv(g.c, t.c), CeilDiv(g.h, t.h)), CeilDiv(g.w, t.w));
}

int SideInfoHalvesPerRegion(const QuantDesc& quant) {
  if (quant.reconstruction == Reconstruction::kCentroid) return 1 << quant.bits;
  return quant.range == RangeKind::kAffine ? 2 : 1;
}

uint64_t ExpectedSideInfoSize(const FrameHeader& header) {
  if (!header.quant.params_in_frame) return 0;
  return SaturatingMul(RegionCount(header), 2 * static_cast<uint64_t>(SideInfoHalvesPerRegion(header.quant)));
}

RegionBox RegionAt(const FrameHeader& header, uint64_t index) {
  const Folded g = Fold(header.dims);
  const Folded t = TileOf(header, g);
  const uint64_t nh = CeilDiv(g.h, t.h), nw = CeilDiv(g.w, t.w);
  const uint64_t ct = index / (nh * nw), ht = index / nw % nh, wt = index % nw;
  RegionBox b;
  b.c0 = static_cast<uint32_t>(ct * t.c);
  b.c1 = static_cast<uint32_t>(std::min(g.c, (ct + 1) * t.c));
  b.h0 = static_cast<uint32_t>(ht * t.h);
  b.h1 = static_cast<uint32_t>(std::min(g.h, (ht + 1) * t.h));
  b.w0 = static_cast<uint32_t>(wt * t.w);
  b.w1 = static_cast<uint32_t>(std::min(g.w, (wt + 1) * t.w));
  return b;
}

size_t HeaderSize(const FrameHeader& header, size_t payload_size) {
  size_t n = kFixedHeaderBytes + VarintSize(header.pipeline_id);
  for (uint32_t d : header.dims) n += VarintSize(d);
  if (header.quant.granularity == Granularity::kRegion) {
    for (uint32_t r : header.quant.region) n += VarintSize(r);
  }
  n += VarintSize(ExpectedSideInfoSize(header));
  n += VarintSize(payload_size);
  return n;
}

// ---------------------------------------------------------------------------------------- write

Result<std::vector<uint8_t>> WriteFrame(const FrameHeader& header, const uint8_t* side_info, size_t side_info_size,
                                        const uint8_t* payload, size_t payload_size) {
  const FrameLimits limits;
  SI_RETURN_IF_ERROR(ValidateHeader(header, limits));
  if ((side_info == nullptr && side_info_size != 0) || (payload == nullptr && payload_size != 0)) {
    return InvalidArgument("WriteFrame: null side info or payload with a non-zero size");
  }
  const uint64_t expected_side = ExpectedSideInfoSize(header);
  if (side_info_size != expected_side) {
    return SideInfoError("side information is " + std::to_string(side_info_size) + " bytes; the header implies " +
                         std::to_string(expected_side));
  }
  SI_RETURN_IF_ERROR(CheckSideInfoValues(side_info, side_info_size));
  const size_t header_size = HeaderSize(header, payload_size);
  if (payload_size > limits.max_frame_bytes || side_info_size > limits.max_frame_bytes ||
      header_size + side_info_size + payload_size + kCrcBytes > limits.max_frame_bytes) {
    return Overrun("a frame with a " + std::to_string(payload_size) + "-byte payload exceeds the " +
                   std::to_string(limits.max_frame_bytes) + "-byte frame limit");
  }

  const QuantDesc& q = header.quant;
  std::vector<uint8_t> out;
  out.reserve(header_size + side_info_size + payload_size + kCrcBytes);
  out.push_back(kFrameMagic0);
  out.push_back(kFrameMagic1);
  out.push_back(header.version);
  out.push_back(static_cast<uint8_t>((q.bits - 1) | static_cast<int>(q.range) << 3 |
                                     static_cast<int>(q.granularity) << 5 | static_cast<int>(q.reconstruction) << 7));
  out.push_back(static_cast<uint8_t>(static_cast<int>(header.coder) | static_cast<int>(header.dims.size() - 1) << 4 |
                                     (q.params_in_frame ? 1 : 0) << 6));
  PutVarint(out, header.pipeline_id);
  for (uint32_t d : header.dims) PutVarint(out, d);
  if (q.granularity == Granularity::kRegion) {
    for (uint32_t r : q.region) PutVarint(out, r);
  }
  PutVarint(out, side_info_size);
  PutVarint(out, payload_size);
  if (side_info_size != 0) out.insert(out.end(), side_info, side_info + side_info_size);
  if (payload_size != 0) out.insert(out.end(), payload, payload + payload_size);
  PutU32LE(out, Crc32c(out.data(), out.size()));
  return out;
}

// ---------------------------------------------------------------------------------------- parse
//
// Check order (docs/bitstream_format.md, "Validation order"): fields in byte order, each checked
// as soon as it is read, so that a truncated frame reports kFrameTruncated (its prefix is valid)
// and a bad field names itself; then the declared lengths against the buffer; then the CRC;
// last the side-info values, which are only interpreted once the CRC has vouched for them.

namespace {

Status ReadVarintField(ByteReader& r, const std::string& name, uint64_t* v) {
  const size_t at = r.position();
  switch (r.ReadVarint(v)) {
    case VarintRead::kOk: return Status::Ok();
    case VarintRead::kTruncated: return Truncated("frame ends inside " + name + " (varint at byte " + std::to_string(at) + ")");
    case VarintRead::kMalformed:
      break;
  }
  return BadField(name + " at byte " + std::to_string(at) +
                  " is not a valid varint (over 10 bytes, over 64 bits, or not the shortest encoding)");
}

}  // namespace

Result<FrameView> ParseFrame(const uint8_t* data, size_t size, const FrameLimits& limits) {
  if (data == nullptr && size != 0) return InvalidArgument("ParseFrame: null data with a non-zero size");
  // 1. magic: compare what is there, so that one wrong byte says "not a frame", not "truncated".
  if ((size >= 1 && data[0] != kFrameMagic0) || (size >= 2 && data[1] != kFrameMagic1)) {
    return BadMagic("not a splitinfer frame: it starts with " + Hex(data[0]) +
                    (size >= 2 ? " " + Hex(data[1]) : std::string()) + ", a frame starts with 0xF5 0x1A");
  }
  if (size < 2) return Truncated("frame ends inside the magic (" + std::to_string(size) + " bytes)");
  // 2. version: the layout after it belongs to the version.
  if (size < 3) return Truncated("frame ends before the version byte");
  if (data[2] < kOldestFrameVersion || data[2] > kFrameVersion) {
    return BadVersion("frame version " + std::to_string(data[2]) + "; this build decodes versions " +
                      std::to_string(kOldestFrameVersion) + " to " + std::to_string(kFrameVersion));
  }
  // 3. the buffer itself against the server's limit.
  if (size > limits.max_frame_bytes) {
    return Overrun("frame is " + std::to_string(size) + " bytes, over the limit of " +
                   std::to_string(limits.max_frame_bytes));
  }

  FrameView view;
  FrameHeader& h = view.header;
  h.version = data[2];
  QuantDesc& q = h.quant;
  ByteReader r(data, size);
  (void)r.Skip(3);

  // 4. flagsA
  uint8_t a;
  if (!r.GetU8(&a)) return Truncated("frame ends before flagsA (byte 3)");
  q.bits = (a & 0x7) + 1;
  const int range = (a >> 3) & 0x3, granularity = (a >> 5) & 0x3;
  if (range == 3) return BadField("flagsA " + Hex(a) + ": range kind 3 is not defined");
  if (granularity == 3) return BadField("flagsA " + Hex(a) + ": granularity 3 is not defined");
  q.range = static_cast<RangeKind>(range);
  q.granularity = static_cast<Granularity>(granularity);
  q.reconstruction = static_cast<Reconstruction>(a >> 7);

  // 5. flagsB
  uint8_t b;
  if (!r.GetU8(&b)) return Truncated("frame ends before flagsB (byte 4)");
  const int coder = b & 0xF;
  if (coder > kMaxCoderId) {
    return BadField("flagsB " + Hex(b) + ": coder id " + std::to_string(coder) + " is not defined (0.." +
                    std::to_string(kMaxCoderId) + ")");
  }
  if (b & 0x80) return BadField("flagsB " + Hex(b) + ": reserved bit 7 is set");
  h.coder = static_cast<CoderId>(coder);
  const int rank = ((b >> 4) & 0x3) + 1;
  q.params_in_frame = (b >> 6) & 1;

  // 6. pipeline_id
  uint64_t v;
  SI_RETURN_IF_ERROR(ReadVarintField(r, "pipeline_id", &v));
  if (v > std::numeric_limits<uint32_t>::max()) {
    return BadField("pipeline_id " + std::to_string(v) + " does not fit in 32 bits");
  }
  h.pipeline_id = static_cast<uint32_t>(v);

  // 7. dims, each checked before the next is read; the element count never overflows.
  h.dims.reserve(rank);
  uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    SI_RETURN_IF_ERROR(ReadVarintField(r, "dimension " + std::to_string(i), &v));
    SI_RETURN_IF_ERROR(CheckDim(v, i, limits));
    SI_RETURN_IF_ERROR(AccumulateCount(&count, v, limits));
    h.dims.push_back(static_cast<uint32_t>(v));
  }
  const Folded g = Fold(h.dims);
  SI_RETURN_IF_ERROR(CheckFolded(g));

  // 8. region tile
  if (q.granularity == Granularity::kRegion) {
    static const char* names[3] = {"region channels", "region rows", "region columns"};
    for (int k = 0; k < 3; ++k) {
      SI_RETURN_IF_ERROR(ReadVarintField(r, names[k], &v));
      SI_RETURN_IF_ERROR(CheckRegionDim(v, k, g));
      q.region[k] = static_cast<uint32_t>(v);
    }
  }

  // 9. side_len: exactly what the header implies.
  uint64_t side_len, payload_len;
  SI_RETURN_IF_ERROR(ReadVarintField(r, "side_len", &side_len));
  const uint64_t expected_side = ExpectedSideInfoSize(h);
  if (side_len != expected_side) {
    return SideInfoError("side_len is " + std::to_string(side_len) + "; the header implies " +
                         std::to_string(expected_side) + " bytes of side information");
  }
  // 10. payload_len
  SI_RETURN_IF_ERROR(ReadVarintField(r, "payload_len", &payload_len));
  const size_t header_end = r.position();

  // 11. declared lengths: a frame that could never fit the limit is an overrun whatever the
  // buffer holds; one that fits but is longer than the buffer is truncated (the two cannot be
  // told apart from the bytes, and a cut-off frame is the common cause).
  uint64_t total = header_end;
  if (__builtin_add_overflow(total, side_len, &total) || __builtin_add_overflow(total, payload_len, &total) ||
      __builtin_add_overflow(total, uint64_t{kCrcBytes}, &total) || total > limits.max_frame_bytes) {
    return Overrun("side_len " + std::to_string(side_len) + " + payload_len " + std::to_string(payload_len) +
                   " declare a frame over the limit of " + std::to_string(limits.max_frame_bytes) + " bytes");
  }
  if (size < total) {
    const uint64_t body = size - header_end;
    const char* where = body < side_len                 ? "the side information"
                        : body < side_len + payload_len ? "the payload"
                                                        : "the CRC";
    return Truncated("frame ends inside " + std::string(where) + ": the header declares " + std::to_string(total) +
                     " bytes, the buffer holds " + std::to_string(size));
  }
  if (size > total) {
    return Overrun(std::to_string(size - total) + " bytes follow the CRC (the header declares a " +
                   std::to_string(total) + "-byte frame)");
  }

  // 12. CRC over everything before it.
  const size_t crc_at = size - kCrcBytes;
  const uint32_t stored = uint32_t{data[crc_at]} | uint32_t{data[crc_at + 1]} << 8 |
                          uint32_t{data[crc_at + 2]} << 16 | uint32_t{data[crc_at + 3]} << 24;
  const uint32_t computed = Crc32c(data, crc_at);
  if (stored != computed) {
    return Status(ErrorCode::kFrameCrcMismatch,
                  "CRC32C mismatch: stored " + Hex(stored, 8) + ", computed " + Hex(computed, 8));
  }

  view.side_info = data + header_end;
  view.side_info_size = static_cast<size_t>(side_len);
  view.payload = view.side_info + side_len;
  view.payload_size = static_cast<size_t>(payload_len);
  // 13. side-info values
  SI_RETURN_IF_ERROR(CheckSideInfoValues(view.side_info, view.side_info_size));
  return view;
}

// -------------------------------------------------------------------------------------- symbols

Status CheckSideInfoValues(const uint8_t* side, size_t size) {
  for (size_t i = 0; i + 1 < size; i += 2) {
    const uint16_t h = static_cast<uint16_t>(side[i] | side[i + 1] << 8);
    if ((h & 0x7C00) == 0x7C00) {
      return Status(ErrorCode::kFrameSideInfo, "side information value " + std::to_string(i / 2) + " is not finite (half " +
                           Hex(h, 4) + ")");
    }
  }
  return Status::Ok();
}

Status CheckSymbolRange(const uint8_t* symbols, size_t count, int bits) {
  if (bits >= 8) return Status::Ok();
  const unsigned limit = 1u << bits;
  unsigned any = 0;
  for (size_t i = 0; i < count; ++i) any |= symbols[i];  // vectorises; the slow scan runs only on error
  if (any < limit) return Status::Ok();
  for (size_t i = 0; i < count; ++i) {
    if (symbols[i] >= limit) {
      return Status(ErrorCode::kFrameSymbolRange, "symbol " + std::to_string(i) + " is " + std::to_string(symbols[i]) +
                                                      ", which does not fit in " + std::to_string(bits) + " bits");
    }
  }
  return Status::Ok();
}

Status DecodeFrameSymbols(const FrameView& frame, const CoderOptions& options, uint8_t* symbols) {
  const SymbolGeometry g = GeometryOf(frame.header);
  CoderOptions o = options;
  o.cabac_layout = CabacLayoutOf(frame.header.version);
  SI_RETURN_IF_ERROR(DecodeSymbols(frame.header.coder, frame.payload, frame.payload_size, g, o, symbols));
  return CheckSymbolRange(symbols, g.count(), g.bits);
}

}  // namespace splitinfer::codec
