// codec/lossless: `cabac` and `cabac-trained`, a context-adaptive binary arithmetic coder for
// C x H x W maps of b-bit symbols, and the training of its starting model (cabac.h).
//
// Why our own coder: a feature map is not a byte stream. LZMA and zstd see packed bytes, in
// which one byte mixes eight 1-bit symbols from one row; here every binary decision is predicted
// from the symbols that are spatially next to it and from other channels at the same position,
// which is where the redundancy of a post-ReLU feature map is. On real 1-bit stem features this
// codes about half the bytes of LZMA preset 6, in a fraction of its time (bench/cabac_study.cpp).
//
// Everything that decides the bytes is integer arithmetic with fixed tables, so any machine
// decodes what any other encoded.
//
// Binarisation and order
//   Channels are coded one after the other; within a channel, two passes in raster order (rows,
//   then columns). Pass 1 codes every symbol's significance, "v >= 1". Pass 2 (bits >= 2 only)
//   codes the rest of each nonzero symbol MSB first as a walk down a binary tree: a node (the
//   bits decided so far) stands for an interval of values and the decision is "v >= t", t the
//   interval's midpoint; the node whose question is "v >= 1" is skipped, pass 1 answered it.
//   Sparse maps (89 % zeros on 2-bit stem features) thus need about 1.1 decisions per symbol
//   instead of bits, and significance-first also measured 2-6 % smaller than a plain MSB-first
//   tree. The passes change nothing about what a decision can see: significance contexts only
//   ask "nonzero?", which pass 1 already knows of its neighbours, and a tree decision's
//   neighbours (left, above, previous channel) are final when pass 2 reaches it. Splitting the
//   passes is for speed: each pass is a flat loop.
//   Layout 2 (frames of version 2; layout 1 is version 1's) codes pass 1 differently: runs of 8
//   symbols whose neighbours are all zero ("quiet groups") get one flag, and their symbols a
//   decision only when the flag says one is nonzero (see "Quiet groups" below).
//
// Contexts (one adaptive probability each)
//   node class: significance has its own; tree nodes of the first three levels have their own
//     (7), deeper levels one per level, so 8-bit symbols need 13 classes, not 256.
//   flags: for each neighbour, "neighbour >= t" (the same question about a symbol that is
//     already known). Neighbours: left, above, above-left, above-right, same position in the
//     previous channel; outside the map they read as 0. `cabac-trained` adds the same position
//     in two reference channels picked per channel on calibration data (see TrainCabacModel).
//   `cabac`: node class x 5 flags, shared by all channels: 32 contexts per class, few enough to
//     learn within one small map. `cabac-trained`: channel x node class x 7 flags, each starting
//     from calibration counts, so per-channel statistics cost nothing to learn. (Measured on
//     real 1-bit stem features: per-channel contexts learnt from scratch cost more than they
//     gain within one 12544-symbol map; started from calibration they save 40 %, and the two
//     reference channels another 30 %.)
//
// Probability estimate
//   p = P(bit = 1) with 22 fractional bits, plus an observation count n. The update moves p
//   the fraction 1/(n + 1.5) of the way to the bit (a running frequency, close to the
//   Krichevsky-Trofimov estimate while n is small), and 1/1024 once n reaches 1023 (slow
//   forgetting). p stays within [16, 65520] / 65536, so no decision costs more than 12 bits and
//   the coder's intervals never vanish. A trained context starts with the calibration
//   frequency and n = min(calibration count, 255): confident, but still able to adapt.
//
// Range coder
//   32-bit range, 64-bit low with carry propagation through a cached byte and a count of pending
//   0xFF bytes; a decision with probability p splits the range at (range >> 16) * p, renormalising
//   a byte at a time below 2^24. Two changes from the textbook version shave bytes that matter
//   at 50-500 bytes per frame: the first byte, always 0, is not written; and the flush writes
//   only as many of the final 4 bytes as are needed to name a value inside the final interval
//   (the one with the most trailing zero bytes; k = 0..4 bytes).
//
// Decoder rule for truncated and padded input
//   The decoder reads zeros past the end of the payload. A payload is valid only if, after the
//   last symbol: the decoder consumed every byte (none left over), it read exactly 4 - k bytes
//   past the end, where k is what the encoder's flush would have kept for the final state, and
//   the final code value equals the one that flush would have produced. The final encoder state
//   is recoverable from the decoder's (low = last 4 bytes - code), so this check is exact: a
//   payload decodes iff it is byte for byte what the encoder emits for the decoded symbols. (A
//   damaged payload that happens to be the encoding of another map therefore decodes to that
//   map; the frame's length and CRC32C are what catch damage in transit.) Garbage that runs more
//   than 4 bytes past the end stops the decoder at the next row.
#include "codec/lossless/cabac.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "codec/lossless/coders.h"
#include "codec/pack/pack.h"

namespace splitinfer::codec {
namespace {

// ---------------------------------------------------------------------------------------------
// Probability state

constexpr uint32_t kProbOne = 1u << 16;
constexpr uint32_t kProbMin = 16;
constexpr uint32_t kProbMax = kProbOne - kProbMin;
constexpr uint32_t kCountCap = 1023;

// k[n] = round(65536 / (n + 1.5)) = round(131072 / (2n + 3)), in integers, for n < cap; at the
// cap 64, i.e. a rate of exactly 1/1024.
struct RateTable {
  uint16_t k[kCountCap + 1];
  constexpr RateTable() : k() {
    for (uint32_t n = 0; n < kCountCap; ++n) k[n] = static_cast<uint16_t>((131072 + (2 * n + 3) / 2) / (2 * n + 3));
    k[kCountCap] = 64;
  }
};
constexpr RateTable kRate;

// In memory a context is one 32-bit word: p = P(bit = 1) in units of 2^-22 in bits 31..10 and
// the observation count n in bits 9..0. The 22-bit precision matters: with 16 bits the update
// (p * k) >> 16 rounds to zero long before p reaches small probabilities (at k = 64, p would
// stick near 1.6 %), which costs sparse maps a lot. The coder uses the top 16 bits of p.
using Context = uint32_t;
constexpr int kStateShift = 10;
constexpr uint32_t kCountMask = (1u << kStateShift) - 1;
static_assert(kCountCap <= kCountMask, "the count must fit its field");
constexpr uint32_t kProbMin22 = kProbMin << 6, kProbMax22 = kProbMax << 6;
constexpr uint32_t kSpan22 = kProbMax22 - kProbMin22;

constexpr Context MakeContext(uint32_t p16, uint32_t n) { return (p16 << 6) << kStateShift | n; }
constexpr Context kFreshContext = MakeContext(kProbOne / 2, 0);

// The working form, in registers while a context is in use: q = p - kProbMin22, so that the
// update is one multiply, a shift and a subtraction, a short dependency chain for runs of
// decisions in one context.
struct Prob {
  uint32_t q, n;
};
// Field by field rather than returning a Prob by value: a returned pair of 32-bit fields can
// end up packed into one 64-bit register (clang does this), which lengthens the update chain.
inline void Unpack(Context c, Prob* s) {
  s->q = (c >> kStateShift) - kProbMin22;
  s->n = c & kCountMask;
}
inline Context Pack(const Prob& s) { return (s.q + kProbMin22) << kStateShift | s.n; }
inline uint32_t Prob16(const Prob& s) { return (s.q + kProbMin22) >> 6; }

// Moves p the fraction 1/(n + 1.5) (k[n] / 65536), or 1/1024 once n is at the cap, of the way
// towards the clamp bound on the side of the bit, rounding the step down: p never leaves
// [kProbMin22, kProbMax22], so it needs no clamping. Two implementations of the same function:
// with a branch on the bit (cheapest when the bit is predictable, as in sparse 1-bit maps) and
// branch-free (both steps computed, the bit selects: cheaper when a mispredicted branch would
// cost more than a second multiply). The count's chain (n -> n + 1 -> k[n]) is independent of
// p's, so the table load is off the critical path either way.
template <bool kBranchFree>
inline void Adapt(Prob& s, uint32_t bit) {
  const uint64_t k = kRate.k[s.n];
  s.n += s.n < kCountCap;
  if constexpr (kBranchFree) {
    const uint32_t up = static_cast<uint32_t>((uint64_t{kSpan22 - s.q} * k) >> 16);
    const uint32_t down = static_cast<uint32_t>((uint64_t{s.q} * k) >> 16);
    const uint32_t mask = 0u - bit;
    s.q = s.q + (up & mask) - (down & ~mask);
  } else if (bit) {
    s.q += static_cast<uint32_t>((uint64_t{kSpan22 - s.q} * k) >> 16);
  } else {
    s.q -= static_cast<uint32_t>((uint64_t{s.q} * k) >> 16);
  }
}

// The context used last, held unpacked in registers. Runs of decisions in one context (a
// sparse map's empty background) would otherwise chain every update through a store and a
// reload of the same word, which costs several times the arithmetic.
struct CachedContext {
  Context* where;
  Prob state;
  explicit CachedContext(Context* p) : where(p) { Unpack(*p, &state); }
  Prob& Get(Context* p) {
    // Marked unlikely so that the compiler keeps a branch: an unconditional write-back and
    // reload (if-conversion) would put the store-to-load round trip back on the chain.
    if (__builtin_expect(p != where, 0)) {
      *where = Pack(state);
      where = p;
      Unpack(*p, &state);
    }
    return state;
  }
  void Flush() { *where = Pack(state); }
};

// ---------------------------------------------------------------------------------------------
// Range coder

constexpr uint32_t kTop = 1u << 24;

// How many of the final 4 bytes the flush keeps (k) and the distance from low to the value it
// names: the smallest value >= low whose last 4 - k bytes are zero must still be below
// low + range. Depends on low only modulo 2^32, so the decoder can evaluate it too.
inline int FlushBytes(uint32_t low, uint32_t range, uint32_t* distance) {
  for (int k = 0; k < 4; ++k) {
    const uint32_t mask = 0xFFFFFFFFu >> (8 * k);  // the low 4 - k bytes
    const uint32_t d = (0u - low) & mask;
    if (d < range) {
      *distance = d;
      return k;
    }
  }
  *distance = 0;
  return 4;
}

// ---------------------------------------------------------------------------------------------
// Context layout

constexpr int kSharedFlags = 5;   // left, above, above-left, above-right, previous channel
constexpr int kTrainedFlags = 7;  // + reference channels 1 and 2

// Node classes: tree nodes of the first three levels have their own (node - 1 = 0..6), deeper
// levels one per level (4 + depth). The significance decision "v >= 1" asks what the deepest
// node on the all-zero path would ask, which the tree then skips; for bits <= 3 it takes that
// node's class (otherwise unused), for deeper trees one more class.
inline uint32_t NodeClasses(int bits) { return bits <= 3 ? (1u << bits) - 1 : 5u + static_cast<uint32_t>(bits); }
inline uint32_t SigClass(int bits) { return bits <= 3 ? (1u << (bits - 1)) - 1 : 4u + static_cast<uint32_t>(bits); }

// The threshold of the tree decision at bit d of a symbol whose higher bits are those of v: the
// midpoint of the interval the higher bits leave, i.e. v's higher bits, then a 1, then zeros.
// A threshold of 1 is the significance decision, already made: the tree skips it.
inline uint32_t Threshold(uint32_t v, int d) { return ((v >> (d + 1)) << (d + 1)) | (1u << d); }
// The node class of that decision (depth = bits - 1 - d levels already decided).
inline uint32_t NodeClass(uint32_t v, int d, int depth) {
  return depth < 3 ? (1u << depth) - 1 + (v >> (d + 1)) : 4u + static_cast<uint32_t>(depth);
}

// The symbols with a zero border: plane 0 is all zeros (the "previous channel" of channel 0 and
// the plane of an absent reference), channel c is plane c + 1; each plane has one zero row above
// and one zero column on each side, so every neighbour read is in bounds and needs no branch.
struct Planes {
  explicit Planes(const SymbolGeometry& g)
      : channels(g.channels),
        height(g.height),
        width(g.width),
        row(size_t{g.width} + 2),
        plane((size_t{g.height} + 1) * row),
        span(g.height == 0 ? 0 : (size_t{g.height} - 1) * row + g.width),
        cells((size_t{g.channels} + 1) * plane + 8, 0) {}  // + 8: a group's 8-byte load may pass the end

  uint8_t* At(size_t p, size_t y) { return cells.data() + p * plane + (y + 1) * row + 1; }
  const uint8_t* At(size_t p, size_t y) const { return cells.data() + p * plane + (y + 1) * row + 1; }

  void Load(const uint8_t* symbols) {
    for (size_t c = 0; c < channels; ++c)
      for (size_t y = 0; y < height; ++y) std::memcpy(At(c + 1, y), symbols + (c * height + y) * width, width);
  }
  void Store(uint8_t* symbols) {
    for (size_t c = 0; c < channels; ++c)
      for (size_t y = 0; y < height; ++y) std::memcpy(symbols + (c * height + y) * width, At(c + 1, y), width);
  }

  size_t channels, height, width, row, plane;
  size_t span;  // from a channel's first cell to one past its last, borders included
  std::vector<uint8_t> cells;
};

// What the contexts of channel c need: where its contexts start and the offsets from a cell to
// its neighbours, the same position in the previous channel and in its reference planes.
template <bool kTrained>
struct ChannelView {
  static constexpr int kFlags = kTrained ? kTrainedFlags : kSharedFlags;

  ChannelView(const Planes& pl, size_t c, int bits, const CabacModel* model, Context* contexts)
      : row(static_cast<ptrdiff_t>(pl.row)), plane(static_cast<ptrdiff_t>(pl.plane)) {
    if constexpr (kTrained) {
      ctx = contexts + ((c * NodeClasses(bits)) << kTrainedFlags);
      r1 = (static_cast<ptrdiff_t>(model->ref1()[c]) - static_cast<ptrdiff_t>(c + 1)) * plane;
      r2 = (static_cast<ptrdiff_t>(model->ref2()[c]) - static_cast<ptrdiff_t>(c + 1)) * plane;
    } else {
      ctx = contexts;
    }
  }

  // The flags of cell n for threshold t: bit 0 left, 1 above, 2 above-left, 3 above-right,
  // 4 previous channel, 5 and 6 the references. Left is the one the decoder learns last.
  uint32_t UpperFlags(const uint8_t* n, uint32_t t) const {
    uint32_t f = uint32_t{n[-row] >= t} << 1 | uint32_t{n[-row - 1] >= t} << 2 | uint32_t{n[-row + 1] >= t} << 3 |
                 uint32_t{n[-plane] >= t} << 4;
    if constexpr (kTrained) f |= uint32_t{n[r1] >= t} << 5 | uint32_t{n[r2] >= t} << 6;
    return f;
  }

  Context* ctx;
  ptrdiff_t row, plane, r1 = 0, r2 = 0;
};

// Encoder and training: the decisions of a channel as entries (context index << 1) | bit, in
// coding order. All symbols are known, so the significance decisions of the whole channel come
// from one flat loop without serial dependencies that the compiler vectorises (sig[i] for the
// cell at offset i from the channel's first cell; border cells get entries too, which nobody
// reads). The tree decisions, needed for nonzero symbols only (about 1 in 9 on 2-bit stem
// features), are computed cell by cell. An entry fits 16 bits: node class < 13, 7 flags, 1 bit.
using Entry = uint16_t;

template <bool kTrained>
void SignificanceEntries(Planes& pl, const ChannelView<kTrained>& v, size_t c, int bits, Entry* sig) {
  constexpr int kFlags = ChannelView<kTrained>::kFlags;
  const uint8_t* q = pl.At(c + 1, 0);
  const ptrdiff_t row = v.row, plane = v.plane, r1 = v.r1, r2 = v.r2;
  const Entry cls = static_cast<Entry>(SigClass(bits) << (kFlags + 1));
  // uint8_t arithmetic throughout, so that the loop runs 16 cells per vector instruction.
  for (size_t i = 0; i < pl.span; ++i) {
    const uint8_t* n = q + i;
    uint8_t f = static_cast<uint8_t>((n[-1] != 0) | (n[-row] != 0) << 1 | (n[-row - 1] != 0) << 2 |
                                     (n[-row + 1] != 0) << 3 | (n[-plane] != 0) << 4);
    if constexpr (kTrained) f = static_cast<uint8_t>(f | (n[r1] != 0) << 5 | (n[r2] != 0) << 6);
    sig[i] = static_cast<Entry>(cls | f << 1 | (n[0] != 0));
  }
}

// Pass 1 of a channel: the significance decisions of its cells in raster order (the borders
// dropped). Returns how many were written (height * width).
size_t SigDecisions(const Planes& pl, const Entry* sig, Entry* list) {
  for (size_t y = 0; y < pl.height; ++y) std::memcpy(list + y * pl.width, sig + y * pl.row, pl.width * sizeof(Entry));
  return pl.height * pl.width;
}

// ---------------------------------------------------------------------------------------------
// Quiet groups (layout 2)

// A row of a channel splits into groups of kGroup symbols (the last one partial). A group is
// *quiet* when every neighbour any of its symbols' significance contexts looks at, outside the
// group itself, is zero: the symbol left of the group, the row above from above-left of its
// first symbol to above-right of its last, the same symbols in the previous channel (and in the
// reference channels for cabac-trained). Layout 1 codes each symbol of a quiet group in the
// all-zero context, where p(nonzero) is tiny; layout 2 codes one flag "the group is nonzero"
// instead and, for a nonzero quiet group, its symbols up to the first nonzero one in contexts of
// their own ("unseen": how many symbols of the group follow, 1, 2, 3-4 or 5+; the group holds a
// nonzero symbol, so the fewer remain, the likelier this is it), the last one without a decision
// when the others were zero, the rest as in layout 1. Groups that are not quiet are coded as in
// layout 1. Sparse maps are mostly quiet (1-bit stem features: about 99 % zeros), so most of
// their symbols cost no decision, while every symbol near a nonzero one keeps its full context.
constexpr size_t kGroup = 8;
inline uint32_t GroupCount(uint32_t width) { return static_cast<uint32_t>((width + kGroup - 1) / kGroup); }
inline size_t GroupLength(size_t width, size_t group) { return std::min(kGroup, width - group * kGroup); }
// The first m <= 8 bytes at p as the low bytes of a word. For m > 0, p is read 8 bytes far: the
// callers' reads stay inside the planes or their 8 bytes of slack. For m == 0 nothing is read
// (p may then be past the end: a partial group's second above-row word in Quiet; the fuzz
// targets found the 8-byte read there on a 1-wide map).
inline uint64_t FirstBytes(const uint8_t* p, size_t m) {
  if (m == 0) return 0;
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w & (~uint64_t{0} >> (64 - 8 * m));
}

// Layout 2's frame-wide contexts (FrameContexts::groups()), shared by all channels and fresh in
// every frame (not in the model): [0, 2) the quiet group's flag, by whether the previous quiet
// group of the channel was nonzero; [2, 6) the unseen symbols. An entry whose top bit is
// kAltBase names a context of this set.
constexpr uint32_t kUnseenBase = 2;
constexpr size_t kGroupContexts = kUnseenBase + 4;
constexpr Entry kAltBase = 0x8000;
static_assert((size_t{13} << (kTrainedFlags + 1)) <= kAltBase, "entries must leave the top bit free");
inline uint32_t Following(size_t r) { return r <= 2 ? static_cast<uint32_t>(r - 1) : r <= 4 ? 2u : 3u; }

// Whether the group of `len` symbols from q[x0] (q: the row's first symbol) is quiet. Whole
// groups (all but a row's last when 8 does not divide the width) take plain loads.
template <bool kTrained>
inline bool Quiet(const uint8_t* q, size_t x0, size_t len, const ChannelView<kTrained>& v) {
  const uint8_t* above = q + static_cast<ptrdiff_t>(x0) - v.row - 1;  // len + 2 symbols
  const uint8_t* n = q + x0;
  uint64_t m;
  if (len == kGroup) {
    uint64_t a, p;
    uint16_t a2;
    std::memcpy(&a, above, 8);
    std::memcpy(&a2, above + 8, 2);
    std::memcpy(&p, n - v.plane, 8);
    m = a | a2 | p | n[-1];
    if constexpr (kTrained) {
      uint64_t r1, r2;
      std::memcpy(&r1, n + v.r1, 8);
      std::memcpy(&r2, n + v.r2, 8);
      m |= r1 | r2;
    }
  } else {
    m = FirstBytes(above, len + 2 > 8 ? 8 : len + 2) | FirstBytes(above + 8, len + 2 > 8 ? len + 2 - 8 : 0) |
        FirstBytes(n - v.plane, len) | n[-1];
    if constexpr (kTrained) m |= FirstBytes(n + v.r1, len) | FirstBytes(n + v.r2, len);
  }
  return m == 0;
}

// Pass 1 of a channel in layout 2: the significance decisions in raster order, group by group,
// as described above. `sig` as from SignificanceEntries. Returns how many were written.
template <bool kTrained>
size_t GroupedDecisions(const Planes& pl, const ChannelView<kTrained>& v, size_t c, const Entry* sig, Entry* list) {
  size_t k = 0;
  uint32_t previous = 0;  // the previous quiet group's flag
  const size_t groups = GroupCount(static_cast<uint32_t>(pl.width));
  for (size_t y = 0; y < pl.height; ++y) {
    const uint8_t* q = pl.At(c + 1, y);
    const Entry* s = sig + y * pl.row;
    for (size_t g = 0; g < groups; ++g) {
      const size_t x0 = g * kGroup, len = GroupLength(pl.width, g);
      if (!Quiet(q, x0, len, v)) {
        std::memcpy(list + k, s + x0, len * sizeof(Entry));
        k += len;
        continue;
      }
      const uint32_t nonzero = FirstBytes(q + x0, len) != 0;
      list[k++] = static_cast<Entry>(kAltBase | previous << 1 | nonzero);
      previous = nonzero;
      if (!nonzero) continue;
      size_t first = 0;
      while (q[x0 + first] == 0) ++first;  // the group is nonzero: stops inside it
      // Those up to the first nonzero one (but a forced last one) take the unseen contexts.
      std::memcpy(list + k, s + x0, len * sizeof(Entry));
      for (size_t i = 0; i <= first && i + 1 < len; ++i) {
        list[k + i] = static_cast<Entry>(kAltBase | (kUnseenBase + Following(len - 1 - i)) << 1 | (i == first));
      }
      k += len;
      k -= first + 1 == len;  // the forced last symbol
    }
  }
  return k;
}

// Pass 2 of a channel (bits >= 2): for each nonzero symbol in raster order, its tree decisions
// MSB first, but the one the significance decision already made. The nonzero cells are
// gathered first without branches (`cells` holds height * width offsets). `list` holds
// height * width * bits entries; returns how many were written.
template <bool kTrained>
size_t TreeDecisions(Planes& pl, const ChannelView<kTrained>& v, size_t c, int bits, uint32_t* cells, Entry* list) {
  constexpr int kFlags = ChannelView<kTrained>::kFlags;
  size_t m = 0;
  for (size_t y = 0; y < pl.height; ++y) {
    const uint8_t* q = pl.At(c + 1, y);
    const uint32_t base = static_cast<uint32_t>(y * pl.row);
    size_t x = 0;
    for (; x + 8 <= pl.width; x += 8) {
      uint64_t eight;
      std::memcpy(&eight, q + x, 8);
      if (eight == 0) continue;  // sparse maps: most runs of 8 are empty
      for (size_t k = x; k < x + 8; ++k) {
        cells[m] = base + static_cast<uint32_t>(k);
        m += q[k] != 0;
      }
    }
    for (; x < pl.width; ++x) {
      cells[m] = base + static_cast<uint32_t>(x);
      m += q[x] != 0;
    }
  }
  const uint8_t* q = pl.At(c + 1, 0);
  const ChannelView<kTrained> view = v;  // a local copy: its fields stay in registers
  size_t k = 0;
  if (bits == 2) {
    // The common case spelled out: "v >= 2" (node class 0), then for v >= 2 "v >= 3" (class 2);
    // v = 1 needs only the first.
    for (size_t j = 0; j < m; ++j) {
      const uint8_t* n = q + cells[j];
      const uint32_t value = n[0];
      const uint32_t msb = value >> 1;
      list[k++] = static_cast<Entry>((view.UpperFlags(n, 2) | uint32_t{n[-1] >= 2}) << 1 | msb);
      const uint32_t f3 = view.UpperFlags(n, 3) | uint32_t{n[-1] >= 3};
      list[k] = static_cast<Entry>((2u << kFlags | f3) << 1 | (value & 1u));
      k += msb;
    }
    return k;
  }
  for (size_t j = 0; j < m; ++j) {
    const uint8_t* n = q + cells[j];
    const uint32_t value = n[0];
    for (int depth = 0; depth < bits; ++depth) {
      const int d = bits - 1 - depth;
      const uint32_t t = Threshold(value, d);
      if (t == 1) continue;  // "v >= 1": the significance decision
      const uint32_t f = view.UpperFlags(n, t) | uint32_t{n[-1] >= t};
      list[k++] = static_cast<Entry>((NodeClass(value, d, depth) << kFlags | f) << 1 | ((value >> d) & 1u));
    }
  }
  return k;
}

// Writes into a buffer sized in advance by MaxEncodedBytes, so that emitting a byte is a store
// and one well-predicted compare (no call in the coding loops, whose registers would otherwise
// be spilled around every call site). Reaching the end sets overflowed() instead of writing
// past it; the bound is proven, so that would be a bug, and it is reported, not trusted to an
// assert that a Release build compiles out.
class RangeEncoder {
 public:
  // A bound on the bytes written for `decisions` decisions. A decision narrows the range by a
  // factor of at most 65536 / kProbMin * (1 + 2^-8) (the split is at (range >> 16) * p with
  // range >= 2^24), i.e. costs < 12.006 bits; one byte is written per 8 bits of narrowing, plus
  // the initial byte, one for rounding and 4 for the flush: < 1.5008 * decisions + 7.
  static size_t MaxEncodedBytes(size_t decisions) { return decisions + decisions / 2 + decisions / 64 + 16; }

  RangeEncoder(uint8_t* buffer, size_t capacity) : begin_(buffer), out_(buffer), end_(buffer + capacity) {}

  // Codes decisions given as entries (context index << 1) | bit relative to ctx, in order.
  // The coder state and the context used last live in locals (registers): runs of decisions in
  // one context (a sparse map's empty background) then never wait for a store and a reload.
  // Out of line, so that this loop gets the registers to itself.
  // With `alt`, an entry with the kAltBase bit names a context relative to alt instead.
  template <bool kBranchFree>
  [[gnu::noinline]] void EncodeList(const Entry* entries, size_t n, Context* ctx, Context* alt = nullptr) {
    if (n == 0) return;
    uint64_t low = low_;
    uint32_t range = range_;
    auto where = [&](Entry e) { return (alt != nullptr && (e & kAltBase) ? alt : ctx) + ((e & (kAltBase - 1)) >> 1); };
    CachedContext last(where(entries[0]));
    for (size_t i = 0; i < n; ++i) {
      Code<kBranchFree>(low, range, last.Get(where(entries[i])), entries[i] & 1u);
    }
    last.Flush();
    low_ = low;
    range_ = range;
  }

  // Returns the number of bytes of the finished stream, which starts at buffer + 1: byte 0 is
  // the integer part of the code value, always 0, so never sent.
  size_t Finish() {
    uint32_t distance;
    const int keep = FlushBytes(static_cast<uint32_t>(low_), range_, &distance);
    uint64_t low = low_ + distance;
    for (int i = 0; i < 5; ++i) low = ShiftLow(low);
    if (overflowed_ || out_ - begin_ < 1 + (4 - keep) || begin_[0] != 0) {
      overflowed_ = true;
      return 0;
    }
    // The last 4 bytes written are the final window; its low 4 - keep bytes are zero by choice.
    for (int i = keep; i < 4; ++i) {
      if (out_[-1] != 0) overflowed_ = true;
      --out_;
    }
    return static_cast<size_t>(out_ - begin_) - 1;
  }

  // True when the stream did not fit (or Finish found it inconsistent): its bytes are invalid.
  bool overflowed() const { return overflowed_; }

 private:
  template <bool kBranchFree>
  void Code(uint64_t& low, uint32_t& range, Prob& s, uint32_t bit) {
    const uint32_t bound = (range >> 16) * Prob16(s);
    if constexpr (kBranchFree) {
      const uint32_t mask = 0u - bit;
      low += bound & ~mask;
      range = (bound & mask) | ((range - bound) & ~mask);
    } else if (bit) {
      range = bound;
    } else {
      low += bound;
      range -= bound;
    }
    while (range < kTop) {
      range <<= 8;
      low = ShiftLow(low);
    }
    Adapt<kBranchFree>(s, bit);
  }

  // Moves the top byte of low out and returns the shifted low. A byte is held back (cache_,
  // then pending_ - 1 bytes of 0xFF) until it is known that no later carry can change it.
  uint64_t ShiftLow(uint64_t low) {
    if (static_cast<uint32_t>(low) < 0xFF000000u || (low >> 32) != 0) {
      const uint8_t carry = static_cast<uint8_t>(low >> 32);
      uint8_t byte = cache_;
      do {
        if (out_ < end_) {
          *out_++ = static_cast<uint8_t>(byte + carry);
        } else {
          overflowed_ = true;
        }
        byte = 0xFF;
      } while (--pending_ != 0);
      cache_ = static_cast<uint8_t>(low >> 24);
    }
    ++pending_;
    return (low & 0x00FFFFFFu) << 8;
  }

  uint8_t* begin_;
  uint8_t* out_;
  uint8_t* end_;
  bool overflowed_ = false;
  uint64_t low_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
  uint8_t cache_ = 0;
  uint64_t pending_ = 1;
};

class RangeDecoder {
 public:
  RangeDecoder(const uint8_t* data, size_t size) : data_(data), size_(size) {
    for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | Next(pos_);
    bad_start_ = code_ >= range_;
  }

  // Decodes channel c. Pass 1, the significance map, row by row: first the flags of every
  // neighbour but the left one for the whole row (pre[x]), then the row left to right with
  // "left" in a register; the plane holds 0 or 1 meanwhile, which is all these contexts look at.
  // Pass 2 (bits >= 2), the tree decisions of the nonzero cells in raster order, when every
  // neighbour they look at (left, above, previous channel, references) is final. Locals, a
  // cached context and out of line, as in RangeEncoder::EncodeList.
  template <bool kTrained>
  [[gnu::noinline]] void DecodeChannel(Planes& pl, const ChannelView<kTrained>& v, size_t c, int bits,
                                        uint8_t* pre) {
    constexpr int kFlags = ChannelView<kTrained>::kFlags;
    uint32_t code = code_, range = range_;
    size_t pos = pos_;
    Context* const ctx = v.ctx;
    const size_t width = pl.width;
    const uint32_t sig_base = SigClass(bits) << kFlags;
    CachedContext last(ctx + sig_base);
    for (size_t y = 0; y < pl.height && pos <= size_ + 4; ++y) {
      uint8_t* q = pl.At(c + 1, y);
      for (size_t x = 0; x < width; ++x) pre[x] = static_cast<uint8_t>(v.UpperFlags(q + x, 1));
      uint32_t left = 0;
      for (size_t x = 0; x < width; ++x) {
        left = Decode(code, range, pos, last.Get(ctx + (sig_base | pre[x] | left)));
        q[x] = static_cast<uint8_t>(left);
      }
    }
    if (bits > 1) DecodeTree(pl, v, c, bits, nullptr, code, range, pos, last);
    last.Flush();
    code_ = code;
    range_ = range;
    pos_ = pos;
  }

  // DecodeChannel for layout 2: pass 1 group by group as GroupedDecisions lists it (the plane
  // is all zeros before it is decoded, so a quiet zero group needs no writes); `rows[y]` notes
  // whether row y has a nonzero symbol. Then pass 2 as in layout 1, over those rows.
  template <bool kTrained>
  [[gnu::noinline]] void DecodeChannelGroups(Planes& pl, const ChannelView<kTrained>& v, Context* gctx, size_t c,
                                              int bits, uint8_t* rows) {
    constexpr int kFlags = ChannelView<kTrained>::kFlags;
    uint32_t code = code_, range = range_;
    size_t pos = pos_;
    Context* const ctx = v.ctx;
    const size_t width = pl.width, groups = GroupCount(static_cast<uint32_t>(width));
    const uint32_t sig_base = SigClass(bits) << kFlags;
    CachedContext last(gctx);
    uint32_t previous = 0;
    for (size_t y = 0; y < pl.height && pos <= size_ + 4; ++y) {
      uint8_t* q = pl.At(c + 1, y);
      uint32_t any = 0;
      for (size_t g = 0; g < groups; ++g) {
        const size_t x0 = g * kGroup, end = x0 + GroupLength(width, g);
        size_t x = x0;
        uint32_t left = q[static_cast<ptrdiff_t>(x0) - 1] != 0;
        if (Quiet(q, x0, end - x0, v)) {
          previous = Decode(code, range, pos, last.Get(gctx + previous));
          if (previous == 0) continue;
          any = 1;
          for (; x < end; ++x) {  // up to the group's first nonzero symbol: the unseen contexts
            if (x + 1 == end) {   // the group is nonzero and this is its last chance
              q[x] = 1;
              break;
            }
            left = Decode(code, range, pos, last.Get(gctx + kUnseenBase + Following(end - 1 - x)));
            q[x] = static_cast<uint8_t>(left);
            if (left) break;
          }
          ++x;
        }
        for (; x < end; ++x) {
          left = Decode(code, range, pos, last.Get(ctx + (sig_base | v.UpperFlags(q + x, 1) | left)));
          q[x] = static_cast<uint8_t>(left);
          any |= left;
        }
      }
      rows[y] = static_cast<uint8_t>(any);
    }
    if (bits > 1) DecodeTree(pl, v, c, bits, rows, code, range, pos, last);
    last.Flush();
    code_ = code;
    range_ = range;
    pos_ = pos;
  }

  // True once the decoder is certainly past any valid end: stop early.
  bool overrun() const { return pos_ > size_ + 4; }

 private:
  // Pass 2 (bits >= 2): the tree decisions of the nonzero symbols in raster order, when every
  // neighbour they look at (left, above, previous channel, references) is final. `rows`, when
  // given, skips the rows without a nonzero symbol.
  template <bool kTrained>
  inline void DecodeTree(Planes& pl, const ChannelView<kTrained>& v, size_t c, int bits, const uint8_t* rows,
                         uint32_t& code, uint32_t& range, size_t& pos, CachedContext& last) const {
    constexpr int kFlags = ChannelView<kTrained>::kFlags;
    Context* const ctx = v.ctx;
    for (size_t y = 0; y < pl.height && pos <= size_ + 4; ++y) {
      if (rows != nullptr && rows[y] == 0) continue;
      uint8_t* q = pl.At(c + 1, y);
      for (size_t x = 0; x < pl.width; ++x) {
        if (q[x] == 0) continue;
        const uint8_t* n = q + x;
        uint32_t value = 0;
        for (int depth = 0; depth < bits; ++depth) {
          const int d = bits - 1 - depth;
          const uint32_t t = Threshold(value, d);
          if (t == 1) {  // "v >= 1": the significance decision said so
            value |= 1;
            continue;
          }
          const uint32_t f = v.UpperFlags(n, t) | uint32_t{n[-1] >= t};
          value |= Decode(code, range, pos, last.Get(ctx + (NodeClass(value, d, depth) << kFlags | f))) << d;
        }
        q[x] = static_cast<uint8_t>(value);
      }
    }
  }

 public:

  Status Finish() const {
    auto bad = [](const std::string& m) { return Status(ErrorCode::kFramePayload, "cabac payload " + m); };
    if (bad_start_) return bad("starts with a code value outside the initial range");
    if (pos_ < size_) return bad("has " + std::to_string(size_ - pos_) + " trailing bytes");
    const size_t past_end = pos_ - size_;
    if (past_end > 4) return bad("is truncated (" + std::to_string(past_end) + " bytes missing at least)");
    uint32_t window = 0;
    for (size_t i = pos_ - 4; i < pos_; ++i) window = (window << 8) | (i < size_ ? data_[i] : 0u);
    const uint32_t low = window - code_;  // the encoder's low at its flush, modulo 2^32
    uint32_t distance;
    const int keep = FlushBytes(low, range_, &distance);
    if (past_end != static_cast<size_t>(4 - keep) || code_ != distance) {
      return bad("does not end the way the encoder ends a stream (truncated or corrupt)");
    }
    return Status::Ok();
  }

 private:
  uint32_t Decode(uint32_t& code, uint32_t& range, size_t& pos, Prob& s) const {
    const uint32_t bound = (range >> 16) * Prob16(s);
    uint32_t bit;
    if (code < bound) {
      range = bound;
      bit = 1;
    } else {
      code -= bound;
      range -= bound;
      bit = 0;
    }
    while (range < kTop) {
      range <<= 8;
      code = (code << 8) | Next(pos);
    }
    Adapt<false>(s, bit);
    return bit;
  }

  // Past the end the payload reads as zeros (see the decoder rule at the top).
  uint32_t Next(size_t& pos) const {
    const uint32_t b = pos < size_ ? data_[pos] : 0u;
    ++pos;
    return b;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint32_t code_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
  bool bad_start_ = false;
};

// Scratch arrays that are fully written before they are read: no zero-filling (at 50-100 KB
// per frame it would cost a noticeable part of a 1-bit frame's encoding time).
template <class T>
std::unique_ptr<T[]> Scratch(size_t n) {
  return std::unique_ptr<T[]>(new T[n]);
}

// The contexts a frame adapts. Shared: a handful, all fresh. Trained: the model's, copied one
// channel at a time just before that channel is coded (Prepare), so each copy lands in the L1
// cache right before use instead of one 25-100 KB copy up front evicting it.
//
// Layout 2 also lowers the observation counts of the contexts shared across channels at the
// start of each channel (Prepare), to kGroupRecount for the group contexts and kSharedRecount
// for `cabac`'s, so that they move faster towards the new channel's statistics: channels of a
// feature map differ a lot in how many nonzero symbols they have, and a count near its cap of
// 1023 would follow at 1/1024 per decision, i.e. over several channels' worth of quiet groups.
// In development (blurred-noise 64x56x56 maps, 0.1-5 % nonzero at 1 bit; caps 3-1023 tried),
// layout 2 without the recount was up to 3.6 % larger than layout 1, with it 0.2-10 % smaller;
// the caps chosen were the best of those tried. bench/README.md has the committed sizes.
constexpr uint32_t kGroupRecount = 31, kSharedRecount = 63;
class FrameContexts {
 public:
  FrameContexts(const SymbolGeometry& g, const CabacModel* model, int layout)
      : model_(model),
        recount_(layout == kCabacLayoutGroups),
        per_channel_(model ? size_t{NodeClasses(g.bits)} << kTrainedFlags : 0),
        shared_(model ? 0 : size_t{NodeClasses(g.bits)} << kSharedFlags),
        contexts_(Scratch<Context>(model ? model->context_count() : shared_)) {
    if (model == nullptr) std::fill_n(contexts_.get(), shared_, kFreshContext);
  }
  Context* data() { return contexts_.get(); }
  // Layout 2's group flags and unseen significance (kUnseenBase): one set for all channels,
  // fresh in every frame (not in the model).
  Context* groups() { return groups_.data(); }
  void Prepare(size_t c) {
    if (recount_) {
      for (Context& g : groups_) g = Recount(g, kGroupRecount);
      for (size_t i = 0; i < shared_; ++i) contexts_[i] = Recount(contexts_[i], kSharedRecount);
    }
    if (model_ == nullptr) return;
    std::memcpy(contexts_.get() + c * per_channel_, model_->initial_contexts().data() + c * per_channel_,
                per_channel_ * sizeof(Context));
  }

 private:
  static Context Recount(Context c, uint32_t cap) { return (c & kCountMask) > cap ? (c & ~kCountMask) | cap : c; }
  const CabacModel* model_;
  bool recount_;
  size_t per_channel_, shared_;
  std::unique_ptr<Context[]> contexts_;
  std::array<Context, kGroupContexts> groups_ = Fresh();
  static std::array<Context, kGroupContexts> Fresh() {
    std::array<Context, kGroupContexts> a;
    a.fill(kFreshContext);
    return a;
  }
};

template <bool kTrained>
void EncodeChannels(Planes& pl, int bits, const CabacModel* model, FrameContexts& contexts, int layout,
                    RangeEncoder& re) {
  const size_t area = pl.height * pl.width;
  const bool grouped = layout == kCabacLayoutGroups;
  auto sig = Scratch<Entry>(pl.span);
  // A symbol takes at most `bits` decisions in either layout (layout 2 skips one per nonzero
  // group), plus one flag per group.
  auto list = Scratch<Entry>(area * static_cast<size_t>(bits) + (grouped ? pl.height * GroupCount(static_cast<uint32_t>(pl.width)) : 0));
  auto cells = Scratch<uint32_t>(bits > 1 ? area : 0);
  for (size_t c = 0; c < pl.channels; ++c) {
    contexts.Prepare(c);
    const ChannelView<kTrained> v(pl, c, bits, model, contexts.data());
    size_t n;
    if (grouped) {
      SignificanceEntries(pl, v, c, bits, sig.get());
      n = GroupedDecisions(pl, v, c, sig.get(), list.get());
    } else {
      SignificanceEntries(pl, v, c, bits, sig.get());
      n = SigDecisions(pl, sig.get(), list.get());
    }
    // Significance bits predict well (about 1 % ones on 1-bit, 11 % on 2-bit stem features);
    // the tree's bits do not.
    re.EncodeList<false>(list.get(), n, v.ctx, grouped ? contexts.groups() : nullptr);
    if (bits > 1) re.EncodeList<true>(list.get(), TreeDecisions(pl, v, c, bits, cells.get(), list.get()), v.ctx);
  }
}

template <bool kTrained>
void DecodeChannels(Planes& pl, int bits, const CabacModel* model, FrameContexts& contexts, int layout,
                    RangeDecoder& rd) {
  std::vector<uint8_t> pre(pl.width), rows(pl.height);
  if (layout == kCabacLayoutGroups) {
    for (size_t c = 0; c < pl.channels && !rd.overrun(); ++c) {
      contexts.Prepare(c);
      const ChannelView<kTrained> v(pl, c, bits, model, contexts.data());
      rd.DecodeChannelGroups(pl, v, contexts.groups(), c, bits, rows.data());
    }
    return;
  }
  for (size_t c = 0; c < pl.channels && !rd.overrun(); ++c) {
    contexts.Prepare(c);
    const ChannelView<kTrained> v(pl, c, bits, model, contexts.data());
    rd.DecodeChannel(pl, v, c, bits, pre.data());
  }
}

// ---------------------------------------------------------------------------------------------
// Training

constexpr uint8_t kModelMagic[4] = {'S', 'I', 'C', 'M'};
constexpr uint8_t kModelVersion = 1;
constexpr uint8_t kModelLayout = 1;  // the 7-flag per-channel layout above
constexpr size_t kModelHeaderSize = 20;
constexpr size_t kMaxRefWindow = 256;  // reference candidates: the 256 channels before c - 1

// "symbol >= t" for one channel over a sample of calibration positions, 64 per word.
using BitRows = std::vector<uint64_t>;

inline int Popcount(uint64_t v) { return __builtin_popcountll(v); }

// Sum over the combinations of the given condition planes of n * H(bit | combination): the bits
// needed to code `target` with one static probability per combination. The planes' unused tail
// bits are zero and `valid` masks them out of complements.
double ConditionalBits(const std::vector<const BitRows*>& conds, const BitRows& target, size_t positions) {
  const size_t combos = size_t{1} << conds.size();
  std::vector<uint64_t> n(combos, 0), ones(combos, 0);
  const size_t words = target.size();
  for (size_t w = 0; w < words; ++w) {
    const uint64_t valid = (w + 1) * 64 <= positions ? ~uint64_t{0} : (uint64_t{1} << (positions % 64)) - 1;
    for (size_t k = 0; k < combos; ++k) {
      uint64_t m = valid;
      for (size_t j = 0; j < conds.size(); ++j) m &= (k >> j & 1) ? (*conds[j])[w] : ~(*conds[j])[w];
      n[k] += Popcount(m);
      ones[k] += Popcount(m & target[w]);
    }
  }
  double total = 0;
  for (size_t k = 0; k < combos; ++k) {
    const double a = static_cast<double>(ones[k]), b = static_cast<double>(n[k] - ones[k]);
    if (a > 0) total -= a * std::log2(a / (a + b));
    if (b > 0) total -= b * std::log2(b / (a + b));
  }
  return total;
}

// Picks, for every channel c, the two earlier channels (other than c - 1, which is a context on
// its own) whose symbols at the same position best predict channel c's, greedily: ref1 minimises
// the conditional entropy given (previous channel, ref1), ref2 given (previous, ref1, ref2),
// summed over the thresholds 1 and 2^(bits-1) (the "nonzero" and the MSB decisions).
void ChooseReferences(const std::vector<const uint8_t*>& maps, const SymbolGeometry& g, std::vector<uint32_t>* ref1,
                      std::vector<uint32_t>* ref2) {
  const size_t C = g.channels, area = size_t{g.height} * g.width;
  ref1->assign(C, 0);
  ref2->assign(C, 0);
  if (C < 3) return;
  std::vector<int> thresholds = {1};
  if (g.bits > 1) thresholds.push_back(1 << (g.bits - 1));
  // Sample budget: keep the pair search to about 2^31 bit operations.
  const size_t window = std::min(C, kMaxRefWindow);
  const size_t budget = std::max<size_t>(4096, (size_t{1} << 31) / (C * window * thresholds.size()));
  const size_t use_maps = std::max<size_t>(1, std::min(maps.size(), budget / std::max<size_t>(area, 1)));
  const size_t positions = use_maps * area;
  const size_t words = (positions + 63) / 64;
  // rows[t][c]
  std::vector<std::vector<BitRows>> rows(thresholds.size(), std::vector<BitRows>(C, BitRows(words, 0)));
  for (size_t ti = 0; ti < thresholds.size(); ++ti) {
    const int t = thresholds[ti];
    for (size_t c = 0; c < C; ++c) {
      BitRows& r = rows[ti][c];
      size_t pos = 0;
      for (size_t m = 0; m < use_maps; ++m) {
        const uint8_t* s = maps[m] + c * area;
        for (size_t i = 0; i < area; ++i, ++pos) r[pos / 64] |= uint64_t{s[i] >= t} << (pos % 64);
      }
    }
  }
  for (size_t c = 2; c < C; ++c) {
    const size_t first = c - 1 > window ? c - 1 - window : 0;
    auto score = [&](size_t a, size_t b) {  // b == C: no second reference
      double bits = 0;
      for (size_t ti = 0; ti < thresholds.size(); ++ti) {
        std::vector<const BitRows*> conds = {&rows[ti][c - 1], &rows[ti][a]};
        if (b < C) conds.push_back(&rows[ti][b]);
        bits += ConditionalBits(conds, rows[ti][c], positions);
      }
      return bits;
    };
    size_t best1 = first;
    double best = score(first, C);
    for (size_t r = first + 1; r < c - 1; ++r) {
      const double s = score(r, C);
      if (s < best) best = s, best1 = r;
    }
    (*ref1)[c] = static_cast<uint32_t>(best1 + 1);
    if (c < 3) continue;
    size_t best2 = C;
    best = 0;
    for (size_t r = first; r < c - 1; ++r) {
      if (r == best1) continue;
      const double s = score(best1, r);
      if (best2 == C || s < best) best = s, best2 = r;
    }
    if (best2 < C) (*ref2)[c] = static_cast<uint32_t>(best2 + 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Serialisation helpers

void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint32_t GetU32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// Contexts a model for `g` has, or 0 when that exceeds kMaxCabacModelContexts.
size_t ModelContexts(const SymbolGeometry& g) {
  const size_t per_channel = size_t{NodeClasses(g.bits)} << kTrainedFlags;
  if (g.channels == 0 || g.channels > kMaxCabacModelContexts / per_channel) return 0;
  return size_t{g.channels} * per_channel;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CabacModel

void CabacModel::BuildInitialContexts() {
  initial_.resize(prob_.size());
  for (size_t i = 0; i < prob_.size(); ++i) initial_[i] = MakeContext(prob_[i], confidence_[i]);
}

std::vector<uint8_t> CabacModel::Serialize() const {
  std::vector<uint8_t> out;
  out.reserve(kModelHeaderSize + ref1_.size() * 8 + prob_.size() * 3 + 4);
  for (uint8_t b : kModelMagic) out.push_back(b);
  out.push_back(kModelVersion);
  out.push_back(static_cast<uint8_t>(geometry_.bits));
  out.push_back(kModelLayout);
  out.push_back(0);
  PutU32(out, geometry_.channels);
  PutU32(out, geometry_.height);
  PutU32(out, geometry_.width);
  for (size_t c = 0; c < ref1_.size(); ++c) {
    PutU32(out, ref1_[c]);
    PutU32(out, ref2_[c]);
  }
  for (size_t i = 0; i < prob_.size(); ++i) {
    out.push_back(static_cast<uint8_t>(prob_[i]));
    out.push_back(static_cast<uint8_t>(prob_[i] >> 8));
    out.push_back(confidence_[i]);
  }
  PutU32(out, Fnv1a32(out.data(), out.size()));
  return out;
}

Result<CabacModel> CabacModel::Parse(const uint8_t* data, size_t size) {
  auto bad = [](const std::string& m) { return DataLoss("cabac model: " + m); };
  if (data == nullptr || size < kModelHeaderSize + 4) {
    return bad(std::to_string(size) + " bytes is shorter than the " + std::to_string(kModelHeaderSize + 4) +
               "-byte minimum");
  }
  if (std::memcmp(data, kModelMagic, 4) != 0) return bad("bad magic (not a cabac model)");
  if (data[4] != kModelVersion) return bad("unsupported version " + std::to_string(data[4]));
  if (data[6] != kModelLayout || data[7] != 0) return bad("unknown context layout");
  CabacModel model;
  SymbolGeometry& g = model.geometry_;
  g.bits = data[5];
  g.channels = GetU32(data + 8);
  g.height = GetU32(data + 12);
  g.width = GetU32(data + 16);
  if (g.bits < 1 || g.bits > 8) return bad("bit width " + std::to_string(g.bits) + " is outside 1..8");
  if (g.height == 0 || g.width == 0) return bad("empty geometry");
  const size_t contexts = ModelContexts(g);
  if (contexts == 0) return bad("channel count " + std::to_string(g.channels) + " is outside the model limits");
  // contexts <= 2^22 and channels <= contexts, so this cannot overflow.
  const size_t expected = kModelHeaderSize + size_t{g.channels} * 8 + contexts * 3 + 4;
  if (size != expected) {
    return bad(std::to_string(size) + " bytes, the header implies " + std::to_string(expected));
  }
  if (Fnv1a32(data, size - 4) != GetU32(data + size - 4)) return bad("checksum mismatch");
  const uint8_t* p = data + kModelHeaderSize;
  model.ref1_.resize(g.channels);
  model.ref2_.resize(g.channels);
  for (uint32_t c = 0; c < g.channels; ++c, p += 8) {
    model.ref1_[c] = GetU32(p);
    model.ref2_[c] = GetU32(p + 4);
    if (model.ref1_[c] > c || model.ref2_[c] > c) {
      return bad("channel " + std::to_string(c) + " references a channel that is not coded before it");
    }
  }
  model.prob_.resize(contexts);
  model.confidence_.resize(contexts);
  for (size_t i = 0; i < contexts; ++i, p += 3) {
    const uint32_t prob = uint32_t{p[0]} | uint32_t{p[1]} << 8;
    if (prob < kProbMin || prob > kProbMax) return bad("probability of context " + std::to_string(i) + " out of range");
    model.prob_[i] = static_cast<uint16_t>(prob);
    model.confidence_[i] = p[2];
  }
  model.BuildInitialContexts();
  return model;
}

Result<CabacModel> TrainCabacModel(const std::vector<const uint8_t*>& maps, const SymbolGeometry& geometry) {
  SI_RETURN_IF_ERROR(internal::ValidateGeometry(geometry));
  if (maps.empty()) return InvalidArgument("cabac model: no calibration maps");
  if (geometry.count() == 0) return InvalidArgument("cabac model: empty geometry");
  const size_t contexts = ModelContexts(geometry);
  if (contexts == 0) {
    return OutOfRange("cabac model: " + std::to_string(geometry.channels) + " channels at " +
                      std::to_string(geometry.bits) + " bits exceed " + std::to_string(kMaxCabacModelContexts) +
                      " contexts");
  }
  for (size_t m = 0; m < maps.size(); ++m) {
    if (maps[m] == nullptr) return InvalidArgument("cabac model: calibration map " + std::to_string(m) + " is null");
    Status st = CheckSymbols(maps[m], geometry.count(), geometry.bits);
    if (!st.ok()) return Status(st.code(), "cabac model: calibration map " + std::to_string(m) + ": " + st.message());
  }
  CabacModel model;
  model.geometry_ = geometry;
  ChooseReferences(maps, geometry, &model.ref1_, &model.ref2_);
  model.prob_.assign(contexts, kProbOne / 2);
  model.confidence_.assign(contexts, 0);

  std::vector<std::array<uint64_t, 2>> counts(contexts, {0, 0});
  Planes planes(geometry);
  const int bits = geometry.bits;
  const size_t area = size_t{geometry.height} * geometry.width;
  std::vector<Entry> sig(planes.span), list(area * static_cast<size_t>(bits) + size_t{geometry.height} * GroupCount(geometry.width));
  std::vector<uint32_t> cells(area);
  std::vector<Context> unused(contexts);  // ChannelView wants a context base; counts use offsets
  // The statistics of the decisions that layout 2 (what frames of version 2 carry) codes: not
  // those of symbols in quiet groups. A model decodes frames of either layout; it is only tuned
  // to this one.
  for (const uint8_t* map : maps) {
    planes.Load(map);
    for (size_t c = 0; c < geometry.channels; ++c) {
      const ChannelView<true> v(planes, c, bits, &model, unused.data());
      SignificanceEntries(planes, v, c, bits, sig.data());
      const size_t base = static_cast<size_t>(v.ctx - unused.data());
      size_t n = GroupedDecisions(planes, v, c, sig.data(), list.data());
      for (size_t i = 0; i < n; ++i) {
        if (!(list[i] & kAltBase)) ++counts[base + (list[i] >> 1)][list[i] & 1];  // not the frame-wide ones
      }
      if (bits == 1) continue;
      n = TreeDecisions(planes, v, c, bits, cells.data(), list.data());
      for (size_t i = 0; i < n; ++i) ++counts[base + (list[i] >> 1)][list[i] & 1];
    }
  }
  for (size_t i = 0; i < contexts; ++i) {
    // p = (ones + 0.4) / (n + 0.8): a light prior that keeps unseen contexts at 1/2 and rare
    // ones away from certainty; the confidence tells the coder how fast to move away from it.
    const uint64_t ones = counts[i][1], n = counts[i][0] + counts[i][1];
    const uint64_t p = ((5 * ones + 2) * kProbOne + (5 * n + 4) / 2) / (5 * n + 4);
    model.prob_[i] = static_cast<uint16_t>(std::min<uint64_t>(std::max<uint64_t>(p, kProbMin), kProbMax));
    model.confidence_[i] = static_cast<uint8_t>(std::min<uint64_t>(n, 255));
  }
  model.BuildInitialContexts();
  return model;
}

// ---------------------------------------------------------------------------------------------
// The coder

namespace internal {

Result<std::vector<uint8_t>> CabacEncode(const uint8_t* symbols, const SymbolGeometry& geometry,
                                         const CabacModel* model, int layout, size_t capacity) {
  Planes planes(geometry);
  if (geometry.count() != 0) planes.Load(symbols);
  FrameContexts contexts(geometry, model, layout);
  // A symbol takes at most bits + 1 decisions (significance, then up to `bits` tree levels).
  const size_t decisions = geometry.count() * (static_cast<size_t>(geometry.bits) + 1);
  if (capacity == 0) capacity = RangeEncoder::MaxEncodedBytes(decisions);
  const auto buffer = Scratch<uint8_t>(capacity);
  RangeEncoder re(buffer.get(), capacity);
  if (geometry.count() != 0) {
    if (model != nullptr) {
      EncodeChannels<true>(planes, geometry.bits, model, contexts, layout, re);
    } else {
      EncodeChannels<false>(planes, geometry.bits, model, contexts, layout, re);
    }
  }
  const size_t size = re.Finish();
  if (re.overflowed()) {
    return Internal("cabac: the coded stream of " + std::to_string(decisions) + " decisions did not fit its " +
                    std::to_string(capacity) + "-byte buffer (the bound is proven for the default buffer: a bug "
                    "in the coder; please report it with the map)");
  }
  return std::vector<uint8_t>(buffer.get() + 1, buffer.get() + 1 + size);
}

Status CabacDecode(const uint8_t* data, size_t size, const SymbolGeometry& geometry, const CabacModel* model,
                   int layout, uint8_t* symbols) {
  Planes planes(geometry);
  FrameContexts contexts(geometry, model, layout);
  RangeDecoder rd(data, size);
  if (geometry.count() != 0) {
    if (model != nullptr) {
      DecodeChannels<true>(planes, geometry.bits, model, contexts, layout, rd);
    } else {
      DecodeChannels<false>(planes, geometry.bits, model, contexts, layout, rd);
    }
  }
  SI_RETURN_IF_ERROR(rd.Finish());
  if (geometry.count() != 0) planes.Store(symbols);
  return Status::Ok();
}

}  // namespace internal

uint32_t Fnv1a32(const uint8_t* data, size_t size) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 16777619u;
  return h;
}

}  // namespace splitinfer::codec
