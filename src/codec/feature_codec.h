// codec: the whole node -> server feature path for one image.
//
//   node:   feature --Quantize--> symbols (+side) --EncodeSymbols--> payload --WriteFrame--> frame
//   server: frame --ParseFrame--> header, side, payload --DecodeSymbols--> symbols --Dequantize--> feature
//
// The server checks that the frame belongs to its pipeline (id, dims, quantizer, coder) before
// decoding anything: a frame for another model or split is a MISMATCH, never a misread tensor.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "codec/frame/frame.h"
#include "codec/lossless/lossless.h"
#include "codec/quantize/quantize.h"
#include "core/status.h"

namespace splitinfer::codec {

struct FeatureCodec {
  QuantParams quant;
  CoderId coder = CoderId::kCabac;
  CoderOptions coder_options;
  uint32_t pipeline_id = 0;
  // The version EncodeFeature writes (and so the cabac layout it codes); older ones only to
  // test that they still decode. DecodeFeature takes whatever version the frame has.
  uint8_t frame_version = kFrameVersion;

  FrameHeader header() const;
};

struct EncodedFeature {
  std::vector<uint8_t> frame;
  std::vector<uint8_t> symbols;  // what was coded (for entropy estimates and tests)
};

// One image's features (exactly quant.dims) -> frame bytes.
Result<EncodedFeature> EncodeFeature(const FeatureCodec& codec, const torch::Tensor& feature);

// Frame bytes -> float feature (CPU, quant.dims). All kFrame* codes from parsing and decoding,
// MISMATCH when the frame is valid but for another pipeline.
Result<torch::Tensor> DecodeFeature(const FeatureCodec& codec, const uint8_t* frame, size_t size,
                                    const FrameLimits& limits = {});

// The two halves of DecodeFeature, for frames parsed elsewhere (session frames,
// codec/frame/session.h): MISMATCH when a valid header is not this pipeline's (id, dims,
// quantizer); and a parsed frame -> float feature (checks the header first).
Status CheckFrameHeader(const FeatureCodec& codec, const FrameHeader& header);
Result<torch::Tensor> DecodeFrame(const FeatureCodec& codec, const FrameView& view);

// What the server reconstructs for `feature` (Dequantize(Quantize(x))), without coding: the
// reference the round trip must equal bit for bit.
Result<torch::Tensor> Reconstruct(const FeatureCodec& codec, const torch::Tensor& feature);

}  // namespace splitinfer::codec
