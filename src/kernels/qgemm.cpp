// kernels: portable, AVX2, AVX-512 VNNI, NEON and NEON dot-product int8 GEMM, im2col convolution
// (contract: qgemm.h).
#include "kernels/qgemm.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#define SI_KERNELS_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#define SI_KERNELS_NEON 1
#include <arm_neon.h>
#if defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#endif

namespace splitinfer::kernels {
namespace {

// One row (c, ky, kx) of the im2col matrix: dst[y * ow + x] = input[c][iy][ix], or z where the
// tap falls in the zero padding (so every column is a full sum and the offset removes z from all
// taps alike). The portable and AVX2 paths' im2col (the VNNI path packs from padded planes).
inline void Im2colRow(const ConvShape& s, const uint8_t* input, int c, int ky, int kx, uint8_t z, uint8_t* dst) {
  const int oh = s.out_height(), ow = s.out_width();
  // Output columns whose tap lies inside the row: x_lo <= x < x_hi.
  const int first = s.padding - kx;  // x * stride >= first
  const int x_lo = first <= 0 ? 0 : std::min(ow, (first + s.stride - 1) / s.stride);
  const int last = s.in_width - 1 + s.padding - kx;  // x * stride <= last
  const int x_hi = last < 0 ? 0 : std::min(ow, last / s.stride + 1);
  for (int y = 0; y < oh; ++y, dst += ow) {
    const int iy = y * s.stride - s.padding + ky;
    if (iy < 0 || iy >= s.in_height || x_lo >= x_hi) {
      std::memset(dst, z, static_cast<size_t>(ow));
      continue;
    }
    const uint8_t* src = input + (static_cast<size_t>(c) * s.in_height + iy) * s.in_width;
    std::memset(dst, z, static_cast<size_t>(x_lo));
    if (s.stride == 1) {
      const uint8_t* from = src + (x_lo - s.padding + kx);
      for (int x = x_lo; x < x_hi; ++x) dst[x] = from[x - x_lo];
    } else {
      for (int x = x_lo; x < x_hi; ++x) dst[x] = src[x * s.stride - s.padding + kx];
    }
    std::memset(dst + x_hi, z, static_cast<size_t>(ow - x_hi));
  }
}

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

// The weight layout of the k-quad kernels, VNNI and NEON dot product (see PackQuadTiles): rows in
// blocks of 8, each region padded to whole k-quads. Pure C++, shared by both and by the checks
// every build runs.
constexpr int kQuadRows = 8;

size_t QuadTilesSize(int m, int regions, int quads) {
  return static_cast<size_t>((m + kQuadRows - 1) / kQuadRows) * regions * quads * kQuadRows * 4;
}

// B as k-quads interleaved per column: for region g and quad q (rows k = g*group_k + 4q + j,
// j = 0..3), 4*ldp bytes holding (B[k][n], B[k+1][n], B[k+2][n], B[k+3][n]) for n = 0..ldp-1,
// the u8 operand layout of vpdpbusd. Rows past the region's end and columns past n are zero (A
// is zero-padded there too, so they add nothing). ldp is n rounded up to 16 (one zmm of int32
// lanes), so a column tile never reads past the buffer and needs no masked loads. (The NEON
// dot-product path stores B - 128 as int8 in the same layout: sdot multiplies signed bytes.)
// Per-thread scratch that only grows: a head runs the same shapes image after image, and
// allocating its megabyte-sized buffers per call made the kernel fault fresh pages every time
// (16 % of the ResNet-50 stem's samples under perf). Slot 0: packed B; slot 1: padded planes.
uint8_t* Scratch(int slot, size_t bytes) {
  thread_local std::vector<uint8_t> buffers[2];
  auto& b = buffers[slot];
  if (b.size() < bytes) b.resize(bytes);
  return b.data();
}

struct QuadPackedB {
  int quads = 0;  // per region: ceil(group_k / 4)
  int ldp = 0;
  // [regions][quads][ldp][4]; not zero-filled here: the packers write every byte.
  uint8_t* data = nullptr;

  QuadPackedB(int regions, int group_k, int n)
      : quads((group_k + 3) / 4), ldp((n + 15) / 16 * 16),
        data(Scratch(0, static_cast<size_t>(regions) * quads * ldp * 4)) {}
  uint8_t* quad(int g, int q) { return data + (static_cast<size_t>(g) * quads + q) * ldp * 4; }
  const uint8_t* quad(int g, int q) const { return data + (static_cast<size_t>(g) * quads + q) * ldp * 4; }
};

// The 4 rows of row-major B (row stride ldb) that quad q of region g interleaves; null past the
// region's end (the weights there are zero, so the packers write 0).
inline void QuadRows(const GemmShape& s, const uint8_t* b, int g, int q, const uint8_t* rows[4]) {
  for (int j = 0; j < 4; ++j) {
    const int kk = 4 * q + j;
    rows[j] = kk < s.group_k ? b + static_cast<size_t>(g * s.group_k + kk) * s.ldb : nullptr;
  }
}

// A for the VNNI and NEON dot-product kernels: rows in blocks of
// kQuadRows, [block][region][quad][row][4 weights]. One tile then reads its broadcasts from a
// single stream (32 bytes per quad). Weights past a region's end and rows past m are zero, so
// they add nothing (and padded rows are not stored).
// `a` row-major with row stride lda; region g of row r = a[r*lda + g*group_k ..], group_k weights.
std::vector<int8_t> PackQuadTiles(int m, int regions, int group_k, const int8_t* a, size_t lda) {
  const int quads = (group_k + 3) / 4;
  std::vector<int8_t> tiles(QuadTilesSize(m, regions, quads), 0);
  for (int r = 0; r < m; ++r)
    for (int g = 0; g < regions; ++g) {
      const int8_t* src = a + static_cast<size_t>(r) * lda + static_cast<size_t>(g) * group_k;
      int8_t* dst = tiles.data() + ((static_cast<size_t>(r / kQuadRows) * regions + g) * quads * kQuadRows +
                                    r % kQuadRows) * 4;
      for (int kk = 0; kk < group_k; ++kk) dst[(kk / 4) * kQuadRows * 4 + kk % 4] = src[kk];
    }
  return tiles;
}


// The NEON path's weight layout: rows in blocks of 4, [block][k][4 rows] int8, rows past m zero,
// so one 32-bit load gives the 4 rows' weights at k (the lanes smlal multiplies by).
constexpr int kNeonRows = 4;

size_t NeonRowsSize(int m, int k) { return static_cast<size_t>((m + kNeonRows - 1) / kNeonRows) * k * kNeonRows; }

std::vector<int8_t> PackNeonRows(int m, int k, const int8_t* a) {
  std::vector<int8_t> packed(NeonRowsSize(m, k), 0);
  for (int r = 0; r < m; ++r)
    for (int kk = 0; kk < k; ++kk)
      packed[(static_cast<size_t>(r / kNeonRows) * k + kk) * kNeonRows + r % kNeonRows] = a[static_cast<size_t>(r) * k + kk];
  return packed;
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

// ---- AVX-512 VNNI ----------------------------------------------------------------------------
#define SI_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define SI_VNNI_INLINE SI_VNNI __attribute__((always_inline)) inline

// dst[4n + j] = rows[j][n] (0 where rows[j] is null), n < count; dst[4n..] = 0 for count <= n < ldp.
SI_VNNI void InterleaveQuad(const uint8_t* const rows[4], int count, int ldp, uint8_t* dst) {
  int n0 = 0;
  for (; n0 < count; n0 += 16) {
    const int left = count - n0;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    __m128i x[4];
    for (int j = 0; j < 4; ++j) x[j] = rows[j] ? _mm_maskz_loadu_epi8(mask, rows[j] + n0) : _mm_setzero_si128();
    const __m128i lo01 = _mm_unpacklo_epi8(x[0], x[1]), hi01 = _mm_unpackhi_epi8(x[0], x[1]);
    const __m128i lo23 = _mm_unpacklo_epi8(x[2], x[3]), hi23 = _mm_unpackhi_epi8(x[2], x[3]);
    __m128i* out = reinterpret_cast<__m128i*>(dst + static_cast<size_t>(n0) * 4);
    _mm_storeu_si128(out + 0, _mm_unpacklo_epi16(lo01, lo23));  // columns n0 .. n0+3
    _mm_storeu_si128(out + 1, _mm_unpackhi_epi16(lo01, lo23));
    _mm_storeu_si128(out + 2, _mm_unpacklo_epi16(hi01, hi23));
    _mm_storeu_si128(out + 3, _mm_unpackhi_epi16(hi01, hi23));  // columns n0+12 .. n0+15
  }
  // count rounded up to 16 is ldp: nothing is left, but keep the contract for any caller.
  if (n0 < ldp) std::memset(dst + static_cast<size_t>(n0) * 4, 0, static_cast<size_t>(ldp - n0) * 4);
}

// B row-major (k x n, row stride ldb) into quads.
SI_VNNI void PackQuadsFromRows(const GemmShape& s, const uint8_t* b, QuadPackedB& p) {
  const int regions = s.k / s.group_k;
  for (int g = 0; g < regions; ++g)
    for (int q = 0; q < p.quads; ++q) {
      const uint8_t* rows[4];
      QuadRows(s, b, g, q, rows);
      InterleaveQuad(rows, s.n, p.ldp, p.quad(g, q));
    }
}

// `len` (1..16) bytes p[0], p[S], p[2S], ... in the low lanes, zeros above. S = 1 and 2 load
// only the bytes they use (masked loads never touch masked-off bytes); other strides gather.
template <int S>
SI_VNNI_INLINE __m128i LoadSegment(const uint8_t* p, int len, int stride) {
  if constexpr (S == 1) {
    return _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << len) - 1), p);
  } else if constexpr (S == 2) {
    // 2*len - 1 bytes as 16-bit lanes; vpmovwb keeps each lane's low (even) byte.
    // (The maskz form: GCC 12's plain _mm256_cvtepi16_epi8 trips -Wmaybe-uninitialized.)
    return _mm256_maskz_cvtepi16_epi8(0xFFFF,
                                      _mm256_maskz_loadu_epi8(static_cast<__mmask32>((1ull << (2 * len - 1)) - 1), p));
  } else {
    alignas(16) uint8_t tmp[16] = {};
    for (int x = 0; x < len; ++x) tmp[x] = p[static_cast<size_t>(x) * stride];
    return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
  }
}

// Quads of one region straight from the zero-point-padded input planes: row j of quad q is tap
// (c, ky, kx), whose im2col row is plane c read from (ky, kx) with the convolution's stride. Per
// output row y and 16 columns: 4 segment loads, a byte/word interleave, one store of 4*len bytes.
template <int S>
SI_VNNI void PackQuadsFromPlanes(const ConvShape& s, const uint8_t* planes, const uint8_t* zero_plane, int g,
                                 QuadPackedB& p) {
  const int oh = s.out_height(), ow = s.out_width(), n = oh * ow;
  const int depth = s.region_depth(), hp = s.in_height + 2 * s.padding, wp = s.in_width + 2 * s.padding;
  const size_t row_step = static_cast<size_t>(s.stride) * wp, col_step = static_cast<size_t>(s.stride) * 16;
  // Tap (c, ky, kx) of row k = g * depth + kk, stepped along instead of divided out per row.
  int c = g * s.group_size, ky = 0, kx = 0;
  for (int q = 0; q < p.quads; ++q) {
    const uint8_t* base[4];
    for (int j = 0; j < 4; ++j) {
      if (4 * q + j >= depth) {  // past the region: zero weights, and zero bytes here
        base[j] = zero_plane;
        continue;
      }
      base[j] = planes + (static_cast<size_t>(c) * hp + ky) * wp + kx;
      if (++kx == s.kernel_w) {
        kx = 0;
        if (++ky == s.kernel_h) ky = 0, ++c;
      }
    }
    uint8_t* dst = p.quad(g, q);
    for (int y = 0; y < oh; ++y) {
      const size_t src_row = static_cast<size_t>(y) * row_step;
      for (int x0 = 0; x0 < ow; x0 += 16) {
        const int len = std::min(16, ow - x0);
        const size_t at = src_row + static_cast<size_t>(x0 / 16) * col_step;
        const __m128i x0v = LoadSegment<S>(base[0] + at, len, s.stride);
        const __m128i x1v = LoadSegment<S>(base[1] + at, len, s.stride);
        const __m128i x2v = LoadSegment<S>(base[2] + at, len, s.stride);
        const __m128i x3v = LoadSegment<S>(base[3] + at, len, s.stride);
        const __m128i lo01 = _mm_unpacklo_epi8(x0v, x1v), hi01 = _mm_unpackhi_epi8(x0v, x1v);
        const __m128i lo23 = _mm_unpacklo_epi8(x2v, x3v), hi23 = _mm_unpackhi_epi8(x2v, x3v);
        __m512i out = _mm512_castsi128_si512(_mm_unpacklo_epi16(lo01, lo23));
        out = _mm512_inserti32x4(out, _mm_unpackhi_epi16(lo01, lo23), 1);
        out = _mm512_inserti32x4(out, _mm_unpacklo_epi16(hi01, hi23), 2);
        out = _mm512_inserti32x4(out, _mm_unpackhi_epi16(hi01, hi23), 3);
        const __mmask64 mask = len == 16 ? ~__mmask64{0} : (__mmask64{1} << (4 * len)) - 1;
        _mm512_mask_storeu_epi8(dst + (static_cast<size_t>(y) * ow + x0) * 4, mask, out);
      }
    }
    if (n < p.ldp) std::memset(dst + static_cast<size_t>(n) * 4, 0, static_cast<size_t>(p.ldp - n) * 4);
  }
}

// The im2col matrix of a convolution straight into quads (row k = (c, ky, kx), region g =
// group_size input channels). A 1x1, stride 1, unpadded convolution interleaves the input rows
// as they are; any other copies the input once into planes bordered by the zero point (so every
// tap reads a valid byte and padding taps read z, as im2col writes them), then packs from those.
// zero_points: one per region; channel c's padding holds its region's.
SI_VNNI void PackQuadsIm2col(const ConvShape& s, const uint8_t* input, const int32_t* zero_points,
                             QuadPackedB& p) {
  const int n = static_cast<int>(s.pixels()), depth = s.region_depth();
  if (s.kernel_h == 1 && s.kernel_w == 1 && s.stride == 1 && s.padding == 0) {
    for (int g = 0; g < s.regions(); ++g)
      for (int q = 0; q < p.quads; ++q) {
        const uint8_t* rows[4];
        for (int j = 0; j < 4; ++j) {
          const int kk = 4 * q + j;
          rows[j] = kk < depth ? input + static_cast<size_t>(g * depth + kk) * n : nullptr;
        }
        InterleaveQuad(rows, n, p.ldp, p.quad(g, q));
      }
    return;
  }
  const int hp = s.in_height + 2 * s.padding, wp = s.in_width + 2 * s.padding;
  const size_t plane = static_cast<size_t>(hp) * wp;
  // The planes, then one zero plane for the rows past a region's end.
  uint8_t* const planes = Scratch(1, (static_cast<size_t>(s.in_channels) + 1) * plane);
  if (wp <= 64) {
    // A padded row is one masked load (the input bytes, z around them: masked-off bytes are
    // never read, so starting `padding` bytes before the row is safe) and one masked store.
    // Row by row with memset/memcpy cost a library call per few bytes: 8 % of the Fashion-MNIST
    // head's time under perf.
    const __mmask64 row = wp == 64 ? ~__mmask64{0} : (__mmask64{1} << wp) - 1;
    const __mmask64 inner = ((s.in_width == 64 ? ~__mmask64{0} : (__mmask64{1} << s.in_width) - 1)) << s.padding;
    for (int c = 0; c < s.in_channels; ++c) {
      const __m512i z = _mm512_set1_epi8(static_cast<char>(zero_points[c / s.group_size]));
      uint8_t* dst = planes + c * plane;
      const uint8_t* src = input + static_cast<size_t>(c) * s.in_height * s.in_width - s.padding;
      for (int y = 0; y < s.padding; ++y, dst += wp) _mm512_mask_storeu_epi8(dst, row, z);
      for (int y = 0; y < s.in_height; ++y, dst += wp, src += s.in_width)
        _mm512_mask_storeu_epi8(dst, row, _mm512_mask_loadu_epi8(z, inner, src));
      for (int y = 0; y < s.padding; ++y, dst += wp) _mm512_mask_storeu_epi8(dst, row, z);
    }
  } else {
    for (int c = 0; c < s.in_channels; ++c) {
      const uint8_t z = static_cast<uint8_t>(zero_points[c / s.group_size]);
      uint8_t* dst = planes + c * plane;
      const uint8_t* src = input + static_cast<size_t>(c) * s.in_height * s.in_width;
      std::memset(dst, z, static_cast<size_t>(s.padding) * wp);
      dst += static_cast<size_t>(s.padding) * wp;
      for (int y = 0; y < s.in_height; ++y, dst += wp, src += s.in_width) {
        std::memset(dst, z, static_cast<size_t>(s.padding));
        std::memcpy(dst + s.padding, src, static_cast<size_t>(s.in_width));
        std::memset(dst + s.padding + s.in_width, z, static_cast<size_t>(s.padding));
      }
      std::memset(dst, z, static_cast<size_t>(s.padding) * wp);
    }
  }
  const uint8_t* zero_plane = planes + s.in_channels * plane;
  std::memset(planes + s.in_channels * plane, 0, plane);
  for (int g = 0; g < s.regions(); ++g) {
    if (s.stride == 1)
      PackQuadsFromPlanes<1>(s, planes, zero_plane, g, p);
    else if (s.stride == 2)
      PackQuadsFromPlanes<2>(s, planes, zero_plane, g, p);
    else
      PackQuadsFromPlanes<0>(s, planes, zero_plane, g, p);
  }
}

// Row i of a tile: NV vectors, all full but the last, which gets `tail`.
template <int NV>
SI_VNNI_INLINE void StoreTileRow(int32_t* out, __m512i x0, __m512i x1, __m512i x2, __mmask16 tail) {
  if constexpr (NV == 1) _mm512_mask_storeu_epi32(out, tail, x0);
  if constexpr (NV == 2) {
    _mm512_storeu_si512(out, x0);
    _mm512_mask_storeu_epi32(out + 16, tail, x1);
  }
  if constexpr (NV == 3) {
    _mm512_storeu_si512(out, x0);
    _mm512_storeu_si512(out + 16, x1);
    _mm512_mask_storeu_epi32(out + 32, tail, x2);
  }
}

// acc + per int32 lane the 4 products u8(b) x s8(w): _mm512_dpbusd_epi32 as one instruction.
// Inline assembly because GCC 12 wraps every intrinsic vpdpbusd in a register copy (and, with
// many accumulators, a stack store) per iteration, which halves the tile's speed; "+v" ties the
// accumulator to the destination so the loop is pure loads, broadcasts and vpdpbusd.
SI_VNNI_INLINE __m512i DotQuads(__m512i acc, __m512i b, __m512i w) {
#if defined(__GNUC__)
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b), "v"(w));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, b, w);
#endif
}

SI_VNNI_INLINE __m512i BroadcastQuad(const int8_t* p) {
  int32_t w;
  std::memcpy(&w, p, 4);
  return _mm512_set1_epi32(w);
}

// One register tile: RB (8 or 16) rows of C x NV*16 columns of one region, RB*NV zmm
// accumulators (<= 24 of 32; 16 rows only with NV = 1, where 8 would leave too few independent
// vpdpbusd chains to cover its latency). Per k-quad: NV loads of B (16 columns x 4 k each) and,
// per row, its 4 weights broadcast as one int32 (the s8 operand); vpdpbusd adds w0*b0 + w1*b1 +
// w2*b2 + w3*b3 to each int32 lane. `a0`/`a1`: the tiles of the (first/second) row block for
// the region; `b`: the region's first quad at the tile's first column (quad stride quad_bytes);
// `c`: row 0's output for the region (row stride ldc); only `rows` rows and `cols`
// (16*(NV-1) < cols <= 16*NV) columns are stored.
// The accumulators are named variables, not an array (GCC keeps an array of __m512i in
// memory); the tile is a function of its own, so its 24 accumulators get the register file.
template <int NV, int RB>
SI_VNNI __attribute__((noinline)) void VnniTile(const int8_t* a0, const int8_t* a1, const uint8_t* b,
                                                size_t quad_bytes, int quads, const int32_t* offset,
                                                size_t offset_stride, int rows, int32_t* c, size_t ldc, int cols) {
  static_assert(kQuadRows == 8 && NV >= 1 && NV <= 3 && (RB == 8 || (RB == 16 && NV == 1)),
                "the tile below is written out for 8 or 16 rows and 1..3 vectors");
#define SI_VNNI_INIT(i)                                                                                   \
  __m512i c##i##_0 = _mm512_set1_epi32(offset && (i) < rows ? offset[(i) * offset_stride] : 0),           \
          c##i##_1 = c##i##_0, c##i##_2 = c##i##_0;
  SI_VNNI_INIT(0) SI_VNNI_INIT(1) SI_VNNI_INIT(2) SI_VNNI_INIT(3)
  SI_VNNI_INIT(4) SI_VNNI_INIT(5) SI_VNNI_INIT(6) SI_VNNI_INIT(7)
  SI_VNNI_INIT(8) SI_VNNI_INIT(9) SI_VNNI_INIT(10) SI_VNNI_INIT(11)
  SI_VNNI_INIT(12) SI_VNNI_INIT(13) SI_VNNI_INIT(14) SI_VNNI_INIT(15)
#undef SI_VNNI_INIT
  // quads >= 1 (group_k >= 1): a do-while has no zero-trip path to keep the initial values for.
  int q = 0;
  do {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = NV > 1 ? _mm512_loadu_si512(b + 64) : b0;
    const __m512i b2 = NV > 2 ? _mm512_loadu_si512(b + 128) : b0;
#define SI_VNNI_ROW(i)                                                  \
  if constexpr ((i) < RB) {                                             \
    const __m512i w = BroadcastQuad(((i) < 8 ? a0 : a1) + 4 * ((i) % 8)); \
    c##i##_0 = DotQuads(c##i##_0, b0, w);                               \
    if constexpr (NV > 1) c##i##_1 = DotQuads(c##i##_1, b1, w);         \
    if constexpr (NV > 2) c##i##_2 = DotQuads(c##i##_2, b2, w);         \
  }
    SI_VNNI_ROW(0) SI_VNNI_ROW(1) SI_VNNI_ROW(2) SI_VNNI_ROW(3)
    SI_VNNI_ROW(4) SI_VNNI_ROW(5) SI_VNNI_ROW(6) SI_VNNI_ROW(7)
    SI_VNNI_ROW(8) SI_VNNI_ROW(9) SI_VNNI_ROW(10) SI_VNNI_ROW(11)
    SI_VNNI_ROW(12) SI_VNNI_ROW(13) SI_VNNI_ROW(14) SI_VNNI_ROW(15)
#undef SI_VNNI_ROW
    a0 += kQuadRows * 4;
    if constexpr (RB == 16) a1 += kQuadRows * 4;
    b += quad_bytes;
  } while (++q < quads);
  // Full tiles store straight to C; a tile with padded rows goes through a buffer. (Choosing the
  // destination per row instead makes GCC copy every accumulator in the loop above.)
  if (rows == RB) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (cols - 16 * (NV - 1))) - 1);
#define SI_VNNI_STORE(i) \
  if constexpr ((i) < RB) StoreTileRow<NV>(c + (i) * ldc, c##i##_0, c##i##_1, c##i##_2, tail);
    SI_VNNI_STORE(0) SI_VNNI_STORE(1) SI_VNNI_STORE(2) SI_VNNI_STORE(3)
    SI_VNNI_STORE(4) SI_VNNI_STORE(5) SI_VNNI_STORE(6) SI_VNNI_STORE(7)
    SI_VNNI_STORE(8) SI_VNNI_STORE(9) SI_VNNI_STORE(10) SI_VNNI_STORE(11)
    SI_VNNI_STORE(12) SI_VNNI_STORE(13) SI_VNNI_STORE(14) SI_VNNI_STORE(15)
#undef SI_VNNI_STORE
    return;
  }
  alignas(64) int32_t buffer[RB][16 * NV];
#define SI_VNNI_STORE(i) \
  if constexpr ((i) < RB) StoreTileRow<NV>(buffer[i], c##i##_0, c##i##_1, c##i##_2, 0xFFFF);
  SI_VNNI_STORE(0) SI_VNNI_STORE(1) SI_VNNI_STORE(2) SI_VNNI_STORE(3)
  SI_VNNI_STORE(4) SI_VNNI_STORE(5) SI_VNNI_STORE(6) SI_VNNI_STORE(7)
  SI_VNNI_STORE(8) SI_VNNI_STORE(9) SI_VNNI_STORE(10) SI_VNNI_STORE(11)
  SI_VNNI_STORE(12) SI_VNNI_STORE(13) SI_VNNI_STORE(14) SI_VNNI_STORE(15)
#undef SI_VNNI_STORE
  for (int i = 0; i < rows; ++i) std::memcpy(c + i * ldc, buffer[i], static_cast<size_t>(cols) * 4);
}

// C[m][g][n] from packed B and A tiles (PackQuadTiles). Region by region, so the region's slice
// of B (quads * 4 * ldp bytes) stays in L1 while all row blocks stream past it; columns in
// tiles of up to 48, the last one as narrow as the remaining columns allow (steps of 16).
SI_VNNI void GemmVnniPacked(int m, int n, int regions, const int8_t* tiles, const QuadPackedB& b,
                            const int32_t* offset, int32_t* c) {
  const size_t ldc = static_cast<size_t>(regions) * n, quad_bytes = static_cast<size_t>(b.ldp) * 4;
  const size_t tile_bytes = static_cast<size_t>(b.quads) * kQuadRows * 4;  // one row block, one region
  const size_t block_bytes = tile_bytes * regions;                          // next row block, same region
  for (int g = 0; g < regions; ++g)
    for (int n0 = 0; n0 < n; n0 += 48) {
      const int cols = std::min(48, n - n0), nv = (cols + 15) / 16;
      const uint8_t* bt = b.quad(g, 0) + static_cast<size_t>(n0) * 4;
      for (int r = 0; r < m;) {
        const int8_t* a = tiles + (static_cast<size_t>(r / kQuadRows) * regions + g) * tile_bytes;
        const int32_t* off = offset ? offset + static_cast<size_t>(r) * regions + g : nullptr;
        int32_t* out = c + static_cast<size_t>(r) * ldc + static_cast<size_t>(g) * n + n0;
        const int left = m - r;
        if (nv == 1 && left > kQuadRows) {
          const int rows = std::min(2 * kQuadRows, left);
          VnniTile<1, 16>(a, a + block_bytes, bt, quad_bytes, b.quads, off, regions, rows, out, ldc, cols);
          r += 2 * kQuadRows;
          continue;
        }
        const int rows = std::min(kQuadRows, left);
        switch (nv) {
          case 3: VnniTile<3, 8>(a, a, bt, quad_bytes, b.quads, off, regions, rows, out, ldc, cols); break;
          case 2: VnniTile<2, 8>(a, a, bt, quad_bytes, b.quads, off, regions, rows, out, ldc, cols); break;
          default: VnniTile<1, 8>(a, a, bt, quad_bytes, b.quads, off, regions, rows, out, ldc, cols); break;
        }
        r += kQuadRows;
      }
    }
}

void GemmVnni(const GemmShape& s, const int8_t* a, const uint8_t* b, const int32_t* offset, int32_t* c) {
  const int regions = s.k / s.group_k;
  QuadPackedB packed(regions, s.group_k, s.n);
  PackQuadsFromRows(s, b, packed);
  const std::vector<int8_t> tiles = PackQuadTiles(s.m, regions, s.group_k, a, static_cast<size_t>(s.k));
  GemmVnniPacked(s.m, s.n, regions, tiles.data(), packed, offset, c);
}
#endif  // SI_KERNELS_X86

#ifdef SI_KERNELS_NEON
// ---- AArch64 NEON (ARMv8.0) ------------------------------------------------------------------
// acc[0..3] (16 columns) += w[lane] * b16 (the 16 bytes of one B row, widened to int16):
// vmlal(_high)_lane_s16 multiplies int16 by int16 into int32 exactly (|w * b| <= 128 * 255).
template <int Lane>
inline void MulAddRow(int32x4_t acc[4], int16x8_t b_lo, int16x8_t b_hi, int16x4_t w) {
  acc[0] = vmlal_lane_s16(acc[0], vget_low_s16(b_lo), w, Lane);
  acc[1] = vmlal_high_lane_s16(acc[1], b_lo, w, Lane);
  acc[2] = vmlal_lane_s16(acc[2], vget_low_s16(b_hi), w, Lane);
  acc[3] = vmlal_high_lane_s16(acc[3], b_hi, w, Lane);
}

// The 4 weights of one k (kNeonRows layout), sign-extended to int16 lanes.
inline int16x4_t LoadRowWeights(const int8_t* p) {
  int32_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(bits))));
}

// MR (1..4) rows of C, one region, all columns: a register tile of MR rows x 16 columns (16
// int32x4 accumulators at MR = 4, of AArch64's 32 vector registers), one B row load and two
// widenings per k shared by the MR rows. The last n % 16 columns run scalar from the same
// packed weights. wp: the row block's weights, [k][4].
template <int MR>
void NeonRows(const GemmShape& s, int g, const int8_t* wp, const uint8_t* b, const int32_t* base,
              int32_t* const out[kNeonRows]) {
  const int k0 = g * s.group_k, k1 = k0 + s.group_k;
  const int n16 = s.n - s.n % 16;
  for (int n0 = 0; n0 < n16; n0 += 16) {
    int32x4_t acc[MR][4];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = vdupq_n_s32(base[i]);
    for (int k = k0; k < k1; ++k) {
      const uint8x16_t row = vld1q_u8(b + static_cast<size_t>(k) * s.ldb + n0);
      const int16x8_t b_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(row)));
      const int16x8_t b_hi = vreinterpretq_s16_u16(vmovl_high_u8(row));
      const int16x4_t w = LoadRowWeights(wp + static_cast<size_t>(k) * kNeonRows);
      MulAddRow<0>(acc[0], b_lo, b_hi, w);
      if constexpr (MR > 1) MulAddRow<1>(acc[1], b_lo, b_hi, w);
      if constexpr (MR > 2) MulAddRow<2>(acc[2], b_lo, b_hi, w);
      if constexpr (MR > 3) MulAddRow<3>(acc[3], b_lo, b_hi, w);
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) vst1q_s32(out[i] + n0 + 4 * j, acc[i][j]);
  }
  for (int i = 0; i < MR; ++i)
    for (int n = n16; n < s.n; ++n) {
      int32_t sum = base[i];
      for (int k = k0; k < k1; ++k)
        sum += wp[static_cast<size_t>(k) * kNeonRows + i] * static_cast<int32_t>(b[static_cast<size_t>(k) * s.ldb + n]);
      out[i][n] = sum;
    }
}

// C from B and A in the kNeonRows layout (PackNeonRows).
void GemmNeonPacked(const GemmShape& s, const int8_t* packed, const uint8_t* b, const int32_t* offset, int32_t* c) {
  const int regions = s.k / s.group_k;
  for (int m = 0; m < s.m; m += kNeonRows) {
    const int mr = std::min(kNeonRows, s.m - m);
    const int8_t* w = packed + static_cast<size_t>(m / kNeonRows) * s.k * kNeonRows;
    for (int g = 0; g < regions; ++g) {
      int32_t base[kNeonRows] = {};
      int32_t* out[kNeonRows] = {};
      for (int i = 0; i < mr; ++i) {
        const size_t row = static_cast<size_t>(m + i) * regions + g;
        base[i] = offset ? offset[row] : 0;
        out[i] = c + row * s.n;
      }
      switch (mr) {
        case 4: NeonRows<4>(s, g, w, b, base, out); break;
        case 3: NeonRows<3>(s, g, w, b, base, out); break;
        case 2: NeonRows<2>(s, g, w, b, base, out); break;
        default: NeonRows<1>(s, g, w, b, base, out); break;
      }
    }
  }
}

// ---- AArch64 NEON dot product (ARMv8.2 dotprod: Cortex-A55/A76, as in a Raspberry Pi 5) ------
// sdot multiplies signed bytes and B holds codes 0..255, so the packer stores B - 128 (b ^ 0x80)
// and the offsets carry the difference: sum w*b = sum w*(b - 128) + 128 * sum w, i.e. offset[m][g]
// gains 128 * (the region's weight sum). Each product |w * (b - 128)| <= 128 * 128, and sdot adds
// a quad's 4 products into the int32 lane exactly (no saturation). A is PackQuadTiles' layout,
// B QuadPackedB's (the VNNI path's), so a quad of 4 columns is one 16-byte load.
#define SI_NEON_DOT __attribute__((target("arch=armv8.2-a+dotprod")))

// Row-major B rows into k-quads, minus 128: vst4q_u8 interleaves 4 registers byte by byte,
// which is (B[k][n], B[k+1][n], B[k+2][n], B[k+3][n]) per column. Rows past the region's end
// (zero weights) and columns past n are 0.
void PackQuadsSigned(const GemmShape& s, const uint8_t* b, QuadPackedB& p) {
  const int regions = s.k / s.group_k;
  const uint8x16_t flip = vdupq_n_u8(0x80);
  for (int g = 0; g < regions; ++g)
    for (int q = 0; q < p.quads; ++q) {
      const uint8_t* rows[4];
      QuadRows(s, b, g, q, rows);
      uint8_t* dst = p.quad(g, q);
      int n0 = 0;
      for (; n0 + 16 <= s.n; n0 += 16) {
        uint8x16x4_t x;
        for (int j = 0; j < 4; ++j) x.val[j] = rows[j] ? veorq_u8(vld1q_u8(rows[j] + n0), flip) : vdupq_n_u8(0);
        vst4q_u8(dst + static_cast<size_t>(n0) * 4, x);
      }
      for (; n0 < p.ldp; ++n0)  // the last n % 16 columns, then the padding
        for (int j = 0; j < 4; ++j)
          dst[static_cast<size_t>(n0) * 4 + j] = rows[j] && n0 < s.n ? static_cast<uint8_t>(rows[j][n0] ^ 0x80) : 0;
    }
}

// acc[0..1] (8 columns) += the dot products of their k-quads with row `Lane` of the 4 in `a`.
template <int Lane>
SI_NEON_DOT __attribute__((always_inline)) inline void DotRow(int32x4_t acc[2], int8x16_t b0, int8x16_t b1, int8x16_t a) {
  acc[0] = vdotq_laneq_s32(acc[0], b0, a, Lane);
  acc[1] = vdotq_laneq_s32(acc[1], b1, a, Lane);
}

// C[m][g][n] from packed B and A tiles, region by region. A register tile is 8 rows (two
// vectors of 4 rows x 4 weights per quad) x 8 columns (two vectors of 4 columns x 4 codes): 16
// int32x4 accumulators, and per quad 4 loads for 16 sdot (256 multiply-adds). offset must
// already hold the + 128 * weight-sum term.
SI_NEON_DOT void GemmDotPacked(int m, int n, int regions, const int8_t* tiles, const QuadPackedB& b,
                               const int32_t* offset, int32_t* c) {
  const int quads = b.quads;
  const size_t quad_stride = static_cast<size_t>(b.ldp) * 4;
  for (int g = 0; g < regions; ++g)
    for (int r0 = 0; r0 < m; r0 += kQuadRows) {
      const int rows = std::min(kQuadRows, m - r0);
      const int8_t* at = tiles + (static_cast<size_t>(r0 / kQuadRows) * regions + g) * quads * kQuadRows * 4;
      int32_t base[kQuadRows] = {};
      for (int i = 0; i < rows; ++i) base[i] = offset ? offset[static_cast<size_t>(r0 + i) * regions + g] : 0;
      for (int n0 = 0; n0 < n; n0 += 8) {  // ldp is a multiple of 16: a tile never reads past it
        int32x4_t acc[kQuadRows][2];
        for (int i = 0; i < kQuadRows; ++i) acc[i][0] = acc[i][1] = vdupq_n_s32(base[i]);
        const int8_t* bq = reinterpret_cast<const int8_t*>(b.quad(g, 0)) + static_cast<size_t>(n0) * 4;
        const int8_t* aq = at;
        for (int q = 0; q < quads; ++q, bq += quad_stride, aq += kQuadRows * 4) {
          const int8x16_t b0 = vld1q_s8(bq), b1 = vld1q_s8(bq + 16);
          const int8x16_t a0 = vld1q_s8(aq), a1 = vld1q_s8(aq + 16);
          DotRow<0>(acc[0], b0, b1, a0);
          DotRow<1>(acc[1], b0, b1, a0);
          DotRow<2>(acc[2], b0, b1, a0);
          DotRow<3>(acc[3], b0, b1, a0);
          DotRow<0>(acc[4], b0, b1, a1);
          DotRow<1>(acc[5], b0, b1, a1);
          DotRow<2>(acc[6], b0, b1, a1);
          DotRow<3>(acc[7], b0, b1, a1);
        }
        const int cols = std::min(8, n - n0);
        for (int i = 0; i < rows; ++i) {  // rows past m are zero padding: not stored
          int32_t* out = c + (static_cast<size_t>(r0 + i) * regions + g) * n + n0;
          if (cols == 8) {
            vst1q_s32(out, acc[i][0]);
            vst1q_s32(out + 4, acc[i][1]);
          } else {
            int32_t tmp[8];
            vst1q_s32(tmp, acc[i][0]);
            vst1q_s32(tmp + 4, acc[i][1]);
            std::memcpy(out, tmp, static_cast<size_t>(cols) * sizeof(int32_t));
          }
        }
      }
    }
}

void GemmDot(const GemmShape& s, const int8_t* a, const uint8_t* b, const int32_t* offset, int32_t* c) {
  const int regions = s.k / s.group_k;
  std::vector<int32_t> shifted(static_cast<size_t>(s.m) * regions);
  for (int r = 0; r < s.m; ++r)
    for (int g = 0; g < regions; ++g) {
      const int8_t* w = a + static_cast<size_t>(r) * s.k + static_cast<size_t>(g) * s.group_k;
      int32_t sum = 0;
      for (int kk = 0; kk < s.group_k; ++kk) sum += w[kk];
      const size_t row = static_cast<size_t>(r) * regions + g;
      shifted[row] = (offset ? offset[row] : 0) + 128 * sum;
    }
  QuadPackedB packed(regions, s.group_k, s.n);
  PackQuadsSigned(s, b, packed);
  const std::vector<int8_t> tiles = PackQuadTiles(s.m, regions, s.group_k, a, static_cast<size_t>(s.k));
  GemmDotPacked(s.m, s.n, regions, tiles.data(), packed, shifted.data(), c);
}
#endif  // SI_KERNELS_NEON

// The path a request runs on, or FAILED_PRECONDITION when the CPU lacks it.
Result<KernelPath> ResolvePath(KernelPath path, const char* who) {
  switch (path) {
    case KernelPath::kAuto:
      return CpuHasAvx512Vnni() ? KernelPath::kAvx512Vnni
             : CpuHasAvx2()     ? KernelPath::kAvx2
             : CpuHasNeonDot()  ? KernelPath::kNeonDot
             : CpuHasNeon()     ? KernelPath::kNeon
                                : KernelPath::kPortable;
    case KernelPath::kPortable: return path;
    case KernelPath::kNeon:
      if (!CpuHasNeon()) return FailedPrecondition(std::string(who) + " path neon: this build is not for AArch64");
      return path;
    case KernelPath::kNeonDot:
      if (!CpuHasNeonDot())
        return FailedPrecondition(std::string(who) +
                                  " path neondot: this CPU (or build) has no ARMv8.2 dot-product instructions");
      return path;
    case KernelPath::kAvx2:
      if (!CpuHasAvx2()) return FailedPrecondition(std::string(who) + " path avx2: this CPU has no AVX2");
      return path;
    case KernelPath::kAvx512Vnni:
      if (!CpuHasAvx512Vnni())
        return FailedPrecondition(std::string(who) + " path avx512vnni: this CPU (or build) has no AVX-512 VNNI");
      return path;
  }
  return InvalidArgument(std::string(who) + " path " + std::to_string(static_cast<int>(path)) + " is not a KernelPath");
}

}  // namespace

Result<KernelPath> ResolveKernelPath(KernelPath path) { return ResolvePath(path, "kernel"); }

const char* KernelPathName(KernelPath path) {
  switch (path) {
    case KernelPath::kAuto: return "auto";
    case KernelPath::kPortable: return "portable";
    case KernelPath::kAvx2: return "avx2";
    case KernelPath::kAvx512Vnni: return "avx512vnni";
    case KernelPath::kNeon: return "neon";
    case KernelPath::kNeonDot: return "neondot";
  }
  return "unknown";
}

bool CpuHasNeon() {
#ifdef SI_KERNELS_NEON
  return true;
#else
  return false;
#endif
}

bool CpuHasNeonDot() {
#if defined(SI_KERNELS_NEON) && defined(__linux__) && defined(HWCAP_ASIMDDP)
  static const bool has = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  return has;
#else
  return false;
#endif
}

std::vector<KernelPath> AvailableKernelPaths() {
  std::vector<KernelPath> paths = {KernelPath::kPortable};
  if (CpuHasAvx2()) paths.push_back(KernelPath::kAvx2);
  if (CpuHasAvx512Vnni()) paths.push_back(KernelPath::kAvx512Vnni);
  if (CpuHasNeon()) paths.push_back(KernelPath::kNeon);
  if (CpuHasNeonDot()) paths.push_back(KernelPath::kNeonDot);
  return paths;
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

bool CpuHasAvx512Vnni() {
#ifdef SI_KERNELS_X86
  // libgcc/compiler-rt report AVX-512 features only when the OS saves the zmm state (XCR0).
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
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
  SI_ASSIGN_OR_RETURN(const KernelPath run, ResolvePath(path, "gemm"));
#ifdef SI_KERNELS_X86
  if (run == KernelPath::kAvx512Vnni) {
    GemmVnni(s, a, b, offset, c);
    return Status::Ok();
  }
  if (run == KernelPath::kAvx2) {
    GemmAvx2(s, a, b, offset, c);
    return Status::Ok();
  }
#endif
#ifdef SI_KERNELS_NEON
  if (run == KernelPath::kNeon) {
    GemmNeonPacked(s, PackNeonRows(s.m, s.k, a).data(), b, offset, c);
    return Status::Ok();
  }
  if (run == KernelPath::kNeonDot) {
    GemmDot(s, a, b, offset, c);
    return Status::Ok();
  }
#endif
  (void)run;  // the portable path, on every build
  GemmPortable(s, a, b, offset, c);
  return Status::Ok();
}

Result<Int8ConvWeights> PrepareInt8ConvWeights(const ConvShape& s, const std::vector<int8_t>& weights,
                                               KernelPath path) {
  SI_RETURN_IF_ERROR(ValidateConvArgs(s, s.input_size(), 0, 255, weights.size()));
  Int8ConvWeights w;
  w.shape = s;
  SI_ASSIGN_OR_RETURN(w.path, ResolvePath(path, "conv"));
  const int depth = s.region_depth();
  w.region_sums.resize(static_cast<size_t>(s.out_channels) * s.regions());
  for (size_t r = 0; r < w.region_sums.size(); ++r) {
    int32_t sum = 0;
    for (int i = 0; i < depth; ++i) sum += weights[r * depth + i];
    w.region_sums[r] = sum;
  }
  if (w.path == KernelPath::kAvx512Vnni || w.path == KernelPath::kNeonDot) {
    w.tiles = PackQuadTiles(s.out_channels, s.regions(), depth, weights.data(),
                            static_cast<size_t>(s.in_channels) * s.kernel_h * s.kernel_w);
    return w;
  }
  if (w.path == KernelPath::kNeon) {
    w.tiles = PackNeonRows(s.out_channels, static_cast<int>(s.weight_size() / s.out_channels), weights.data());
    return w;
  }
  w.weights = weights;
  return w;
}

Result<std::vector<int32_t>> Int8ConvAccumulate(const Int8ConvWeights& w, const std::vector<uint8_t>& input,
                                                int32_t input_zero_point) {
  std::vector<int32_t> acc;
  SI_RETURN_IF_ERROR(Int8ConvAccumulate(w, input, input_zero_point, &acc));
  return acc;
}

Status Int8ConvAccumulate(const Int8ConvWeights& w, const std::vector<uint8_t>& input, int32_t input_zero_point,
                          std::vector<int32_t>* out) {
  SI_RETURN_IF_ERROR(ValidateConvArgs(w.shape, input.size(), input_zero_point, 255, w.shape.weight_size()));
  return Int8ConvAccumulate(w, input, std::vector<int32_t>(w.shape.regions(), input_zero_point), out);
}

Status Int8ConvAccumulate(const Int8ConvWeights& w, const std::vector<uint8_t>& input,
                          const std::vector<int32_t>& zero_points, std::vector<int32_t>* out) {
  if (!out) return InvalidArgument("conv acc must not be null");
  const ConvShape& s = w.shape;
  SI_RETURN_IF_ERROR(ValidateConvArgs(s, input.size(), zero_points, 255, s.weight_size()));
  const int k = s.in_channels * s.kernel_h * s.kernel_w;
  const int n = static_cast<int>(s.pixels());
  const int regions = s.regions(), depth = s.region_depth();
  SI_ASSIGN_OR_RETURN(const KernelPath run, ResolvePath(w.path, "conv"));
  const bool vnni = run == KernelPath::kAvx512Vnni, neon = run == KernelPath::kNeon, dot = run == KernelPath::kNeonDot;
  if (w.path == KernelPath::kAuto || w.region_sums.size() != static_cast<size_t>(s.out_channels) * regions ||
      (vnni || dot ? w.tiles.size() != QuadTilesSize(s.out_channels, regions, (depth + 3) / 4)
       : neon      ? w.tiles.size() != NeonRowsSize(s.out_channels, k)
                   : w.weights.size() != s.weight_size()))
    return InvalidArgument("conv weights were not made by PrepareInt8ConvWeights for this shape and path");

  // offset[m][g] = -z[g] * (sum of the region's weights): sum w*(a - z) = sum w*a - z*sum w. The
  // dot-product path multiplies a - 128, so it adds 128 * sum w back (see PackQuadsSigned).
  std::vector<int32_t> offset(w.region_sums.size());
  const int32_t shift = dot ? 128 : 0;
  for (size_t r = 0; r < offset.size(); ++r) offset[r] = (shift - zero_points[r % regions]) * w.region_sums[r];
  std::vector<int32_t>& acc = *out;
  acc.resize(s.acc_size());  // no fill needed: every element is written

#ifdef SI_KERNELS_X86
  if (vnni) {
    // im2col straight into the k-quad layout: no row-major matrix, no second pass.
    QuadPackedB packed(regions, depth, n);
    PackQuadsIm2col(s, input.data(), zero_points.data(), packed);
    GemmVnniPacked(s.out_channels, n, regions, w.tiles.data(), packed, offset.data(), acc.data());
    return Status::Ok();
  }
#endif

  // im2col: B[(c, ky, kx)][(y, x)], taps in the zero padding holding the zero point (into
  // scratch slot 1, which only the VNNI path, returned above, uses otherwise).
  const uint8_t* b = input.data();
  if (s.kernel_h != 1 || s.kernel_w != 1 || s.stride != 1 || s.padding != 0) {
    uint8_t* const cols = Scratch(1, static_cast<size_t>(k) * n);
    uint8_t* dst = cols;
    for (int c = 0; c < s.in_channels; ++c)
      for (int ky = 0; ky < s.kernel_h; ++ky)
        for (int kx = 0; kx < s.kernel_w; ++kx, dst += n)
          Im2colRow(s, input.data(), c, ky, kx, static_cast<uint8_t>(zero_points[c / s.group_size]), dst);
    b = cols;
  }
  const GemmShape gs{s.out_channels, n, k, depth, n};
#ifdef SI_KERNELS_NEON
  if (neon) {
    GemmNeonPacked(gs, w.tiles.data(), b, offset.data(), acc.data());
    return Status::Ok();
  }
  if (dot) {
    QuadPackedB packed(regions, depth, n);
    PackQuadsSigned(gs, b, packed);
    GemmDotPacked(s.out_channels, n, regions, w.tiles.data(), packed, offset.data(), acc.data());
    return Status::Ok();
  }
#endif
  return QGemm(gs, w.weights.data(), b, offset.data(), acc.data(), run);
}

Result<std::vector<int32_t>> Int8ConvAccumulate(const ConvShape& s, const std::vector<uint8_t>& input,
                                                int32_t input_zero_point, const std::vector<int8_t>& weights,
                                                KernelPath path) {
  // The argument checks first, in ReferenceConvAccumulate's order (input before the path).
  SI_RETURN_IF_ERROR(ValidateConvArgs(s, input.size(), input_zero_point, 255, weights.size()));
  SI_ASSIGN_OR_RETURN(const Int8ConvWeights w, PrepareInt8ConvWeights(s, weights, path));
  return Int8ConvAccumulate(w, input, input_zero_point);
}

}  // namespace splitinfer::kernels
