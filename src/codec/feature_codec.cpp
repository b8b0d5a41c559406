#include "codec/feature_codec.h"

#include <torch/torch.h>

namespace splitinfer::codec {

FrameHeader FeatureCodec::header() const {
  FrameHeader h;
  h.version = frame_version;
  h.pipeline_id = pipeline_id;
  h.dims = quant.dims;
  h.quant = quant.desc();
  h.coder = coder;
  return h;
}

Result<EncodedFeature> EncodeFeature(const FeatureCodec& codec, const torch::Tensor& feature) {
  SI_ASSIGN_OR_RETURN(QuantizedMap q, Quantize(codec.quant, feature));
  const FrameHeader header = codec.header();
  CoderOptions options = codec.coder_options;
  options.cabac_layout = CabacLayoutOf(header.version);
  SI_ASSIGN_OR_RETURN(std::vector<uint8_t> payload,
                      EncodeSymbols(codec.coder, q.symbols.data(), GeometryOf(header), options));
  SI_ASSIGN_OR_RETURN(std::vector<uint8_t> frame, WriteFrame(header, q.side_info.data(), q.side_info.size(),
                                                             payload.data(), payload.size()));
  return EncodedFeature{std::move(frame), std::move(q.symbols)};
}

Status CheckFrameHeader(const FeatureCodec& codec, const FrameHeader& got) {
  const FrameHeader want = codec.header();
  if (got.pipeline_id != want.pipeline_id) {
    return Mismatch("frame is for pipeline " + std::to_string(got.pipeline_id) + ", this pipeline is " +
                    std::to_string(want.pipeline_id));
  }
  if (got.dims != want.dims) return Mismatch("frame dims differ from the pipeline's feature shape");
  const QuantDesc &a = got.quant, &b = want.quant;
  if (a.bits != b.bits || a.range != b.range || a.granularity != b.granularity ||
      a.reconstruction != b.reconstruction || a.params_in_frame != b.params_in_frame ||
      a.region[0] != b.region[0] || a.region[1] != b.region[1] || a.region[2] != b.region[2]) {
    return Mismatch("frame quantizer (" + std::to_string(a.bits) + " bits) differs from the pipeline's (" +
                    std::to_string(b.bits) + " bits, calibration)");
  }
  return Status::Ok();
}

Result<torch::Tensor> DecodeFrame(const FeatureCodec& codec, const FrameView& view) {
  SI_RETURN_IF_ERROR(CheckFrameHeader(codec, view.header));
  const SymbolGeometry g = GeometryOf(view.header);
  std::vector<uint8_t> symbols(g.count());
  // The frame names its coder and any coder is accepted: a node may trade bytes for CPU per
  // frame. cabac-trained without the pipeline's model is FAILED_PRECONDITION from the coder.
  CoderOptions options = codec.coder_options;
  options.cabac_layout = CabacLayoutOf(view.header.version);
  SI_RETURN_IF_ERROR(DecodeSymbols(view.header.coder, view.payload, view.payload_size, g, options, symbols.data()));
  return Dequantize(codec.quant, symbols.data(), symbols.size(), view.side_info, view.side_info_size);
}

Result<torch::Tensor> DecodeFeature(const FeatureCodec& codec, const uint8_t* data, size_t size,
                                    const FrameLimits& limits) {
  SI_ASSIGN_OR_RETURN(FrameView view, ParseFrame(data, size, limits));
  return DecodeFrame(codec, view);
}

Result<torch::Tensor> Reconstruct(const FeatureCodec& codec, const torch::Tensor& feature) {
  SI_ASSIGN_OR_RETURN(QuantizedMap q, Quantize(codec.quant, feature));
  return Dequantize(codec.quant, q.symbols.data(), q.symbols.size(), q.side_info.data(), q.side_info.size());
}

}  // namespace splitinfer::codec
