// kernels: quantized 2-D convolution with local quantization regions. No LibTorch.
//
//   uint8 input (C_in x H x W, zero point z) --accumulate--> int32 acc[oc][region][oh][ow]
//   int8 weights (C_out x C_in x KH x KW)                  --Requantize--> float [oc][oh][ow]
//                                                          --QuantizeOutput--> uint8 (optional)
//
// NCHW, batch 1, one convolution group; stride and zero padding are the same in both axes.
// A "local quantization region" is one output channel times `group_size` consecutive input
// channels (all kernel taps): each region has its own weight scale, so its int32 sum is kept
// separate. group_size == in_channels is plain per-output-channel quantization.
//
// Exactness contract. Every implementation (reference, portable/AVX2/VNNI int8, LUT) must
// produce the same int32 acc bit for bit:
//   acc[oc][g][y][x] = sum over c in region g, ky, kx of  w[oc][c][ky][kx] * (a[c][iy][ix] - z[g])
// where taps outside the input (zero padding) contribute nothing (the real value there is 0).
// The zero point is per tensor (z[g] = z) or per region: the input channels of region g then
// have their own activation range (scale and zero point), the local regions of the paper
// applied to activations as well as weights; a region's sum still has one scale,
// weight_scale[oc][g] * input_scale[g].
// With |region depth| <= kMaxRegionDepth no int32 sum can overflow, so every summation order
// gives the same value. The float stage is one function, Requantize, shared by all paths,
// so equal accumulators give equal floats; its order is fixed and documented there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/status.h"

namespace splitinfer::kernels {

// group_size * KH * KW per region: 65536 * 128 * 255 < 2^31, so int32 sums are exact.
inline constexpr int kMaxRegionDepth = 65536;
// Each dimension (channels, height, width, kernel, stride, padding) stays below this, and each
// buffer below 2^31 elements, so index arithmetic never overflows.
inline constexpr int kMaxDim = 1 << 16;

struct ConvShape {
  int in_channels = 0;
  int in_height = 0;
  int in_width = 0;
  int out_channels = 0;
  int kernel_h = 1;
  int kernel_w = 1;
  int stride = 1;
  int padding = 0;
  int group_size = 0;  // input channels per local quantization region; must divide in_channels

  int out_height() const { return (in_height + 2 * padding - kernel_h) / stride + 1; }
  int out_width() const { return (in_width + 2 * padding - kernel_w) / stride + 1; }
  int regions() const { return in_channels / group_size; }                  // per output channel
  int region_depth() const { return group_size * kernel_h * kernel_w; }     // products per sum
  size_t pixels() const { return static_cast<size_t>(out_height()) * out_width(); }
  size_t input_size() const { return static_cast<size_t>(in_channels) * in_height * in_width; }
  size_t weight_size() const { return static_cast<size_t>(out_channels) * in_channels * kernel_h * kernel_w; }
  size_t acc_size() const { return static_cast<size_t>(out_channels) * regions() * pixels(); }
  size_t output_size() const { return static_cast<size_t>(out_channels) * pixels(); }
};

// INVALID_ARGUMENT naming the field (non-positive size, group_size not dividing in_channels,
// kernel larger than the padded input, ...); OUT_OF_RANGE for region depth or sizes above limits.
Status ValidateConvShape(const ConvShape& shape);

// The argument checks every *ConvAccumulate function starts with: the shape, the input and
// weight counts and the input zero point in [0, max_zero_point]. INVALID_ARGUMENT naming the
// argument for a count mismatch, OUT_OF_RANGE for the zero point.
Status ValidateConvArgs(const ConvShape& shape, size_t input_count, int32_t input_zero_point, int32_t max_zero_point,
                        size_t weight_count);
// The same with one zero point per region (zero_points.size() must be shape.regions()); the
// error names the first bad one ("input_zero_points[3]").
Status ValidateConvArgs(const ConvShape& shape, size_t input_count, const std::vector<int32_t>& zero_points,
                        int32_t max_zero_point, size_t weight_count);

// How the int32 accumulators become real numbers.
struct Requant {
  float input_scale = 1.f;           // real input = input_scale * (code - zero point)
  std::vector<float> weight_scales;  // [out_channels][regions]: real weight = scale * int8
  std::vector<float> bias;           // [out_channels], or empty for none
  bool relu = false;
  std::vector<float> input_scales;   // per region instead of input_scale (empty: input_scale for all)
};

// The readable reference: a direct 7-deep loop. `input` holds input_size() codes, `weights`
// weight_size() values in [oc][c][ky][kx] order. Returns acc_size() sums, [oc][region][y][x].
Result<std::vector<int32_t>> ReferenceConvAccumulate(const ConvShape& shape, const std::vector<uint8_t>& input,
                                                     int32_t input_zero_point, const std::vector<int8_t>& weights);
// Per-region zero points (one per region, see above).
Result<std::vector<int32_t>> ReferenceConvAccumulate(const ConvShape& shape, const std::vector<uint8_t>& input,
                                                     const std::vector<int32_t>& zero_points,
                                                     const std::vector<int8_t>& weights);

// The float stage, identical for every path. Per output element, in this order (float math,
// no fused multiply-add: the module is built with -ffp-contract=off):
//   s = 0; for g = 0..regions-1: s += float(acc[g]) * weight_scales[oc][g]
//   y = s * input_scale;  y += bias[oc];  if relu: y = max(y, 0)
// With per-region input_scales the region's scale is one float product and there is no final
// multiply:  s += float(acc[g]) * (weight_scales[oc][g] * input_scales[g]);  y = s;  ...
Result<std::vector<float>> Requantize(const ConvShape& shape, const std::vector<int32_t>& acc, const Requant& rq);
// The same into *out (resized, reusing its capacity): for callers that run shape after shape.
Status RequantizeInto(const ConvShape& shape, const std::vector<int32_t>& acc, const Requant& rq,
                      std::vector<float>* out);

// uint8 output: q = clamp(nearbyint(y / scale) + zero_point, 0, 255), computed in float;
// nearbyint rounds half to even (the default rounding mode, which this module never changes).
Result<std::vector<uint8_t>> QuantizeOutput(const std::vector<float>& values, float scale, int32_t zero_point);

}  // namespace splitinfer::kernels
