#include "kernels/head.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/stats.h"

#if defined(__x86_64__) || defined(__i386__)
#define SI_HEAD_X86 1
#include <immintrin.h>
#endif

namespace splitinfer::kernels {

namespace {

using json = nlohmann::json;

std::string OpLabel(const HeadOp& op, size_t i) {
  return "op " + std::to_string(i) + (op.name.empty() ? "" : " (" + op.name + ")");
}

Status CheckQuant(const HeadOp& op, const std::string& label) {
  const ConvQuant& q = op.quant;
  if (q.wbits != 1 && q.wbits != 2 && q.wbits != 4 && q.wbits != 8) {
    return InvalidArgument(label + ": weight bits " + std::to_string(q.wbits) + " (use 1, 2, 4 or 8)");
  }
  if (q.abits < 1 || q.abits > 8) {
    return InvalidArgument(label + ": activation bits " + std::to_string(q.abits) + " outside 1..8");
  }
  if (q.weight_codes.size() != op.shape.weight_size()) {
    return InvalidArgument(label + ": " + std::to_string(q.weight_codes.size()) + " weight codes for " +
                           std::to_string(op.shape.weight_size()) + " weights");
  }
  const size_t scales = static_cast<size_t>(op.shape.out_channels) * op.shape.regions();
  if (q.weight_scales.size() != scales) {
    return InvalidArgument(label + ": " + std::to_string(q.weight_scales.size()) + " weight scales for " +
                           std::to_string(scales) + " regions");
  }
  for (float s : q.weight_scales) {
    if (!std::isfinite(s) || !(s > 0)) return InvalidArgument(label + ": a weight scale is not positive or not finite");
  }
  if (!std::isfinite(q.input_scale) || !(q.input_scale > 0)) {
    return InvalidArgument(label + ": input scale must be positive and finite");
  }
  if (q.input_zero_point < 0 || q.input_zero_point >= (1 << q.abits)) {
    return OutOfRange(label + ": input zero point " + std::to_string(q.input_zero_point) + " outside the " +
                      std::to_string(q.abits) + "-bit codes");
  }
  if (!q.input_scales.empty() || !q.input_zero_points.empty()) {
    const size_t regions = static_cast<size_t>(op.shape.regions());
    if (q.input_scales.size() != regions || q.input_zero_points.size() != regions) {
      return InvalidArgument(label + ": " + std::to_string(q.input_scales.size()) + " input scales and " +
                             std::to_string(q.input_zero_points.size()) + " input zero points for " +
                             std::to_string(regions) + " regions (per-region ranges need one of each per region)");
    }
    for (size_t g = 0; g < regions; ++g) {
      if (!std::isfinite(q.input_scales[g]) || !(q.input_scales[g] > 0)) {
        return InvalidArgument(label + ": input scale of region " + std::to_string(g) + " must be positive and finite");
      }
      if (q.input_zero_points[g] < 0 || q.input_zero_points[g] >= (1 << q.abits)) {
        return OutOfRange(label + ": input zero point " + std::to_string(q.input_zero_points[g]) + " of region " +
                          std::to_string(g) + " outside the " + std::to_string(q.abits) + "-bit codes");
      }
    }
  }
  if (q.wbits == 8) {
    for (uint8_t c : q.weight_codes) {
      if (static_cast<int8_t>(c) == -128) return OutOfRange(label + ": 8-bit weight -128 (use -127..127)");
    }
  } else {
    for (uint8_t c : q.weight_codes) {
      if (c >= (1u << q.wbits)) {
        return OutOfRange(label + ": weight code " + std::to_string(c) + " >= 2^" + std::to_string(q.wbits));
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<Tensor3>> Shapes(const HeadGraph& g) {
  if (g.in_channels < 1 || g.in_height < 1 || g.in_width < 1 || g.in_channels >= kMaxDim || g.in_height >= kMaxDim ||
      g.in_width >= kMaxDim) {
    return InvalidArgument("head input shape " + std::to_string(g.in_channels) + "x" + std::to_string(g.in_height) +
                           "x" + std::to_string(g.in_width) + " is empty or too large");
  }
  std::vector<Tensor3> shapes = {{g.in_channels, g.in_height, g.in_width, {}}};
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const HeadOp& op = g.ops[i];
    const std::string label = OpLabel(op, i);
    if (op.input < 0 || op.input > static_cast<int>(i)) {
      return InvalidArgument(label + ": input register " + std::to_string(op.input) + " is not written before it");
    }
    const Tensor3& in = shapes[static_cast<size_t>(op.input)];
    Tensor3 out;
    if (op.kind == HeadOpKind::kConv) {
      if (op.shape.in_channels != in.c || op.shape.in_height != in.h || op.shape.in_width != in.w) {
        return InvalidArgument(label + ": expects a " + std::to_string(op.shape.in_channels) + "x" +
                               std::to_string(op.shape.in_height) + "x" + std::to_string(op.shape.in_width) +
                               " input, register " + std::to_string(op.input) + " is " + std::to_string(in.c) + "x" +
                               std::to_string(in.h) + "x" + std::to_string(in.w));
      }
      SI_RETURN_IF_ERROR(ValidateConvShape(op.shape));
      if (op.weight.size() != op.shape.weight_size() || op.bias.size() != static_cast<size_t>(op.shape.out_channels)) {
        return InvalidArgument(label + ": " + std::to_string(op.weight.size()) + " weights and " +
                               std::to_string(op.bias.size()) + " biases for the shape");
      }
      // A file is untrusted: a NaN or infinite weight would turn every later value into NaN.
      for (size_t k = 0; k < op.weight.size(); ++k) {
        if (!std::isfinite(op.weight[k])) return InvalidArgument(label + ": weight " + std::to_string(k) + " is not finite");
      }
      for (size_t k = 0; k < op.bias.size(); ++k) {
        if (!std::isfinite(op.bias[k])) return InvalidArgument(label + ": bias " + std::to_string(k) + " is not finite");
      }
      if (op.quantized) SI_RETURN_IF_ERROR(CheckQuant(op, label));
      out = {op.shape.out_channels, op.shape.out_height(), op.shape.out_width(), {}};
      if (op.residual >= 0) {
        if (op.residual > static_cast<int>(i)) {
          return InvalidArgument(label + ": residual register " + std::to_string(op.residual) +
                                 " is not written before it");
        }
        const Tensor3& r = shapes[static_cast<size_t>(op.residual)];
        if (r.c != out.c || r.h != out.h || r.w != out.w) {
          return InvalidArgument(label + ": residual register " + std::to_string(op.residual) +
                                 " does not have the output's shape");
        }
      } else if (op.residual != -1) {
        return InvalidArgument(label + ": residual register " + std::to_string(op.residual) + " (use -1 for none)");
      }
    } else if (op.kind == HeadOpKind::kMaxPool) {
      if (op.pool_kernel < 1 || op.pool_stride < 1 || op.pool_padding < 0 || op.pool_padding >= op.pool_kernel ||
          op.pool_kernel > in.h + 2 * op.pool_padding || op.pool_kernel > in.w + 2 * op.pool_padding ||
          op.pool_kernel >= kMaxDim || op.pool_stride >= kMaxDim) {
        return InvalidArgument(label + ": max-pool kernel " + std::to_string(op.pool_kernel) + ", stride " +
                               std::to_string(op.pool_stride) + ", padding " + std::to_string(op.pool_padding) +
                               " do not fit the input");
      }
      out = {in.c, (in.h + 2 * op.pool_padding - op.pool_kernel) / op.pool_stride + 1,
             (in.w + 2 * op.pool_padding - op.pool_kernel) / op.pool_stride + 1, {}};
    } else {
      return InvalidArgument(label + ": unknown op kind " + std::to_string(static_cast<int>(op.kind)));
    }
    shapes.push_back(out);
  }
  return shapes;
}

void FloatConv(const ConvShape& s, const std::vector<float>& w, const std::vector<float>& b, const float* in,
               float* out) {
  const int oh = s.out_height(), ow = s.out_width();
  for (int oc = 0; oc < s.out_channels; ++oc) {
    for (int y = 0; y < oh; ++y) {
      for (int x = 0; x < ow; ++x) {
        double acc = b[static_cast<size_t>(oc)];
        for (int c = 0; c < s.in_channels; ++c) {
          for (int ky = 0; ky < s.kernel_h; ++ky) {
            const int iy = y * s.stride - s.padding + ky;
            if (iy < 0 || iy >= s.in_height) continue;
            for (int kx = 0; kx < s.kernel_w; ++kx) {
              const int ix = x * s.stride - s.padding + kx;
              if (ix < 0 || ix >= s.in_width) continue;
              acc += static_cast<double>(w[((static_cast<size_t>(oc) * s.in_channels + c) * s.kernel_h + ky) * s.kernel_w + kx]) *
                     in[(static_cast<size_t>(c) * s.in_height + iy) * s.in_width + ix];
            }
          }
        }
        out[(static_cast<size_t>(oc) * oh + y) * ow + x] = static_cast<float>(acc);
      }
    }
  }
}

Tensor3 MaxPool(const HeadOp& op, const Tensor3& in) {
  return MaxPool2d(in, op.pool_kernel, op.pool_stride, op.pool_padding);
}

void AddResidualRelu(const HeadOp& op, const std::vector<Tensor3>& regs, Tensor3& out) {
  if (op.residual >= 0) {
    const auto& r = regs[static_cast<size_t>(op.residual)].data;
    for (size_t k = 0; k < out.data.size(); ++k) out.data[k] += r[k];
  }
  if (op.relu) {
    for (float& v : out.data) v = std::max(v, 0.f);
  }
}

// NaN (finite weights can still overflow to inf - inf) becomes 0, as the AVX2 path makes it.
float ClampCode(float v, float top) { return v > 0.f ? std::min(v, top) : 0.f; }

#ifdef SI_HEAD_X86
// QuantizeActivations, 8 values at a time, with the scalar loop's operations in its order:
// vmulps, vroundps in the current rounding mode without the inexact exception (= nearbyint),
// vaddps, then max(0, v) and min(top, v) written so that they pick what std::max(v, 0.f) and
// std::min(v, top) pick (the second operand of maxps/minps is returned when they compare false),
// and a truncating conversion as static_cast does (the value is already integral and in range).
// A NaN passes maxps/minps as NaN and converts to 0x80000000, whose low byte is code 0: what
// ClampCode gives it.
__attribute__((target("avx2"), always_inline)) inline __m256i Codes8(const float* p, __m256 inv, __m256 zero,
                                                                     __m256 top) {
  __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(p), inv), _MM_FROUND_CUR_DIRECTION | _MM_FROUND_NO_EXC);
  v = _mm256_add_ps(v, zero);
  v = _mm256_min_ps(top, _mm256_max_ps(_mm256_setzero_ps(), v));
  return _mm256_and_si256(_mm256_cvttps_epi32(v), _mm256_set1_epi32(0xFF));
}

__attribute__((target("avx2"))) size_t QuantizeActivationsAvx2(const float* x, size_t n, float inv, float zero,
                                                               float top, uint8_t* codes) {
  const __m256 vinv = _mm256_set1_ps(inv), vz = _mm256_set1_ps(zero), vtop = _mm256_set1_ps(top);
  size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m256i a = Codes8(x + k, vinv, vz, vtop), b = Codes8(x + k + 8, vinv, vz, vtop);
    const __m128i wa = _mm_packus_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i wb = _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + k), _mm_packus_epi16(wa, wb));
  }
  return k;
}
#endif

Status CheckInput(const HeadGraph& g, const Tensor3& input) {
  if (input.c != g.in_channels || input.h != g.in_height || input.w != g.in_width ||
      input.data.size() != static_cast<size_t>(input.c) * input.h * input.w) {
    return InvalidArgument("head input is " + std::to_string(input.c) + "x" + std::to_string(input.h) + "x" +
                           std::to_string(input.w) + " (" + std::to_string(input.data.size()) + " values), the head of " +
                           g.model + " takes " + std::to_string(g.in_channels) + "x" + std::to_string(g.in_height) +
                           "x" + std::to_string(g.in_width));
  }
  return Status::Ok();
}

}  // namespace

Tensor3 PseudoRandomInput(int c, int h, int w, uint32_t seed) {
  Tensor3 x{c, h, w, {}};
  x.data.resize(static_cast<size_t>(c) * h * w);
  uint32_t state = seed;
  for (float& v : x.data) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 2.f - 1.f;
  }
  return x;
}

void QuantizeActivations(const float* x, size_t n, float scale, int32_t zero_point, int abits, uint8_t* codes) {
  const float inv = 1.f / scale;
  const float top = static_cast<float>((1 << abits) - 1), zero = static_cast<float>(zero_point);
  size_t k = 0;
#ifdef SI_HEAD_X86
  if (CpuHasAvx2()) k = QuantizeActivationsAvx2(x, n, inv, zero, top, codes);
#endif
  for (; k < n; ++k) codes[k] = static_cast<uint8_t>(ClampCode(std::nearbyint(x[k] * inv) + zero, top));
}

// Separable: a column pass, then a row pass. Max is exact and order-free, so this equals the
// direct 4-deep loop; padding taps count as -inf.
Tensor3 MaxPool2d(const Tensor3& in, int kernel, int stride, int padding) {
  Tensor3 out;
  MaxPool2dInto(in, kernel, stride, padding, &out);
  return out;
}

void MaxPool2dInto(const Tensor3& in, int kernel, int stride, int padding, Tensor3* result) {
  Tensor3& out = *result;
  out.c = in.c;
  out.h = (in.h + 2 * padding - kernel) / stride + 1;
  out.w = (in.w + 2 * padding - kernel) / stride + 1;
  out.data.resize(static_cast<size_t>(out.c) * out.h * out.w);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  // Column pass first, on whole input rows (contiguous: vectorised), so the row pass runs on
  // out.h rows instead of in.h. The row pass takes the window max at every position of the
  // row bordered by -inf (contiguous again), then keeps every stride-th.
  const int padded_w = in.w + 2 * padding + kernel;
  const int positions = (out.w - 1) * stride + 1;
  thread_local std::vector<float> buf;
  buf.resize(static_cast<size_t>(padded_w) + static_cast<size_t>(positions));
  float* const line = buf.data();            // [padded_w]: the column maxima, -inf borders
  float* const window = buf.data() + padded_w;  // [positions]
  std::fill(line, line + padded_w, kNegInf);
  float* const cols = line + padding;
  for (int c = 0; c < in.c; ++c) {
    const float* plane = in.data.data() + static_cast<size_t>(c) * in.h * in.w;
    float* o = out.data.data() + static_cast<size_t>(c) * out.h * out.w;
    for (int y = 0; y < out.h; ++y) {
      const int y0 = std::max(0, y * stride - padding), y1 = std::min(in.h, y * stride - padding + kernel);
      std::copy(plane + static_cast<size_t>(y0) * in.w, plane + static_cast<size_t>(y0 + 1) * in.w, cols);
      for (int iy = y0 + 1; iy < y1; ++iy) {
        const float* src = plane + static_cast<size_t>(iy) * in.w;
        for (int x = 0; x < in.w; ++x) cols[x] = std::max(cols[x], src[x]);
      }
      std::copy(line, line + positions, window);
      for (int k = 1; k < kernel; ++k) {
        const float* shifted = line + k;
        for (int i = 0; i < positions; ++i) window[i] = std::max(window[i], shifted[i]);
      }
      float* dst = o + static_cast<size_t>(y) * out.w;
      for (int x = 0; x < out.w; ++x) dst[x] = window[static_cast<size_t>(x) * stride];
    }
  }
}

Status HeadGraph::Validate() const { return Shapes(*this).status(); }

Result<Tensor3> HeadGraph::ShapeOf(int reg) const {
  SI_ASSIGN_OR_RETURN(auto shapes, Shapes(*this));
  if (reg < 0 || reg >= static_cast<int>(shapes.size())) {
    return InvalidArgument("register " + std::to_string(reg) + " outside 0.." + std::to_string(shapes.size() - 1));
  }
  return shapes[static_cast<size_t>(reg)];
}

Result<Tensor3> RunFloat(const HeadGraph& g, const Tensor3& input) {
  SI_RETURN_IF_ERROR(g.Validate());
  SI_RETURN_IF_ERROR(CheckInput(g, input));
  std::vector<Tensor3> regs = {input};
  for (const HeadOp& op : g.ops) {
    const Tensor3& in = regs[static_cast<size_t>(op.input)];
    if (op.kind == HeadOpKind::kMaxPool) {
      regs.push_back(MaxPool(op, in));
      continue;
    }
    Tensor3 out{op.shape.out_channels, op.shape.out_height(), op.shape.out_width(), {}};
    out.data.resize(op.shape.output_size());
    FloatConv(op.shape, op.weight, op.bias, in.data.data(), out.data.data());
    AddResidualRelu(op, regs, out);
    regs.push_back(std::move(out));
  }
  return regs.back();
}

const char* HeadImplName(HeadImpl impl) {
  switch (impl) {
    case HeadImpl::kInt8: return "int8";
    case HeadImpl::kLut: return "lut";
    case HeadImpl::kReference: return "reference";
    case HeadImpl::kAuto: return "auto";
  }
  return "?";
}

Result<HeadImpl> ParseHeadImpl(const std::string& name) {
  for (HeadImpl impl : {HeadImpl::kInt8, HeadImpl::kLut, HeadImpl::kReference, HeadImpl::kAuto})
    if (name == HeadImplName(impl)) return impl;
  return InvalidArgument("unknown low-bit implementation '" + name + "'; use int8, lut, reference or auto");
}

Result<QuantizedHead> QuantizedHead::Prepare(HeadGraph graph, KernelPath path) {
  SI_RETURN_IF_ERROR(graph.Validate());
  QuantizedHead h;
  SI_ASSIGN_OR_RETURN(h.path_, ResolveKernelPath(path));
  h.int8_weights_.resize(graph.ops.size());
  h.lut_weights_.resize(graph.ops.size());
  h.int8_convs_.resize(graph.ops.size());
  h.zero_points_.resize(graph.ops.size());
  h.auto_lut_.assign(graph.ops.size(), 1);
  h.requants_.resize(graph.ops.size());
  for (size_t i = 0; i < graph.ops.size(); ++i) {
    const HeadOp& op = graph.ops[i];
    if (op.kind != HeadOpKind::kConv || !op.quantized) continue;
    for (int g = 0; g < op.shape.regions(); ++g) h.zero_points_[i].push_back(op.quant.InputZeroPoint(g));
    if (op.quant.wbits == 8) {
      h.int8_weights_[i].resize(op.quant.weight_codes.size());
      std::memcpy(h.int8_weights_[i].data(), op.quant.weight_codes.data(), op.quant.weight_codes.size());
    } else {
      SI_ASSIGN_OR_RETURN(h.int8_weights_[i], DecodeLutWeights(op.quant.weight_codes, op.quant.wbits));
      SI_ASSIGN_OR_RETURN(h.lut_weights_[i],
                          PrepareLutWeights(op.shape, op.quant.weight_codes, op.quant.wbits, h.path_));
    }
    SI_ASSIGN_OR_RETURN(h.int8_convs_[i], PrepareInt8ConvWeights(op.shape, h.int8_weights_[i], h.path_));
    Requant& rq = h.requants_[i];
    rq.input_scale = op.quant.input_scale;
    rq.input_scales = op.quant.input_scales;
    rq.weight_scales = op.quant.weight_scales;
    rq.bias = op.bias;
    rq.relu = false;  // after the residual add
  }
  // The direct NHWC path where the CPU has VNNI and every op can take it.
  h.direct_ = h.path_ == KernelPath::kAvx512Vnni && DirectConvAvailable() && !graph.ops.empty();
  for (const HeadOp& op : graph.ops) h.direct_ = h.direct_ && (op.kind == HeadOpKind::kMaxPool || op.quantized);
  if (h.direct_) {
    SI_ASSIGN_OR_RETURN(h.reg_shapes_, Shapes(graph));
    h.direct_convs_.resize(graph.ops.size());
    for (size_t i = 0; i < graph.ops.size(); ++i) {
      const HeadOp& op = graph.ops[i];
      if (op.kind != HeadOpKind::kConv) continue;
      SI_ASSIGN_OR_RETURN(h.direct_convs_[i],
                          PrepareDirectConv(op.shape, h.int8_weights_[i], op.quant.weight_scales, op.quant.input_scale,
                                            op.quant.input_scales, h.zero_points_[i], op.bias, op.quant.abits,
                                            op.relu));
    }
  }
  h.graph_ = std::move(graph);
  return h;
}

// The whole head in NHWC on the direct kernel: registers 1.. are [H][W][C]; the input (register
// 0) stays [C][H][W] and is read as such by a conv (QuantizePaddedNhwc), turned around only if
// a max-pool or a residual reads it. The result is turned back to [C][H][W].
Result<Tensor3> QuantizedHead::RunDirect(const Tensor3& input) const {
  thread_local std::vector<std::vector<float>> regs;
  thread_local std::vector<uint8_t> padded;
  thread_local std::vector<float> input_nhwc;
  const size_t n = graph_.ops.size();
  regs.resize(n + 1);
  const std::vector<Tensor3>& shapes = reg_shapes_;  // dimensions only, from Prepare
  bool have_input_nhwc = false;
  auto reg = [&](int r) -> const float* {
    if (r > 0) return regs[static_cast<size_t>(r)].data();
    if (!have_input_nhwc) {
      const size_t plane = static_cast<size_t>(input.h) * input.w;
      input_nhwc.resize(input.data.size());
      for (int c = 0; c < input.c; ++c)
        for (size_t p = 0; p < plane; ++p) input_nhwc[p * input.c + c] = input.data[c * plane + p];
      have_input_nhwc = true;
    }
    return input_nhwc.data();
  };
  for (size_t i = 0; i < n; ++i) {
    const HeadOp& op = graph_.ops[i];
    const Tensor3& in = shapes[static_cast<size_t>(op.input)];
    if (op.kind == HeadOpKind::kMaxPool) {
      MaxPoolNhwc(reg(op.input), in.c, in.h, in.w, op.pool_kernel, op.pool_stride, op.pool_padding, &regs[i + 1],
                  pool_.get());
      continue;
    }
    const DirectConv& dc = direct_convs_[i];
    QuantizePaddedNhwc(dc, op.input == 0 ? input.data.data() : reg(op.input), op.input == 0, &padded, pool_.get());
    RunDirectConv(dc, padded, op.residual >= 0 ? reg(op.residual) : nullptr, &regs[i + 1], pool_.get());
  }
  const Tensor3& last = shapes[n];
  Tensor3 out{last.c, last.h, last.w, {}};
  out.data.resize(static_cast<size_t>(last.h) * last.w * last.c);
  NhwcToNchw(regs[n].data(), last.c, last.h, last.w, out.data.data(), pool_.get());
  return out;
}

Status QuantizedHead::SetThreads(int threads) {
  if (threads < 1 || threads > 256) {
    return InvalidArgument("head threads: " + std::to_string(threads) + " is outside 1..256");
  }
  pool_ = threads == 1 ? nullptr : std::make_shared<ThreadPool>(threads);
  return Status::Ok();
}

Result<Tensor3> QuantizedHead::Run(const Tensor3& input, HeadImpl impl) const {
  SI_RETURN_IF_ERROR(CheckInput(graph_, input));
  if (direct_ && (impl == HeadImpl::kInt8 || impl == HeadImpl::kAuto)) {
    bool any_lut = false;
    for (size_t i = 0; i < graph_.ops.size(); ++i) {
      const HeadOp& op = graph_.ops[i];
      any_lut = any_lut || (impl == HeadImpl::kAuto && auto_lut_[i] && op.kind == HeadOpKind::kConv &&
                            op.quant.wbits <= 4 && op.quant.abits <= 4);
    }
    if (!any_lut) return RunDirect(input);
  }
  // Per-thread buffers kept from call to call: a node runs the same head image after image,
  // and fresh multi-megabyte buffers per call cost page faults (see bench/README.md).
  thread_local std::vector<Tensor3> regs;
  thread_local std::vector<uint8_t> codes;
  thread_local std::vector<int32_t> acc;
  regs.resize(graph_.ops.size() + 1);
  regs[0].c = input.c;
  regs[0].h = input.h;
  regs[0].w = input.w;
  regs[0].data.assign(input.data.begin(), input.data.end());
  for (size_t i = 0; i < graph_.ops.size(); ++i) {
    const HeadOp& op = graph_.ops[i];
    const Tensor3& in = regs[static_cast<size_t>(op.input)];
    Tensor3& out = regs[i + 1];
    if (op.kind == HeadOpKind::kMaxPool) {
      MaxPool2dInto(in, op.pool_kernel, op.pool_stride, op.pool_padding, &out);
      continue;
    }
    out.c = op.shape.out_channels;
    out.h = op.shape.out_height();
    out.w = op.shape.out_width();
    if (!op.quantized) {
      out.data.resize(op.shape.output_size());
      FloatConv(op.shape, op.weight, op.bias, in.data.data(), out.data.data());
      AddResidualRelu(op, regs, out);
      continue;
    }
    const ConvQuant& q = op.quant;
    // Quantize the input, region by region (a region's channels are contiguous in [C][H][W]):
    // code = clamp(nearbyint(x / scale) + z, 0, 2^abits - 1).
    codes.resize(in.data.size());
    const size_t region_values = static_cast<size_t>(op.shape.group_size) * in.h * in.w;
    const std::vector<int32_t>& zps = zero_points_[i];
    if (!q.per_region_inputs()) {
      QuantizeActivations(in.data.data(), in.data.size(), q.input_scale, q.input_zero_point, q.abits, codes.data());
    } else {
      for (int g = 0; g < op.shape.regions(); ++g) {
        const size_t at = static_cast<size_t>(g) * region_values;
        QuantizeActivations(in.data.data() + at, region_values, q.input_scales[static_cast<size_t>(g)],
                            zps[static_cast<size_t>(g)], q.abits, codes.data() + at);
      }
    }
    if (impl == HeadImpl::kReference) {
      SI_ASSIGN_OR_RETURN(acc, ReferenceConvAccumulate(op.shape, codes, zps, int8_weights_[i]));
    } else if ((impl == HeadImpl::kLut || (impl == HeadImpl::kAuto && auto_lut_[i])) && q.wbits <= 4 &&
               q.abits <= 4) {
      SI_RETURN_IF_ERROR(LutConvAccumulate(lut_weights_[i], codes, q.abits, zps, &acc));
    } else {
      // Into the one buffer of this run: no allocation and no zero fill per conv.
      SI_RETURN_IF_ERROR(Int8ConvAccumulate(int8_convs_[i], codes, zps, &acc));
    }
    SI_RETURN_IF_ERROR(RequantizeInto(op.shape, acc, requants_[i], &out.data));
    AddResidualRelu(op, regs, out);
  }
  return regs.back();
}

namespace {

// [min (at most 0), the percentile of the values] as (scale, zero point) for abits codes.
std::pair<float, int32_t> ActivationRange(std::vector<float>& v, double percentile, int abits) {
  const float lo = std::min(0.f, *std::min_element(v.begin(), v.end()));
  float hi;
  if (percentile >= 100) {
    hi = *std::max_element(v.begin(), v.end());
  } else {
    const size_t k = std::min(v.size() - 1, static_cast<size_t>(percentile / 100.0 * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    hi = v[k];
  }
  hi = std::max(hi, lo + 1e-6f);
  const float top = static_cast<float>((1 << abits) - 1);
  const float scale = (hi - lo) / top;
  return {scale, static_cast<int32_t>(std::min(top, std::max(0.f, std::nearbyint(-lo / scale))))};
}

}  // namespace

Status QuantizedHead::Tune(int runs) {
  if (runs < 1) return InvalidArgument("tuning needs at least 1 run per kernel");
  timings_.clear();
  std::vector<uint8_t> codes;
  std::vector<int32_t> acc;
  for (size_t i = 0; i < graph_.ops.size(); ++i) {
    const HeadOp& op = graph_.ops[i];
    if (op.kind != HeadOpKind::kConv || !op.quantized || op.quant.wbits > 4 || op.quant.abits > 4) continue;
    // The kernels' time does not depend on the values (no data-dependent branches), so
    // pseudo-random codes of the right range stand in for real activations.
    codes.resize(op.shape.input_size());
    uint32_t state = 0x9E3779B9u + static_cast<uint32_t>(i);
    for (uint8_t& c : codes) {
      state = state * 1664525u + 1013904223u;
      c = static_cast<uint8_t>((state >> 24) & ((1u << op.quant.abits) - 1));
    }
    const std::vector<int32_t>& zps = zero_points_[i];
    auto time = [&](auto&& call) -> Result<double> {
      std::vector<double> ms;
      for (int r = 0; r <= runs; ++r) {  // one warm-up call, then `runs` timed ones
        const auto t0 = std::chrono::steady_clock::now();
        SI_RETURN_IF_ERROR(call());
        const auto t1 = std::chrono::steady_clock::now();
        if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      return Median(ms);
    };
    ConvTiming t;
    t.op = i;
    t.name = op.name;
    SI_ASSIGN_OR_RETURN(t.int8_ms, time([&] { return Int8ConvAccumulate(int8_convs_[i], codes, zps, &acc); }));
    SI_ASSIGN_OR_RETURN(t.lut_ms,
                        time([&] { return LutConvAccumulate(lut_weights_[i], codes, op.quant.abits, zps, &acc); }));
    t.lut = t.lut_ms < t.int8_ms;
    auto_lut_[i] = t.lut;
    timings_.push_back(t);
  }
  if (timings_.empty()) return Status::Ok();
  // Layer times alone miss what the kernels do to each other's caches (two sets of weights and
  // scratch buffers instead of one): time the whole head with the per-conv choice, all int8
  // and all LUT, and keep the fastest, so auto is never slower than both plain choices.
  const Tensor3 x = PseudoRandomInput(graph_.in_channels, graph_.in_height, graph_.in_width, 12345);
  const std::vector<char> per_conv = auto_lut_;
  std::vector<char> best = per_conv;
  double best_ms = 0;
  for (int choice = 0; choice < 3; ++choice) {
    std::vector<char> use = per_conv;
    if (choice > 0) {
      std::fill(use.begin(), use.end(), static_cast<char>(choice == 2));
    }
    auto_lut_ = use;
    std::vector<double> ms;
    for (int r = 0; r <= runs; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      SI_RETURN_IF_ERROR(Run(x, HeadImpl::kAuto).status());
      const auto t1 = std::chrono::steady_clock::now();
      if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    const double m = Median(ms);
    if (choice == 0 || m < best_ms) {
      best_ms = m;
      best = use;
    }
  }
  auto_lut_ = best;
  for (ConvTiming& t : timings_) t.lut = auto_lut_[t.op];
  return Status::Ok();
}

Status QuantizeGraph(HeadGraph& g, const std::vector<Tensor3>& calibration, const QuantizeOptions& o) {
  SI_RETURN_IF_ERROR(g.Validate());
  for (int b : {o.wbits, o.first_wbits > 0 ? o.first_wbits : o.wbits}) {
    if (b != 1 && b != 2 && b != 4 && b != 8) {
      return InvalidArgument("weight bits " + std::to_string(b) + " (use 1, 2, 4 or 8)");
    }
  }
  if (o.abits < 1 || o.abits > 8) return InvalidArgument("activation bits " + std::to_string(o.abits) + " outside 1..8");
  if (!(o.percentile > 0 && o.percentile <= 100)) return InvalidArgument("percentile must be in (0, 100]");
  if (calibration.empty()) return InvalidArgument("quantizing activations needs at least one calibration image");
  // Every conv input's values over the calibration images, per activation region (one region
  // per tensor unless region_activations; then the weights' regions of input channels).
  auto region_channels = [&](const HeadOp& op) {
    const int cin = op.shape.in_channels;
    if (!o.region_activations) return cin;
    return o.group_size > 0 && cin % o.group_size == 0 ? o.group_size : cin;
  };
  std::vector<std::vector<std::vector<float>>> seen(g.ops.size());
  for (const Tensor3& image : calibration) {
    SI_RETURN_IF_ERROR(CheckInput(g, image));
    std::vector<Tensor3> regs = {image};
    for (size_t i = 0; i < g.ops.size(); ++i) {
      const HeadOp& op = g.ops[i];
      const Tensor3& in = regs[static_cast<size_t>(op.input)];
      if (op.kind == HeadOpKind::kMaxPool) {
        regs.push_back(MaxPool(op, in));
        continue;
      }
      const int per = region_channels(op);
      const size_t chunk = static_cast<size_t>(per) * in.h * in.w;
      seen[i].resize(static_cast<size_t>(in.c / per));
      for (size_t r = 0; r < seen[i].size(); ++r)
        seen[i][r].insert(seen[i][r].end(), in.data.begin() + static_cast<std::ptrdiff_t>(r * chunk),
                          in.data.begin() + static_cast<std::ptrdiff_t>((r + 1) * chunk));
      Tensor3 out{op.shape.out_channels, op.shape.out_height(), op.shape.out_width(), {}};
      out.data.resize(op.shape.output_size());
      FloatConv(op.shape, op.weight, op.bias, in.data.data(), out.data.data());
      AddResidualRelu(op, regs, out);
      regs.push_back(std::move(out));
    }
  }
  bool first = true;
  for (size_t i = 0; i < g.ops.size(); ++i) {
    HeadOp& op = g.ops[i];
    if (op.kind != HeadOpKind::kConv) continue;
    const bool skip = first && !o.quantize_first;
    const int wbits = first && o.first_wbits > 0 ? o.first_wbits : o.wbits;
    first = false;
    if (skip) {
      op.quantized = false;
      continue;
    }
    ConvShape& s = op.shape;
    s.group_size = o.group_size > 0 ? o.group_size : s.in_channels;
    if (s.in_channels % s.group_size != 0) {
      // Regions must tile the input channels: fall back to one region per output channel.
      s.group_size = s.in_channels;
    }
    SI_RETURN_IF_ERROR(ValidateConvShape(s));
    ConvQuant& q = op.quant;
    q.wbits = wbits;
    q.abits = o.abits;
    const int regions = s.regions(), taps = s.kernel_h * s.kernel_w;
    q.weight_codes.assign(s.weight_size(), 0);
    q.weight_scales.assign(static_cast<size_t>(s.out_channels) * regions, 0.f);
    const float levels = wbits == 8 ? 127.f : static_cast<float>((1 << wbits) - 1);
    for (int oc = 0; oc < s.out_channels; ++oc) {
      for (int r = 0; r < regions; ++r) {
        const size_t begin = (static_cast<size_t>(oc) * s.in_channels + static_cast<size_t>(r) * s.group_size) * taps;
        const size_t end = begin + static_cast<size_t>(s.group_size) * taps;
        float m = 0;
        for (size_t k = begin; k < end; ++k) m = std::max(m, std::fabs(op.weight[k]));
        const float scale = m > 0 ? m / levels : 1.f;
        q.weight_scales[static_cast<size_t>(oc) * regions + r] = scale;
        for (size_t k = begin; k < end; ++k) {
          const float v = op.weight[k] / scale;
          if (wbits == 8) {
            q.weight_codes[k] = static_cast<uint8_t>(static_cast<int8_t>(std::min(127.f, std::max(-127.f, std::nearbyint(v)))));
          } else {
            // Nearest odd level w = 2u + 1 - 2^wbits:  u = round((v + 2^wbits - 1) / 2).
            const float u = std::nearbyint((v + static_cast<float>((1 << wbits) - 1)) / 2.f);
            q.weight_codes[k] = static_cast<uint8_t>(std::min(static_cast<float>((1 << wbits) - 1), std::max(0.f, u)));
          }
        }
      }
    }
    q.input_scales.clear();
    q.input_zero_points.clear();
    for (std::vector<float>& v : seen[i]) {
      const auto [scale, zero_point] = ActivationRange(v, o.percentile, o.abits);
      q.input_scales.push_back(scale);
      q.input_zero_points.push_back(zero_point);
    }
    // region_channels follows the weights' regions (including their fallback to one region), so
    // there is one range, or one per region.
    q.input_scale = q.input_scales[0];  // with per-region ranges: region 0's, kept valid for readers
    q.input_zero_point = q.input_zero_points[0];
    if (seen[i].size() == 1) {
      q.input_scales.clear();
      q.input_zero_points.clear();
    }
    op.quantized = true;
    std::vector<std::vector<float>>().swap(seen[i]);
  }
  return g.Validate();
}

// ---- the file -------------------------------------------------------------------------------

namespace {

constexpr char kMagic[8] = {'S', 'I', 'H', 'E', 'A', 'D', 0, 0};
constexpr uint32_t kMaxHeaderBytes = 16u << 20;
constexpr uint64_t kMaxArray = uint64_t{1} << 28;  // elements per array

bool LittleEndian() {
  const uint16_t one = 1;
  uint8_t b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

template <typename T>
json Put(std::string& blob, const std::vector<T>& v) {
  const uint64_t offset = blob.size();
  blob.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  return {{"offset", offset}, {"count", static_cast<uint64_t>(v.size())}};
}

template <typename T>
Status Get(const json& ref, const uint8_t* blob, uint64_t blob_size, const std::string& what, std::vector<T>* out) {
  if (!ref.is_object() || !ref.contains("offset") || !ref.contains("count") || !ref["offset"].is_number_unsigned() ||
      !ref["count"].is_number_unsigned()) {
    return InvalidArgument("head file: " + what + " needs unsigned offset and count");
  }
  const uint64_t offset = ref["offset"].get<uint64_t>(), count = ref["count"].get<uint64_t>();
  if (count > kMaxArray) return OutOfRange("head file: " + what + " has " + std::to_string(count) + " elements");
  if (offset > blob_size || count * sizeof(T) > blob_size - offset) {
    return DataLoss("head file: " + what + " runs past the end of the file (truncated?)");
  }
  out->resize(count);
  if (count) std::memcpy(out->data(), blob + offset, count * sizeof(T));
  return Status::Ok();
}

}  // namespace

Status SaveHead(const std::string& path, const HeadGraph& g) {
  SI_RETURN_IF_ERROR(g.Validate());
  if (!LittleEndian()) return Unimplemented("head files are little-endian; this machine is not");
  std::string blob;
  json ops = json::array();
  for (const HeadOp& op : g.ops) {
    json o = {{"kind", op.kind == HeadOpKind::kConv ? "conv" : "maxpool"}, {"name", op.name}, {"input", op.input}};
    if (op.kind == HeadOpKind::kConv) {
      const ConvShape& s = op.shape;
      o["residual"] = op.residual;
      o["relu"] = op.relu;
      o["shape"] = {{"in_channels", s.in_channels}, {"in_height", s.in_height}, {"in_width", s.in_width},
                    {"out_channels", s.out_channels}, {"kernel_h", s.kernel_h}, {"kernel_w", s.kernel_w},
                    {"stride", s.stride}, {"padding", s.padding}, {"group_size", s.group_size}};
      o["weight"] = Put(blob, op.weight);
      o["bias"] = Put(blob, op.bias);
      if (op.quantized) {
        const ConvQuant& q = op.quant;
        o["quant"] = {{"wbits", q.wbits},
                      {"abits", q.abits},
                      {"weight_codes", Put(blob, q.weight_codes)},
                      {"weight_scales", Put(blob, q.weight_scales)},
                      {"input_scale", q.input_scale},
                      {"input_zero_point", q.input_zero_point}};
        if (q.per_region_inputs()) {
          o["quant"]["input_scales"] = q.input_scales;
          o["quant"]["input_zero_points"] = q.input_zero_points;
        }
      }
    } else {
      o["kernel"] = op.pool_kernel;
      o["stride"] = op.pool_stride;
      o["padding"] = op.pool_padding;
    }
    ops.push_back(o);
  }
  const json header = {{"model", g.model},
                       {"split", g.split},
                       {"input", {g.in_channels, g.in_height, g.in_width}},
                       {"ops", ops}};
  const std::string h = header.dump();
  std::ofstream f(path, std::ios::binary);
  if (!f) return IoError("cannot write " + path);
  const uint32_t version = kHeadFileVersion, hlen = static_cast<uint32_t>(h.size());
  f.write(kMagic, sizeof kMagic);
  f.write(reinterpret_cast<const char*>(&version), 4);
  f.write(reinterpret_cast<const char*>(&hlen), 4);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(blob.data(), static_cast<std::streamsize>(blob.size()));
  if (!f) return IoError("cannot write " + path);
  return Status::Ok();
}

Result<HeadGraph> ParseHead(const uint8_t* data, size_t size) {
  if (!LittleEndian()) return Unimplemented("head files are little-endian; this machine is not");
  if (size < 16 || std::memcmp(data, kMagic, sizeof kMagic) != 0) {
    return InvalidArgument("not a splitinfer head file (no SIHEAD magic): make one with `splitinfer quantize-head`");
  }
  uint32_t version, hlen;
  std::memcpy(&version, data + 8, 4);
  std::memcpy(&hlen, data + 12, 4);
  if (version < 1 || version > kHeadFileVersion) {
    return Unimplemented("head file version " + std::to_string(version) + "; this build reads versions 1 to " +
                         std::to_string(kHeadFileVersion));
  }
  if (hlen > kMaxHeaderBytes || hlen > size - 16) return DataLoss("head file: header length runs past the file");
  json h;
  try {
    h = json::parse(data + 16, data + 16 + hlen);
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("head file: header is not valid JSON (") + e.what() + ")");
  }
  const uint8_t* blob = data + 16 + hlen;
  const uint64_t blob_size = size - 16 - hlen;
  HeadGraph g;
  try {
    g.model = h.at("model").get<std::string>();
    g.split = h.at("split").get<std::string>();
    const auto in = h.at("input").get<std::vector<int>>();
    if (in.size() != 3) return InvalidArgument("head file: input shape needs 3 values (C, H, W)");
    g.in_channels = in[0];
    g.in_height = in[1];
    g.in_width = in[2];
    const json& ops = h.at("ops");
    if (!ops.is_array() || ops.size() > 4096) return InvalidArgument("head file: ops must be an array of <= 4096");
    for (size_t i = 0; i < ops.size(); ++i) {
      const json& o = ops[i];
      HeadOp op;
      const std::string kind = o.at("kind").get<std::string>(), what = "op " + std::to_string(i);
      op.name = o.value("name", "");
      op.input = o.at("input").get<int>();
      if (kind == "conv") {
        op.kind = HeadOpKind::kConv;
        op.residual = o.at("residual").get<int>();
        op.relu = o.at("relu").get<bool>();
        const json& s = o.at("shape");
        op.shape.in_channels = s.at("in_channels").get<int>();
        op.shape.in_height = s.at("in_height").get<int>();
        op.shape.in_width = s.at("in_width").get<int>();
        op.shape.out_channels = s.at("out_channels").get<int>();
        op.shape.kernel_h = s.at("kernel_h").get<int>();
        op.shape.kernel_w = s.at("kernel_w").get<int>();
        op.shape.stride = s.at("stride").get<int>();
        op.shape.padding = s.at("padding").get<int>();
        op.shape.group_size = s.at("group_size").get<int>();
        // The shape bounds every count below: check it before copying anything.
        SI_RETURN_IF_ERROR(ValidateConvShape(op.shape));
        SI_RETURN_IF_ERROR(Get(o.at("weight"), blob, blob_size, what + " weight", &op.weight));
        SI_RETURN_IF_ERROR(Get(o.at("bias"), blob, blob_size, what + " bias", &op.bias));
        if (o.contains("quant")) {
          const json& q = o.at("quant");
          op.quantized = true;
          op.quant.wbits = q.at("wbits").get<int>();
          op.quant.abits = q.at("abits").get<int>();
          op.quant.input_scale = q.at("input_scale").get<float>();
          op.quant.input_zero_point = q.at("input_zero_point").get<int32_t>();
          if (q.contains("input_scales") || q.contains("input_zero_points")) {
            // Small arrays in the header; their length is checked against the regions by Validate.
            const json& sc = q.at("input_scales");
            const json& zp = q.at("input_zero_points");
            if (!sc.is_array() || !zp.is_array() || sc.size() != static_cast<size_t>(op.shape.regions()) ||
                zp.size() != sc.size())
              return InvalidArgument(what + " input_scales/input_zero_points must be arrays of one value per region (" +
                                     std::to_string(op.shape.regions()) + ")");
            op.quant.input_scales = sc.get<std::vector<float>>();
            op.quant.input_zero_points = zp.get<std::vector<int32_t>>();
          }
          SI_RETURN_IF_ERROR(Get(q.at("weight_codes"), blob, blob_size, what + " weight codes", &op.quant.weight_codes));
          SI_RETURN_IF_ERROR(Get(q.at("weight_scales"), blob, blob_size, what + " weight scales", &op.quant.weight_scales));
        }
      } else if (kind == "maxpool") {
        op.kind = HeadOpKind::kMaxPool;
        op.pool_kernel = o.at("kernel").get<int>();
        op.pool_stride = o.at("stride").get<int>();
        op.pool_padding = o.at("padding").get<int>();
      } else {
        return InvalidArgument("head file: " + what + " has unknown kind '" + kind + "' (conv or maxpool)");
      }
      g.ops.push_back(std::move(op));
    }
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("head file: ") + e.what());
  }
  SI_RETURN_IF_ERROR(g.Validate());
  return g;
}

Result<HeadGraph> LoadHead(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("head file " + path + " not found (make one with `splitinfer quantize-head`)");
  f.seekg(0, std::ios::end);
  const std::streamoff n = f.tellg();
  if (n < 0 || static_cast<uint64_t>(n) > (uint64_t{1} << 32)) return OutOfRange("head file " + path + " is too large");
  f.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  f.read(reinterpret_cast<char*>(bytes.data()), n);
  if (!f) return IoError("cannot read " + path);
  auto g = ParseHead(bytes.data(), bytes.size());
  if (!g.ok()) return Status(g.status().code(), path + ": " + g.status().message());
  return g;
}

}  // namespace splitinfer::kernels
