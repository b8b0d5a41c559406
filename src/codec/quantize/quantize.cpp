#include "codec/quantize/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/bytes.h"

namespace splitinfer::codec {
namespace {

constexpr float kHalfMax = 65504.0f;
constexpr float kTinyRange = 1e-12f;

// The C x H x W folding and the region tiling, shared by every function here.
struct Tiling {
  uint32_t c = 1, h = 1, w = 1;     // folded geometry
  uint32_t rc = 1, rh = 1, rw = 1;  // tile size
  uint32_t nc = 1, nh = 1, nw = 1;  // tiles per axis
  uint64_t regions() const { return uint64_t{nc} * nh * nw; }
  uint64_t count() const { return uint64_t{c} * h * w; }
};

Tiling MakeTiling(const QuantSpec& spec, const std::vector<uint32_t>& dims) {
  FrameHeader header;
  header.dims = dims;
  const SymbolGeometry g = GeometryOf(header);
  Tiling t;
  t.c = g.channels;
  t.h = g.height;
  t.w = g.width;
  switch (spec.granularity) {
    case Granularity::kTensor: t.rc = t.c, t.rh = t.h, t.rw = t.w; break;
    case Granularity::kChannel: t.rc = 1, t.rh = t.h, t.rw = t.w; break;
    case Granularity::kRegion:
      t.rc = std::min(spec.region[0], t.c), t.rh = std::min(spec.region[1], t.h), t.rw = std::min(spec.region[2], t.w);
      break;
  }
  t.nc = (t.c + t.rc - 1) / t.rc;
  t.nh = (t.h + t.rh - 1) / t.rh;
  t.nw = (t.w + t.rw - 1) / t.rw;
  return t;
}

// Calls fn(region, offset, length) for every run of consecutive elements (C order) that lies
// in one region: a row segment of one tile. The hot loops iterate these runs.
template <typename Fn>
void ForEachRun(const Tiling& t, Fn&& fn) {
  for (uint32_t c = 0; c < t.c; ++c) {
    for (uint32_t y = 0; y < t.h; ++y) {
      const uint64_t row = (uint64_t{c} * t.h + y) * t.w;
      const uint64_t rbase = (uint64_t{c / t.rc} * t.nh + y / t.rh) * t.nw;
      for (uint32_t tx = 0; tx < t.nw; ++tx) {
        const uint32_t x0 = tx * t.rw;
        fn(rbase + tx, row + x0, std::min(t.rw, t.w - x0));
      }
    }
  }
}

float RoundToHalf(float v) { return HalfToFloat(FloatToHalf(std::clamp(v, -kHalfMax, kHalfMax))); }

// The [lo, hi] interval of a region for the spec's range kind, from a clip value set.
struct Range {
  float lo = 0, hi = 0;
};

// Level table for one region: table[q] = lo + q * step.
void LevelTable(const Range& r, int levels, float* table) {
  const float step = levels > 1 ? (r.hi - r.lo) / static_cast<float>(levels - 1) : 0.0f;
  for (int q = 0; q < levels; ++q) table[q] = r.lo + static_cast<float>(q) * step;
}

// q = clamp(floor((x - lo) * inv + 0.5), 0, L-1); a degenerate range maps everything to 0.
inline uint8_t QuantizeOne(float x, float lo, float inv, int max_q) {
  const float v = (x - lo) * inv + 0.5f;
  if (!(v > 0.0f)) return 0;  // also catches NaN
  const int q = static_cast<int>(v);
  return static_cast<uint8_t>(q > max_q ? max_q : q);
}

float Inverse(const Range& r, int levels) {
  const float span = r.hi - r.lo;
  return span > kTinyRange ? static_cast<float>(levels - 1) / span : 0.0f;
}

Range MakeRange(RangeKind kind, float lo, float hi) {
  switch (kind) {
    case RangeKind::kZeroBased: return {0.0f, std::max(hi, 0.0f)};
    case RangeKind::kSymmetric: {
      const float a = std::max(std::fabs(lo), std::fabs(hi));
      return {-a, a};
    }
    case RangeKind::kAffine: return {lo, std::max(hi, lo)};
  }
  return {lo, hi};
}

// Mean squared error of quantize->dequantize with range r over values.
double RangeMse(const std::vector<float>& v, const Range& r, int levels) {
  const float inv = Inverse(r, levels);
  const float step = levels > 1 ? (r.hi - r.lo) / static_cast<float>(levels - 1) : 0.0f;
  double err = 0;
  for (float x : v) {
    const float xr = r.lo + static_cast<float>(QuantizeOne(x, r.lo, inv, levels - 1)) * step;
    err += static_cast<double>(x - xr) * (x - xr);
  }
  return err / std::max<size_t>(v.size(), 1);
}

float Percentile(std::vector<float> v, double p) {
  if (v.empty()) return 0.0f;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(std::floor(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5)));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// Clip for one region's calibration values.
Range Clip(const QuantSpec& spec, std::vector<float>& v, int levels) {
  if (v.empty()) return {0, 0};
  const auto [mn_it, mx_it] = std::minmax_element(v.begin(), v.end());
  const float mn = *mn_it, mx = *mx_it;
  switch (spec.clip) {
    case ClipMethod::kMinMax: return MakeRange(spec.range, mn, mx);
    case ClipMethod::kPercentile: {
      if (spec.range == RangeKind::kSymmetric) {
        std::vector<float> a(v.size());
        std::transform(v.begin(), v.end(), a.begin(), [](float x) { return std::fabs(x); });
        return MakeRange(spec.range, 0.0f, Percentile(std::move(a), spec.percentile));
      }
      const float hi = Percentile(v, spec.percentile);
      const float lo = spec.range == RangeKind::kAffine ? Percentile(v, 100.0 - spec.percentile) : 0.0f;
      return MakeRange(spec.range, lo, hi);
    }
    case ClipMethod::kMse: {
      // Grid search of the clip, shrinking the min-max range toward its anchor (0 for
      // zero-based and symmetric, the midpoint for affine). 128 candidates are within 1 % of
      // a fine search on feature maps and keep calibration to about a second.
      const Range full = MakeRange(spec.range, mn, mx);
      const float anchor = spec.range == RangeKind::kAffine ? 0.5f * (full.lo + full.hi) : 0.0f;
      Range best = full;
      double best_err = RangeMse(v, full, levels);
      constexpr int kCandidates = 128;
      for (int k = 1; k < kCandidates; ++k) {
        const float s = static_cast<float>(k) / kCandidates;
        const Range r{anchor + (full.lo - anchor) * s, anchor + (full.hi - anchor) * s};
        const double e = RangeMse(v, r, levels);
        if (e < best_err) best_err = e, best = r;
      }
      return best;
    }
  }
  return MakeRange(spec.range, mn, mx);
}

torch::Tensor AsContiguousFloat(const torch::Tensor& t) {
  return t.to(torch::kCPU).to(torch::kFloat32).contiguous();
}

std::string DimsText(const std::vector<uint32_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// Per-region reconstruction tables for static params.
std::vector<float> StaticTables(const QuantParams& p) {
  const int levels = p.levels();
  const uint64_t regions = p.regions();
  std::vector<float> tables(regions * levels);
  for (uint64_t r = 0; r < regions; ++r) {
    if (p.spec.reconstruction == Reconstruction::kCentroid) {
      std::copy_n(p.centroids.begin() + static_cast<std::ptrdiff_t>(r * levels), levels, tables.begin() + static_cast<std::ptrdiff_t>(r * levels));
    } else {
      LevelTable({p.lo[r], p.hi[r]}, levels, tables.data() + r * levels);
    }
  }
  return tables;
}

}  // namespace

uint64_t QuantParams::regions() const { return MakeTiling(spec, dims).regions(); }

QuantDesc QuantParams::desc() const {
  QuantDesc d;
  d.bits = spec.bits;
  d.range = spec.range;
  d.granularity = spec.granularity;
  d.reconstruction = spec.reconstruction;
  d.params_in_frame = spec.params_in_frame;
  if (spec.granularity == Granularity::kRegion) {
    const Tiling t = MakeTiling(spec, dims);
    d.region[0] = t.rc, d.region[1] = t.rh, d.region[2] = t.rw;
  }
  return d;
}

Status ValidateSpec(const QuantSpec& s) {
  if (s.bits < 1 || s.bits > 8) return InvalidArgument("quantizer bits must be 1..8, got " + std::to_string(s.bits));
  if (s.granularity == Granularity::kRegion && (s.region[0] == 0 || s.region[1] == 0 || s.region[2] == 0)) {
    return InvalidArgument("local-region quantization needs a region size C x H x W with every side >= 1");
  }
  if (s.params_in_frame && s.clip != ClipMethod::kMinMax) {
    return InvalidArgument(std::string("clip '") + ClipName(s.clip) +
                           "' searches calibration data; per-frame (dynamic) ranges use minmax");
  }
  if (s.clip == ClipMethod::kPercentile && !(s.percentile > 50.0 && s.percentile <= 100.0)) {
    return InvalidArgument("percentile clip must be in (50, 100], got " + std::to_string(s.percentile));
  }
  return Status::Ok();
}

Result<QuantParams> Calibrate(const QuantSpec& spec, const torch::Tensor& samples) {
  SI_RETURN_IF_ERROR(ValidateSpec(spec));
  if (samples.dim() < 2 || samples.dim() > 5 || samples.size(0) < 1) {
    return InvalidArgument("calibration samples must be [N, dims...] with rank-1..4 features and N >= 1");
  }
  QuantParams p;
  p.spec = spec;
  for (int64_t i = 1; i < samples.dim(); ++i) p.dims.push_back(static_cast<uint32_t>(samples.size(i)));
  if (spec.params_in_frame) return p;

  const Tiling t = MakeTiling(spec, p.dims);
  const int levels = p.levels();
  auto x = AsContiguousFloat(samples);
  const float* data = x.data_ptr<float>();
  const int64_t n = samples.size(0);
  const uint64_t per = t.count();
  // Gather each region's values over all samples; subsample large regions for the MSE search
  // with a fixed seed so calibration is reproducible.
  std::vector<std::vector<float>> values(t.regions());
  for (int64_t i = 0; i < n; ++i) {
    ForEachRun(t, [&](uint64_t r, uint64_t off, uint32_t len) {
      const float* src = data + static_cast<uint64_t>(i) * per + off;
      values[r].insert(values[r].end(), src, src + len);
    });
  }
  constexpr size_t kMaxMseValues = 1 << 16;
  std::mt19937 rng(12345);
  p.lo.resize(t.regions());
  p.hi.resize(t.regions());
  for (uint64_t r = 0; r < t.regions(); ++r) {
    auto& v = values[r];
    if (spec.clip == ClipMethod::kMse && v.size() > kMaxMseValues) {
      std::shuffle(v.begin(), v.end(), rng);
      // Keep the extremes so the candidate grid spans the full range.
      const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
      std::iter_swap(v.begin(), mn);
      std::iter_swap(v.begin() + 1, mx == v.begin() ? mn : mx);
      v.resize(kMaxMseValues);
    }
    const Range range = Clip(spec, v, levels);
    p.lo[r] = range.lo;
    p.hi[r] = range.hi;
  }
  if (spec.reconstruction == Reconstruction::kCentroid) {
    // Bin means over all calibration values (not the subsample).
    std::vector<double> sum(t.regions() * levels, 0.0);
    std::vector<uint64_t> cnt(t.regions() * levels, 0);
    for (int64_t i = 0; i < n; ++i) {
      ForEachRun(t, [&](uint64_t r, uint64_t off, uint32_t len) {
        const float* src = data + static_cast<uint64_t>(i) * per + off;
        const Range range{p.lo[r], p.hi[r]};
        const float inv = Inverse(range, levels);
        for (uint32_t k = 0; k < len; ++k) {
          const uint8_t q = QuantizeOne(src[k], range.lo, inv, levels - 1);
          sum[r * levels + q] += src[k];
          ++cnt[r * levels + q];
        }
      });
    }
    p.centroids.resize(t.regions() * levels);
    for (uint64_t r = 0; r < t.regions(); ++r) {
      float table[256];
      LevelTable({p.lo[r], p.hi[r]}, levels, table);
      for (int q = 0; q < levels; ++q) {
        const uint64_t j = r * levels + q;
        p.centroids[j] = cnt[j] ? static_cast<float>(sum[j] / static_cast<double>(cnt[j])) : table[q];
      }
    }
  }
  return p;
}

Result<QuantizedMap> Quantize(const QuantParams& p, const torch::Tensor& feature) {
  std::vector<uint32_t> dims(feature.sizes().begin(), feature.sizes().end());
  if (dims != p.dims) {
    return Mismatch("feature has shape " + DimsText(dims) + " but the quantizer was calibrated for " +
                    DimsText(p.dims));
  }
  const Tiling t = MakeTiling(p.spec, p.dims);
  const int levels = p.levels();
  auto x = AsContiguousFloat(feature);
  const float* data = x.data_ptr<float>();
  QuantizedMap out;
  out.symbols.resize(t.count());
  uint8_t* sym = out.symbols.data();

  std::vector<Range> ranges(t.regions());
  if (p.spec.params_in_frame) {
    // Dynamic min-max per region, rounded to half precision before use (see header).
    std::vector<float> mn(t.regions(), INFINITY), mx(t.regions(), -INFINITY);
    ForEachRun(t, [&](uint64_t r, uint64_t off, uint32_t len) {
      for (uint32_t k = 0; k < len; ++k) {
        mn[r] = std::min(mn[r], data[off + k]);
        mx[r] = std::max(mx[r], data[off + k]);
      }
    });
    for (uint64_t r = 0; r < t.regions(); ++r) {
      Range range = MakeRange(p.spec.range, std::isfinite(mn[r]) ? mn[r] : 0.0f, std::isfinite(mx[r]) ? mx[r] : 0.0f);
      ranges[r] = {RoundToHalf(range.lo), RoundToHalf(range.hi)};
    }
  } else {
    for (uint64_t r = 0; r < t.regions(); ++r) ranges[r] = {p.lo[r], p.hi[r]};
  }

  ForEachRun(t, [&](uint64_t r, uint64_t off, uint32_t len) {
    const float lo = ranges[r].lo, inv = Inverse(ranges[r], levels);
    const float* src = data + off;
    uint8_t* dst = sym + off;
    for (uint32_t k = 0; k < len; ++k) dst[k] = QuantizeOne(src[k], lo, inv, levels - 1);
  });

  if (p.spec.params_in_frame) {
    if (p.spec.reconstruction == Reconstruction::kCentroid) {
      std::vector<double> sum(t.regions() * levels, 0.0);
      std::vector<uint32_t> cnt(t.regions() * levels, 0);
      ForEachRun(t, [&](uint64_t r, uint64_t off, uint32_t len) {
        for (uint32_t k = 0; k < len; ++k) {
          sum[r * levels + sym[off + k]] += data[off + k];
          ++cnt[r * levels + sym[off + k]];
        }
      });
      for (uint64_t r = 0; r < t.regions(); ++r) {
        float table[256];
        LevelTable(ranges[r], levels, table);
        for (int q = 0; q < levels; ++q) {
          const uint64_t j = r * levels + q;
          const float c = cnt[j] ? static_cast<float>(sum[j] / cnt[j]) : table[q];
          PutU16LE(out.side_info, FloatToHalf(std::clamp(c, -kHalfMax, kHalfMax)));
        }
      }
    } else {
      for (const Range& r : ranges) {
        switch (p.spec.range) {
          case RangeKind::kZeroBased: PutU16LE(out.side_info, FloatToHalf(r.hi)); break;
          case RangeKind::kSymmetric: PutU16LE(out.side_info, FloatToHalf(r.hi)); break;
          case RangeKind::kAffine:
            PutU16LE(out.side_info, FloatToHalf(r.lo));
            PutU16LE(out.side_info, FloatToHalf(r.hi));
            break;
        }
      }
    }
  }
  return out;
}

Result<torch::Tensor> Dequantize(const QuantParams& p, const uint8_t* symbols, size_t count, const uint8_t* side_info,
                                 size_t side_info_size) {
  const Tiling t = MakeTiling(p.spec, p.dims);
  if (count != t.count()) {
    return Mismatch("got " + std::to_string(count) + " symbols, the quantizer expects " + std::to_string(t.count()));
  }
  const int levels = p.levels();
  std::vector<float> tables;
  if (p.spec.params_in_frame) {
    const size_t per_region = p.spec.reconstruction == Reconstruction::kCentroid ? levels
                              : p.spec.range == RangeKind::kAffine             ? 2
                                                                               : 1;
    const uint64_t expected = t.regions() * per_region * 2;
    if (side_info_size != expected) {
      return Status(ErrorCode::kFrameSideInfo, "side information has " + std::to_string(side_info_size) +
                                                   " bytes, the quantizer expects " + std::to_string(expected));
    }
    tables.resize(t.regions() * levels);
    ByteReader in(side_info, side_info_size);
    auto next = [&in]() {
      const uint8_t* b = nullptr;
      in.GetSpan(2, &b);
      return HalfToFloat(static_cast<uint16_t>(b[0] | (b[1] << 8)));
    };
    for (uint64_t r = 0; r < t.regions(); ++r) {
      float* table = tables.data() + r * levels;
      if (p.spec.reconstruction == Reconstruction::kCentroid) {
        for (int q = 0; q < levels; ++q) table[q] = next();
      } else {
        Range range;
        if (p.spec.range == RangeKind::kAffine) {
          range.lo = next();
          range.hi = next();
        } else {
          const float v = next();
          range = p.spec.range == RangeKind::kSymmetric ? Range{-v, v} : Range{0.0f, v};
        }
        LevelTable(range, levels, table);
      }
      for (int q = 0; q < levels; ++q) {
        if (!std::isfinite(table[q])) {
          return Status(ErrorCode::kFrameSideInfo, "side information holds a non-finite value in region " +
                                                       std::to_string(r));
        }
      }
    }
  } else {
    tables = StaticTables(p);
  }
  std::vector<int64_t> shape(p.dims.begin(), p.dims.end());
  auto out = torch::empty(shape, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  bool in_range = true;
  ForEachRun(t, [&](uint64_t r, uint64_t off, uint32_t len) {
    const float* table = tables.data() + r * levels;
    for (uint32_t k = 0; k < len; ++k) {
      const uint8_t q = symbols[off + k];
      in_range &= q < levels;
      dst[off + k] = table[q & (levels - 1)];
    }
  });
  if (!in_range) return Status(ErrorCode::kFrameSymbolRange, "a symbol does not fit in " + std::to_string(p.spec.bits) + " bits");
  return out;
}

Result<torch::Tensor> SimulateBatch(const QuantParams& p, const torch::Tensor& batch) {
  if (p.spec.params_in_frame) {
    return InvalidArgument("SimulateBatch needs calibrated (static) quantizer params; these send ranges per frame");
  }
  const int64_t rank = static_cast<int64_t>(p.dims.size());
  bool dims_ok = batch.dim() == rank + 1;
  for (int64_t i = 0; dims_ok && i < rank; ++i) dims_ok = batch.size(i + 1) == static_cast<int64_t>(p.dims[i]);
  if (!dims_ok) {
    return InvalidArgument("batch shape " + c10::str(batch.sizes()) + " does not match the quantizer's per-image dims " +
                           DimsText(p.dims) + " (expected [N, dims...])");
  }
  const Tiling t = MakeTiling(p.spec, p.dims);
  const int levels = p.levels();
  // Per-element region index, lower bound and inverse step: the codec's ForEachRun order.
  std::vector<int64_t> region(t.count());
  ForEachRun(t, [&](uint64_t r, uint64_t off, uint32_t len) {
    std::fill_n(region.begin() + static_cast<std::ptrdiff_t>(off), len, static_cast<int64_t>(r));
  });
  std::vector<float> lo(t.regions()), inv(t.regions());
  for (uint64_t r = 0; r < t.regions(); ++r) {
    lo[r] = p.lo[r];
    inv[r] = Inverse({p.lo[r], p.hi[r]}, levels);
  }
  const auto dev = batch.device();
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto region_t = torch::from_blob(region.data(), {static_cast<int64_t>(region.size())}, torch::kInt64).to(dev);
  auto lo_e = torch::from_blob(lo.data(), {static_cast<int64_t>(lo.size())}, f32).to(dev).index_select(0, region_t);
  auto inv_e = torch::from_blob(inv.data(), {static_cast<int64_t>(inv.size())}, f32).to(dev).index_select(0, region_t);
  std::vector<float> tables = StaticTables(p);
  auto table_t = torch::from_blob(tables.data(), {static_cast<int64_t>(tables.size())}, f32).to(dev);

  torch::NoGradGuard no_grad;
  const int64_t n = batch.size(0);
  auto x = batch.detach().to(torch::kFloat32).reshape({n, static_cast<int64_t>(t.count())});
  // Same float operations in the same order as QuantizeOne; NaN maps to symbol 0 there too.
  auto v = torch::nan_to_num((x - lo_e) * inv_e + 0.5f, /*nan=*/0.0);
  auto q = torch::floor(v).clamp(0, levels - 1).to(torch::kInt64);
  auto index = region_t.unsqueeze(0) * levels + q;
  return table_t.index_select(0, index.reshape({-1})).reshape(batch.sizes());
}

// ---------------------------------------------------------------- names and JSON

Result<Granularity> GranularityFromName(const std::string& n) {
  if (n == "tensor") return Granularity::kTensor;
  if (n == "channel") return Granularity::kChannel;
  if (n == "region") return Granularity::kRegion;
  return InvalidArgument("unknown granularity '" + n + "'; use tensor, channel or region");
}
Result<ClipMethod> ClipFromName(const std::string& n) {
  if (n == "minmax") return ClipMethod::kMinMax;
  if (n == "percentile") return ClipMethod::kPercentile;
  if (n == "mse") return ClipMethod::kMse;
  return InvalidArgument("unknown clip method '" + n + "'; use minmax, percentile or mse");
}
Result<RangeKind> RangeFromName(const std::string& n) {
  if (n == "unsigned") return RangeKind::kZeroBased;
  if (n == "signed") return RangeKind::kSymmetric;
  if (n == "affine") return RangeKind::kAffine;
  return InvalidArgument("unknown range '" + n + "'; use unsigned, signed or affine");
}
const char* GranularityName(Granularity g) {
  switch (g) {
    case Granularity::kTensor: return "tensor";
    case Granularity::kChannel: return "channel";
    case Granularity::kRegion: return "region";
  }
  return "?";
}
const char* ClipName(ClipMethod c) {
  switch (c) {
    case ClipMethod::kMinMax: return "minmax";
    case ClipMethod::kPercentile: return "percentile";
    case ClipMethod::kMse: return "mse";
  }
  return "?";
}
const char* RangeName(RangeKind r) {
  switch (r) {
    case RangeKind::kZeroBased: return "unsigned";
    case RangeKind::kSymmetric: return "signed";
    case RangeKind::kAffine: return "affine";
  }
  return "?";
}

nlohmann::json ToJson(const QuantParams& p) {
  return {{"format", "splitinfer-quant"},
          {"version", 1},
          {"bits", p.spec.bits},
          {"range", RangeName(p.spec.range)},
          {"granularity", GranularityName(p.spec.granularity)},
          {"region", {p.spec.region[0], p.spec.region[1], p.spec.region[2]}},
          {"reconstruction", p.spec.reconstruction == Reconstruction::kCentroid ? "centroid" : "level"},
          {"params_in_frame", p.spec.params_in_frame},
          {"clip", ClipName(p.spec.clip)},
          {"percentile", p.spec.percentile},
          {"dims", p.dims},
          {"lo", p.lo},
          {"hi", p.hi},
          {"centroids", p.centroids}};
}

Result<QuantParams> QuantParamsFromJson(const nlohmann::json& j, const std::string& origin) {
  QuantParams p;
  try {
    if (j.value("format", "") != "splitinfer-quant") return DataLoss(origin + " is not a splitinfer quantizer file");
    if (j.at("version").get<int>() != 1) return Unimplemented(origin + ": quantizer file version not supported");
    p.spec.bits = j.at("bits").get<int>();
    SI_ASSIGN_OR_RETURN(p.spec.range, RangeFromName(j.at("range").get<std::string>()));
    SI_ASSIGN_OR_RETURN(p.spec.granularity, GranularityFromName(j.at("granularity").get<std::string>()));
    const auto region = j.at("region").get<std::vector<uint32_t>>();
    if (region.size() != 3) return DataLoss(origin + ": region must have 3 entries");
    std::copy(region.begin(), region.end(), p.spec.region);
    const auto recon = j.at("reconstruction").get<std::string>();
    if (recon != "level" && recon != "centroid") return DataLoss(origin + ": reconstruction must be level or centroid");
    p.spec.reconstruction = recon == "centroid" ? Reconstruction::kCentroid : Reconstruction::kLevel;
    p.spec.params_in_frame = j.at("params_in_frame").get<bool>();
    SI_ASSIGN_OR_RETURN(p.spec.clip, ClipFromName(j.at("clip").get<std::string>()));
    p.spec.percentile = j.at("percentile").get<double>();
    p.dims = j.at("dims").get<std::vector<uint32_t>>();
    p.lo = j.at("lo").get<std::vector<float>>();
    p.hi = j.at("hi").get<std::vector<float>>();
    p.centroids = j.at("centroids").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(origin + ": malformed quantizer parameters: " + e.what());
  }
  Status s = ValidateSpec(p.spec);
  if (!s.ok()) return DataLoss(origin + ": " + s.message());
  if (p.dims.empty() || p.dims.size() > 4 || std::count(p.dims.begin(), p.dims.end(), 0u) > 0) {
    return DataLoss(origin + ": dims must have 1..4 entries, each >= 1");
  }
  const uint64_t regions = p.regions();
  const bool dynamic = p.spec.params_in_frame;
  const uint64_t want_centroids =
      (!dynamic && p.spec.reconstruction == Reconstruction::kCentroid) ? regions * p.levels() : 0;
  if (p.lo.size() != (dynamic ? 0 : regions) || p.hi.size() != p.lo.size() || p.centroids.size() != want_centroids) {
    return DataLoss(origin + ": expected " + std::to_string(dynamic ? 0 : regions) + " ranges and " +
                    std::to_string(want_centroids) + " centroids for this spec and shape");
  }
  for (const auto* v : {&p.lo, &p.hi, &p.centroids}) {
    for (float f : *v) {
      if (!std::isfinite(f)) return DataLoss(origin + ": non-finite quantizer parameter");
    }
  }
  return p;
}

}  // namespace splitinfer::codec
