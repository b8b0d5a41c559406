// kernels: low-bit convolution by table look-up (1..4-bit weights and activations). No LibTorch.
//
//   weight codes --PrepareLutWeights (once per layer)--> bit planes, 4 codes per 16-bit word
//   input codes  --per output pixel: tables of partial sums--> look-ups --> int32 acc (qconv.h)
//
// Codes. Activations: unsigned codes v in [0, 2^abits) with a per-tensor zero point z in the
// same range; real value = input_scale * (v - z). Weights: unsigned codes u in [0, 2^wbits)
// standing for the odd symmetric levels w = 2u + 1 - 2^wbits (1 bit: -1, +1; 2 bits: -3, -1,
// 1, 3; 4 bits: -15 .. 15 step 2), real weight = weight_scale * w. Symmetric and without a
// zero point, so the scale alone describes a region. DecodeLutWeights gives the int8 values,
// with which ReferenceConvAccumulate / Int8ConvAccumulate compute the same acc bit for bit.
//
// Why tables: with a' = v - z and L = 2^wbits - 1,
//   sum_k w_k a'_k = 2 * sum_b 2^b * sum_k bit_b(u_k) a'_k  -  L * sum_k a'_k.
// A region's K taps are cut into chunks of 4; for each chunk one 16-entry table holds the sums
// of every subset of its 4 a' values, so "sum of a' where bit b of the weight code is set" is
// one look-up indexed by 4 weight bits. A table is built once per pixel (15 adds) and read by
// every output channel and bit plane: wbits look-ups replace 4 multiply-adds. |a'| <= 15, so
// entries (|sum| <= 60) fit int8 - the width pshufb-style SIMD tables need (not used yet).
// A region whose depth is not a multiple of 4 is padded with taps whose a' is 0.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kernels/qconv.h"

namespace splitinfer::kernels {

inline int LutWeightValue(int code, int wbits) { return 2 * code + 1 - (1 << wbits); }

// INVALID_ARGUMENT for wbits outside 1..4, OUT_OF_RANGE naming the first code >= 2^wbits.
Result<std::vector<int8_t>> DecodeLutWeights(const std::vector<uint8_t>& codes, int wbits);

struct LutWeights {
  ConvShape shape;
  int wbits = 0;
  int chunks = 0;                // per region: ceil(region_depth / 4)
  std::vector<uint16_t> planes;  // [oc][region][chunk]: bits 4b..4b+3 = bit b of the chunk's 4 codes
};

// `codes` in the weight layout of qconv.h ([oc][c][ky][kx]), one code per byte.
Result<LutWeights> PrepareLutWeights(const ConvShape& shape, const std::vector<uint8_t>& codes, int wbits);

// Same result layout as ReferenceConvAccumulate. INVALID_ARGUMENT for abits outside 1..4 or a
// size mismatch, OUT_OF_RANGE naming the first input code >= 2^abits or a bad zero point.
Result<std::vector<int32_t>> LutConvAccumulate(const LutWeights& weights, const std::vector<uint8_t>& input,
                                               int abits, int32_t input_zero_point);

}  // namespace splitinfer::kernels
