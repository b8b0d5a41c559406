// Fuzz target: a frame through DecodeFeature, the server's whole frame path up to the tensor the
// compensator or tail receives (ParseFrame, the pipeline checks, DecodeSymbols, Dequantize with
// the frame's side information). Needs LibTorch, so it is replayed by the main build's ctest
// (decode_feature_fuzz_replay over corpus/frame and corpus/decode_feature) rather than run in
// the sanitizer lane; `tests/fuzz/README.md` says how to fuzz it with clang.
//
// The quantizer is built from the frame's own header (calibrated on random maps for static
// ranges), so that a hostile frame passes the pipeline checks and its side information (ranges
// or centroids as float16, any bit pattern: NaN, infinities, lo > hi) reaches Dequantize. The
// result must be an error with a message, or a tensor of the frame's dims whose every value is
// finite.
#include <cmath>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "codec/feature_codec.h"
#include "codec/frame/frame.h"
#include "codec/quantize/quantize.h"
#include "fuzz_common.h"
#include "fuzz_fail.h"

namespace {

using namespace splitinfer;
using namespace splitinfer::codec;

[[noreturn]] void Fail(const char* what, const Status& s) { splitinfer_fuzz::Fail("decode_feature_fuzz", what, s); }

constexpr uint64_t kMaxElements = uint64_t{1} << 16;  // calibration and dequantization stay cheap

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = [] {
    torch::set_num_threads(1);
    return true;
  }();
  (void)once;
  Result<FrameView> view = ParseFrame(data, size);
  if (!view.ok()) return 0;  // frame_fuzz covers the parser's refusals
  const FrameHeader& h = view->header;
  if (ElementCount(h.dims) > kMaxElements) return 0;
  QuantSpec spec;
  spec.bits = h.quant.bits;
  spec.range = h.quant.range;
  spec.granularity = h.quant.granularity;
  spec.reconstruction = h.quant.reconstruction;
  spec.params_in_frame = h.quant.params_in_frame;
  for (int k = 0; k < 3; ++k) spec.region[k] = h.quant.region[k];
  if (!ValidateSpec(spec).ok()) return 0;
  std::vector<int64_t> shape{2};
  for (uint32_t d : h.dims) shape.push_back(d);
  torch::manual_seed(static_cast<uint64_t>(size));
  Result<QuantParams> quant = Calibrate(spec, torch::randn(shape).relu());
  if (!quant.ok()) return 0;  // e.g. a region tile larger than the map
  FeatureCodec codec{quant.value(), h.coder, {}, h.pipeline_id};
  codec.coder_options.cabac_model = splitinfer_fuzz::CabacModelFor(GeometryOf(h));
  Result<torch::Tensor> decoded = DecodeFeature(codec, data, size);
  if (!decoded.ok()) {
    if (decoded.status().message().empty()) Fail("an error without a message", decoded.status());
    return 0;
  }
  const torch::Tensor& t = decoded.value();
  if (t.dim() != static_cast<int64_t>(h.dims.size())) Fail("decoded rank differs from the frame's", Status::Ok());
  for (size_t i = 0; i < h.dims.size(); ++i) {
    if (t.size(static_cast<int64_t>(i)) != static_cast<int64_t>(h.dims[i])) Fail("decoded dims differ", Status::Ok());
  }
  if (!torch::isfinite(t).all().item<bool>()) Fail("a decoded value is not finite", Status::Ok());
  return 0;
}
