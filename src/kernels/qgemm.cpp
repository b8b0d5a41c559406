// kernels: portable and AVX2 int8 GEMM, im2col convolution (contract: qgemm.h).
#include "kernels/qgemm.h"

#include <algorithm>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#define SI_KERNELS_X86 1
#include <immintrin.h>
#endif

namespace splitinfer::kernels {
namespace {

// The plain loop: broadcast weights, run along B rows. Compilers vectorise the inner loops for
// whatever the baseline ISA is (SSE2 on x86-64, NEON on AArch64). Every prefix of the sum is a
// partial convolution sum, bounded like the whole (qconv.h), so nothing overflows on the way.
void GemmPortable(const GemmShape& s, const int8_t* a, const uint8_t* b, const int32_t* offset, int32_t* c) {
  const int regions = s.k / s.group_k;
  for (int m = 0; m < s.m; ++m)
    for (int g = 0; g < regions; ++g) {
      const size_t row = static_cast<size_t>(m) * regions + g;
      int32_t* out = c + row * s.n;
      std::fill(out, out + s.n, offset ? offset[row] : 0);
      // Four B rows per pass over `out`: a quarter of the loads and stores of C.
      const int8_t* w = a + static_cast<size_t>(m) * s.k;
      int k = g * s.group_k;
      for (; k + 4 <= (g + 1) * s.group_k; k += 4) {
        const int32_t w0 = w[k], w1 = w[k + 1], w2 = w[k + 2], w3 = w[k + 3];
        const uint8_t* b0 = b + static_cast<size_t>(k) * s.ldb;
        const uint8_t *b1 = b0 + s.ldb, *b2 = b1 + s.ldb, *b3 = b2 + s.ldb;
        for (int n = 0; n < s.n; ++n) out[n] += w0 * b0[n] + w1 * b1[n] + w2 * b2[n] + w3 * b3[n];
      }
      for (; k < (g + 1) * s.group_k; ++k) {
        const int32_t wk = w[k];
        const uint8_t* bk = b + static_cast<size_t>(k) * s.ldb;
        for (int n = 0; n < s.n; ++n) out[n] += wk * bk[n];
      }
    }
}

#ifdef SI_KERNELS_X86
#define SI_AVX2 __attribute__((target("avx2")))

// A is repacked as int32 words holding two consecutive weights of one region as int16 (low =
// k, high = k+1; a region of odd length gets a 0 partner), the operand layout of madd_epi16.
std::vector<int32_t> PackWeightPairs(const GemmShape& s, const int8_t* a, int pairs) {
  const int regions = s.k / s.group_k;
  std::vector<int32_t> packed(static_cast<size_t>(s.m) * regions * pairs);
  for (int m = 0; m < s.m; ++m)
    for (int g = 0; g < regions; ++g)
      for (int p = 0; p < pairs; ++p) {
        const int k = g * s.group_k + 2 * p;
        const int8_t* row = a + static_cast<size_t>(m) * s.k;
        const uint16_t lo = static_cast<uint16_t>(static_cast<int16_t>(row[k]));
        const uint16_t hi = 2 * p + 1 < s.group_k ? static_cast<uint16_t>(static_cast<int16_t>(row[k + 1])) : 0;
        packed[(static_cast<size_t>(m) * regions + g) * pairs + p] = static_cast<int32_t>(lo | (uint32_t{hi} << 16));
      }
  return packed;
}

// MR rows of C (all regions, all columns). The register tile is MR rows x 16 columns: 2*MR
// int32 accumulators + 2 B vectors + 1 weight broadcast <= 11 of the 16 ymm registers. Per
// pair of k, two B rows are interleaved byte-wise and zero-extended to int16, so each int32
// lane holds (B[k][n], B[k+1][n]) and madd_epi16 against the (w_k, w_k+1) broadcast yields
// w_k*B[k][n] + w_k+1*B[k+1][n] exactly.
template <int MR>
SI_AVX2 void Avx2Rows(const GemmShape& s, int pairs, const int32_t* wp, const uint8_t* b, const int32_t* offset,
                      int32_t* c) {
  const int regions = s.k / s.group_k;
  const int n16 = s.n - s.n % 16;
  for (int g = 0; g < regions; ++g) {
    const uint8_t* bg = b + static_cast<size_t>(g) * s.group_k * s.ldb;
    const int32_t* w[MR];
    int32_t base[MR];
    int32_t* out[MR];
    for (int i = 0; i < MR; ++i) {
      const size_t row = static_cast<size_t>(i) * regions + g;
      w[i] = wp + row * pairs;
      base[i] = offset ? offset[row] : 0;
      out[i] = c + row * s.n;
    }
    for (int n0 = 0; n0 < n16; n0 += 16) {
      __m256i acc[MR][2];
      for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_set1_epi32(base[i]);
      for (int p = 0; p < pairs; ++p) {
        const uint8_t* r0 = bg + static_cast<size_t>(2 * p) * s.ldb + n0;
        // Odd region: the missing row k+1 is read as row k again; its weight is 0.
        const uint8_t* r1 = 2 * p + 1 < s.group_k ? r0 + s.ldb : r0;
        const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0));
        const __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1));
        const __m256i lo = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x0, x1));  // columns 0..7
        const __m256i hi = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(x0, x1));  // columns 8..15
        for (int i = 0; i < MR; ++i) {
          const __m256i wv = _mm256_set1_epi32(w[i][p]);
          acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(lo, wv));
          acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(hi, wv));
        }
      }
      for (int i = 0; i < MR; ++i) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i] + n0), acc[i][0]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i] + n0 + 8), acc[i][1]);
      }
    }
    // The last n % 16 columns, scalar, from the same packed weights.
    for (int i = 0; i < MR; ++i)
      for (int n = n16; n < s.n; ++n) {
        int32_t sum = base[i];
        for (int p = 0; p < pairs; ++p) {
          const uint8_t* r0 = bg + static_cast<size_t>(2 * p) * s.ldb + n;
          sum += static_cast<int16_t>(w[i][p] & 0xFFFF) * static_cast<int32_t>(r0[0]);
          if (2 * p + 1 < s.group_k) sum += static_cast<int16_t>(w[i][p] >> 16) * static_cast<int32_t>(r0[s.ldb]);
        }
        out[i][n] = sum;
      }
  }
}

void GemmAvx2(const GemmShape& s, const int8_t* a, const uint8_t* b, const int32_t* offset, int32_t* c) {
  const int regions = s.k / s.group_k;
  const int pairs = (s.group_k + 1) / 2;
  const std::vector<int32_t> wp = PackWeightPairs(s, a, pairs);
  for (int m = 0; m < s.m; m += 4) {
    const size_t row = static_cast<size_t>(m) * regions;
    const int32_t* w = wp.data() + row * pairs;
    const int32_t* off = offset ? offset + row : nullptr;
    int32_t* out = c + row * s.n;
    switch (std::min(4, s.m - m)) {
      case 4: Avx2Rows<4>(s, pairs, w, b, off, out); break;
      case 3: Avx2Rows<3>(s, pairs, w, b, off, out); break;
      case 2: Avx2Rows<2>(s, pairs, w, b, off, out); break;
      default: Avx2Rows<1>(s, pairs, w, b, off, out); break;
    }
  }
}
#endif  // SI_KERNELS_X86

}  // namespace

const char* KernelPathName(KernelPath path) {
  switch (path) {
    case KernelPath::kAuto: return "auto";
    case KernelPath::kPortable: return "portable";
    case KernelPath::kAvx2: return "avx2";
  }
  return "unknown";
}

bool CpuHasAvx2() {
#ifdef SI_KERNELS_X86
  static const bool has = [] {
    __builtin_cpu_init();  // harmless here; required if ever called before constructors run
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
#else
  return false;
#endif
}

Status QGemm(const GemmShape& s, const int8_t* a, const uint8_t* b, const int32_t* offset, int32_t* c,
             KernelPath path) {
  if (s.m < 1 || s.n < 1 || s.k < 1 || s.group_k < 1)
    return InvalidArgument("gemm m, n, k and group_k must be >= 1 (got m=" + std::to_string(s.m) + " n=" +
                           std::to_string(s.n) + " k=" + std::to_string(s.k) + " group_k=" +
                           std::to_string(s.group_k) + ")");
  if (s.k % s.group_k != 0)
    return InvalidArgument("gemm group_k = " + std::to_string(s.group_k) + " does not divide k = " +
                           std::to_string(s.k));
  if (s.ldb < s.n) return InvalidArgument("gemm ldb = " + std::to_string(s.ldb) + " is less than n");
  if (s.group_k > kMaxRegionDepth)
    return OutOfRange("gemm group_k = " + std::to_string(s.group_k) + " exceeds " + std::to_string(kMaxRegionDepth));
  if (!a || !b || !c) return InvalidArgument("gemm a, b and c must not be null");
  const bool avx2 = CpuHasAvx2();
  if (path == KernelPath::kAvx2 && !avx2) return FailedPrecondition("gemm path avx2: this CPU has no AVX2");
#ifdef SI_KERNELS_X86
  if (path != KernelPath::kPortable && avx2) {
    GemmAvx2(s, a, b, offset, c);
    return Status::Ok();
  }
#endif
  GemmPortable(s, a, b, offset, c);
  return Status::Ok();
}

Result<std::vector<int32_t>> Int8ConvAccumulate(const ConvShape& s, const std::vector<uint8_t>& input,
                                                int32_t input_zero_point, const std::vector<int8_t>& weights,
                                                KernelPath path) {
  SI_RETURN_IF_ERROR(ValidateConvArgs(s, input.size(), input_zero_point, 255, weights.size()));
  const int k = s.in_channels * s.kernel_h * s.kernel_w;
  const int n = static_cast<int>(s.pixels());
  const int oh = s.out_height(), ow = s.out_width(), regions = s.regions(), depth = s.region_depth();

  // im2col: B[(c, ky, kx)][(y, x)]. Taps in the zero padding hold the zero point, so that
  // every column is a full sum and the offset below removes z from all taps alike.
  std::vector<uint8_t> cols;
  const uint8_t* b = input.data();
  if (s.kernel_h != 1 || s.kernel_w != 1 || s.stride != 1 || s.padding != 0) {
    cols.resize(static_cast<size_t>(k) * n);
    const uint8_t z = static_cast<uint8_t>(input_zero_point);
    uint8_t* dst = cols.data();
    for (int c = 0; c < s.in_channels; ++c)
      for (int ky = 0; ky < s.kernel_h; ++ky)
        for (int kx = 0; kx < s.kernel_w; ++kx)
          for (int y = 0; y < oh; ++y) {
            const int iy = y * s.stride - s.padding + ky;
            if (iy < 0 || iy >= s.in_height) {
              dst = std::fill_n(dst, ow, z);
              continue;
            }
            const uint8_t* src = input.data() + (static_cast<size_t>(c) * s.in_height + iy) * s.in_width;
            for (int x = 0; x < ow; ++x) {
              const int ix = x * s.stride - s.padding + kx;
              *dst++ = ix < 0 || ix >= s.in_width ? z : src[ix];
            }
          }
    b = cols.data();
  }

  // offset[m][g] = -z * (sum of the region's weights): sum w*(a - z) = sum w*a - z*sum w.
  std::vector<int32_t> offset(static_cast<size_t>(s.out_channels) * regions);
  for (size_t r = 0; r < offset.size(); ++r) {
    int32_t sum = 0;
    for (int i = 0; i < depth; ++i) sum += weights[r * depth + i];
    offset[r] = -input_zero_point * sum;
  }

  std::vector<int32_t> acc(s.acc_size());
  const GemmShape gs{s.out_channels, n, k, depth, n};
  SI_RETURN_IF_ERROR(QGemm(gs, weights.data(), b, offset.data(), acc.data(), path));
  return acc;
}

}  // namespace splitinfer::kernels
