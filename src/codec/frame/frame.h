// codec/frame: the versioned, self-describing frame that crosses the link. No LibTorch.
// The normative description is docs/bitstream_format.md; this header and that document change
// together, and a format change bumps kFrameVersion and adds golden files under tests/golden/.
//
//   +-------+---------+--------+--------+-------------+------+--------+-----------+---------+-----------+---------+--------+
//   | magic | version | flagsA | flagsB | pipeline_id | dims | region | side_len  | pay_len | side info | payload | CRC32C |
//   |  2 B  |   1 B   |  1 B   |  1 B   |   varint    | var. | var.*  |  varint   | varint  | side_len  | pay_len |  4 B   |
//   +-------+---------+--------+--------+-------------+------+--------+-----------+---------+-----------+---------+--------+
//   * region dims only with granularity = region.
//
// A typical 1-bit frame (64x14x14, per-tensor, ranges from calibration) has 12 header bytes
// and a 4-byte CRC: 16 bytes of overhead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/lossless/lossless.h"
#include "core/status.h"

namespace splitinfer::codec {

inline constexpr uint8_t kFrameMagic0 = 0xF5;
inline constexpr uint8_t kFrameMagic1 = 0x1A;
// Version 2 changed only the cabac payload (layout 2, "Quiet groups" in cabac.cpp); the header,
// side information and the other coders' payloads are those of version 1, which every build
// still parses and decodes (ParseFrame accepts both, FrameHeader::version says which).
inline constexpr uint8_t kFrameVersion = 2;        // what WriteFrame writes by default
inline constexpr uint8_t kOldestFrameVersion = 1;  // the oldest ParseFrame accepts
// The cabac payload layout a frame version carries (CoderOptions::cabac_layout).
inline int CabacLayoutOf(uint8_t version) { return version == 1 ? kCabacLayoutPlain : kCabacLayoutGroups; }

enum class Granularity : uint8_t { kTensor = 0, kChannel = 1, kRegion = 2 };
enum class Reconstruction : uint8_t { kLevel = 0, kCentroid = 1 };
// How a region's value range is expressed (and, when ranges_in_frame, sent):
enum class RangeKind : uint8_t {
  kZeroBased = 0,  // [0, hi]: post-ReLU features; one half-float per region
  kSymmetric = 1,  // [-a, a]: signed features; one half-float per region
  kAffine = 2,     // [lo, hi]: two half-floats per region
};

struct QuantDesc {
  int bits = 1;  // 1..8
  RangeKind range = RangeKind::kZeroBased;
  Granularity granularity = Granularity::kTensor;
  Reconstruction reconstruction = Reconstruction::kLevel;
  // false: ranges (or centroids) come from the pipeline's calibration, nothing is sent;
  // true: they are in the side information of this frame.
  bool params_in_frame = false;
  uint32_t region[3] = {0, 0, 0};  // region tile C x H x W (granularity = region only)
};

struct FrameHeader {
  uint8_t version = kFrameVersion;  // kOldestFrameVersion..kFrameVersion
  uint32_t pipeline_id = 0;     // which model + split + calibration the frame belongs to
  std::vector<uint32_t> dims;   // rank 1..4, each >= 1
  QuantDesc quant;
  CoderId coder = CoderId::kNone;
};

// Limits checked before anything is allocated; a server may tighten them per pipeline.
struct FrameLimits {
  uint64_t max_elements = uint64_t{1} << 26;  // 64 Mi symbols
  uint32_t max_dim = 1u << 20;
  size_t max_frame_bytes = size_t{1} << 28;  // 256 MiB
};

// A parsed frame; side_info and payload point into the caller's buffer.
struct FrameView {
  FrameHeader header;
  const uint8_t* side_info = nullptr;
  size_t side_info_size = 0;
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;
};

// The symbol count and the coder geometry implied by the dims (see lossless.h for the folding).
uint64_t ElementCount(const std::vector<uint32_t>& dims);
SymbolGeometry GeometryOf(const FrameHeader& header);
// Number of quantization regions (1 for tensor, C for channel, the tile count for region).
uint64_t RegionCount(const FrameHeader& header);
// Bytes of side information the header implies (0 unless params_in_frame).
uint64_t ExpectedSideInfoSize(const FrameHeader& header);

// Validates the header (same checks as parsing) and serialises the frame.
Result<std::vector<uint8_t>> WriteFrame(const FrameHeader& header, const uint8_t* side_info, size_t side_info_size,
                                        const uint8_t* payload, size_t payload_size);

// Parses and validates everything except the payload's content: magic, version, every field's
// range, shape limits, lengths, side-info size and CRC, returning the specific kFrame* code.
Result<FrameView> ParseFrame(const uint8_t* data, size_t size, const FrameLimits& limits = {});

// Size of the header for these fields and a payload of `payload_size` bytes (payload_len is a
// varint in the header, so its size depends on it): what the frame costs beyond side info and
// payload, minus the 4-byte CRC. The whole frame is HeaderSize + side info + payload + 4.
size_t HeaderSize(const FrameHeader& header, size_t payload_size);

// Half floats each region contributes to the side information when params_in_frame:
// level: 1 (zero-based hi, symmetric a) or 2 (affine lo, hi); centroid: 2^bits.
int SideInfoHalvesPerRegion(const QuantDesc& quant);

// A region in the folded C x H x W geometry, half-open on each axis.
struct RegionBox {
  uint32_t c0, c1, h0, h1, w0, w1;
};
// Region `index` (< RegionCount) in region order: channel tiles major, then row tiles, then
// column tiles; edge tiles are partial. Side information lists regions in this order.
RegionBox RegionAt(const FrameHeader& header, uint64_t index);

// kFrameSideInfo naming the first side-information half that is not finite (ParseFrame and
// ParseSessionFrame run it on every frame's side information).
Status CheckSideInfoValues(const uint8_t* side, size_t size);

// kFrameSymbolRange naming the first symbol >= 2^bits. The server runs it on decoded symbols
// before they index a reconstruction table.
Status CheckSymbolRange(const uint8_t* symbols, size_t count, int bits);

// DecodeSymbols for a parsed frame (its coder, geometry, payload and, from its version, the
// cabac layout) followed by CheckSymbolRange. `symbols` must hold GeometryOf(frame.header).count() bytes; ParseFrame has
// bounded that count by FrameLimits::max_elements.
Status DecodeFrameSymbols(const FrameView& frame, const CoderOptions& options, uint8_t* symbols);

}  // namespace splitinfer::codec
