// Writes the golden frames of the current format version (docs/bitstream_format.md):
//
//   make_golden tests/golden/v1
//
// For every case: <name>.frame (the frame), <name>.symbols (the symbols it must decode to, one
// byte each, C order) and, for cabac-trained, <name>.model (the CabacModel the decoder needs).
// Run once when a format version is introduced, commit the output, and never again for that
// version: tests/codec/golden_test.cpp checks that every later build still decodes these bytes.
// The content is deterministic (integer hashing, no clocks, no floats in the symbols), so a
// re-run reproduces the .symbols files; .frame bytes may differ only where an encoder library
// changed its output (lzma, zstd), which must not matter to the decoder.
//
// Not part of the default build; compile it against the codec libraries (see README.md).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "codec/frame/frame.h"
#include "codec/lossless/cabac.h"
#include "codec/lossless/lossless.h"
#include "core/bytes.h"

namespace {

using namespace splitinfer;
using namespace splitinfer::codec;

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A post-ReLU-like map: per channel one bright blob on a mostly-zero background, plus sparse
// noise, so that the context coders have structure to find and every level occurs.
std::vector<uint8_t> FeatureLikeSymbols(const SymbolGeometry& g, uint64_t seed) {
  const int top = (1 << g.bits) - 1;
  std::vector<uint8_t> s(g.count());
  const int64_t radius = std::max<int64_t>(2, (int64_t{g.height} + g.width) / 4);
  for (uint32_t c = 0; c < g.channels; ++c) {
    const uint64_t hc = Mix(seed * 1000003 + c);
    const int64_t cy = static_cast<int64_t>(hc % g.height), cx = static_cast<int64_t>((hc >> 20) % g.width);
    for (uint32_t y = 0; y < g.height; ++y) {
      for (uint32_t x = 0; x < g.width; ++x) {
        const int64_t d = std::llabs(int64_t{y} - cy) + std::llabs(int64_t{x} - cx);
        int64_t v = top - d * (top + 1) / radius;
        const uint64_t n = Mix(seed ^ ((uint64_t{c} * g.height + y) * g.width + x) * 0x2545F4914F6CDD1Dull);
        if (n % 16 == 0) v += static_cast<int64_t>(n >> 8) % (top + 1);  // sparse noise
        s[(size_t{c} * g.height + y) * g.width + x] = static_cast<uint8_t>(std::min<int64_t>(top, std::max<int64_t>(0, v)));
      }
    }
  }
  return s;
}

// Side information with values that are exact in half precision.
std::vector<uint8_t> SideInfo(const FrameHeader& h) {
  std::vector<float> values;
  const uint64_t regions = RegionCount(h);
  const int levels = 1 << h.quant.bits;
  for (uint64_t r = 0; r < regions && h.quant.params_in_frame; ++r) {
    const float lo = h.quant.range == RangeKind::kAffine ? -0.25f * static_cast<float>(r % 3) : 0.0f;
    const float hi = 0.5f + 0.25f * static_cast<float>(r % 8);
    if (h.quant.reconstruction == Reconstruction::kCentroid) {
      for (int q = 0; q < levels; ++q) values.push_back(lo + (hi - lo) * static_cast<float>(q) / levels + 0.0625f);
    } else if (h.quant.range == RangeKind::kAffine) {
      values.push_back(lo);
      values.push_back(hi);
    } else {
      values.push_back(hi);
    }
  }
  std::vector<uint8_t> out;
  for (float v : values) {
    const uint16_t half = FloatToHalf(v);
    out.push_back(static_cast<uint8_t>(half));
    out.push_back(static_cast<uint8_t>(half >> 8));
  }
  return out;
}

struct Case {
  std::string name;
  uint32_t pipeline_id;
  std::vector<uint32_t> dims;
  int bits;
  RangeKind range;
  Granularity granularity;
  std::vector<uint32_t> region;  // granularity region only
  Reconstruction reconstruction;
  bool params_in_frame;
  CoderId coder;
  int level;  // lzma preset / zstd level; -1 default
  uint64_t seed;  // of the symbol map
};

bool WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

[[noreturn]] void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "make_golden: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR   (e.g. tests/golden/v1)\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  using R = RangeKind;
  using G = Granularity;
  using Q = Reconstruction;
  using C = CoderId;
  const std::vector<Case> cases = {
      // The five coders on one 1-bit map (the common deployment: per-tensor, calibrated ranges).
      {"none_b1_tensor", 1, {8, 14, 14}, 1, R::kZeroBased, G::kTensor, {}, Q::kLevel, false, C::kNone, -1, 100},
      {"lzma_b1_tensor", 1, {8, 14, 14}, 1, R::kZeroBased, G::kTensor, {}, Q::kLevel, false, C::kLzma, 6, 100},
      {"zstd_b1_tensor", 1, {8, 14, 14}, 1, R::kZeroBased, G::kTensor, {}, Q::kLevel, false, C::kZstd, 3, 100},
      {"cabac_b1_tensor", 1, {8, 14, 14}, 1, R::kZeroBased, G::kTensor, {}, Q::kLevel, false, C::kCabac, -1, 100},
      {"cabac_trained_b1_tensor", 1, {8, 14, 14}, 1, R::kZeroBased, G::kTensor, {}, Q::kLevel, false,
       C::kCabacTrained, -1, 100},
      // Bit widths, granularities, range kinds, dynamic parameters, centroids, ranks.
      {"zstd_b2_channel_dynamic", 2, {8, 14, 14}, 2, R::kZeroBased, G::kChannel, {}, Q::kLevel, true, C::kZstd, 19,
       105},
      {"cabac_b2_region_affine_dynamic", 3, {16, 14, 14}, 2, R::kAffine, G::kRegion, {4, 5, 5}, Q::kLevel, true,
       C::kCabac, -1, 106},
      {"cabac_trained_b2_channel", 3, {8, 14, 14}, 2, R::kZeroBased, G::kChannel, {}, Q::kLevel, false,
       C::kCabacTrained, -1, 107},
      {"none_b3_region_symmetric_dynamic_rank4", 4, {2, 4, 6, 6}, 3, R::kSymmetric, G::kRegion, {3, 4, 4}, Q::kLevel,
       true, C::kNone, -1, 108},
      {"lzma_b3_channel_centroid_dynamic", 5, {6, 10, 10}, 3, R::kZeroBased, G::kChannel, {}, Q::kCentroid, true,
       C::kLzma, 9, 109},
      {"cabac_b3_tensor_symmetric", 5, {6, 10, 10}, 3, R::kSymmetric, G::kTensor, {}, Q::kLevel, false, C::kCabac, -1,
       110},
      {"cabac_b8_tensor_affine_dynamic_rank2", 6, {20, 30}, 8, R::kAffine, G::kTensor, {}, Q::kLevel, true, C::kCabac,
       -1, 111},
      {"zstd_b8_tensor_centroid_rank1", 7, {1000}, 8, R::kZeroBased, G::kTensor, {}, Q::kCentroid, false, C::kZstd, 3,
       112},
      {"lzma_b8_region_affine_dynamic_rank4", 8, {2, 3, 9, 11}, 8, R::kAffine, G::kRegion, {6, 9, 4}, Q::kLevel, true,
       C::kLzma, 0, 113},
      {"none_b1_single_element", 0xFFFFFFFFu, {1}, 1, R::kZeroBased, G::kTensor, {}, Q::kLevel, false, C::kNone, -1,
       114},
  };

  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    FrameHeader h;
    h.pipeline_id = c.pipeline_id;
    h.dims = c.dims;
    h.quant.bits = c.bits;
    h.quant.range = c.range;
    h.quant.granularity = c.granularity;
    for (size_t k = 0; k < c.region.size(); ++k) h.quant.region[k] = c.region[k];
    h.quant.reconstruction = c.reconstruction;
    h.quant.params_in_frame = c.params_in_frame;
    h.coder = c.coder;
    const SymbolGeometry g = GeometryOf(h);
    std::vector<uint8_t> symbols = FeatureLikeSymbols(g, c.seed);
    if (c.name == "none_b1_single_element") symbols = {1};

    CoderOptions options;
    options.level = c.level;
    Result<CabacModel> model = InvalidArgument("unused");
    if (c.coder == C::kCabacTrained) {
      // Trained on other maps of the same kind ("calibration"), not on the frame's own.
      std::vector<std::vector<uint8_t>> calibration;
      for (uint64_t k = 0; k < 8; ++k) calibration.push_back(FeatureLikeSymbols(g, 5000 + 10 * i + k));
      std::vector<const uint8_t*> maps;
      for (const auto& m : calibration) maps.push_back(m.data());
      model = TrainCabacModel(maps, g);
      if (!model.ok()) Die(c.name + ": TrainCabacModel", model.status());
      options.cabac_model = &model.value();
      if (!WriteFile(dir + "/" + c.name + ".model", model->Serialize())) Die(c.name + ".model", IoError("write failed"));
    }
    Result<std::vector<uint8_t>> payload = EncodeSymbols(c.coder, symbols.data(), g, options);
    if (!payload.ok()) Die(c.name + ": EncodeSymbols", payload.status());
    const std::vector<uint8_t> side = SideInfo(h);
    Result<std::vector<uint8_t>> frame = WriteFrame(h, side.data(), side.size(), payload->data(), payload->size());
    if (!frame.ok()) Die(c.name + ": WriteFrame", frame.status());
    if (!WriteFile(dir + "/" + c.name + ".frame", frame.value()) || !WriteFile(dir + "/" + c.name + ".symbols", symbols)) {
      Die(c.name, IoError("write failed"));
    }
    std::printf("%-40s %6zu symbols  frame %5zu bytes (header %zu, side %zu, payload %zu)\n", c.name.c_str(),
                symbols.size(), frame->size(), HeaderSize(h, payload->size()), side.size(), payload->size());
  }
  return 0;
}
