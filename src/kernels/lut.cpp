// kernels: table look-up convolution (contract and derivation: lut.h).
//
// Data flow of one call, per region g and tile of output pixels:
//
//   input codes --padded rows (z_g in the border)--> nibbles[group][py][phase][xq][P]   once per call
//   nibbles --row copies--> idx[chunk][pixel][P]                                        per tile
//   idx x tables[g][block][chunk][channel][2^S] --pshufb / vpermb / tbl, add u8--> u8 sums
//       --widening multiply-add by 2^b (vpdpbusd / maddubs+madd / umull+addp)--> int32 S per channel and pixel
//   acc = 2*S - L*V - z_g*W   (V = S of the all-ones channel, W = weight_sums)
//
// The chunk plan. A chunk is up to S taps ("slots": S = 4 for 16-entry pshufb / tbl tables, 6 for
// 64-entry vpermb tables) of one region in one kernel row: nc channels x nx consecutive columns,
// slot i = ci * nx + d. Because a chunk's taps sit at fixed offsets from one input position, its
// activation nibble depends only on that position: it is computed once per position and reused
// by every output pixel and kernel offset that reads it (9x for a 3x3 stride-1 conv). nc is
// chosen per layer to need the fewest chunks: S = 4 takes 4 channels x 1 column for 16-channel
// regions, S = 6 takes 2 channels x 3 columns of a 3x3 kernel (96 chunks per pixel instead of
// 144), and a 1-channel 3x3 region needs 3 chunks, not 9. Slots past the kernel's last column
// have weight 0 in every table (the all-ones one too), so whatever they read adds nothing.
//
// P, bytes per pixel and chunk: one nibble per activation bit plane, 1 for abits = 1, 2 for 2,
// 4 for 3 and 4 (abits = 3 leaves plane 3 all zero: T[0] = 0). A 32-bit lane then holds all
// planes of one pixel (P = 4), of two (P = 2) or of four pixels (P = 1); the widening step uses
// per-byte multipliers (1, 2, 4, 8), (1, 2, 0, 0) / (0, 0, 1, 2) or unit bytes, so each int32
// lane ends up with one pixel's sum, and a fixed permutation restores pixel order on the store
// (NEON adds neighbouring bytes pairwise instead, which keeps pixel order: no permutation).
//
// Exactness: every table entry is a sum of <= S codes u <= L, so <= S*L <= 90; n_u8 =
// floor(255 / (S*L)) chunks (S = 4: 63, 21, 9, 4 for wbits 1..4; S = 6: 42, 14, 6, 2) add up in
// uint8 without wrapping before each widening into int32. sum_k u_k v_k <= region_depth * 15 * 15
// and the final combination stay far inside int32 (region_depth <= kMaxRegionDepth), so every
// path gives the same integers.
#include "kernels/lut.h"

#include <algorithm>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#define SI_LUT_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#define SI_LUT_NEON 1
#include <arm_neon.h>
#endif

namespace splitinfer::kernels {
namespace {

Status CheckBits(const char* name, int bits) {
  if (bits < 1 || bits > 4) return InvalidArgument(std::string("lut ") + name + " = " + std::to_string(bits) + " is outside 1..4");
  return Status::Ok();
}

Status CheckCodes(const char* what, const std::vector<uint8_t>& codes, int bits) {
  // An OR over all codes first: a loop without an early exit vectorises (the search with one
  // ran at a tenth of a LUT call on an AVX-512 CPU); the index is looked for only on failure.
  uint8_t any = 0;
  for (const uint8_t c : codes) any = static_cast<uint8_t>(any | c);
  if (!(any >> bits)) return Status::Ok();
  for (size_t i = 0; i < codes.size(); ++i)
    if (codes[i] >> bits)
      return OutOfRange(std::string("lut ") + what + "[" + std::to_string(i) + "] = " + std::to_string(codes[i]) +
                        " does not fit in " + std::to_string(bits) + " bits");
  return Status::Ok();
}

// ---- The chunk plan (see the top of the file) --------------------------------------------------
struct ChunkGroup {
  int c0, nc, nx;  // channels c0 .. c0+nc-1 of the region, nx columns each
};
struct Chunk {
  int ky, group, kx0;
};
struct Plan {
  std::vector<ChunkGroup> groups;  // the same for every region
  std::vector<Chunk> chunks;       // per region, in table order
};

// Channels in groups of nc (the last one smaller when nc does not divide group_size), each
// group as wide as the slots allow; nc minimises the chunks per kernel row (ties: the larger nc,
// fewer groups to build nibbles for).
int GroupWidth(const ConvShape& s, int slots, int nc) { return std::min(slots / nc, s.kernel_w); }

int64_t RowChunks(const ConvShape& s, int slots, int nc) {
  const int g = s.group_size, kw = s.kernel_w, r = g % nc;
  const int64_t full = (kw + GroupWidth(s, slots, nc) - 1) / GroupWidth(s, slots, nc);
  return (g / nc) * full + (r ? (kw + GroupWidth(s, slots, r) - 1) / GroupWidth(s, slots, r) : 0);
}

int GroupChannels(const ConvShape& s, int slots) {
  int best = 1;
  for (int nc = 2; nc <= std::min(slots, s.group_size); ++nc)
    if (RowChunks(s, slots, nc) <= RowChunks(s, slots, best)) best = nc;
  return best;
}

// Chunks per region, without building the plan (the argument checks allocate nothing).
size_t ChunkCount(const ConvShape& s, int slots) {
  return static_cast<size_t>(RowChunks(s, slots, GroupChannels(s, slots))) * s.kernel_h;
}

Plan MakePlan(const ConvShape& s, int slots) {
  const int best = GroupChannels(s, slots), g = s.group_size;
  Plan p;
  for (int c = 0; c < g; c += best) {
    const int nc = std::min(best, g - c);
    p.groups.push_back({c, nc, GroupWidth(s, slots, nc)});
  }
  for (int ky = 0; ky < s.kernel_h; ++ky)
    for (size_t j = 0; j < p.groups.size(); ++j)
      for (int kx0 = 0; kx0 < s.kernel_w; kx0 += p.groups[j].nx) p.chunks.push_back({ky, static_cast<int>(j), kx0});
  return p;
}

size_t TablesSize(const ConvShape& s, size_t chunks, int slots) {
  return static_cast<size_t>(s.regions()) * (static_cast<size_t>(s.out_channels) + 1) * chunks * (size_t{1} << slots);
}

int PlaneBytes(int abits) { return abits == 1 ? 1 : abits == 2 ? 2 : 4; }

// Largest tables PrepareLutWeights builds (a 1-channel region with a 1-wide kernel spends a whole
// table, 16 or 64 bytes, per tap and channel): beyond this the layer is not one for a node, and
// sizes stay far from overflow.
constexpr size_t kMaxTableBytes = size_t{1} << 31;

// ---- Paths -------------------------------------------------------------------------------------
// The int8 kernels' resolution (qgemm.cpp): the LUT has the same paths.
Result<KernelPath> ResolveLutPath(KernelPath path) { return ResolveKernelPath(path); }

// The slots a path uses when the caller leaves it to PrepareLutWeights. 64-entry tables take 4x
// the bytes of 16-entry ones (about 11 bytes per tap and channel), and each is read once per
// vector of output pixels: with few pixels the call streams its tables from L2/L3 instead of
// computing (a 256x4x4 -> 256 3x3 layer: 6.3 MB of tables, 2.6x slower than with 16 entries).
// Measured on Sapphire Rapids (bench/kernels_bench.cpp, the .s4/.s6 variants): 6 slots won from
// 196 output pixels up and lost at 49 and 16.
constexpr size_t kMinPixelsForWideTables = 128;

int DefaultSlots(KernelPath path, const ConvShape& s) {
  return path == KernelPath::kAvx512Vnni && CpuHasAvx512Vbmi() && s.pixels() >= kMinPixelsForWideTables ? 6 : 4;
}

Status CheckSlots(int slots, KernelPath path) {
  if (slots != 4 && slots != 6) return InvalidArgument("lut slots = " + std::to_string(slots) + " (use 4 or 6)");
  if (slots == 6 && path != KernelPath::kAvx512Vnni)
    return InvalidArgument(std::string("lut slots = 6 needs the avx512vnni path, not ") + KernelPathName(path));
  if (slots == 6 && !CpuHasAvx512Vbmi()) return FailedPrecondition("lut slots = 6: this CPU has no AVX-512 VBMI");
  return Status::Ok();
}

// ---- Per-call buffers --------------------------------------------------------------------------
// Per thread, only growing: a node runs the same layers image after image, and fresh buffers per
// call would fault in fresh pages every time (as qgemm.cpp measured for the int8 path).
// 64-byte aligned: the index vectors are read as whole zmm, and one split across two cache
// lines costs two loads (the look-up loop measured ~25% slower on a misaligned buffer).
template <typename T>
T* Scratch(int slot, size_t count) {
  thread_local std::vector<T> buffers[4];
  auto& b = buffers[slot];
  const size_t extra = 64 / sizeof(T);
  if (b.size() < count + extra) b.resize(count + extra);
  const uintptr_t at = reinterpret_cast<uintptr_t>(b.data());
  return reinterpret_cast<T*>((at + 63) & ~uintptr_t{63});
}

// Row copies may run up to this many bytes past their end (whole 32-byte blocks, no tail loop);
// every buffer they read or write has this much slack.
constexpr size_t kSlack = 64;

// Everything a call needs once the arguments are checked.
struct Job {
  const ConvShape* s = nullptr;
  const Plan* plan = nullptr;
  const LutWeights* w = nullptr;
  const uint8_t* input = nullptr;
  const int32_t* zero_points = nullptr;
  int32_t* acc = nullptr;
  int planes = 4;  // P
  int phases = 1, wq = 0, hp = 0, wp = 0;
  size_t group_bytes = 0;  // nibble bytes per channel group
  uint8_t* nibbles = nullptr;
  int channels = 0;  // out_channels + 1
  int n_u8 = 0;
};

// One region's tile: the index bytes of `count` pixels starting at `p0`, and where results go.
struct Tile {
  const uint8_t* idx = nullptr;  // [chunk][pixel][P]
  size_t idx_stride = 0;         // bytes per chunk
  int chunks = 0;
  const uint8_t* tables = nullptr;  // the region's
  int entries = 16;                 // per table: 2^slots
  int channels = 0;
  int n_u8 = 0;
  int wbits = 0;
  int32_t z = 0;                 // the region's zero point
  const int32_t* weight_sums = nullptr;  // lw.weight_sums + g: stride `regions` per channel
  int regions = 0;
  int32_t* out = nullptr;        // acc + g * pixels + p0: output channel 0's row for the tile
  size_t out_stride = 0;         // regions * pixels
  int count = 0;                 // valid pixels
  int32_t* base = nullptr;       // [tile pixels]: L * V, written by block 0
};

// ---- Nibbles and index rows (plain C++; the SIMD paths compile them for their ISA) -----------
// spread: bit b of v (< 2^P) to byte b of the result (P = 4: v * 0x204081 places bit b at 8b
// with no carries between the four shifted copies; P = 2 likewise with v * 0x81).
template <int P>
struct Word;
template <>
struct Word<4> {
  using T = uint32_t;
  static T Spread(uint32_t v) { return (v * 0x204081u) & 0x01010101u; }
};
template <>
struct Word<2> {
  using T = uint16_t;
  static T Spread(uint32_t v) { return static_cast<uint16_t>((v * 0x81u) & 0x0101u); }
};
template <>
struct Word<1> {
  using T = uint8_t;
  static T Spread(uint32_t v) { return static_cast<uint8_t>(v & 1u); }
};

// Copies whole 32-byte blocks (callers leave kSlack bytes after both ends): short rows then cost
// one or two vector moves instead of a memcpy call.
__attribute__((always_inline)) inline void CopyOver(uint8_t* dst, const uint8_t* src, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 32) __builtin_memcpy(dst + i, src + i, 32);
}

// `bytes` (rounded up to 8) bytes of the pattern `zz`: a zero-point border is 1-3 bytes, and GCC
// turns a byte loop into a memset call, which cost more than the rest of the row.
__attribute__((always_inline)) inline void FillOver(uint8_t* dst, uint64_t zz, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 8) __builtin_memcpy(dst + i, &zz, 8);
}

// One padded row of words -> its column phases (stride > 1): dst[phase][xq] = words[xq*stride + phase].
template <int P>
__attribute__((always_inline)) inline void SplitPhases(const Job& j, const typename Word<P>::T* words, uint8_t* dst_row) {
  using W = typename Word<P>::T;
  const int stride = j.s->stride, wp = j.wp;
  for (int ph = 0; ph < j.phases; ++ph) {
    W* dst = reinterpret_cast<W*>(dst_row + static_cast<size_t>(ph) * j.wq * P);
    const int n = std::min(j.wq, (wp - ph + stride - 1) / stride);  // entries inside the row
    for (int xq = 0; xq < n; ++xq) dst[xq] = words[static_cast<size_t>(xq) * stride + ph];
    for (int xq = n; xq < j.wq; ++xq) dst[xq] = 0;
  }
}

// One channel's NX slots (columns) of every position, OR'ed into the words (the first channel,
// slot 0, assigns). One pass per channel rather than per slot: a third of the word traffic for
// 2-channel x 3-column chunks.
template <int P, int NX>
__attribute__((always_inline)) inline void ChannelWords(const uint8_t* src, size_t n, int first_slot,
                                                        typename Word<P>::T* words) {
  using W = typename Word<P>::T;
  if (first_slot == 0) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t w = 0;
      for (int d = 0; d < NX; ++d) w |= static_cast<uint32_t>(Word<P>::Spread(src[i + d])) << d;
      words[i] = static_cast<W>(w);
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    uint32_t w = 0;
    for (int d = 0; d < NX; ++d) w |= static_cast<uint32_t>(Word<P>::Spread(src[i + d])) << d;
    words[i] = static_cast<W>(words[i] | (w << first_slot));
  }
}

// The nibbles of every channel group at every padded position, laid out per column phase
// (px = xq * stride + phase) so that consecutive output pixels read consecutive entries at any
// stride: nibbles[gg][py][phase][xq] (P bytes each), gg = region * groups + group.
//
// Each group's words come from one long loop per channel over its padded plane taken as a flat
// array (rows are often shorter than a vector, so per-row loops would run scalar). A slot
// reading past the end of a row reads the next row's first bytes: that only happens for slots
// past the kernel's last column, whose weight is 0 in every table.
template <int P>
__attribute__((always_inline)) inline void BuildNibblesBody(const Job& j) {
  using W = typename Word<P>::T;
  const ConvShape& s = *j.s;
  const int wp = j.wp, hp = j.hp, pad = s.padding, ngroups = static_cast<int>(j.plan->groups.size());
  const size_t plane = static_cast<size_t>(hp) * wp;
  bool wide = false;
  for (const ChunkGroup& grp : j.plan->groups) wide |= grp.nx > 1;
  // The input planes bordered by their region's zero point, unless there is no border to add and
  // no slot reads a neighbouring column (then the input itself is the padded plane).
  const uint8_t* planes = j.input;
  if (pad > 0 || wide) {
    uint8_t* dst = Scratch<uint8_t>(2, static_cast<size_t>(s.in_channels) * plane + kSlack);
    planes = dst;
    // Whole 32-byte copies read past a row's end: fine inside the input, not past its last byte.
    const uint8_t* const input_end = j.input + s.input_size();
    const size_t row_read = (static_cast<size_t>(s.in_width) + 31) / 32 * 32;
    for (int c = 0; c < s.in_channels; ++c, dst += plane) {
      const uint8_t z = static_cast<uint8_t>(j.zero_points[c / s.group_size]);
      const uint64_t zz = z * 0x0101010101010101ull;
      const uint8_t* src = j.input + static_cast<size_t>(c) * s.in_height * s.in_width;
      FillOver(dst, zz, static_cast<size_t>(pad) * wp);
      // Row by row in address order: every store's overrun (fills in 8-byte steps, copies in
      // 32-byte ones) lands on bytes written after it: the left border's on the row's data, the
      // data's and right border's on the next row.
      for (int y = 0; y < s.in_height; ++y) {
        uint8_t* row = dst + static_cast<size_t>(pad + y) * wp;
        const uint8_t* from = src + static_cast<size_t>(y) * s.in_width;
        FillOver(row, zz, static_cast<size_t>(pad));
        if (static_cast<size_t>(input_end - from) >= row_read)
          CopyOver(row + pad, from, static_cast<size_t>(s.in_width));
        else
          std::memcpy(row + pad, from, static_cast<size_t>(s.in_width));
        FillOver(row + pad + s.in_width, zz, static_cast<size_t>(pad));
      }
      FillOver(dst + static_cast<size_t>(pad + s.in_height) * wp, zz, static_cast<size_t>(pad) * wp);
    }
  }
  const bool direct = j.phases == 1 && s.stride == 1;  // words go straight to the nibble rows
  W* const tmp = direct ? nullptr : reinterpret_cast<W*>(Scratch<uint8_t>(3, (plane + kSlack) * P));
  for (int g = 0; g < s.regions(); ++g)
    for (int gi = 0; gi < ngroups; ++gi) {
      const ChunkGroup& grp = j.plan->groups[gi];
      uint8_t* dst_group = j.nibbles + (static_cast<size_t>(g) * ngroups + gi) * j.group_bytes;
      W* words = direct ? reinterpret_cast<W*>(dst_group) : tmp;
      for (int ci = 0; ci < grp.nc; ++ci) {
        const uint8_t* src = planes + static_cast<size_t>(g * s.group_size + grp.c0 + ci) * plane;
        switch (grp.nx) {
          case 1: ChannelWords<P, 1>(src, plane, ci, words); break;
          case 2: ChannelWords<P, 2>(src, plane, 2 * ci, words); break;
          case 3: ChannelWords<P, 3>(src, plane, 3 * ci, words); break;
          case 4: ChannelWords<P, 4>(src, plane, 4 * ci, words); break;
          case 5: ChannelWords<P, 5>(src, plane, 5 * ci, words); break;
          default: ChannelWords<P, 6>(src, plane, 6 * ci, words); break;
        }
      }
      if (!direct)
        for (int py = 0; py < hp; ++py)
          SplitPhases<P>(j, words + static_cast<size_t>(py) * wp, dst_group + static_cast<size_t>(py) * j.phases * j.wq * P);
    }
}

// The tile is cut once into runs of pixels within one output row (no division per chunk).
struct Segment {
  size_t src, dst, bytes;  // src relative to the chunk's first nibble row
};

__attribute__((always_inline)) inline void BuildIndexBody(const Job& j, int g, int p0, int count, size_t stride,
                                                          uint8_t* idx) {
  const ConvShape& s = *j.s;
  const int ow = s.out_width(), P = j.planes, ngroups = static_cast<int>(j.plan->groups.size());
  const size_t row_bytes = static_cast<size_t>(j.phases) * j.wq * P;
  thread_local std::vector<Segment> segments;
  segments.clear();
  for (int p = p0; p < p0 + count;) {
    const int y = p / ow, x = p % ow, len = std::min(ow - x, p0 + count - p);
    segments.push_back({static_cast<size_t>(y) * s.stride * row_bytes + static_cast<size_t>(x) * P,
                        static_cast<size_t>(p - p0) * P, static_cast<size_t>(len) * P});
    p += len;
  }
  for (size_t q = 0; q < j.plan->chunks.size(); ++q) {
    const Chunk& c = j.plan->chunks[q];
    const uint8_t* first = j.nibbles + (static_cast<size_t>(g) * ngroups + c.group) * j.group_bytes +
                           static_cast<size_t>(c.ky) * row_bytes +
                           (static_cast<size_t>(c.kx0 % s.stride) * j.wq + c.kx0 / s.stride) * P;
    uint8_t* dst = idx + q * stride;
    for (const Segment& seg : segments) CopyOver(dst + seg.dst, first + seg.src, seg.bytes);
  }
}

void BuildNibblesPortable(const Job& j) {
  switch (j.planes) {
    case 1: BuildNibblesBody<1>(j); break;
    case 2: BuildNibblesBody<2>(j); break;
    default: BuildNibblesBody<4>(j); break;
  }
}
void BuildIndexPortable(const Job& j, int g, int p0, int count, size_t stride, uint8_t* idx) {
  BuildIndexBody(j, g, p0, count, stride, idx);
}

// ---- Portable look-ups -------------------------------------------------------------------------
// The scalar loop: per channel and pixel, sum over chunks and planes of T[nibble] << plane. Chunk
// by chunk over a strip of pixels, so a chunk's index bytes are read once for all OCB channels
// of a block and both they and the int32 sums stream in order. Same tables, indices and final
// combination as the SIMD paths.
// Not auto-vectorised: without a byte shuffle (SSE2, the x86-64 baseline) GCC emulates the table
// reads as gathers, which measured 1.6x (P = 4) to 2.5x (P = 2) slower than the scalar loop.
#if defined(__GNUC__) && !defined(__clang__)
#define SI_LUT_SCALAR __attribute__((optimize("no-tree-vectorize")))
#else
#define SI_LUT_SCALAR
#endif
template <int P, int OCB>
SI_LUT_SCALAR void LookupPortableBlock(const Tile& t, const uint8_t* block, int t0) {
  constexpr int kStrip = 64;
  int32_t sum[OCB][kStrip];
  const int level = (1 << t.wbits) - 1;
  for (int p0 = 0; p0 < t.count; p0 += kStrip) {
    const int n = std::min(kStrip, t.count - p0);
    for (int o = 0; o < OCB; ++o) std::fill(sum[o], sum[o] + n, 0);
    const uint8_t* table = block;
    for (int q = 0; q < t.chunks; ++q, table += OCB * t.entries) {
      const uint8_t* idx = t.idx + static_cast<size_t>(q) * t.idx_stride + static_cast<size_t>(p0) * P;
      for (int p = 0; p < n; ++p, idx += P)
        for (int o = 0; o < OCB; ++o) {
          const uint8_t* tab = table + o * t.entries;
          int32_t v = 0;
          for (int b = 0; b < P; ++b) v += static_cast<int32_t>(tab[idx[b]]) << b;
          sum[o][p] += v;
        }
    }
    for (int o = 0; o < OCB; ++o) {
      const int ch = t0 + o;
      if (ch == 0) {
        for (int p = 0; p < n; ++p) t.base[p0 + p] = level * sum[o][p];
        continue;
      }
      const int32_t zw = t.z * t.weight_sums[static_cast<size_t>(ch - 1) * t.regions];
      int32_t* out = t.out + static_cast<size_t>(ch - 1) * t.out_stride + p0;
      for (int p = 0; p < n; ++p) out[p] = 2 * sum[o][p] - t.base[p0 + p] - zw;
    }
  }
}

template <int P>
void LookupPortableP(const Tile& t) {
  for (int t0 = 0; t0 < t.channels; t0 += kLutBlock) {
    const uint8_t* block = t.tables + static_cast<size_t>(t0) * t.chunks * t.entries;
    switch (std::min(kLutBlock, t.channels - t0)) {
      case 4: LookupPortableBlock<P, 4>(t, block, t0); break;
      case 3: LookupPortableBlock<P, 3>(t, block, t0); break;
      case 2: LookupPortableBlock<P, 2>(t, block, t0); break;
      default: LookupPortableBlock<P, 1>(t, block, t0); break;
    }
  }
}

#ifdef SI_LUT_X86
#define SI_LUT_AVX2 __attribute__((target("avx2")))
#define SI_LUT_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

SI_LUT_AVX2 void BuildNibblesAvx2(const Job& j) {
  switch (j.planes) {
    case 1: BuildNibblesBody<1>(j); break;
    case 2: BuildNibblesBody<2>(j); break;
    default: BuildNibblesBody<4>(j); break;
  }
}
SI_LUT_AVX2 void BuildIndexAvx2(const Job& j, int g, int p0, int count, size_t stride, uint8_t* idx) {
  BuildIndexBody(j, g, p0, count, stride, idx);
}
SI_LUT_512 void BuildNibbles512(const Job& j) {
  switch (j.planes) {
    case 1: BuildNibblesBody<1>(j); break;
    case 2: BuildNibblesBody<2>(j); break;
    default: BuildNibblesBody<4>(j); break;
  }
}
SI_LUT_512 void BuildIndex512(const Job& j, int g, int p0, int count, size_t stride, uint8_t* idx) {
  BuildIndexBody(j, g, p0, count, stride, idx);
}

// ---- AVX-512: 64 index bytes per vpshufb (16-entry tables) or vpermb (64-entry) -------------
// Per chunk: R index vectors (R*64/P pixels) are loaded once and looked up in the 16-byte tables
// of OCB channels (each broadcast to the four 128-bit lanes), added into OCB*R uint8 sums; every
// n_u8 chunks vpdpbusd widens them into int32 with the plane weights. Accumulators: OCB*R u8 +
// OCB*R*(4/P) int32 zmm, <= 26 of 32, so the chunk loop touches memory only for its loads.

// int32 lanes as they come out of the widening step -> pixels in order. P = 4: as is. P = 2: in[0]
// holds even pixels, in[1] odd ones. P = 1: in[j] lane m holds pixel 4m + j.
template <int P>
SI_LUT_512 __attribute__((always_inline)) inline void Order512(const __m512i* in, __m512i* out) {
  if constexpr (P == 4) {
    out[0] = in[0];
  } else if constexpr (P == 2) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    out[0] = _mm512_permutex2var_epi32(in[0], lo, in[1]);
    out[1] = _mm512_permutex2var_epi32(in[0], hi, in[1]);
  } else {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    // Pairs (4m, 4m+1) and (4m+2, 4m+3) as 64-bit lanes, then quads of pixels interleaved.
    const __m512i a_lo = _mm512_permutex2var_epi32(in[0], lo, in[1]), a_hi = _mm512_permutex2var_epi32(in[0], hi, in[1]);
    const __m512i c_lo = _mm512_permutex2var_epi32(in[2], lo, in[3]), c_hi = _mm512_permutex2var_epi32(in[2], hi, in[3]);
    const __m512i q_lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i q_hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    out[0] = _mm512_permutex2var_epi64(a_lo, q_lo, c_lo);
    out[1] = _mm512_permutex2var_epi64(a_lo, q_hi, c_lo);
    out[2] = _mm512_permutex2var_epi64(a_hi, q_lo, c_hi);
    out[3] = _mm512_permutex2var_epi64(a_hi, q_hi, c_hi);
  }
}

// u8 += x, in place. Inline assembly because GCC 12 otherwise computes the sum into a fresh
// register and copies it back to the accumulator's at the loop edge: one extra vmovdqa64 per
// look-up, which measured as a third of the loop's time (qgemm.cpp's vpdpbusd has the same fix).
SI_LUT_512 __attribute__((always_inline)) inline __m512i AddBytes512(__m512i acc, __m512i x) {
#if defined(__GNUC__)
  __asm__("vpaddb %1, %0, %0" : "+v"(acc) : "v"(x));
  return acc;
#else
  return _mm512_add_epi8(acc, x);
#endif
}

// A 64-byte load into a register. GCC 12 otherwise folds the table load into every vpermb that
// reads it (R loads of the same 64 bytes per table instead of one).
SI_LUT_512 __attribute__((always_inline)) inline __m512i Load512(const uint8_t* p) {
#if defined(__GNUC__)
  __m512i v;
  __asm__("vmovdqa64 %1, %0" : "=v"(v) : "m"(*reinterpret_cast<const __m512i*>(p)));
  return v;
#else
  return _mm512_load_si512(p);
#endif
}

// The widening step: u8 sums times the plane weights, added into int32 (vpdpbusd: u8 x s8, no
// saturation), then the u8 sums restart from zero.
template <int P, int R, int OCB>
SI_LUT_512 __attribute__((always_inline)) inline void Widen512(__m512i (&sum)[OCB][R][4 / P], __m512i (&u8)[OCB][R]) {
  constexpr int J = 4 / P;
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int k = 0; k < J; ++k)
        sum[o][r][k] = _mm512_dpbusd_epi32(
            sum[o][r][k], u8[o][r],
            _mm512_set1_epi32(P == 4 ? 0x08040201 : P == 2 ? (0x0201 << (16 * k)) : (1 << (8 * k))));
}

// acc = 2 S - L V - z W for the group's pixels; the tap-sum channel (t0 == 0, o == 0) stores
// L V for the others. `px`: the group's first pixel in the tile, `count` valid pixels from there.
template <int P, int R, int OCB>
SI_LUT_512 __attribute__((always_inline)) inline void Store512(const Tile& t, __m512i (&sum)[OCB][R][4 / P], int t0,
                                                               int px, int count) {
  constexpr int J = 4 / P;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    __m512i ordered[OCB][J];
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o) Order512<P>(sum[o][r], ordered[o]);
#pragma GCC unroll 16
    for (int k = 0; k < J; ++k) {
      const int first = px + r * (64 / P) + 16 * k, n = std::min(16, count - (r * (64 / P) + 16 * k));
      if (n <= 0) break;
      const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1);
      __m512i base;
      int o0 = 0;
      if (t0 == 0) {
        const __m512i v = ordered[0][k];
        base = _mm512_mullo_epi32(v, _mm512_set1_epi32((1 << t.wbits) - 1));  // L * V
        _mm512_storeu_si512(t.base + first, base);
        o0 = 1;
      } else {
        base = _mm512_loadu_si512(t.base + first);
      }
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o) {
        if (o < o0) continue;
        const size_t oc = static_cast<size_t>(t0 + o - 1);
        const __m512i zw = _mm512_set1_epi32(t.z * t.weight_sums[oc * t.regions]);
        const __m512i s2 = _mm512_add_epi32(ordered[o][k], ordered[o][k]);
        _mm512_mask_storeu_epi32(t.out + oc * t.out_stride + first, mask,
                                 _mm512_sub_epi32(_mm512_sub_epi32(s2, base), zw));
      }
    }
  }
}

// One group of R vectors for channels t0 .. t0+OCB-1, 16-entry tables: each broadcast to the four
// 128-bit lanes and read by vpshufb. `idx` at the group's first pixel.
template <int P, int R, int OCB>
SI_LUT_512 __attribute__((noinline)) void Lookup512(const Tile& t, const uint8_t* idx, const uint8_t* tables, int t0,
                                                    int px, int count) {
  __m512i sum[OCB][R][4 / P];
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int k = 0; k < 4 / P; ++k) sum[o][r][k] = _mm512_setzero_si512();
  const size_t stride = t.idx_stride;
  for (int q0 = 0; q0 < t.chunks; q0 += t.n_u8) {
    const int q1 = std::min(t.chunks, q0 + t.n_u8);
    __m512i u8[OCB][R];
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) u8[o][r] = _mm512_setzero_si512();
    const uint8_t* iq = idx + static_cast<size_t>(q0) * stride;
    const uint8_t* tq = tables + static_cast<size_t>(q0) * OCB * 16;
    for (int q = q0; q < q1; ++q, iq += stride, tq += OCB * 16) {
      __m512i in[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) in[r] = _mm512_load_si512(iq + 64 * r);
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o) {
        // (maskz: GCC 12's plain _mm512_broadcast_i32x4 trips -Wmaybe-uninitialized.)
        const __m512i table =
            _mm512_maskz_broadcast_i32x4(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(tq + 16 * o)));
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) u8[o][r] = AddBytes512(u8[o][r], _mm512_shuffle_epi8(table, in[r]));
      }
    }
    Widen512<P, R, OCB>(sum, u8);
  }
  Store512<P, R, OCB>(t, sum, t0, px, count);
}

#define SI_LUT_VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

// The same with 64-entry tables (6 taps per chunk), each one whole zmm read by vpermb: the same
// port and rate as vpshufb, 1.5 times the taps per look-up.
template <int P, int R, int OCB>
SI_LUT_VBMI __attribute__((noinline)) void LookupVbmi(const Tile& t, const uint8_t* idx, const uint8_t* tables, int t0,
                                                      int px, int count) {
  __m512i sum[OCB][R][4 / P];
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int k = 0; k < 4 / P; ++k) sum[o][r][k] = _mm512_setzero_si512();
  const size_t stride = t.idx_stride;
  for (int q0 = 0; q0 < t.chunks; q0 += t.n_u8) {
    const int q1 = std::min(t.chunks, q0 + t.n_u8);
    __m512i u8[OCB][R];
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) u8[o][r] = _mm512_setzero_si512();
    const uint8_t* iq = idx + static_cast<size_t>(q0) * stride;
    const uint8_t* tq = tables + static_cast<size_t>(q0) * OCB * 64;
    for (int q = q0; q < q1; ++q, iq += stride, tq += OCB * 64) {
      __m512i in[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) in[r] = _mm512_load_si512(iq + 64 * r);
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o) {
        const __m512i table = Load512(tq + 64 * o);
#pragma GCC unroll 16
        // (The maskz form: GCC 12's plain _mm512_permutexvar_epi8 trips -Wmaybe-uninitialized.)
        for (int r = 0; r < R; ++r)
          u8[o][r] = AddBytes512(u8[o][r], _mm512_maskz_permutexvar_epi8(~__mmask64{0}, in[r], table));
      }
    }
    Widen512<P, R, OCB>(sum, u8);
  }
  Store512<P, R, OCB>(t, sum, t0, px, count);
}

// (Not itself VBMI code: the 64-entry kernel is only called when the CPU has it.)
template <int P, int R>
SI_LUT_512 void LookupGroup512(const Tile& t, int ocb, const uint8_t* tables, int t0, int px, int count) {
  const uint8_t* idx = t.idx + static_cast<size_t>(px) * P;
  if (t.entries == 64) {
    switch (ocb) {
      case 4: LookupVbmi<P, R, 4>(t, idx, tables, t0, px, count); break;
      case 3: LookupVbmi<P, R, 3>(t, idx, tables, t0, px, count); break;
      case 2: LookupVbmi<P, R, 2>(t, idx, tables, t0, px, count); break;
      default: LookupVbmi<P, R, 1>(t, idx, tables, t0, px, count); break;
    }
    return;
  }
  switch (ocb) {
    case 4: Lookup512<P, R, 4>(t, idx, tables, t0, px, count); break;
    case 3: Lookup512<P, R, 3>(t, idx, tables, t0, px, count); break;
    case 2: Lookup512<P, R, 2>(t, idx, tables, t0, px, count); break;
    default: Lookup512<P, R, 1>(t, idx, tables, t0, px, count); break;
  }
}

// Block by block, and within a block the tile's pixels in groups of two vectors for P = 4 (16
// pixels each: fewer table loads per look-up), one vector otherwise (a P = 2 or 1 vector
// already spans 32 or 64 pixels and needs 2 or 4 int32 accumulators per channel). One block's
// tables and the tile's indices then stay in L1 while the groups go by. Block 0 holds the
// tap-sum channel, so L*V is stored for the whole tile before any other block reads it.
template <int P>
SI_LUT_512 void LookupTile512(const Tile& t) {
  constexpr int kVec = 64 / P;
  for (int t0 = 0; t0 < t.channels; t0 += kLutBlock) {
    const int ocb = std::min(kLutBlock, t.channels - t0);
    const uint8_t* tables = t.tables + static_cast<size_t>(t0) * t.chunks * t.entries;
    int px = 0;
    if constexpr (P == 4)
      for (; t.count - px > kVec; px += 2 * kVec)
        LookupGroup512<P, 2>(t, ocb, tables, t0, px, std::min(2 * kVec, t.count - px));
    for (; px < t.count; px += kVec) LookupGroup512<P, 1>(t, ocb, tables, t0, px, std::min(kVec, t.count - px));
  }
}

// ---- AVX2: 32 index bytes per vpshufb ---------------------------------------------------------
// The same scheme with one vector per group (16 ymm registers: OCB u8 + OCB*(4/P) int32
// accumulators, the index vector, the table and the widening constants). AVX2 has no vpdpbusd:
// the widening is vpmaddubsw by the plane weights (<= 255 * 12, no saturation) then vpmaddwd
// by ones (P = 4) or by (1, 0) / (0, 1) (P = 2); P = 1 masks out each byte of a 32-bit lane.
template <int P>
SI_LUT_AVX2 __attribute__((always_inline)) inline void WidenAvx2(__m256i u8, __m256i* sum) {
  if constexpr (P == 4) {
    const __m256i w = _mm256_maddubs_epi16(u8, _mm256_set1_epi32(0x08040201));
    sum[0] = _mm256_add_epi32(sum[0], _mm256_madd_epi16(w, _mm256_set1_epi16(1)));
  } else if constexpr (P == 2) {
    const __m256i w = _mm256_maddubs_epi16(u8, _mm256_set1_epi16(0x0201));
    sum[0] = _mm256_add_epi32(sum[0], _mm256_madd_epi16(w, _mm256_set1_epi32(1)));
    sum[1] = _mm256_add_epi32(sum[1], _mm256_madd_epi16(w, _mm256_set1_epi32(1 << 16)));
  } else {
    const __m256i low = _mm256_set1_epi32(0xFF);
    sum[0] = _mm256_add_epi32(sum[0], _mm256_and_si256(u8, low));
    sum[1] = _mm256_add_epi32(sum[1], _mm256_and_si256(_mm256_srli_epi32(u8, 8), low));
    sum[2] = _mm256_add_epi32(sum[2], _mm256_and_si256(_mm256_srli_epi32(u8, 16), low));
    sum[3] = _mm256_add_epi32(sum[3], _mm256_srli_epi32(u8, 24));
  }
}

// As Order512, on 8 int32 lanes (two 128-bit halves).
template <int P>
SI_LUT_AVX2 __attribute__((always_inline)) inline void OrderAvx2(const __m256i* in, __m256i* out) {
  if constexpr (P == 4) {
    out[0] = in[0];
  } else if constexpr (P == 2) {
    const __m256i lo = _mm256_unpacklo_epi32(in[0], in[1]);  // pixels 0-3 | 8-11
    const __m256i hi = _mm256_unpackhi_epi32(in[0], in[1]);  // pixels 4-7 | 12-15
    out[0] = _mm256_permute2x128_si256(lo, hi, 0x20);
    out[1] = _mm256_permute2x128_si256(lo, hi, 0x31);
  } else {
    const __m256i x_lo = _mm256_unpacklo_epi32(in[0], in[1]), x_hi = _mm256_unpackhi_epi32(in[0], in[1]);
    const __m256i y_lo = _mm256_unpacklo_epi32(in[2], in[3]), y_hi = _mm256_unpackhi_epi32(in[2], in[3]);
    const __m256i z0 = _mm256_unpacklo_epi64(x_lo, y_lo);  // pixels 0-3 | 16-19
    const __m256i z1 = _mm256_unpackhi_epi64(x_lo, y_lo);  // 4-7 | 20-23
    const __m256i z2 = _mm256_unpacklo_epi64(x_hi, y_hi);  // 8-11 | 24-27
    const __m256i z3 = _mm256_unpackhi_epi64(x_hi, y_hi);  // 12-15 | 28-31
    out[0] = _mm256_permute2x128_si256(z0, z1, 0x20);
    out[1] = _mm256_permute2x128_si256(z2, z3, 0x20);
    out[2] = _mm256_permute2x128_si256(z0, z1, 0x31);
    out[3] = _mm256_permute2x128_si256(z2, z3, 0x31);
  }
}

SI_LUT_AVX2 __attribute__((always_inline)) inline __m256i AddBytesAvx2(__m256i acc, __m256i x) {
#if defined(__GNUC__)
  __asm__("vpaddb %1, %0, %0" : "+x"(acc) : "x"(x));
  return acc;
#else
  return _mm256_add_epi8(acc, x);
#endif
}

// R vectors of pixels for channels t0 .. t0+OCB-1. With R = 2 the u8 sums, index vectors and
// table fill 11 of the 16 ymm registers and the int32 sums live in memory: they are touched only
// once per n_u8 chunks.
template <int P, int R, int OCB>
SI_LUT_AVX2 __attribute__((noinline)) void LookupAvx2(const Tile& t, const uint8_t* idx, const uint8_t* tables, int t0,
                                                      int px, int count) {
  constexpr int J = 4 / P, kVec = 32 / P;
  __m256i sum[OCB][R][J];
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int k = 0; k < J; ++k) sum[o][r][k] = _mm256_setzero_si256();
  const size_t stride = t.idx_stride;
  for (int q0 = 0; q0 < t.chunks; q0 += t.n_u8) {
    const int q1 = std::min(t.chunks, q0 + t.n_u8);
    __m256i u8[OCB][R];
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) u8[o][r] = _mm256_setzero_si256();
    const uint8_t* iq = idx + static_cast<size_t>(q0) * stride;
    const uint8_t* tq = tables + static_cast<size_t>(q0) * OCB * 16;
    for (int q = q0; q < q1; ++q, iq += stride, tq += OCB * 16) {
      __m256i in[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) in[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(iq + 32 * r));
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o) {
        const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tq + 16 * o)));
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) u8[o][r] = AddBytesAvx2(u8[o][r], _mm256_shuffle_epi8(table, in[r]));
      }
    }
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) WidenAvx2<P>(u8[o][r], sum[o][r]);
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    __m256i ordered[OCB][J];
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o) OrderAvx2<P>(sum[o][r], ordered[o]);
#pragma GCC unroll 16
    for (int k = 0; k < J; ++k) {
      const int first = px + r * kVec + 8 * k, n = std::min(8, count - (r * kVec + 8 * k));
      if (n <= 0) break;
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
      __m256i base;
      int o0 = 0;
      if (t0 == 0) {
        const __m256i v = ordered[0][k];
        base = _mm256_sub_epi32(_mm256_sll_epi32(v, _mm_cvtsi32_si128(t.wbits)), v);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.base + first), base);
        o0 = 1;
      } else {
        base = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.base + first));
      }
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o) {
        if (o < o0) continue;
        const size_t oc = static_cast<size_t>(t0 + o - 1);
        const __m256i zw = _mm256_set1_epi32(t.z * t.weight_sums[oc * t.regions]);
        const __m256i s2 = _mm256_add_epi32(ordered[o][k], ordered[o][k]);
        _mm256_maskstore_epi32(t.out + oc * t.out_stride + first, mask,
                               _mm256_sub_epi32(_mm256_sub_epi32(s2, base), zw));
      }
    }
  }
}

template <int P, int R>
SI_LUT_AVX2 void LookupGroupAvx2(const Tile& t, int ocb, const uint8_t* tables, int t0, int px, int count) {
  const uint8_t* idx = t.idx + static_cast<size_t>(px) * P;
  switch (ocb) {
    case 4: LookupAvx2<P, R, 4>(t, idx, tables, t0, px, count); break;
    case 3: LookupAvx2<P, R, 3>(t, idx, tables, t0, px, count); break;
    case 2: LookupAvx2<P, R, 2>(t, idx, tables, t0, px, count); break;
    default: LookupAvx2<P, R, 1>(t, idx, tables, t0, px, count); break;
  }
}

// Block by block as LookupTile512; two vectors per group while at least two are left.
template <int P>
SI_LUT_AVX2 void LookupTileAvx2(const Tile& t) {
  constexpr int kVec = 32 / P;
  for (int t0 = 0; t0 < t.channels; t0 += kLutBlock) {
    const int ocb = std::min(kLutBlock, t.channels - t0);
    const uint8_t* tables = t.tables + static_cast<size_t>(t0) * t.chunks * 16;
    int px = 0;
    for (; t.count - px > kVec; px += 2 * kVec)
      LookupGroupAvx2<P, 2>(t, ocb, tables, t0, px, std::min(2 * kVec, t.count - px));
    for (; px < t.count; px += kVec) LookupGroupAvx2<P, 1>(t, ocb, tables, t0, px, std::min(kVec, t.count - px));
  }
}
#endif  // SI_LUT_X86

#ifdef SI_LUT_NEON
// ---- AArch64 NEON: 16 index bytes per tbl -----------------------------------------------------
// The AVX2 scheme on 128-bit vectors, ARMv8.0 only (a Cortex-A72 has no udot). A 16-entry table
// is one q register, read by tbl (vqtbl1q_u8) with no broadcast, so the tables are the ones
// PrepareLutWeights lays out for every path. Indices are nibbles (S = 4: < 16), which both
// look-ups read alike (tbl gives 0 from 16 up, pshufb only when bit 7 is set). Index bytes past
// the tile's last pixel only reach lanes that are never stored.
// The nibbles and index rows are the portable functions: NEON is the AArch64 baseline, so the
// compiler already vectorises them for it.
//
// Per chunk: R index vectors are loaded once and looked up in the OCB tables of the block (64
// contiguous bytes), added into OCB*R uint8 sums; every n_u8 chunks they widen into uint32, as on
// AVX2 (entries <= S*L, so n_u8 = floor(255 / (S*L)) chunks cannot wrap). Registers, of 32: OCB
// tables, R index vectors, OCB*R u8 and OCB*R*(4/P) u32 accumulators and one widening constant:
// 23 for P = 4 and 31 for P = 2 (both R = 2, 8 and 16 pixels), 25 for P = 1 (R = 1, 16 pixels).
// (At P = 2 GCC 12 keeps a few u32 sums on the stack; they are touched once per n_u8 chunks, and
// the look-up loop itself is loads, tbl and add only.)

// The widening step, keeping pixel order: umull / umull2 by the plane weights (u16 products
// <= 255 * 8), addp of neighbouring products: one pixel's sum per u16 for P = 2 (<= 255 * 3),
// half of one for P = 4 (<= 255 * 12); then uadalp (P = 4: the two halves) or uaddw / uaddw2
// into uint32. P = 1 bytes are whole pixels: uxtl, then uaddw. sum[k] gets pixels 4k .. 4k+3 of
// the vector's 16 / P. (Weight bytes as the index bytes: little-endian lanes, Word<P>.)
template <int P>
__attribute__((always_inline)) inline void WidenNeon(uint8x16_t u8, uint32x4_t* sum) {
  if constexpr (P == 1) {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(u8)), hi = vmovl_high_u8(u8);
    sum[0] = vaddw_u16(sum[0], vget_low_u16(lo));
    sum[1] = vaddw_high_u16(sum[1], lo);
    sum[2] = vaddw_u16(sum[2], vget_low_u16(hi));
    sum[3] = vaddw_high_u16(sum[3], hi);
  } else {
    const uint8x16_t weights =
        P == 4 ? vreinterpretq_u8_u32(vdupq_n_u32(0x08040201)) : vreinterpretq_u8_u16(vdupq_n_u16(0x0201));
    const uint16x8_t pairs = vpaddq_u16(vmull_u8(vget_low_u8(u8), vget_low_u8(weights)), vmull_high_u8(u8, weights));
    if constexpr (P == 4) {
      sum[0] = vpadalq_u16(sum[0], pairs);
    } else {
      sum[0] = vaddw_u16(sum[0], vget_low_u16(pairs));
      sum[1] = vaddw_high_u16(sum[1], pairs);
    }
  }
}

// The first n (1..4) lanes: the lanes past the tile's last pixel belong to another region's or
// channel's row of acc, and NEON has no masked store.
__attribute__((always_inline)) inline void StoreLanesNeon(int32_t* dst, int32x4_t v, int n) {
  if (n == 4) {
    vst1q_s32(dst, v);
    return;
  }
  if (n >= 2) vst1_s32(dst, vget_low_s32(v));
  else vst1q_lane_s32(dst, v, 0);
  if (n == 3) vst1q_lane_s32(dst + 2, v, 2);
}

// R vectors of pixels for channels t0 .. t0+OCB-1; stores as Store512.
template <int P, int R, int OCB>
__attribute__((noinline)) void LookupNeon(const Tile& t, const uint8_t* idx, const uint8_t* tables, int t0, int px,
                                          int count) {
  constexpr int J = 4 / P, kVec = 16 / P;
  uint32x4_t sum[OCB][R][J];
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int k = 0; k < J; ++k) sum[o][r][k] = vdupq_n_u32(0);
  const size_t stride = t.idx_stride;
  for (int q0 = 0; q0 < t.chunks; q0 += t.n_u8) {
    const int q1 = std::min(t.chunks, q0 + t.n_u8);
    uint8x16_t u8[OCB][R];
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) u8[o][r] = vdupq_n_u8(0);
    const uint8_t* iq = idx + static_cast<size_t>(q0) * stride;
    const uint8_t* tq = tables + static_cast<size_t>(q0) * OCB * 16;
    for (int q = q0; q < q1; ++q, iq += stride, tq += OCB * 16) {
      uint8x16_t in[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) in[r] = vld1q_u8(iq + 16 * r);
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o) {
        const uint8x16_t table = vld1q_u8(tq + 16 * o);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) u8[o][r] = vaddq_u8(u8[o][r], vqtbl1q_u8(table, in[r]));
      }
    }
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) WidenNeon<P>(u8[o][r], sum[o][r]);
  }
  const int32_t level = (1 << t.wbits) - 1;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int k = 0; k < J; ++k) {
      const int first = px + r * kVec + 4 * k, n = std::min(4, count - (r * kVec + 4 * k));
      if (n <= 0) break;
      int32x4_t base;
      int o0 = 0;
      if (t0 == 0) {
        base = vmulq_n_s32(vreinterpretq_s32_u32(sum[0][r][k]), level);  // L * V
        vst1q_s32(t.base + first, base);
        o0 = 1;
      } else {
        base = vld1q_s32(t.base + first);
      }
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o) {
        if (o < o0) continue;
        const size_t oc = static_cast<size_t>(t0 + o - 1);
        const int32x4_t zw = vdupq_n_s32(t.z * t.weight_sums[oc * t.regions]);
        const int32x4_t s = vreinterpretq_s32_u32(sum[o][r][k]);
        StoreLanesNeon(t.out + oc * t.out_stride + first, vsubq_s32(vsubq_s32(vaddq_s32(s, s), base), zw), n);
      }
    }
}

template <int P, int R>
void LookupGroupNeon(const Tile& t, int ocb, const uint8_t* tables, int t0, int px, int count) {
  const uint8_t* idx = t.idx + static_cast<size_t>(px) * P;
  switch (ocb) {
    case 4: LookupNeon<P, R, 4>(t, idx, tables, t0, px, count); break;
    case 3: LookupNeon<P, R, 3>(t, idx, tables, t0, px, count); break;
    case 2: LookupNeon<P, R, 2>(t, idx, tables, t0, px, count); break;
    default: LookupNeon<P, R, 1>(t, idx, tables, t0, px, count); break;
  }
}

// Block by block as LookupTile512; two vectors per group while more than one is left, except for
// P = 1, whose 4 u32 accumulators per vector and channel leave no room for a second.
template <int P>
void LookupTileNeon(const Tile& t) {
  constexpr int kVec = 16 / P;
  for (int t0 = 0; t0 < t.channels; t0 += kLutBlock) {
    const int ocb = std::min(kLutBlock, t.channels - t0);
    const uint8_t* tables = t.tables + static_cast<size_t>(t0) * t.chunks * 16;
    int px = 0;
    if constexpr (P != 1)
      for (; t.count - px > kVec; px += 2 * kVec)
        LookupGroupNeon<P, 2>(t, ocb, tables, t0, px, std::min(2 * kVec, t.count - px));
    for (; px < t.count; px += kVec) LookupGroupNeon<P, 1>(t, ocb, tables, t0, px, std::min(kVec, t.count - px));
  }
}
#endif  // SI_LUT_NEON

// Pixels per tile: a multiple of the widest pixel group any path uses (64), sized so one region's
// index bytes for the tile (chunks * pixels * P) stay near 32 KiB: with one block's tables they
// fit L1 while every block runs over them. (16 to 64 KiB measured the same within noise.)
int TilePixels(size_t chunks, int planes, size_t pixels) {
  constexpr size_t kGroup = 64, kTargetBytes = size_t{32} << 10;
  size_t tile = kTargetBytes / std::max<size_t>(1, chunks * planes) / kGroup * kGroup;
  tile = std::max(tile, kGroup);
  tile = std::min(tile, (pixels + kGroup - 1) / kGroup * kGroup);
  return static_cast<int>(tile);
}

void Run(Job& j) {
  const ConvShape& s = *j.s;
  const LutWeights& w = *j.w;
  [[maybe_unused]] const KernelPath path = w.path;  // only x86 and AArch64 builds have a choice
  const int regions = s.regions(), chunks = static_cast<int>(j.plan->chunks.size());
  const size_t pixels = s.pixels();
  const int P = j.planes;

  j.hp = s.in_height + 2 * s.padding;
  j.wp = s.in_width + 2 * s.padding;
  j.phases = std::min(s.stride, s.kernel_w);
  // Entries a chunk row can read: x + kx0 / stride for x < ow (and whole positions of phase 0
  // when stride 1, so the row is the padded row itself).
  j.wq = std::max(s.out_width() + (s.kernel_w - 1) / s.stride, s.stride == 1 ? j.wp : 0);
  j.group_bytes = static_cast<size_t>(j.hp) * j.phases * j.wq * P;
  const size_t groups = static_cast<size_t>(regions) * j.plan->groups.size();
  j.nibbles = Scratch<uint8_t>(0, groups * j.group_bytes + kSlack);
  j.channels = s.out_channels + 1;
  j.n_u8 = 255 / (w.slots * ((1 << w.wbits) - 1));

  const int tile_px = TilePixels(static_cast<size_t>(chunks), P, pixels);
  const size_t idx_stride = static_cast<size_t>(tile_px) * P;
  uint8_t* idx = Scratch<uint8_t>(1, static_cast<size_t>(chunks) * idx_stride + kSlack);
  int32_t* base = Scratch<int32_t>(0, static_cast<size_t>(tile_px));

#ifdef SI_LUT_X86
  if (path == KernelPath::kAvx512Vnni)
    BuildNibbles512(j);
  else if (path == KernelPath::kAvx2)
    BuildNibblesAvx2(j);
  else
#endif
    BuildNibblesPortable(j);

  Tile t;
  t.idx = idx;
  t.idx_stride = idx_stride;
  t.chunks = chunks;
  t.entries = 1 << w.slots;
  t.channels = j.channels;
  t.n_u8 = j.n_u8;
  t.wbits = w.wbits;
  t.regions = regions;
  t.out_stride = static_cast<size_t>(regions) * pixels;
  t.base = base;
  const size_t region_tables = static_cast<size_t>(j.channels) * chunks * t.entries;
  for (int g = 0; g < regions; ++g) {
    t.tables = w.tables.data() + g * region_tables;
    t.z = j.zero_points[g];
    t.weight_sums = w.weight_sums.data() + g;
    for (size_t p0 = 0; p0 < pixels; p0 += static_cast<size_t>(tile_px)) {
      t.count = static_cast<int>(std::min<size_t>(tile_px, pixels - p0));
      t.out = j.acc + static_cast<size_t>(g) * pixels + p0;
      const int ip0 = static_cast<int>(p0);
#ifdef SI_LUT_X86
      if (path == KernelPath::kAvx512Vnni) {
        BuildIndex512(j, g, ip0, t.count, idx_stride, idx);
        if (P == 4) LookupTile512<4>(t);
        else if (P == 2) LookupTile512<2>(t);
        else LookupTile512<1>(t);
        continue;
      }
      if (path == KernelPath::kAvx2) {
        BuildIndexAvx2(j, g, ip0, t.count, idx_stride, idx);
        if (P == 4) LookupTileAvx2<4>(t);
        else if (P == 2) LookupTileAvx2<2>(t);
        else LookupTileAvx2<1>(t);
        continue;
      }
#endif
      BuildIndexPortable(j, g, ip0, t.count, idx_stride, idx);
#ifdef SI_LUT_NEON
      if (path == KernelPath::kNeon || path == KernelPath::kNeonDot) {  // dotprod changes nothing here
        if (P == 4) LookupTileNeon<4>(t);
        else if (P == 2) LookupTileNeon<2>(t);
        else LookupTileNeon<1>(t);
        continue;
      }
#endif
      if (P == 4) LookupPortableP<4>(t);
      else if (P == 2) LookupPortableP<2>(t);
      else LookupPortableP<1>(t);
    }
  }
}

// The checks on weights a caller could have altered or built by hand.
Status CheckLutWeights(const LutWeights& w) {
  const ConvShape& s = w.shape;
  const bool slots_ok = w.slots == 4 || w.slots == 6;
  const size_t chunks = slots_ok ? ChunkCount(s, w.slots) : 0;
  if (!slots_ok || w.chunks < 0 || static_cast<size_t>(w.chunks) != chunks ||
      w.tables.size() != TablesSize(s, chunks, w.slots) ||
      w.weight_sums.size() != static_cast<size_t>(s.out_channels) * s.regions() || w.path == KernelPath::kAuto)
    return InvalidArgument("lut weights do not match their shape (make them with PrepareLutWeights)");
  SI_ASSIGN_OR_RETURN(const KernelPath run, ResolveLutPath(w.path));
  return CheckSlots(w.slots, run);
}

// Everything but the zero points (checked by the caller, per tensor or per region, first).
Status CheckCallArgs(const LutWeights& lw, const std::vector<uint8_t>& input, int abits, std::vector<int32_t>* acc) {
  SI_RETURN_IF_ERROR(CheckLutWeights(lw));
  SI_RETURN_IF_ERROR(CheckCodes("input", input, abits));
  if (!acc) return InvalidArgument("lut acc must not be null");
  return Status::Ok();
}

Status Accumulate(const LutWeights& lw, const std::vector<uint8_t>& input, int abits, const int32_t* zero_points,
                  std::vector<int32_t>* acc) {
  const ConvShape& s = lw.shape;
  acc->resize(s.acc_size());  // every element is written below
  const Plan plan = MakePlan(s, lw.slots);
  Job j;
  j.s = &s;
  j.plan = &plan;
  j.w = &lw;
  j.input = input.data();
  j.zero_points = zero_points;
  j.acc = acc->data();
  j.planes = PlaneBytes(abits);
  Run(j);
  return Status::Ok();
}

}  // namespace

bool CpuHasAvx512Vbmi() {
#ifdef SI_LUT_X86
  static const bool has = [] {
    __builtin_cpu_init();
    return CpuHasAvx512Vnni() && __builtin_cpu_supports("avx512vbmi");
  }();
  return has;
#else
  return false;
#endif
}

Result<std::vector<int8_t>> DecodeLutWeights(const std::vector<uint8_t>& codes, int wbits) {
  SI_RETURN_IF_ERROR(CheckBits("wbits", wbits));
  SI_RETURN_IF_ERROR(CheckCodes("weight code", codes, wbits));
  std::vector<int8_t> values(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) values[i] = static_cast<int8_t>(LutWeightValue(codes[i], wbits));
  return values;
}

Result<LutWeights> PrepareLutWeights(const ConvShape& shape, const std::vector<uint8_t>& codes, int wbits,
                                     KernelPath path, int slots) {
  SI_RETURN_IF_ERROR(CheckBits("wbits", wbits));
  SI_RETURN_IF_ERROR(ValidateConvShape(shape));
  if (codes.size() != shape.weight_size())
    return InvalidArgument("lut weight codes have " + std::to_string(codes.size()) + " values, shape needs " +
                           std::to_string(shape.weight_size()));
  SI_RETURN_IF_ERROR(CheckCodes("weight code", codes, wbits));
  LutWeights lw;
  SI_ASSIGN_OR_RETURN(lw.path, ResolveLutPath(path));
  lw.slots = slots == 0 ? DefaultSlots(lw.path, shape) : slots;
  SI_RETURN_IF_ERROR(CheckSlots(lw.slots, lw.path));
  const Plan plan = MakePlan(shape, lw.slots);
  const size_t chunks = plan.chunks.size();
  if (TablesSize(shape, chunks, lw.slots) > kMaxTableBytes)
    return OutOfRange("lut tables would take " + std::to_string(TablesSize(shape, chunks, lw.slots)) +
                      " bytes (limit " + std::to_string(kMaxTableBytes) + ")");
  lw.shape = shape;
  lw.wbits = wbits;
  lw.chunks = static_cast<int>(chunks);
  const int regions = shape.regions(), channels = shape.out_channels + 1;
  const int kh = shape.kernel_h, kw = shape.kernel_w;
  const int entries = 1 << lw.slots;
  lw.tables.assign(TablesSize(shape, chunks, lw.slots), 0);
  uint8_t* dst = lw.tables.data();
  for (int g = 0; g < regions; ++g)
    for (int t0 = 0; t0 < channels; t0 += kLutBlock) {
      const int ocb = std::min(kLutBlock, channels - t0);
      for (size_t q = 0; q < chunks; ++q) {
        const Chunk& c = plan.chunks[q];
        const ChunkGroup& grp = plan.groups[c.group];
        for (int o = 0; o < ocb; ++o, dst += entries) {
          const int ch = t0 + o;
          int slot_code[6] = {0, 0, 0, 0, 0, 0};
          for (int ci = 0; ci < grp.nc; ++ci)
            for (int d = 0; d < grp.nx && c.kx0 + d < kw; ++d) {
              const size_t in_c = static_cast<size_t>(g) * shape.group_size + grp.c0 + ci;
              slot_code[ci * grp.nx + d] =
                  ch == 0 ? 1
                          : codes[((static_cast<size_t>(ch - 1) * shape.in_channels + in_c) * kh + c.ky) * kw +
                                  c.kx0 + d];
            }
          for (int e = 0; e < entries; ++e) {
            int sum = 0;
            for (int i = 0; i < lw.slots; ++i)
              if ((e >> i) & 1) sum += slot_code[i];
            dst[e] = static_cast<uint8_t>(sum);
          }
        }
      }
    }
  // Weights of one region are contiguous in [oc][c][ky][kx] order.
  const size_t depth = static_cast<size_t>(shape.region_depth());
  lw.weight_sums.resize(static_cast<size_t>(shape.out_channels) * regions);
  for (size_t r = 0; r < lw.weight_sums.size(); ++r) {
    int32_t sum = 0;
    for (size_t i = 0; i < depth; ++i) sum += LutWeightValue(codes[r * depth + i], wbits);
    lw.weight_sums[r] = sum;
  }
  return lw;
}

Status LutConvAccumulate(const LutWeights& lw, const std::vector<uint8_t>& input, int abits,
                         const std::vector<int32_t>& zero_points, std::vector<int32_t>* acc) {
  SI_RETURN_IF_ERROR(CheckBits("abits", abits));
  SI_RETURN_IF_ERROR(CheckBits("wbits", lw.wbits));
  SI_RETURN_IF_ERROR(
      ValidateConvArgs(lw.shape, input.size(), zero_points, (1 << abits) - 1, lw.shape.weight_size()));
  SI_RETURN_IF_ERROR(CheckCallArgs(lw, input, abits, acc));
  return Accumulate(lw, input, abits, zero_points.data(), acc);
}

Status LutConvAccumulate(const LutWeights& lw, const std::vector<uint8_t>& input, int abits,
                         int32_t input_zero_point, std::vector<int32_t>* acc) {
  SI_RETURN_IF_ERROR(CheckBits("abits", abits));
  SI_RETURN_IF_ERROR(CheckBits("wbits", lw.wbits));
  SI_RETURN_IF_ERROR(ValidateConvArgs(lw.shape, input.size(), input_zero_point, (1 << abits) - 1,
                                      lw.shape.weight_size()));
  SI_RETURN_IF_ERROR(CheckCallArgs(lw, input, abits, acc));
  // One zero point per region, in a per-thread vector that stops allocating once grown.
  thread_local std::vector<int32_t> zero_points;
  zero_points.assign(static_cast<size_t>(lw.shape.regions()), input_zero_point);
  return Accumulate(lw, input, abits, zero_points.data(), acc);
}

Result<std::vector<int32_t>> LutConvAccumulate(const LutWeights& lw, const std::vector<uint8_t>& input, int abits,
                                               const std::vector<int32_t>& zero_points) {
  std::vector<int32_t> acc;
  SI_RETURN_IF_ERROR(LutConvAccumulate(lw, input, abits, zero_points, &acc));
  return acc;
}

Result<std::vector<int32_t>> LutConvAccumulate(const LutWeights& lw, const std::vector<uint8_t>& input, int abits,
                                               int32_t input_zero_point) {
  std::vector<int32_t> acc;
  SI_RETURN_IF_ERROR(LutConvAccumulate(lw, input, abits, input_zero_point, &acc));
  return acc;
}

}  // namespace splitinfer::kernels
