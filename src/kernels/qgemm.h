// kernels: int8 x uint8 GEMM with per-region int32 sums, and the int8 convolution built on it.
// No LibTorch.
//
//   A (M x K int8, row-major)  x  B (K x N uint8, row stride ldb)  ->  C[m][g][n] int32
//   C[m][g][n] = offset[m][g] + sum over k in [g*group_k, (g+1)*group_k) of A[m][k] * B[k][n]
//
// K is split into K/group_k regions whose sums stay separate (one weight scale each, see
// qconv.h). For a convolution, A is the weights, B the im2col matrix (k = (c, ky, kx), so a
// region of group_size input channels is one contiguous K range) and offset = -z * sum of A over
// the region, which turns the sum over raw codes into the sum over (code - z) exactly.
//
// Paths: a portable scalar loop (any CPU), an AVX2 one and an AVX-512 VNNI one, chosen at run
// time (__builtin_cpu_supports): the file builds without -mavx2/-mavx512* and the SIMD code sits
// in target("...") functions, so one x86-64 binary runs on CPUs with and without them. On
// AArch64, a NEON path (ARMv8.0) and, where the CPU has ARMv8.2 dotprod, a dot-product one (the
// SIMD code in a target("...") function again). kAuto takes VNNI, else AVX2, else NEON dot
// product, else NEON, else portable. All paths are exact:
// - AVX2 widens to int16 and uses madd_epi16 (|a*w| <= 255*128 fits int16, pair sums fit
//   int32), never the saturating maddubs_epi16.
// - VNNI uses vpdpbusd (B unsigned, A signed; the non-saturating form): per int32 lane it adds
//   the 4 products of a k-quad to the accumulator with no intermediate rounding or saturation.
//   B is repacked as k-quads interleaved per column ([region][k/4][n][4]); a region whose
//   length is not a multiple of 4 is padded with zero weights, so the padding adds exactly 0.
// - NEON widens B to int16 and uses smlal by lane (int16 x int16 -> int32 multiply-accumulate,
//   exact): 4 rows of A as one int16x4 vector per k, 16 columns per pass.
// - NEON dot product uses sdot by lane (signed bytes; 4 products per int32 lane, exact): B is
//   stored as b - 128 in the VNNI path's k-quad layout and the offset gains 128 * sum w.
// No int32 sum can overflow when group_k <= kMaxRegionDepth and the offsets are the
// convolution's (every prefix is then a partial convolution sum, bounded by 128 * 255 per tap);
// other offsets must leave the same headroom. (vpdpbusd and the int32 adds wrap modulo 2^32, so
// even an out-of-range prefix would give the exact final sum whenever that sum fits int32.)
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kernels/qconv.h"

namespace splitinfer::kernels {

enum class KernelPath { kAuto = 0, kPortable = 1, kAvx2 = 2, kAvx512Vnni = 3, kNeon = 4, kNeonDot = 5 };
const char* KernelPathName(KernelPath path);
bool CpuHasAvx2();
// AVX-512 F, BW, VL and VNNI, with the OS saving the zmm state (what the VNNI path needs).
bool CpuHasAvx512Vnni();
// AArch64 Advanced SIMD: part of every ARMv8-A core (a Raspberry Pi 4's Cortex-A72 included),
// so true in every AArch64 build and false elsewhere.
bool CpuHasNeon();
// AArch64 with the ARMv8.2 dot-product instructions (sdot), as the OS reports them: Cortex-A55,
// A76 and later (a Raspberry Pi 5), not a Pi 4's A72.
bool CpuHasNeonDot();
// Every path this CPU and build can run, kPortable first (what tests and benchmarks iterate).
std::vector<KernelPath> AvailableKernelPaths();
// kAuto -> the fastest path this CPU has; another path -> itself, or FAILED_PRECONDITION when
// the CPU (or build) lacks it.
Result<KernelPath> ResolveKernelPath(KernelPath path);

struct GemmShape {
  int m = 0;
  int n = 0;
  int k = 0;
  int group_k = 0;  // must divide k
  int ldb = 0;      // row stride of B in elements, >= n
};

// INVALID_ARGUMENT for a bad shape (naming the field), OUT_OF_RANGE for group_k above
// kMaxRegionDepth, FAILED_PRECONDITION for kAvx2 (kAvx512Vnni) on a CPU or build without AVX2
// (AVX-512 VNNI), INVALID_ARGUMENT for a value outside the KernelPath enumerators.
// `offset` holds m * (k / group_k) values, or is null for zeros; `c` receives m * (k/group_k) * n.
Status QGemm(const GemmShape& shape, const int8_t* a, const uint8_t* b, const int32_t* offset, int32_t* c,
             KernelPath path = KernelPath::kAuto);

// The int8 convolution: im2col (skipped for 1x1, stride 1, no padding) + QGemm; the VNNI path
// writes the im2col matrix straight into its k-quad layout. Same contract, arguments and
// errors as ReferenceConvAccumulate, whose result it equals bit for bit, plus
// FAILED_PRECONDITION for a path this CPU lacks.
Result<std::vector<int32_t>> Int8ConvAccumulate(const ConvShape& shape, const std::vector<uint8_t>& input,
                                                int32_t input_zero_point, const std::vector<int8_t>& weights,
                                                KernelPath path = KernelPath::kAuto);

// A convolution's int8 weights prepared once for one path (a layer's weights do not change
// between inputs, so a call then does no pass over them): the per-region weight sums behind the
// zero-point offset and, for the VNNI and NEON paths, the weights in their register-tile layouts.
struct Int8ConvWeights {
  ConvShape shape;
  KernelPath path = KernelPath::kPortable;  // resolved, never kAuto
  std::vector<int32_t> region_sums;         // [oc][region]: sum of the region's weights
  std::vector<int8_t> weights;              // portable/AVX2: as given, [oc][c][ky][kx]
  std::vector<int8_t> tiles;                // VNNI, NEON dot: [oc/8][region][k/4][8 rows][4], zero-padded;
                                            // NEON: [oc/4][k][4 rows], zero-padded
};

// Same argument checks as Int8ConvAccumulate (the input count aside), FAILED_PRECONDITION for a
// path this CPU lacks.
Result<Int8ConvWeights> PrepareInt8ConvWeights(const ConvShape& shape, const std::vector<int8_t>& weights,
                                               KernelPath path = KernelPath::kAuto);
// Equals Int8ConvAccumulate(weights.shape, input, input_zero_point, <the weights>, weights.path)
// bit for bit; INVALID_ARGUMENT when `weights` does not hold what PrepareInt8ConvWeights makes.
Result<std::vector<int32_t>> Int8ConvAccumulate(const Int8ConvWeights& weights, const std::vector<uint8_t>& input,
                                                int32_t input_zero_point);
// The same into `acc` (resized to shape.acc_size(); every element is written), so a caller
// running many convolutions can reuse one buffer instead of allocating and zeroing each time.
Status Int8ConvAccumulate(const Int8ConvWeights& weights, const std::vector<uint8_t>& input,
                          int32_t input_zero_point, std::vector<int32_t>* acc);
// Per-region zero points (qconv.h): equals the per-region ReferenceConvAccumulate bit for bit.
Status Int8ConvAccumulate(const Int8ConvWeights& weights, const std::vector<uint8_t>& input,
                          const std::vector<int32_t>& zero_points, std::vector<int32_t>* acc);

}  // namespace splitinfer::kernels
