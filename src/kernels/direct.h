// kernels/direct: the AVX-512 VNNI path of a whole quantized head, in NHWC. No LibTorch.
//
// The GEMM path (qgemm.h) puts output pixels in the vector lanes: it needs the im2col matrix
// (9 copies of a 3x3 convolution's input, 18 % of the Fashion-MNIST head's time under perf)
// and wastes lanes on small maps (a 7x7 map is 49 pixels: 64 lanes). Here the output channels
// are the lanes (64, 128, 256: no waste), and each pixel's 4 input channels at one tap are one
// broadcast read in place from the padded NHWC input, so there is no im2col at all:
//
//   input codes [H + 2p][W + 2p][C4] (uint8; the padding holds each region's zero point)
//   weights     [oc block of 64][region][quad][64 lanes][4]  (int8, packed once)
//   acc(pixel, oc) += vpdpbusd(broadcast of the 4 codes of quad q at the pixel's window, weights)
//
// A quad is 4 input channels of one region at one tap; a region whose channel count is not a
// multiple of 4 is padded with zero-weight channels (C4 = regions x that count rounded up), so
// they add exactly 0. The requantization is fused: after each region its int32 sums become
// floats in the order qconv.h's Requantize documents, then the bias, the residual and the ReLU
// in head.cpp's order, so the result equals the reference path bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kernels/parallel.h"
#include "kernels/qconv.h"

namespace splitinfer::kernels {

struct DirectConv {
  ConvShape shape;
  bool row_quads = false;  // one region, C % 4 != 0: quads along kernel rows (direct.cpp)
  int gs4 = 0;    // input channels per region, rounded up to a multiple of 4 (C with row quads)
  int c4 = 0;     // regions * gs4: channels per pixel of the padded input
  int quads = 0;  // per region: kernel_h * kernel_w * gs4 / 4
  int blocks = 0; // output channels in blocks of 64
  std::vector<int8_t> weights;        // [block][region][quad][64][4], zero past a region or out_channels
  std::vector<int32_t> offsets;       // [region][blocks * 64]: -z * (sum of the region's weights)
  std::vector<float> factors;         // [region][blocks * 64]: weight scale (x the region's input scale)
  std::vector<float> bias;            // [blocks * 64]
  float output_scale = 1.f;           // input scale, or 1 with per-region input scales
  std::vector<int32_t> quad_offsets;  // [region][quad]: bytes from a pixel's window origin
  // Input quantization, per padded channel: 1 / the region's scale, its zero point (as float),
  // and the code the zero padding holds; padding channels get code 0 (their weights are 0).
  std::vector<float> inv_scales, zeros;
  std::vector<uint8_t> pad_codes;
  float top = 255.f;  // 2^abits - 1
  bool relu = false;
};

// True where this build and CPU can run it (AVX-512 VNNI on x86-64).
bool DirectConvAvailable();

// A quantized conv for the direct kernel: `weights` int8 [oc][c][ky][kx]; the scales and bias
// as in Requant (input_scales empty: input_scale for every region), one zero point per region.
// FAILED_PRECONDITION where DirectConvAvailable() is false.
Result<DirectConv> PrepareDirectConv(const ConvShape& shape, const std::vector<int8_t>& weights,
                                     const std::vector<float>& weight_scales, float input_scale,
                                     const std::vector<float>& input_scales, const std::vector<int32_t>& zero_points,
                                     const std::vector<float>& bias, int abits, bool relu);

// The input of a conv, quantized into its padded NHWC buffer (resized; reuses capacity).
// `nchw`: the values are [C][H][W] (the head's input) instead of [H][W][C]. A pool splits a
// large input's rows among its threads.
void QuantizePaddedNhwc(const DirectConv& conv, const float* x, bool nchw, std::vector<uint8_t>* padded,
                        ThreadPool* pool = nullptr);

// out [OH][OW][OC] (resized) = the conv of the padded codes, requantized, plus `residual`
// ([OH][OW][OC] or null), then the ReLU if the conv has one. With a pool of several threads
// a conv of at least a few million multiply-adds splits its pixels among them (the same
// result bit for bit); null or one thread: the calling thread alone.
void RunDirectConv(const DirectConv& conv, const std::vector<uint8_t>& padded, const float* residual,
                   std::vector<float>* out, ThreadPool* pool = nullptr);

// Max-pool of an [H][W][C] map (square window; zero padding counts as -inf); a pool splits a
// large map's rows among its threads.
void MaxPoolNhwc(const float* in, int c, int h, int w, int kernel, int stride, int padding, std::vector<float>* out,
                 ThreadPool* pool = nullptr);
// [H][W][C] -> [C][H][W] (a pool splits a large map's pixels among its threads).
void NhwcToNchw(const float* in, int c, int h, int w, float* out, ThreadPool* pool = nullptr);

}  // namespace splitinfer::kernels
