// kernels: table look-up convolution (contract and derivation: lut.h).
#include "kernels/lut.h"

#include <algorithm>
#include <string>

namespace splitinfer::kernels {
namespace {

Status CheckBits(const char* name, int bits) {
  if (bits < 1 || bits > 4) return InvalidArgument(std::string("lut ") + name + " = " + std::to_string(bits) + " is outside 1..4");
  return Status::Ok();
}

Status CheckCodes(const char* what, const std::vector<uint8_t>& codes, int bits) {
  for (size_t i = 0; i < codes.size(); ++i)
    if (codes[i] >> bits)
      return OutOfRange(std::string("lut ") + what + "[" + std::to_string(i) + "] = " + std::to_string(codes[i]) +
                        " does not fit in " + std::to_string(bits) + " bits");
  return Status::Ok();
}

// One output pixel for every (output channel, region): the bit planes of a chunk's 4 weight
// codes index its table; plane b is weighted 2^b. WB is a template argument so the plane loop
// unrolls away.
template <int WB>
void AccumulatePixel(const LutWeights& lw, const int8_t* tables, const int32_t* region_sums, size_t pixel,
                     int32_t* acc) {
  const ConvShape& s = lw.shape;
  const int regions = s.regions(), chunks = lw.chunks;
  const size_t pixels = s.pixels();
  constexpr int32_t kLevels = (1 << WB) - 1;
  for (int oc = 0; oc < s.out_channels; ++oc)
    for (int g = 0; g < regions; ++g) {
      const size_t r = static_cast<size_t>(oc) * regions + g;
      const uint16_t* planes = lw.planes.data() + r * chunks;
      const int8_t* t = tables + static_cast<size_t>(g) * chunks * 16;
      int32_t sum = 0;
      for (int q = 0; q < chunks; ++q, t += 16) {
        const uint32_t word = planes[q];
        int32_t part = t[word & 15];
        if constexpr (WB > 1) part += 2 * t[(word >> 4) & 15];
        if constexpr (WB > 2) part += 4 * t[(word >> 8) & 15];
        if constexpr (WB > 3) part += 8 * t[(word >> 12) & 15];
        sum += part;
      }
      acc[r * pixels + pixel] = 2 * sum - kLevels * region_sums[g];
    }
}

}  // namespace

Result<std::vector<int8_t>> DecodeLutWeights(const std::vector<uint8_t>& codes, int wbits) {
  SI_RETURN_IF_ERROR(CheckBits("wbits", wbits));
  SI_RETURN_IF_ERROR(CheckCodes("weight code", codes, wbits));
  std::vector<int8_t> values(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) values[i] = static_cast<int8_t>(LutWeightValue(codes[i], wbits));
  return values;
}

Result<LutWeights> PrepareLutWeights(const ConvShape& shape, const std::vector<uint8_t>& codes, int wbits) {
  SI_RETURN_IF_ERROR(CheckBits("wbits", wbits));
  SI_RETURN_IF_ERROR(ValidateConvShape(shape));
  if (codes.size() != shape.weight_size())
    return InvalidArgument("lut weight codes have " + std::to_string(codes.size()) + " values, shape needs " +
                           std::to_string(shape.weight_size()));
  SI_RETURN_IF_ERROR(CheckCodes("weight code", codes, wbits));
  LutWeights lw;
  lw.shape = shape;
  lw.wbits = wbits;
  const int depth = shape.region_depth();
  lw.chunks = (depth + 3) / 4;
  const size_t rows = static_cast<size_t>(shape.out_channels) * shape.regions();
  lw.planes.assign(rows * lw.chunks, 0);
  // Weights of one region are contiguous in [oc][c][ky][kx] order, so tap i of region r is
  // codes[r * depth + i]; it goes to chunk i / 4, position i % 4.
  for (size_t r = 0; r < rows; ++r)
    for (int i = 0; i < depth; ++i) {
      const uint32_t u = codes[r * depth + i];
      for (int b = 0; b < wbits; ++b)
        if ((u >> b) & 1) lw.planes[r * lw.chunks + i / 4] |= static_cast<uint16_t>(1u << (4 * b + i % 4));
    }
  return lw;
}

Result<std::vector<int32_t>> LutConvAccumulate(const LutWeights& lw, const std::vector<uint8_t>& input, int abits,
                                               int32_t input_zero_point) {
  SI_RETURN_IF_ERROR(CheckBits("abits", abits));
  SI_RETURN_IF_ERROR(CheckBits("wbits", lw.wbits));
  const ConvShape& s = lw.shape;
  SI_RETURN_IF_ERROR(ValidateConvArgs(s, input.size(), input_zero_point, (1 << abits) - 1, s.weight_size()));
  const int regions = s.regions(), chunks = lw.chunks;
  if (chunks != (s.region_depth() + 3) / 4 || lw.planes.size() != static_cast<size_t>(s.out_channels) * regions * chunks)
    return InvalidArgument("lut weights do not match their shape (make them with PrepareLutWeights)");
  SI_RETURN_IF_ERROR(CheckCodes("input", input, abits));

  const int oh = s.out_height(), ow = s.out_width();
  // taps: a' = v - z per region, padded to whole chunks; the padding slots are never written
  // and stay 0. tables: 16 subset sums per chunk.
  std::vector<int8_t> taps(static_cast<size_t>(regions) * chunks * 4, 0);
  std::vector<int8_t> tables(static_cast<size_t>(regions) * chunks * 16);
  std::vector<int32_t> region_sums(regions);
  std::vector<int32_t> acc(s.acc_size());
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      for (int g = 0; g < regions; ++g) {
        int8_t* dst = taps.data() + static_cast<size_t>(g) * chunks * 4;
        for (int c = g * s.group_size; c < (g + 1) * s.group_size; ++c)
          for (int ky = 0; ky < s.kernel_h; ++ky)
            for (int kx = 0; kx < s.kernel_w; ++kx) {
              const int iy = y * s.stride - s.padding + ky, ix = x * s.stride - s.padding + kx;
              const bool inside = iy >= 0 && iy < s.in_height && ix >= 0 && ix < s.in_width;
              *dst++ = static_cast<int8_t>(
                  inside ? input[(static_cast<size_t>(c) * s.in_height + iy) * s.in_width + ix] - input_zero_point : 0);
            }
      }
      // Subset sums: entry p adds tap ctz(p) to the entry without that bit (15 adds).
      for (size_t q = 0; q < static_cast<size_t>(regions) * chunks; ++q) {
        const int8_t* a = taps.data() + q * 4;
        int8_t* t = tables.data() + q * 16;
        t[0] = 0;
        for (int p = 1; p < 16; ++p) t[p] = static_cast<int8_t>(t[p & (p - 1)] + a[__builtin_ctz(p)]);
      }
      for (int g = 0; g < regions; ++g) {
        int32_t sum = 0;
        for (int q = 0; q < chunks; ++q) sum += tables[(static_cast<size_t>(g) * chunks + q) * 16 + 15];
        region_sums[g] = sum;
      }
      const size_t pixel = static_cast<size_t>(y) * ow + x;
      switch (lw.wbits) {
        case 1: AccumulatePixel<1>(lw, tables.data(), region_sums.data(), pixel, acc.data()); break;
        case 2: AccumulatePixel<2>(lw, tables.data(), region_sums.data(), pixel, acc.data()); break;
        case 3: AccumulatePixel<3>(lw, tables.data(), region_sums.data(), pixel, acc.data()); break;
        default: AccumulatePixel<4>(lw, tables.data(), region_sums.data(), pixel, acc.data()); break;
      }
    }
  return acc;
}

}  // namespace splitinfer::kernels
