// kernels: low-bit convolution by table look-up (1..4-bit weights and activations). No LibTorch.
//
//   weight codes --PrepareLutWeights (once per layer)--> 16- or 64-entry tables of weight subset sums
//   input codes  --per call: activation bit planes, 4 or 6 taps per index--> look-ups --> int32 acc
//
// Codes. Activations: unsigned codes v in [0, 2^abits) with a zero point z in the same range,
// per tensor or per local region (qconv.h); real value = input_scale * (v - z). Weights:
// unsigned codes u in [0, 2^wbits) standing for the odd symmetric levels w = 2u + 1 - 2^wbits
// (1 bit: -1, +1; 2 bits: -3, -1, 1, 3; 4 bits: -15 .. 15 step 2), real weight = weight_scale
// * w. Symmetric and without a zero point, so the scale alone describes a region.
// DecodeLutWeights gives the int8 values, with which ReferenceConvAccumulate /
// Int8ConvAccumulate compute the same acc bit for bit (the exactness contract of qconv.h).
//
// Why tables. With L = 2^wbits - 1 (so w = 2u - L) and raw codes v:
//   sum_k w_k (v_k - z) = 2 * sum_k u_k v_k  -  L * sum_k v_k  -  z * sum_k w_k
//   sum_k u_k v_k       = sum_b 2^b * sum_k u_k * bit_b(v_k)
// A region's taps are cut into chunks of S = 4 (or 6). The weights are fixed per layer, so each
// (output channel, chunk) gets a 2^S-entry table of the sums of every subset of its S weight
// codes, built once in PrepareLutWeights; "sum of u_k over the taps whose activation bit b is
// set" is then one look-up indexed by the S activation bits of bit plane b (abits look-ups
// replace S multiply-adds). sum_k v_k is the same look-up in an all-ones table (an extra
// channel), and sum_k w_k is per (channel, region), so computed at prepare time. Taps in the
// zero padding read v = z, which contributes w * (z - z) = 0 exactly.
//
// Why this way round (tables of weights, indices from activations) rather than tables of
// activations indexed by weight bits: the tables cost nothing per call, and one SIMD look-up
// (pshufb: 16 table bytes per 128-bit lane) then serves many output *pixels* of one channel, so
// results come out in the [oc][region][pixel] order of acc with no transposition, and entries
// are non-negative (<= S*L), so several chunks add up in uint8 before one widening multiply-add.
// The price: the look-ups per tap grow with abits, not wbits (w2a4 does as many as w4a4), and
// the tables (4 to 11 bytes per tap and output channel) are read once per vector of output
// pixels, so layers with few output pixels stream them rather than reuse them.
//
// Paths (KernelPath, as in qgemm.h; kAuto takes the fastest this CPU has): portable scalar
// (any CPU), AVX2 (vpshufb on 256 bits), AVX-512 (BW + VNNI: vpshufb on 512 bits, vpdpbusd
// to widen; with VBMI and enough output pixels, 64-entry tables read by vpermb: 6 taps per
// look-up at the same rate) and, on AArch64, NEON (ARMv8.0: tbl on 128 bits, umull + addp to
// widen). All give the same acc bit for bit. Per-layer times against the int8
// path: bench/kernels_bench.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "core/status.h"
#include "kernels/qconv.h"
#include "kernels/qgemm.h"

namespace splitinfer::kernels {

inline int LutWeightValue(int code, int wbits) { return 2 * code + 1 - (1 << wbits); }

// INVALID_ARGUMENT for wbits outside 1..4, OUT_OF_RANGE naming the first code >= 2^wbits.
Result<std::vector<int8_t>> DecodeLutWeights(const std::vector<uint8_t>& codes, int wbits);

// Storage the SIMD paths read as whole 64-byte vectors: a line-split load costs two.
template <typename T>
struct LutAlignedAllocator {
  using value_type = T;
  LutAlignedAllocator() = default;
  template <typename U>
  LutAlignedAllocator(const LutAlignedAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <typename U>
  bool operator==(const LutAlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const LutAlignedAllocator<U>&) const { return false; }
};

// A layer's weights as look-up tables for one path. Fill it with PrepareLutWeights only; the
// accumulate functions check that its sizes agree with `shape`, `wbits` and `slots`.
struct LutWeights {
  ConvShape shape;
  int wbits = 0;
  KernelPath path = KernelPath::kPortable;  // resolved, never kAuto
  // Taps per chunk: 4 (16-entry tables, pshufb) or 6 (64-entry tables, AVX-512 VBMI vpermb:
  // 1.5x fewer look-ups where the region's taps divide well into sixes).
  int slots = 4;
  int chunks = 0;  // per region (lut.cpp: the chunk plan)
  // [region][channel block][chunk][channel in block][2^slots]. Channel 0 is the all-ones table
  // (the tap sum); channel t >= 1 is output channel t - 1. Blocks of kLutBlock channels, the
  // last one narrower.
  std::vector<uint8_t, LutAlignedAllocator<uint8_t>> tables;
  std::vector<int32_t> weight_sums;  // [oc][region]: sum of the region's decoded weights
};

// Output channels (the tap-sum channel included) whose look-ups share one pass over the
// activation indices: their accumulators stay in registers.
inline constexpr int kLutBlock = 4;

// Whether this CPU has AVX-512 VBMI (vpermb) besides what CpuHasAvx512Vnni checks.
bool CpuHasAvx512Vbmi();

// `codes` in the weight layout of qconv.h ([oc][c][ky][kx]), one code per byte. `slots`: 0 picks
// for the path and layer (6 on the AVX-512 path when the CPU has VBMI and the layer has enough
// output pixels to reuse the 4x larger tables, else 4); 4 or 6 forces one (6 only on the
// AVX-512 path), for tests and benchmarks of both kernels.
// INVALID_ARGUMENT for wbits outside 1..4, a shape error, a size mismatch or bad slots;
// OUT_OF_RANGE naming the first code >= 2^wbits; FAILED_PRECONDITION for a path (or, slots 6,
// VBMI) this CPU lacks; INVALID_ARGUMENT for a value outside the KernelPath enumerators.
Result<LutWeights> PrepareLutWeights(const ConvShape& shape, const std::vector<uint8_t>& codes, int wbits,
                                     KernelPath path = KernelPath::kAuto, int slots = 0);

// Same result layout as ReferenceConvAccumulate. INVALID_ARGUMENT for abits outside 1..4, a
// size mismatch or weights that do not match their shape; OUT_OF_RANGE naming the first input
// code >= 2^abits or a zero point outside [0, 2^abits); FAILED_PRECONDITION when the weights'
// path is not available on this CPU.
Result<std::vector<int32_t>> LutConvAccumulate(const LutWeights& weights, const std::vector<uint8_t>& input,
                                               int abits, int32_t input_zero_point);
// One zero point per region (zero_points.size() == shape.regions(); errors name
// "input_zero_points[g]" as ValidateConvArgs does).
Result<std::vector<int32_t>> LutConvAccumulate(const LutWeights& weights, const std::vector<uint8_t>& input,
                                               int abits, const std::vector<int32_t>& zero_points);
// The same into `acc` (resized to shape.acc_size(), every element written, capacity reused):
// the hot-path form for callers that run layer after layer. Nothing is allocated before the
// arguments are checked; scratch buffers are per thread and only grow.
Status LutConvAccumulate(const LutWeights& weights, const std::vector<uint8_t>& input, int abits,
                         const std::vector<int32_t>& zero_points, std::vector<int32_t>* acc);
Status LutConvAccumulate(const LutWeights& weights, const std::vector<uint8_t>& input, int abits,
                         int32_t input_zero_point, std::vector<int32_t>* acc);

}  // namespace splitinfer::kernels
