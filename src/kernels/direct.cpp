#include "kernels/direct.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/qgemm.h"

#if defined(__x86_64__)
#define SI_DIRECT_X86 1
#include <immintrin.h>
#endif

namespace splitinfer::kernels {
namespace {

constexpr int kBlock = 64;  // output channels per block: 4 zmm of int32 lanes
constexpr int kQuadBytes = kBlock * 4;

}  // namespace

#ifdef SI_DIRECT_X86
namespace {

// The scalar quantization of head.cpp's QuantizeActivations, for the layouts the vector loops
// below do not take.
inline uint8_t Code(float x, float inv, float zero, float top) {
  const float v = std::nearbyint(x * inv) + zero;
  return static_cast<uint8_t>(v > 0.f ? std::min(v, top) : 0.f);
}

#define SI_DIRECT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define SI_DIRECT_INLINE SI_DIRECT __attribute__((always_inline)) inline

// acc + the 4 products u8(b) x s8(w) per int32 lane (vpdpbusd; inline assembly as in qgemm.cpp,
// whose comment says why).
SI_DIRECT_INLINE __m512i Dot(__m512i acc, __m512i b, __m512i w) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b), "v"(w));
  return acc;
}

SI_DIRECT_INLINE __m512i Broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// head.cpp's QuantizeActivations on 16 floats with per-lane 1/scale and zero point, in its
// order: multiply, round in the current mode (nearbyint), add the zero point, max(0, v) then
// min(top, v) (a NaN stays NaN and converts to 0x80000000, whose low byte is code 0), convert.
SI_DIRECT_INLINE __m128i Codes16(__m512 x, __m512 inv, __m512 zero, __m512 top) {
  __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(x, inv), _MM_FROUND_CUR_DIRECTION | _MM_FROUND_NO_EXC);
  v = _mm512_add_ps(v, zero);
  v = _mm512_min_ps(top, _mm512_max_ps(_mm512_setzero_ps(), v));
  return _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v));
}

// One tile: RB output pixels (window origins rows[r]) x NV*16 output channels of one block,
// all regions. Per region the int32 sums start at the zero-point offset, take every quad
// (NV weight vectors, one broadcast per pixel, RB*NV vpdpbusd), then fold into the float sums:
// s = 0 + float(acc) * factor for region 0, s += float(acc) * factor after (Requantize's
// order); after the last region they go through Finish into the output instead. Between regions
// the sums live in `sums` ([RB][64]); the accumulators are named variables so that GCC keeps
// them in registers (RB * NV <= 24).
// Where a tile's results go: per row (pixel) its output and residual at the block's first
// channel (out null: a row past the map's end, not stored), the lane masks of the block's
// vectors (channels past out_channels), the bias at the block's first channel.
struct TileOut {
  float* out[16];
  const float* residual[16];
  __mmask16 masks[4];
  const float* bias;
};

// y = s * output scale; y += bias; y += residual; ReLU (Requantize's order, then
// AddResidualRelu's), stored under the lane mask.
SI_DIRECT_INLINE void Finish(const DirectConv& cv, const TileOut& to, int r, int v, __m512 s) {
  if (!to.out[r]) return;
  __m512 y = _mm512_mul_ps(s, _mm512_set1_ps(cv.output_scale));
  y = _mm512_add_ps(y, _mm512_loadu_ps(to.bias + 16 * v));
  if (to.residual[r]) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(to.masks[v], to.residual[r] + 16 * v));
  if (cv.relu) y = _mm512_max_ps(_mm512_setzero_ps(), y);  // (0 > y) ? 0 : y, as std::max(y, 0.f)
  _mm512_mask_storeu_ps(to.out[r] + 16 * v, to.masks[v], y);
}

template <int NV, int RB>
SI_DIRECT __attribute__((noinline)) void DirectTile(const DirectConv& cv, const int8_t* block_weights,
                                                    const uint8_t* const* rows, int oc0, float* sums,
                                                    const TileOut& to) {
  const size_t region_bytes = static_cast<size_t>(cv.quads) * kQuadBytes;
  const size_t lanes = static_cast<size_t>(cv.blocks) * kBlock;
  const int regions = cv.shape.regions();
  for (int g = 0; g < regions; ++g) {
    const int32_t* off = cv.offsets.data() + g * lanes + oc0;
    const __m512i o0 = _mm512_loadu_si512(off), o1 = NV > 1 ? _mm512_loadu_si512(off + 16) : o0,
                  o2 = NV > 2 ? _mm512_loadu_si512(off + 32) : o0, o3 = NV > 3 ? _mm512_loadu_si512(off + 48) : o0;
#define SI_D_INIT(r) __m512i c##r##_0 = o0, c##r##_1 = o1, c##r##_2 = o2, c##r##_3 = o3;
    SI_D_INIT(0) SI_D_INIT(1) SI_D_INIT(2) SI_D_INIT(3) SI_D_INIT(4) SI_D_INIT(5) SI_D_INIT(6) SI_D_INIT(7)
    SI_D_INIT(8) SI_D_INIT(9) SI_D_INIT(10) SI_D_INIT(11) SI_D_INIT(12) SI_D_INIT(13) SI_D_INIT(14) SI_D_INIT(15)
#undef SI_D_INIT
    const int8_t* w = block_weights + g * region_bytes;
    const int32_t* qo = cv.quad_offsets.data() + static_cast<size_t>(g) * cv.quads;
    for (int q = 0; q < cv.quads; ++q, w += kQuadBytes) {
      const __m512i w0 = _mm512_loadu_si512(w);
      const __m512i w1 = NV > 1 ? _mm512_loadu_si512(w + 64) : w0;
      const __m512i w2 = NV > 2 ? _mm512_loadu_si512(w + 128) : w0;
      const __m512i w3 = NV > 3 ? _mm512_loadu_si512(w + 192) : w0;
      const int32_t at = qo[q];
#define SI_D_ROW(r)                                              \
  if constexpr ((r) < RB) {                                      \
    const __m512i b = Broadcast4(rows[r] + at);                  \
    c##r##_0 = Dot(c##r##_0, b, w0);                             \
    if constexpr (NV > 1) c##r##_1 = Dot(c##r##_1, b, w1);       \
    if constexpr (NV > 2) c##r##_2 = Dot(c##r##_2, b, w2);       \
    if constexpr (NV > 3) c##r##_3 = Dot(c##r##_3, b, w3);       \
  }
      SI_D_ROW(0) SI_D_ROW(1) SI_D_ROW(2) SI_D_ROW(3) SI_D_ROW(4) SI_D_ROW(5) SI_D_ROW(6) SI_D_ROW(7)
      SI_D_ROW(8) SI_D_ROW(9) SI_D_ROW(10) SI_D_ROW(11) SI_D_ROW(12) SI_D_ROW(13) SI_D_ROW(14) SI_D_ROW(15)
#undef SI_D_ROW
    }
    const float* fac = cv.factors.data() + g * lanes + oc0;
    const __m512 f0 = _mm512_loadu_ps(fac), f1 = NV > 1 ? _mm512_loadu_ps(fac + 16) : f0,
                 f2 = NV > 2 ? _mm512_loadu_ps(fac + 32) : f0, f3 = NV > 3 ? _mm512_loadu_ps(fac + 48) : f0;
    const __m512 zero = _mm512_setzero_ps();
    const bool last = g == regions - 1;  // the sums are final: finish them into the output
#define SI_D_FOLD1(r, v)                                                                  \
  if constexpr (NV > (v)) {                                                               \
    const __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(c##r##_##v), f##v);                 \
    float* s = sums + (r) * kBlock + 16 * (v);                                            \
    const __m512 sum = _mm512_add_ps(g == 0 ? zero : _mm512_load_ps(s), x);               \
    if (last)                                                                             \
      Finish(cv, to, r, v, sum);                                                          \
    else                                                                                  \
      _mm512_store_ps(s, sum);                                                            \
  }
#define SI_D_FOLD(r) \
  if constexpr ((r) < RB) { SI_D_FOLD1(r, 0) SI_D_FOLD1(r, 1) SI_D_FOLD1(r, 2) SI_D_FOLD1(r, 3) }
    SI_D_FOLD(0) SI_D_FOLD(1) SI_D_FOLD(2) SI_D_FOLD(3) SI_D_FOLD(4) SI_D_FOLD(5) SI_D_FOLD(6) SI_D_FOLD(7)
    SI_D_FOLD(8) SI_D_FOLD(9) SI_D_FOLD(10) SI_D_FOLD(11) SI_D_FOLD(12) SI_D_FOLD(13) SI_D_FOLD(14) SI_D_FOLD(15)
#undef SI_D_FOLD
#undef SI_D_FOLD1
  }
}

// Rows per tile for NV vectors: as many accumulators as leave registers for the weights.
constexpr int TileRows(int nv) { return nv == 4 ? 6 : nv == 3 ? 8 : nv == 2 ? 12 : 16; }

// The output channels block * 64 .. + 16 * NV of every pixel, RB pixels per tile. (Halves of 32
// channels with 12-pixel tiles, so that a block's weights stay in L1 where 64 channels' do not,
// were no faster on the EPYC VM for ResNet-18's 128-channel layers.)
template <int NV>
SI_DIRECT void DirectBlock(const DirectConv& cv, const uint8_t* padded, const float* residual, int block, int first,
                           int end, float* out) {
  constexpr int RB = TileRows(NV);
  const ConvShape& s = cv.shape;
  const int ow = s.out_width(), pixels = std::min(end, static_cast<int>(s.pixels())), oc = s.out_channels;
  const int wp = s.in_width + 2 * s.padding, oc0 = block * kBlock;
  const int8_t* bw = cv.weights.data() + static_cast<size_t>(block) * s.regions() * cv.quads * kQuadBytes;
  alignas(64) float sums[RB * kBlock];
  const uint8_t* rows[RB];
  TileOut to;
  to.bias = cv.bias.data() + oc0;
  for (int v = 0; v < 4; ++v) {
    const int left = std::max(0, std::min(16, oc - oc0 - 16 * v));
    to.masks[v] = static_cast<__mmask16>((1u << left) - 1);
  }
  // The first pixel's position, stepped along instead of divided out per row.
  int oy = first / ow, ox = first % ow;
  for (int p0 = first; p0 < pixels; p0 += RB) {
    const int n = std::min(RB, pixels - p0);
    for (int r = 0; r < RB; ++r) {
      if (r < n) {
        const size_t at = static_cast<size_t>(p0 + r) * oc + oc0;
        rows[r] = padded + (static_cast<size_t>(oy) * s.stride * wp + static_cast<size_t>(ox) * s.stride) * cv.c4;
        to.out[r] = out + at;
        to.residual[r] = residual ? residual + at : nullptr;
        if (++ox == ow) ox = 0, ++oy;
      } else {  // past the end: the last pixel again, not stored
        rows[r] = rows[n - 1];
        to.out[r] = nullptr;
      }
    }
    DirectTile<NV, RB>(cv, bw, rows, oc0, sums, to);
  }
}

// Pixels [first, end) of one 64-channel block.
SI_DIRECT void DirectBlockRange(const DirectConv& cv, const uint8_t* padded, const float* residual, int b, int first,
                                int end, float* out) {
  const int left = cv.shape.out_channels - b * kBlock;
  if (left > 48)
    DirectBlock<4>(cv, padded, residual, b, first, end, out);
  else if (left > 32)
    DirectBlock<3>(cv, padded, residual, b, first, end, out);
  else if (left > 16)
    DirectBlock<2>(cv, padded, residual, b, first, end, out);
  else
    DirectBlock<1>(cv, padded, residual, b, first, end, out);
}

// Below this many multiply-adds a conv runs on the calling thread alone: waking the workers
// costs tens of microseconds, as much as such a conv takes (the Fashion-MNIST head's convs).
constexpr double kParallelMacs = 4e6;

// Each 64-channel block's pixels in chunks of whole tiles (48 pixels: a multiple of every tile
// height), one task per (block, chunk); every output is written by one task, as with one thread.
SI_DIRECT void RunDirectX86(const DirectConv& cv, const uint8_t* padded, const float* residual, float* out,
                            ThreadPool* pool) {
  const int pixels = static_cast<int>(cv.shape.pixels());
  const double macs = static_cast<double>(pixels) * cv.shape.out_channels * cv.shape.regions() * cv.quads * 4;
  if (pool == nullptr || pool->threads() == 1 || macs < kParallelMacs) {
    for (int b = 0; b < cv.blocks; ++b) DirectBlockRange(cv, padded, residual, b, 0, pixels, out);
    return;
  }
  constexpr int kChunkUnit = 48;
  const int units = (pixels + kChunkUnit - 1) / kChunkUnit;
  const int chunks = std::min(units, pool->threads());
  const int per = (units + chunks - 1) / chunks * kChunkUnit;
  pool->ParallelFor(cv.blocks * chunks, [&](int task) {
    const int b = task / chunks, first = task % chunks * per;
    DirectBlockRange(cv, padded, residual, b, first, std::min(pixels, first + per), out);
  });
}

// Quantizes the interior of the padded buffer; the border is already written.
// Below this many values a row loop (quantizing a conv's input, a max-pool) stays on the calling
// thread: waking the workers would cost more than it saves.
constexpr double kParallelValues = 1e5;

// fn(y0, y1) over rows [0, rows) in as many even bands as the pool has threads (each band
// written by one thread: the result is one thread's); on the calling thread alone when there
// is no pool or the work is small.
template <typename Fn>
void RowParallel(ThreadPool* pool, int rows, double work, const Fn& fn) {
  if (pool == nullptr || pool->threads() == 1 || work < kParallelValues || rows < 2) {
    fn(0, rows);
    return;
  }
  const int bands = std::min(rows, pool->threads());
  pool->ParallelFor(bands, [&](int b) { fn(rows * b / bands, rows * (b + 1) / bands); });
}

// Quantizes rows [y_begin, y_end) of the padded buffer's interior; the border is already written.
SI_DIRECT void QuantizeInteriorX86(const DirectConv& cv, const float* x, bool nchw, int y_begin, int y_end,
                                   uint8_t* dst) {
  const ConvShape& s = cv.shape;
  const int h = s.in_height, w = s.in_width, c = s.in_channels, wp = w + 2 * s.padding;
  const int gs = s.group_size, regions = s.regions();
  const __m512 top = _mm512_set1_ps(cv.top);
  auto pixel = [&](int y, int xx) {
    return dst + (static_cast<size_t>(y + s.padding) * wp + xx + s.padding) * cv.c4;
  };
  if (!nchw && gs == cv.gs4 && c % 16 == 0) {
    // NHWC in, no padding channels, whole vectors of channels: a row of the map is w * C
    // contiguous values, and so is the padded buffer's interior row; channel c0 of each step
    // cycles through the row's pixels.
    for (int y = y_begin; y < y_end; ++y) {
      const float* src = x + static_cast<size_t>(y) * w * c;
      uint8_t* d = pixel(y, 0);
      int c0 = 0;
      for (size_t k = 0; k < static_cast<size_t>(w) * c; k += 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + k),
                         Codes16(_mm512_loadu_ps(src + k), _mm512_loadu_ps(cv.inv_scales.data() + c0),
                                 _mm512_loadu_ps(cv.zeros.data() + c0), top));
        if ((c0 += 16) == c) c0 = 0;
      }
    }
    return;
  }
  if (!nchw && gs == cv.gs4) {
    // NHWC in, no padding channels: C4 == C, 16 channels per step.
    for (int y = y_begin; y < y_end; ++y)
      for (int xx = 0; xx < w; ++xx) {
        const float* src = x + (static_cast<size_t>(y) * w + xx) * c;
        uint8_t* d = pixel(y, xx);
        for (int c0 = 0; c0 < c; c0 += 16) {
          const __mmask16 m = c - c0 >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (c - c0)) - 1);
          const __m128i codes = Codes16(_mm512_maskz_loadu_ps(m, src + c0), _mm512_maskz_loadu_ps(m, cv.inv_scales.data() + c0),
                                        _mm512_maskz_loadu_ps(m, cv.zeros.data() + c0), top);
          _mm_mask_storeu_epi8(d + c0, m, codes);
        }
      }
    return;
  }
  if (nchw && regions == 1 && cv.c4 <= 4) {
    // The head's input (C <= 4 channels, [C][H][W]): 16 pixels of each channel, interleaved
    // into 16 pixels x 4 channels (channels past C are code 0), then, for pixels of C4 < 4
    // bytes, each 128-bit lane's 4 pixels packed to their first C4 bytes.
    alignas(16) int8_t pack[16];
    for (int k = 0; k < 16; ++k) pack[k] = static_cast<int8_t>(k < 4 * cv.c4 ? (k / cv.c4) * 4 + k % cv.c4 : -1);
    const __m512i packer = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(pack)));
    for (int y = y_begin; y < y_end; ++y)
      for (int x0 = 0; x0 < w; x0 += 16) {
        const int len = std::min(16, w - x0);
        const __mmask16 m = static_cast<__mmask16>((1u << len) - 1);
        __m128i v[4];
        for (int ch = 0; ch < 4; ++ch) {
          v[ch] = ch < c ? Codes16(_mm512_maskz_loadu_ps(m, x + (static_cast<size_t>(ch) * h + y) * w + x0),
                                   _mm512_set1_ps(cv.inv_scales[ch]), _mm512_set1_ps(cv.zeros[ch]), top)
                         : _mm_setzero_si128();
        }
        const __m128i lo01 = _mm_unpacklo_epi8(v[0], v[1]), hi01 = _mm_unpackhi_epi8(v[0], v[1]);
        const __m128i lo23 = _mm_unpacklo_epi8(v[2], v[3]), hi23 = _mm_unpackhi_epi8(v[2], v[3]);
        __m512i out = _mm512_castsi128_si512(_mm_unpacklo_epi16(lo01, lo23));
        out = _mm512_inserti32x4(out, _mm_unpackhi_epi16(lo01, lo23), 1);
        out = _mm512_inserti32x4(out, _mm_unpacklo_epi16(hi01, hi23), 2);
        out = _mm512_inserti32x4(out, _mm_unpackhi_epi16(hi01, hi23), 3);
        if (cv.c4 == 4) {
          const __mmask64 mask = len == 16 ? ~__mmask64{0} : (__mmask64{1} << (4 * len)) - 1;
          _mm512_mask_storeu_epi8(pixel(y, x0), mask, out);
          continue;
        }
        alignas(64) uint8_t lanes[64];
        _mm512_store_si512(lanes, _mm512_shuffle_epi8(out, packer));
        uint8_t* d = pixel(y, x0);
        for (int lane = 0; lane < 4 && 4 * lane < len; ++lane) {
          const int pixels = std::min(4, len - 4 * lane);
          _mm_mask_storeu_epi8(d + 4 * lane * cv.c4, static_cast<__mmask16>((1u << (pixels * cv.c4)) - 1),
                               _mm_load_si128(reinterpret_cast<const __m128i*>(lanes + 16 * lane)));
        }
      }
    return;
  }
  // Anything else (padding channels inside several regions): one value at a time.
  for (int y = y_begin; y < y_end; ++y)
    for (int xx = 0; xx < w; ++xx) {
      uint8_t* d = pixel(y, xx);
      for (int ch = 0; ch < c; ++ch) {
        const int g = ch / gs, at = g * cv.gs4 + (ch - g * gs);
        const float v = nchw ? x[(static_cast<size_t>(ch) * h + y) * w + xx] : x[(static_cast<size_t>(y) * w + xx) * c + ch];
        d[at] = Code(v, cv.inv_scales[at], cv.zeros[at], cv.top);
      }
      for (int g = 0; g < regions; ++g)
        for (int k = gs; k < cv.gs4; ++k) d[g * cv.gs4 + k] = 0;
    }
}

// MaxPoolNhwc, 16 channels per vector: o = max(p, o) is (o < p) ? p : o, what std::max(o, p)
// gives (maxps returns its second operand when the compare is false, a NaN included).
// dst[0..c) = the max of src[i * step + 0..c) over i in [lo, hi), starting from -inf.
SI_DIRECT_INLINE void MaxRun(const float* src, size_t step, int lo, int hi, int c, float* dst) {
  const int full = c / 16 * 16;
  for (int c0 = 0; c0 < c; c0 += 16) {
    const __mmask16 m =
        c0 < full ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (c - full)) - 1);
    __m512 v = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int i = lo; i < hi; ++i) v = _mm512_max_ps(_mm512_maskz_loadu_ps(m, src + i * step + c0), v);
    _mm512_mask_storeu_ps(dst + c0, m, v);
  }
}

// Separable, as MaxPool2dInto: the window max along each input row first (into `rows`,
// [H][OW][C]), then down the columns, k + k maxima per output instead of k * k.
// Input rows [y0, y1): each row's window maxima along x, into rows [H][OW][C].
SI_DIRECT void MaxPoolRowsX86(const float* in, int c, int w, int ow, int kernel, int stride, int padding, int y0, int y1,
                              float* rows) {
  for (int iy = y0; iy < y1; ++iy)
    for (int x = 0; x < ow; ++x) {
      const int x0 = std::max(0, x * stride - padding), x1 = std::min(w, x * stride - padding + kernel);
      MaxRun(in + static_cast<size_t>(iy) * w * c, static_cast<size_t>(c), x0, x1, c,
             rows + (static_cast<size_t>(iy) * ow + x) * c);
    }
}

// Output rows [y_begin, y_end): the maxima of `rows` down each window's column.
SI_DIRECT void MaxPoolColumnsX86(const float* rows, int c, int h, int ow, int kernel, int stride, int padding,
                                 int y_begin, int y_end, float* out) {
  float* o = out + static_cast<size_t>(y_begin) * ow * c;
  for (int y = y_begin; y < y_end; ++y) {
    const int y0 = std::max(0, y * stride - padding), y1 = std::min(h, y * stride - padding + kernel);
    for (int x = 0; x < ow; ++x, o += c) MaxRun(rows + static_cast<size_t>(x) * c, static_cast<size_t>(ow) * c, y0, y1, c, o);
  }
}

void MaxPoolNhwcX86(const float* in, int c, int h, int w, int kernel, int stride, int padding, float* out,
                    ThreadPool* pool) {
  const int oh = (h + 2 * padding - kernel) / stride + 1, ow = (w + 2 * padding - kernel) / stride + 1;
  thread_local std::vector<float> row_buffer;  // the calling thread's; its tasks share it
  row_buffer.resize(static_cast<size_t>(h) * ow * c);
  float* rows = row_buffer.data();
  RowParallel(pool, h, static_cast<double>(h) * ow * c * kernel, [&](int y0, int y1) {
    MaxPoolRowsX86(in, c, w, ow, kernel, stride, padding, y0, y1, rows);
  });
  RowParallel(pool, oh, static_cast<double>(oh) * ow * c * kernel, [&](int y0, int y1) {
    MaxPoolColumnsX86(rows, c, h, ow, kernel, stride, padding, y0, y1, out);
  });
}

// 16 rows of 16 floats transposed in registers: r[k] becomes column k (unpacks of 32- and 64-bit
// elements, then two rounds of 128-bit lane shuffles).
SI_DIRECT_INLINE void Transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xDD);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
  }
}

// NhwcToNchw in 16 x 16 blocks (16 pixels of 16 channels in, 16 channel rows of 16 pixels out);
// the channel and pixel tails through masks.
// Pixels [first, end) of the plane (first a multiple of 16).
SI_DIRECT void NhwcToNchwX86(const float* in, int c, size_t plane, size_t first, size_t end, float* out) {
  __m512 r[16];
  for (size_t p0 = first; p0 < end; p0 += 16) {
    const int np = static_cast<int>(std::min<size_t>(16, end - p0));
    const __mmask16 pixel_mask = np == 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << np) - 1);
    for (int c0 = 0; c0 < c; c0 += 16) {
      const int nc = std::min(16, c - c0);
      const __mmask16 channel_mask = nc == 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << nc) - 1);
      for (int i = 0; i < 16; ++i)
        r[i] = i < np ? _mm512_maskz_loadu_ps(channel_mask, in + (p0 + i) * c + c0) : _mm512_setzero_ps();
      Transpose16(r);
      for (int k = 0; k < nc; ++k) _mm512_mask_storeu_ps(out + (c0 + k) * plane + p0, pixel_mask, r[k]);
    }
  }
}

}  // namespace

bool DirectConvAvailable() { return CpuHasAvx512Vnni(); }

#else
bool DirectConvAvailable() { return false; }
#endif

Result<DirectConv> PrepareDirectConv(const ConvShape& s, const std::vector<int8_t>& weights,
                                     const std::vector<float>& weight_scales, float input_scale,
                                     const std::vector<float>& input_scales, const std::vector<int32_t>& zero_points,
                                     const std::vector<float>& bias, int abits, bool relu) {
  if (!DirectConvAvailable()) return FailedPrecondition("the direct conv needs AVX-512 VNNI");
  SI_RETURN_IF_ERROR(ValidateConvShape(s));
  const int regions = s.regions();
  if (weights.size() != s.weight_size() || weight_scales.size() != static_cast<size_t>(s.out_channels) * regions ||
      (!input_scales.empty() && input_scales.size() != static_cast<size_t>(regions)) ||
      zero_points.size() != static_cast<size_t>(regions) || (!bias.empty() && bias.size() != static_cast<size_t>(s.out_channels)) ||
      abits < 1 || abits > 8)
    return InvalidArgument("direct conv: weights, scales, zero points or bias do not fit the shape");
  DirectConv cv;
  cv.shape = s;
  cv.relu = relu;
  cv.top = static_cast<float>((1 << abits) - 1);
  const int taps = s.kernel_h * s.kernel_w;
  // One region of C channels, C not a multiple of 4 (an image's 1 or 3): pixels of C bytes, and
  // a quad is 4 consecutive bytes of one kernel row (kernel_w * C of them, contiguous in the
  // padded input) instead of 4 channels of one tap padded with zeros: a 7x7 kernel on RGB takes
  // 42 quads instead of 49, a 3x3 one on grayscale 3 instead of 9.
  cv.row_quads = regions == 1 && s.in_channels % 4 != 0 && s.kernel_w * s.in_channels >= 4;
  cv.gs4 = cv.row_quads ? s.group_size : (s.group_size + 3) / 4 * 4;
  cv.c4 = regions * cv.gs4;
  const int cq = cv.gs4 / 4, row_len = s.kernel_w * s.in_channels, row_q = (row_len + 3) / 4;
  cv.quads = cv.row_quads ? s.kernel_h * row_q : taps * cq;
  cv.blocks = (s.out_channels + kBlock - 1) / kBlock;
  const size_t lanes = static_cast<size_t>(cv.blocks) * kBlock;
  // Requantize's two forms: per-region input scales fold into each region's factor and the
  // final multiply is by 1; one input scale multiplies the sum.
  const bool per_region = !input_scales.empty();
  cv.output_scale = per_region ? 1.f : input_scale;
  cv.weights.assign(static_cast<size_t>(cv.blocks) * regions * cv.quads * kQuadBytes, 0);
  cv.offsets.assign(static_cast<size_t>(regions) * lanes, 0);
  cv.factors.assign(static_cast<size_t>(regions) * lanes, 0.f);
  cv.bias.assign(lanes, 0.f);
  const int wp = s.in_width + 2 * s.padding;
  if (cv.row_quads) {
    for (int ky = 0; ky < s.kernel_h; ++ky)
      for (int j = 0; j < row_q; ++j) cv.quad_offsets.push_back(ky * wp * cv.c4 + 4 * j);
  } else {
    for (int g = 0; g < regions; ++g)
      for (int t = 0; t < taps; ++t)
        for (int j = 0; j < cq; ++j)
          cv.quad_offsets.push_back(((t / s.kernel_w) * wp + t % s.kernel_w) * cv.c4 + g * cv.gs4 + 4 * j);
  }
  for (int oc = 0; oc < s.out_channels; ++oc) {
    const int b = oc / kBlock, lane = oc % kBlock;
    if (!bias.empty()) cv.bias[static_cast<size_t>(oc)] = bias[static_cast<size_t>(oc)];
    for (int g = 0; g < regions; ++g) {
      int32_t sum = 0;
      int8_t* region = cv.weights.data() + (static_cast<size_t>(b) * regions + g) * cv.quads * kQuadBytes;
      for (int cl = 0; cl < s.group_size; ++cl)
        for (int t = 0; t < taps; ++t) {
          const int c = g * s.group_size + cl;
          const int8_t wv = weights[(static_cast<size_t>(oc) * s.in_channels + c) * taps + t];
          sum += wv;
          // Byte k of a kernel row is (kx, c) = (k / C, k % C) in the row-quad layout.
          const int k = (t % s.kernel_w) * s.in_channels + c;
          const int q = cv.row_quads ? (t / s.kernel_w) * row_q + k / 4 : t * cq + cl / 4;
          region[static_cast<size_t>(q) * kQuadBytes + lane * 4 + (cv.row_quads ? k % 4 : cl % 4)] = wv;
        }
      const size_t at = static_cast<size_t>(g) * lanes + oc;
      cv.offsets[at] = -zero_points[static_cast<size_t>(g)] * sum;
      const float ws = weight_scales[static_cast<size_t>(oc) * regions + g];
      // Requantize's factor: the weight scale, times the region's input scale when they differ.
      cv.factors[at] = per_region ? ws * input_scales[static_cast<size_t>(g)] : ws;
    }
  }
  cv.inv_scales.assign(static_cast<size_t>(cv.c4), 0.f);
  cv.zeros.assign(static_cast<size_t>(cv.c4), 0.f);
  cv.pad_codes.assign(static_cast<size_t>(cv.c4), 0);
  for (int g = 0; g < regions; ++g)
    for (int cl = 0; cl < s.group_size; ++cl) {
      const size_t at = static_cast<size_t>(g) * cv.gs4 + cl;
      const float scale = per_region ? input_scales[static_cast<size_t>(g)] : input_scale;
      cv.inv_scales[at] = 1.f / scale;
      cv.zeros[at] = static_cast<float>(zero_points[static_cast<size_t>(g)]);
      cv.pad_codes[at] = static_cast<uint8_t>(zero_points[static_cast<size_t>(g)]);
    }
  return cv;
}

void QuantizePaddedNhwc(const DirectConv& cv, const float* x, bool nchw, std::vector<uint8_t>* padded,
                        ThreadPool* pool) {
  const ConvShape& s = cv.shape;
  const int hp = s.in_height + 2 * s.padding, wp = s.in_width + 2 * s.padding;
  // + 4: a row quad's last bytes may lie past the last pixel (their weights are 0, but the
  // broadcast reads 4 bytes).
  padded->resize(static_cast<size_t>(hp) * wp * cv.c4 + 4);
  uint8_t* d = padded->data();
  if (s.padding > 0) {
    // The border: every channel's padding code (its region's zero point).
    auto fill = [&](int y, int x) { std::memcpy(d + (static_cast<size_t>(y) * wp + x) * cv.c4, cv.pad_codes.data(), cv.c4); };
    // Only the border's pixels are visited (a 224x224 input has 50,176 interior ones).
    for (int y = 0; y < hp; ++y) {
      const bool edge_row = y < s.padding || y >= s.padding + s.in_height;
      if (edge_row) {
        for (int x = 0; x < wp; ++x) fill(y, x);
        continue;
      }
      for (int x = 0; x < s.padding; ++x) fill(y, x), fill(y, wp - 1 - x);
    }
  }
#ifdef SI_DIRECT_X86
  RowParallel(pool, s.in_height, static_cast<double>(s.in_height) * s.in_width * s.in_channels,
              [&](int y0, int y1) { QuantizeInteriorX86(cv, x, nchw, y0, y1, d); });
#else
  (void)x;
  (void)nchw;
  (void)pool;
#endif
}

void RunDirectConv(const DirectConv& cv, const std::vector<uint8_t>& padded, const float* residual,
                   std::vector<float>* out, ThreadPool* pool) {
  out->resize(cv.shape.output_size());
#ifdef SI_DIRECT_X86
  RunDirectX86(cv, padded.data(), residual, out->data(), pool);
#else
  (void)padded;
  (void)residual;
  (void)pool;
#endif
}

void MaxPoolNhwc(const float* in, int c, int h, int w, int kernel, int stride, int padding, std::vector<float>* out,
                 ThreadPool* pool) {
  const int oh = (h + 2 * padding - kernel) / stride + 1, ow = (w + 2 * padding - kernel) / stride + 1;
  out->resize(static_cast<size_t>(oh) * ow * c);
#ifdef SI_DIRECT_X86
  if (DirectConvAvailable()) {
    MaxPoolNhwcX86(in, c, h, w, kernel, stride, padding, out->data(), pool);
    return;
  }
#endif
  (void)pool;  // the portable loop below runs on the calling thread
  float* o = out->data();
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x, o += c) {
      std::fill(o, o + c, -std::numeric_limits<float>::infinity());
      const int y0 = std::max(0, y * stride - padding), y1 = std::min(h, y * stride - padding + kernel);
      const int x0 = std::max(0, x * stride - padding), x1 = std::min(w, x * stride - padding + kernel);
      for (int iy = y0; iy < y1; ++iy)
        for (int ix = x0; ix < x1; ++ix) {
          const float* p = in + (static_cast<size_t>(iy) * w + ix) * c;
          for (int k = 0; k < c; ++k) o[k] = std::max(o[k], p[k]);
        }
    }
}

void NhwcToNchw(const float* in, int c, int h, int w, float* out, ThreadPool* pool) {
  const size_t plane = static_cast<size_t>(h) * w;
#ifdef SI_DIRECT_X86
  if (DirectConvAvailable()) {
    // Bands of whole 16-pixel blocks, one per thread.
    const int blocks = static_cast<int>((plane + 15) / 16);
    RowParallel(pool, blocks, static_cast<double>(plane) * c, [&](int b0, int b1) {
      NhwcToNchwX86(in, c, plane, static_cast<size_t>(b0) * 16, std::min(plane, static_cast<size_t>(b1) * 16), out);
    });
    return;
  }
#endif
  (void)pool;
  // Channel by channel: strided reads, sequential writes (which the other order makes strided).
  for (int k = 0; k < c; ++k)
    for (size_t p = 0; p < plane; ++p) out[k * plane + p] = in[p * c + k];
}

}  // namespace splitinfer::kernels
