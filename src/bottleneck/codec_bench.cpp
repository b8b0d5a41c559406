#include "bottleneck/codec_bench.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bottleneck/faces.h"
#include "codec/frame/session.h"
#include "codec/lossless/cabac.h"
#include "core/stats.h"

namespace splitinfer::bottleneck {
using namespace codec;  // NOLINT: this file measures the codec, so its names are the codec's
namespace {
double MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

torch::Tensor SyntheticFeatures(int64_t n, const std::vector<int64_t>& shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<int64_t> full = {n};
  full.insert(full.end(), shape.begin(), shape.end());
  torch::Tensor x = torch::randn(full, gen);
  if (shape.size() == 3) {
    // Smooth each channel with a 5x5 box (blob-like activations), then give channels different
    // scales and biases so some are mostly off and some mostly on, as after a BN+ReLU stem.
    x = torch::avg_pool2d(x, /*kernel_size=*/5, /*stride=*/1, /*padding=*/2) * 2.2;
    auto scale = torch::rand({1, shape[0], 1, 1}, gen) * 1.5 + 0.25;
    auto bias = torch::randn({1, shape[0], 1, 1}, gen) * 0.5;
    x = x * scale + bias;
  } else {
    auto scale = torch::rand({1, shape.back()}, gen) + 0.5;
    x = x * scale.view({1, 1, -1}).expand_as(x.view({n, -1, shape.back()})).reshape(x.sizes());
  }
  return torch::relu(x);
}

nlohmann::json CodecBenchResult::ToJson() const {
  return {{"shape", shape},         {"bits", bits},           {"coder", coder}, {"frame_version", frame_version},
          {"frame_bytes", frame_bytes}, {"session_frame_bytes", session_frame_bytes}, {"order0_bytes", order0_bytes}, {"encode_ms", encode_ms},
          {"decode_ms", decode_ms},     {"max_abs_error", max_abs_error}, {"maps", maps}};
}

Result<CodecBenchResult> RunCodecBench(const torch::Tensor& features, const CodecBenchOptions& o) {
  if (features.dim() < 2 || features.size(0) < 2) {
    return InvalidArgument("codec bench needs at least 2 feature maps [N, ...] (half calibrate, half measure)");
  }
  if (o.repeats < 1) return InvalidArgument("repeats must be >= 1");
  const int64_t n = features.size(0), half = n / 2;
  auto x = features.to(torch::kCPU).to(torch::kFloat32).contiguous();
  auto calibration = x.slice(0, 0, half);
  SI_ASSIGN_OR_RETURN(QuantParams quant, Calibrate(o.spec, calibration));
  FeatureCodec codec{quant, o.coder, o.coder_options, /*pipeline_id=*/1};
  codec.frame_version = o.frame_version;
  std::unique_ptr<CabacModel> model;
  if (o.coder == CoderId::kCabacTrained && codec.coder_options.cabac_model == nullptr) {
    // Train the context model on the calibration half's symbols.
    std::vector<std::vector<uint8_t>> maps;
    for (int64_t i = 0; i < half; ++i) {
      SI_ASSIGN_OR_RETURN(QuantizedMap q, Quantize(quant, calibration[i]));
      maps.push_back(std::move(q.symbols));
    }
    std::vector<const uint8_t*> ptrs;
    for (const auto& m : maps) ptrs.push_back(m.data());
    SI_ASSIGN_OR_RETURN(CabacModel trained, TrainCabacModel(ptrs, GeometryOf(codec.header())));
    model = std::make_unique<CabacModel>(std::move(trained));
    codec.coder_options.cabac_model = model.get();
  }

  const CodecFace face(codec);
  CodecBenchResult r;
  r.shape.assign(x.sizes().begin() + 1, x.sizes().end());
  r.bits = o.spec.bits;
  r.coder = CoderName(o.coder);
  r.frame_version = o.frame_version;
  std::vector<double> enc_ms, dec_ms;
  double bytes = 0, session_bytes = 0, order0 = 0;
  for (int64_t i = half; i < n; ++i) {
    auto map = x[i].contiguous();
    EncodedFeature encoded;
    for (int rep = 0; rep < o.repeats; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      SI_ASSIGN_OR_RETURN(encoded, face.Encode(map));
      enc_ms.push_back(MsSince(t0));
    }
    torch::Tensor decoded;
    for (int rep = 0; rep < o.repeats; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      SI_ASSIGN_OR_RETURN(decoded, face.Decode(encoded.frame.data(), encoded.frame.size()));
      dec_ms.push_back(MsSince(t0));
    }
    bytes += static_cast<double>(encoded.frame.size());
    SI_ASSIGN_OR_RETURN(const size_t in_session, SessionFrameSize(encoded.frame.data(), encoded.frame.size()));
    session_bytes += static_cast<double>(in_session);
    order0 += Order0Bytes(encoded.symbols.data(), encoded.symbols.size(), o.spec.bits);
    r.max_abs_error = std::max(r.max_abs_error, (decoded - map).abs().max().item<double>());
  }
  r.maps = n - half;
  r.frame_bytes = bytes / static_cast<double>(r.maps);
  r.session_frame_bytes = session_bytes / static_cast<double>(r.maps);
  r.order0_bytes = order0 / static_cast<double>(r.maps);
  r.encode_ms = Median(enc_ms);
  r.decode_ms = Median(dec_ms);
  return r;
}

}  // namespace splitinfer::bottleneck
