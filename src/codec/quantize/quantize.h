// codec/quantize: float feature maps <-> b-bit symbols (the only torch-aware part of codec).
//
//   feature [dims] --(regions: tensor | channel | C x H x W tiles)--> per-region range
//     --> symbols q = clamp(round((x - lo) / step), 0, 2^b - 1)  (+ side info when dynamic)
//   symbols --> x^ = table[region][q]   table = lo + q * step  (level)  or  bin means (centroid)
//
// Ranges and centroids are either calibrated offline (static: a QuantParams file the node and
// server both load; nothing is sent) or computed per frame and sent as half floats (dynamic:
// `params_in_frame`; the encoder rounds them to half *before* quantizing, so the server's
// reconstruction equals the node's bit for bit). Dimensions fold to C x H x W exactly as the
// frame does (codec/frame/frame.h), so regions mean the same on both sides.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "codec/frame/frame.h"
#include "core/status.h"

namespace splitinfer::codec {

enum class ClipMethod : uint8_t { kMinMax = 0, kPercentile = 1, kMse = 2 };

struct QuantSpec {
  int bits = 1;  // 1..8
  RangeKind range = RangeKind::kZeroBased;
  Granularity granularity = Granularity::kTensor;
  uint32_t region[3] = {0, 0, 0};  // tile C x H x W for kRegion
  Reconstruction reconstruction = Reconstruction::kLevel;
  bool params_in_frame = false;  // dynamic per-frame ranges (sent) instead of calibrated ones
  ClipMethod clip = ClipMethod::kMinMax;
  double percentile = 99.9;  // kPercentile: the clip is this percentile of the values (|x| if symmetric)
};

// The parameters a node and a server share. For static specs: one range and (for centroid
// reconstruction) 2^bits centroids per region, for a fixed per-image feature shape.
struct QuantParams {
  QuantSpec spec;
  std::vector<uint32_t> dims;     // per-image feature dims, rank 1..4
  std::vector<float> lo, hi;      // per region (static only)
  std::vector<float> centroids;   // per region x 2^bits (static centroid reconstruction only)

  int levels() const { return 1 << spec.bits; }
  uint64_t regions() const;
  // The frame header's view of this quantizer.
  QuantDesc desc() const;
};

// INVALID_ARGUMENT for a spec that cannot work (bits outside 1..8, zero region dims, MSE or
// percentile clipping asked of dynamic ranges, which have no calibration data to search).
Status ValidateSpec(const QuantSpec& spec);

// Static calibration over samples [N, dims...]: per region, the clip by the spec's method and,
// for centroid reconstruction, the mean of the calibration values falling in each bin.
// Dynamic specs need no statistics but are still "calibrated" to fix the dims.
Result<QuantParams> Calibrate(const QuantSpec& spec, const torch::Tensor& samples);

struct QuantizedMap {
  std::vector<uint8_t> symbols;    // one per element, C order
  std::vector<uint8_t> side_info;  // frame side info (dynamic only), docs/bitstream_format.md
};

// One image's features (exactly params.dims, float32, any device) -> symbols (+ side info).
Result<QuantizedMap> Quantize(const QuantParams& params, const torch::Tensor& feature);

// Symbols (+ side info for dynamic params) -> float32 feature of params.dims (CPU).
// kFrameSideInfo when the side info has the wrong size or non-finite values.
Result<torch::Tensor> Dequantize(const QuantParams& params, const uint8_t* symbols, size_t count,
                                 const uint8_t* side_info, size_t side_info_size);

// Dequantize(Quantize(x)) for a whole batch [N, dims...] of static params, as tensor ops on the
// batch's device. It equals the per-image codec path bit for bit (tests/codec checks it), so
// training can see exactly what the server will see without coding each image. No gradient.
// INVALID_ARGUMENT for dynamic params (their ranges depend on each frame) or other dims.
Result<torch::Tensor> SimulateBatch(const QuantParams& params, const torch::Tensor& batch);

nlohmann::json ToJson(const QuantParams& params);
Result<QuantParams> QuantParamsFromJson(const nlohmann::json& j, const std::string& origin);

// Parsing names used in configs and on the command line.
Result<Granularity> GranularityFromName(const std::string& name);  // tensor | channel | region
Result<ClipMethod> ClipFromName(const std::string& name);           // minmax | percentile | mse
Result<RangeKind> RangeFromName(const std::string& name);           // unsigned | signed | affine
const char* GranularityName(Granularity g);
const char* ClipName(ClipMethod c);
const char* RangeName(RangeKind r);

}  // namespace splitinfer::codec
