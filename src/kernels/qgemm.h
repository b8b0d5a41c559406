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
// Paths: a portable scalar loop (any CPU) and an AVX2 one, chosen at run time
// (__builtin_cpu_supports): the file builds without -mavx2 and the AVX2 code sits in
// target("avx2") functions, so one x86-64 binary runs on CPUs with and without AVX2 (on ARM
// only the portable path is compiled). Both paths are exact:
// the AVX2 one widens to int16 and uses madd_epi16 (|a*w| <= 255*128 fits int16, pair sums
// fit int32), never the saturating maddubs_epi16. No int32 sum can overflow when group_k <=
// kMaxRegionDepth and the offsets are the convolution's (every prefix is then a partial
// convolution sum, bounded by 128 * 255 per tap); other offsets must leave the same headroom.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kernels/qconv.h"

namespace splitinfer::kernels {

enum class KernelPath { kAuto = 0, kPortable = 1, kAvx2 = 2 };
const char* KernelPathName(KernelPath path);
bool CpuHasAvx2();

struct GemmShape {
  int m = 0;
  int n = 0;
  int k = 0;
  int group_k = 0;  // must divide k
  int ldb = 0;      // row stride of B in elements, >= n
};

// INVALID_ARGUMENT for a bad shape (naming the field), OUT_OF_RANGE for group_k above
// kMaxRegionDepth, FAILED_PRECONDITION for kAvx2 on a CPU (or build) without AVX2.
// `offset` holds m * (k / group_k) values, or is null for zeros; `c` receives m * (k/group_k) * n.
Status QGemm(const GemmShape& shape, const int8_t* a, const uint8_t* b, const int32_t* offset, int32_t* c,
             KernelPath path = KernelPath::kAuto);

// The int8 convolution: im2col (skipped for 1x1, stride 1, no padding) + QGemm. Same contract,
// arguments and errors as ReferenceConvAccumulate, whose result it equals bit for bit.
Result<std::vector<int32_t>> Int8ConvAccumulate(const ConvShape& shape, const std::vector<uint8_t>& input,
                                                int32_t input_zero_point, const std::vector<int8_t>& weights,
                                                KernelPath path = KernelPath::kAuto);

}  // namespace splitinfer::kernels
