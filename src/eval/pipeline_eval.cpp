#include "eval/pipeline_eval.h"

#include "bottleneck/faces.h"

#include <chrono>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "codec/lossless/lossless.h"
#include "codec/quantize/quantize.h"
#include "core/progress.h"
#include "data/datasets.h"
#include "data/transforms.h"
#include "eval/detection/detector.h"

namespace splitinfer::eval {

namespace {

// The wire path for batches of images: node features, one real frame per image with each codec
// (the pipeline's first, then the extra coders: bytes only), the pipeline's frames decoded from
// their bytes and finished on the server. Counts bytes as it goes.
class WirePath {
 public:
  WirePath(bottleneck::Pipeline& pipeline, std::vector<codec::FeatureCodec> codecs)
      : node_(pipeline), server_(pipeline), codecs_(std::move(codecs)),
        bytes_(codecs_.size(), 0.0), header_(codecs_.size(), 0.0) {}

  static Result<WirePath> For(bottleneck::Pipeline& pipeline, const std::vector<std::string>& extra_coders) {
    std::vector<codec::FeatureCodec> codecs{pipeline.codec()};
    for (const auto& name : extra_coders) {
      if (name == pipeline.spec().coder) continue;
      codec::FeatureCodec c = pipeline.codec();
      SI_ASSIGN_OR_RETURN(c.coder, codec::CoderFromName(name));
      c.coder_options = {};
      codecs.push_back(c);
    }
    pipeline.set_eval_all();
    return WirePath(pipeline, std::move(codecs));
  }

  // The server's output for normalised images x [B, C, H, W].
  Result<torch::Tensor> Run(const torch::Tensor& x) {
    SI_ASSIGN_OR_RETURN(torch::Tensor features, node_.Features(x));
    if (wire_shape_.empty()) wire_shape_.assign(features.sizes().begin() + 1, features.sizes().end());
    std::vector<torch::Tensor> decoded;
    decoded.reserve(static_cast<size_t>(features.size(0)));
    for (int64_t i = 0; i < features.size(0); ++i) {
      const auto f = features[i];
      for (size_t c = 0; c < codecs_.size(); ++c) {
        SI_ASSIGN_OR_RETURN(auto enc, node_.Encode(f, &codecs_[c]));
        bytes_[c] += static_cast<double>(enc.frame.size());
        SI_ASSIGN_OR_RETURN(auto view, codec::ParseFrame(enc.frame.data(), enc.frame.size()));
        header_[c] += static_cast<double>(enc.frame.size() - view.payload_size);
        if (c == 0) {
          order0_ += codec::Order0Bytes(enc.symbols.data(), enc.symbols.size(), codecs_[0].quant.spec.bits);
          SI_ASSIGN_OR_RETURN(auto back, server_.Decode(enc.frame.data(), enc.frame.size()));
          decoded.push_back(back);
        }
      }
    }
    return server_.Scores(torch::stack(decoded));
  }

  // Bytes per image over the `n` images run.
  void Fill(PipelineEvalResult& r, int64_t n) const {
    r.images = n;
    r.order0_bytes = order0_ / static_cast<double>(n);
    r.wire_shape = wire_shape_;
    for (size_t c = 0; c < codecs_.size(); ++c) {
      r.coders.push_back({codec::CoderName(codecs_[c].coder), bytes_[c] / n, header_[c] / n});
    }
  }

 private:
  bottleneck::NodeFace node_;
  bottleneck::ServerFace server_;
  std::vector<codec::FeatureCodec> codecs_;
  std::vector<double> bytes_, header_;
  double order0_ = 0;
  std::vector<int64_t> wire_shape_;
};

}  // namespace

Result<PipelineEvalResult> EvaluatePipeline(bottleneck::Pipeline& pipeline, const data::Dataset& dataset,
                                            const PipelineEvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  SI_RETURN_IF_ERROR(models::RequireClassifier(pipeline.model_meta(), "this evaluation of top-1"));
  const int64_t n = options.limit > 0 ? std::min(options.limit, dataset.size()) : dataset.size();
  if (n == 0) return InvalidArgument("the dataset is empty");
  SI_ASSIGN_OR_RETURN(WirePath wire, WirePath::For(pipeline, options.extra_coders));
  int64_t correct = 0;
  torch::NoGradGuard no_grad;
  ProgressBar bar(stderr, "eval " + pipeline.spec().name, (n + options.batch_size - 1) / options.batch_size,
                  options.progress ? 0.5 : 1e9);
  for (int64_t begin = 0, step = 0; begin < n; begin += options.batch_size, ++step) {
    const int64_t end = std::min(n, begin + options.batch_size);
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < end; ++i) idx.push_back(i);
    SI_ASSIGN_OR_RETURN(auto batch, dataset.batch(idx));
    auto x = data::ToFloatNormalized(batch.first, pipeline.normalization()).to(options.device);
    SI_ASSIGN_OR_RETURN(torch::Tensor logits, wire.Run(x));
    correct += logits.argmax(1).to(torch::kCPU).eq(batch.second).sum().item<int64_t>();
    if (options.progress) bar.update(step + 1, end, "top1 " + std::to_string(100.0 * correct / end).substr(0, 5) + "%");
  }
  PipelineEvalResult r;
  wire.Fill(r, n);
  r.top1 = 100.0 * static_cast<double>(correct) / static_cast<double>(n);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.progress) bar.finish("top1 " + std::to_string(r.top1).substr(0, 5) + "%");
  return r;
}

Result<PipelineEvalResult> EvaluateDetectorPipeline(bottleneck::Pipeline& pipeline,
                                                    const data::CocoDetectionDataset& dataset,
                                                    const PipelineEvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  SI_ASSIGN_OR_RETURN(WirePath wire, WirePath::For(pipeline, options.extra_coders));
  DetectorEvalOptions o;
  o.batch_size = options.batch_size;
  o.limit = options.limit;
  o.device = options.device;
  o.progress = options.progress;
  torch::NoGradGuard no_grad;
  SI_ASSIGN_OR_RETURN(auto ev, EvaluateDetector([&wire](const torch::Tensor& x) { return wire.Run(x); }, dataset,
                                                pipeline.model_meta(), o));
  PipelineEvalResult r;
  wire.Fill(r, ev.images);
  r.top1 = -1;
  r.detection = ev.metrics;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

Result<codec::CabacModel> TrainPipelineCabacModel(bottleneck::Pipeline& pipeline, const data::Dataset& train,
                                                  int64_t images, int64_t batch_size) {
  if (images < 1) return InvalidArgument("train-cabac needs at least 1 image (--images)");
  if (batch_size < 1) return InvalidArgument("batch size must be >= 1");
  torch::NoGradGuard no_grad;
  pipeline.set_eval_all();
  const int64_t n = std::min(images, train.size());
  const auto& quant = pipeline.codec().quant;
  std::vector<std::vector<uint8_t>> maps;
  maps.reserve(static_cast<size_t>(n));
  for (int64_t b0 = 0; b0 < n; b0 += batch_size) {
    std::vector<int64_t> idx;
    for (int64_t i = b0; i < std::min(n, b0 + batch_size); ++i) idx.push_back(i);
    SI_ASSIGN_OR_RETURN(auto batch, train.batch(idx));
    const auto x = data::ToFloatNormalized(batch.first, pipeline.normalization()).to(pipeline.device());
    SI_ASSIGN_OR_RETURN(const auto features, bottleneck::NodeFace(pipeline).Features(x));
    for (int64_t i = 0; i < features.size(0); ++i) {
      SI_ASSIGN_OR_RETURN(codec::QuantizedMap q, codec::Quantize(quant, features[i]));
      maps.push_back(std::move(q.symbols));
    }
  }
  std::vector<const uint8_t*> ptrs;
  for (const auto& m : maps) ptrs.push_back(m.data());
  return codec::TrainCabacModel(ptrs, codec::GeometryOf(pipeline.codec().header()));
}

}  // namespace splitinfer::eval
