// kernels: shape checks, the reference convolution and the shared float stage (see qconv.h).
#include "kernels/qconv.h"

#include <cmath>
#include <limits>
#include <string>

namespace splitinfer::kernels {
namespace {

Status CheckDim(const char* name, int value, int min) {
  if (value < min || value >= kMaxDim)
    return InvalidArgument(std::string("conv ") + name + " = " + std::to_string(value) + " is outside [" +
                           std::to_string(min) + ", " + std::to_string(kMaxDim) + ")");
  return Status::Ok();
}

bool IsFinite(float v) { return std::isfinite(v); }

}  // namespace

Status ValidateConvShape(const ConvShape& s) {
  SI_RETURN_IF_ERROR(CheckDim("in_channels", s.in_channels, 1));
  SI_RETURN_IF_ERROR(CheckDim("in_height", s.in_height, 1));
  SI_RETURN_IF_ERROR(CheckDim("in_width", s.in_width, 1));
  SI_RETURN_IF_ERROR(CheckDim("out_channels", s.out_channels, 1));
  SI_RETURN_IF_ERROR(CheckDim("kernel_h", s.kernel_h, 1));
  SI_RETURN_IF_ERROR(CheckDim("kernel_w", s.kernel_w, 1));
  SI_RETURN_IF_ERROR(CheckDim("stride", s.stride, 1));
  SI_RETURN_IF_ERROR(CheckDim("padding", s.padding, 0));
  SI_RETURN_IF_ERROR(CheckDim("group_size", s.group_size, 1));
  if (s.in_channels % s.group_size != 0)
    return InvalidArgument("conv group_size = " + std::to_string(s.group_size) + " does not divide in_channels = " +
                           std::to_string(s.in_channels));
  if (s.in_height + 2 * s.padding < s.kernel_h || s.in_width + 2 * s.padding < s.kernel_w)
    return InvalidArgument("conv kernel " + std::to_string(s.kernel_h) + "x" + std::to_string(s.kernel_w) +
                           " is larger than the padded input");
  if (static_cast<int64_t>(s.group_size) * s.kernel_h * s.kernel_w > kMaxRegionDepth)
    return OutOfRange("conv region depth group_size*kernel_h*kernel_w = " +
                      std::to_string(static_cast<int64_t>(s.group_size) * s.kernel_h * s.kernel_w) +
                      " exceeds " + std::to_string(kMaxRegionDepth) + " (int32 sums could overflow)");
  // The largest buffers: weights, accumulators and the int8 path's im2col matrix (K x pixels).
  const double limit = static_cast<double>(std::numeric_limits<int32_t>::max());
  const double k = static_cast<double>(s.in_channels) * s.kernel_h * s.kernel_w;
  if (static_cast<double>(s.input_size()) >= limit || static_cast<double>(s.weight_size()) >= limit ||
      static_cast<double>(s.acc_size()) >= limit || k * static_cast<double>(s.pixels()) >= limit)
    return OutOfRange("conv buffers would exceed 2^31 elements");
  return Status::Ok();
}

namespace {
Status CheckCounts(const ConvShape& s, size_t input_count, size_t weight_count) {
  SI_RETURN_IF_ERROR(ValidateConvShape(s));
  if (input_count != s.input_size())
    return InvalidArgument("conv input has " + std::to_string(input_count) + " values, shape needs " +
                           std::to_string(s.input_size()));
  if (weight_count != s.weight_size())
    return InvalidArgument("conv weights have " + std::to_string(weight_count) + " values, shape needs " +
                           std::to_string(s.weight_size()));
  return Status::Ok();
}
}  // namespace

Status ValidateConvArgs(const ConvShape& s, size_t input_count, int32_t input_zero_point, int32_t max_zero_point,
                        size_t weight_count) {
  SI_RETURN_IF_ERROR(CheckCounts(s, input_count, weight_count));
  if (input_zero_point < 0 || input_zero_point > max_zero_point)
    return OutOfRange("conv input_zero_point = " + std::to_string(input_zero_point) + " is outside [0, " +
                      std::to_string(max_zero_point) + "]");
  return Status::Ok();
}

Status ValidateConvArgs(const ConvShape& s, size_t input_count, const std::vector<int32_t>& zero_points,
                        int32_t max_zero_point, size_t weight_count) {
  SI_RETURN_IF_ERROR(CheckCounts(s, input_count, weight_count));
  if (zero_points.size() != static_cast<size_t>(s.regions()))
    return InvalidArgument("conv input_zero_points has " + std::to_string(zero_points.size()) +
                           " values, needs one per region (" + std::to_string(s.regions()) + ")");
  for (size_t g = 0; g < zero_points.size(); ++g)
    if (zero_points[g] < 0 || zero_points[g] > max_zero_point)
      return OutOfRange("conv input_zero_points[" + std::to_string(g) + "] = " + std::to_string(zero_points[g]) +
                        " is outside [0, " + std::to_string(max_zero_point) + "]");
  return Status::Ok();
}

Result<std::vector<int32_t>> ReferenceConvAccumulate(const ConvShape& s, const std::vector<uint8_t>& input,
                                                     int32_t input_zero_point, const std::vector<int8_t>& weights) {
  SI_RETURN_IF_ERROR(ValidateConvArgs(s, input.size(), input_zero_point, 255, weights.size()));
  return ReferenceConvAccumulate(s, input, std::vector<int32_t>(s.regions(), input_zero_point), weights);
}

Result<std::vector<int32_t>> ReferenceConvAccumulate(const ConvShape& s, const std::vector<uint8_t>& input,
                                                     const std::vector<int32_t>& zero_points,
                                                     const std::vector<int8_t>& weights) {
  SI_RETURN_IF_ERROR(ValidateConvArgs(s, input.size(), zero_points, 255, weights.size()));
  const int oh = s.out_height(), ow = s.out_width(), regions = s.regions();
  std::vector<int32_t> acc(s.acc_size(), 0);
  for (int oc = 0; oc < s.out_channels; ++oc)
    for (int g = 0; g < regions; ++g)
      for (int y = 0; y < oh; ++y)
        for (int x = 0; x < ow; ++x) {
          int32_t sum = 0;
          for (int c = g * s.group_size; c < (g + 1) * s.group_size; ++c)
            for (int ky = 0; ky < s.kernel_h; ++ky)
              for (int kx = 0; kx < s.kernel_w; ++kx) {
                const int iy = y * s.stride - s.padding + ky, ix = x * s.stride - s.padding + kx;
                if (iy < 0 || iy >= s.in_height || ix < 0 || ix >= s.in_width) continue;  // zero padding
                const int32_t a = input[(static_cast<size_t>(c) * s.in_height + iy) * s.in_width + ix];
                const int32_t w = weights[((static_cast<size_t>(oc) * s.in_channels + c) * s.kernel_h + ky) *
                                              s.kernel_w + kx];
                sum += w * (a - zero_points[g]);
              }
          acc[((static_cast<size_t>(oc) * regions + g) * oh + y) * ow + x] = sum;
        }
  return acc;
}

Result<std::vector<float>> Requantize(const ConvShape& s, const std::vector<int32_t>& acc, const Requant& rq) {
  std::vector<float> out;
  SI_RETURN_IF_ERROR(RequantizeInto(s, acc, rq, &out));
  return out;
}

// Cloned for AVX-512 and AVX2 (GCC picks one at load time): the loops below are the module's
// widest, and wider vectors change nothing in the result (the same IEEE operations per element;
// -ffp-contract=off keeps them unfused).
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
Status RequantizeInto(const ConvShape& s, const std::vector<int32_t>& acc, const Requant& rq, std::vector<float>* dst) {
  SI_RETURN_IF_ERROR(ValidateConvShape(s));
  const int regions = s.regions();
  if (acc.size() != s.acc_size())
    return InvalidArgument("requantize acc has " + std::to_string(acc.size()) + " values, shape needs " +
                           std::to_string(s.acc_size()));
  if (rq.weight_scales.size() != static_cast<size_t>(s.out_channels) * regions)
    return InvalidArgument("requantize weight_scales has " + std::to_string(rq.weight_scales.size()) +
                           " values, needs out_channels*regions = " +
                           std::to_string(static_cast<size_t>(s.out_channels) * regions));
  if (!rq.bias.empty() && rq.bias.size() != static_cast<size_t>(s.out_channels))
    return InvalidArgument("requantize bias has " + std::to_string(rq.bias.size()) + " values, needs 0 or " +
                           std::to_string(s.out_channels));
  if (!IsFinite(rq.input_scale) || rq.input_scale <= 0.f)
    return OutOfRange("requantize input_scale must be finite and > 0");
  const bool per_region = !rq.input_scales.empty();
  if (per_region && rq.input_scales.size() != static_cast<size_t>(regions))
    return InvalidArgument("requantize input_scales has " + std::to_string(rq.input_scales.size()) +
                           " values, needs 0 or one per region (" + std::to_string(regions) + ")");
  for (size_t i = 0; i < rq.input_scales.size(); ++i)
    if (!IsFinite(rq.input_scales[i]) || rq.input_scales[i] <= 0.f)
      return OutOfRange("requantize input_scales[" + std::to_string(i) + "] must be finite and > 0");
  for (size_t i = 0; i < rq.weight_scales.size(); ++i)
    if (!IsFinite(rq.weight_scales[i]) || rq.weight_scales[i] <= 0.f)
      return OutOfRange("requantize weight_scales[" + std::to_string(i) + "] must be finite and > 0");
  for (size_t i = 0; i < rq.bias.size(); ++i)
    if (!IsFinite(rq.bias[i])) return OutOfRange("requantize bias[" + std::to_string(i) + "] is not finite");

  const size_t pixels = s.pixels();
  std::vector<float>& out = *dst;
  out.resize(s.output_size());  // reuses the caller's capacity; region 0 writes every element
  // The documented per-element order, run for all pixels of a channel at once (region by
  // region over a row of partial sums), so the compiler vectorises across pixels; each
  // element still sees exactly: 0, += acc[0]*w[0], += acc[1]*w[1], ..., * input_scale, + bias.
  // Per-region scales fold into the region's factor; the final multiply by 1 is then exact.
  const float input_scale = per_region ? 1.f : rq.input_scale;
  for (int oc = 0; oc < s.out_channels; ++oc) {
    const float* scales = rq.weight_scales.data() + static_cast<size_t>(oc) * regions;
    const int32_t* a = acc.data() + static_cast<size_t>(oc) * regions * pixels;
    const float bias = rq.bias.empty() ? 0.f : rq.bias[oc];
    float* o = out.data() + static_cast<size_t>(oc) * pixels;  // the running sums
    for (int g = 0; g < regions; ++g) {
      const int32_t* ag = a + g * pixels;
      const float scale = per_region ? scales[g] * rq.input_scales[g] : scales[g];
      if (g == 0) {
        // s = 0, s += ...: written as 0 + x, which is not x when x is -0 (the sum is then +0);
        // without -ffast-math the compiler keeps the add. No separate zero-fill pass.
        for (size_t p = 0; p < pixels; ++p) o[p] = 0.f + static_cast<float>(ag[p]) * scale;
      } else {
        for (size_t p = 0; p < pixels; ++p) o[p] += static_cast<float>(ag[p]) * scale;
      }
    }
    if (rq.relu) {
      for (size_t p = 0; p < pixels; ++p) {
        float y = o[p] * input_scale;
        y += bias;
        o[p] = y < 0.f ? 0.f : y;
      }
    } else {
      for (size_t p = 0; p < pixels; ++p) {
        float y = o[p] * input_scale;
        y += bias;
        o[p] = y;
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> QuantizeOutput(const std::vector<float>& values, float scale, int32_t zero_point) {
  if (!IsFinite(scale) || scale <= 0.f) return OutOfRange("output scale must be finite and > 0");
  if (zero_point < 0 || zero_point > 255)
    return OutOfRange("output zero_point = " + std::to_string(zero_point) + " is outside [0, 255]");
  std::vector<uint8_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    // fmin/fmax map NaN to a bound instead of feeding it to the integer conversion.
    const float q = std::nearbyint(values[i] / scale) + static_cast<float>(zero_point);
    out[i] = static_cast<uint8_t>(std::fmin(std::fmax(q, 0.f), 255.f));
  }
  return out;
}

}  // namespace splitinfer::kernels
