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

namespace splitinfer::eval {

Result<PipelineEvalResult> EvaluatePipeline(bottleneck::Pipeline& pipeline, const data::Dataset& dataset,
                                            const PipelineEvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<codec::FeatureCodec> codecs{pipeline.codec()};
  for (const auto& name : options.extra_coders) {
    if (name == pipeline.spec().coder) continue;
    codec::FeatureCodec c = pipeline.codec();
    SI_ASSIGN_OR_RETURN(c.coder, codec::CoderFromName(name));
    c.coder_options = {};
    codecs.push_back(c);
  }
  const int64_t n = options.limit > 0 ? std::min(options.limit, dataset.size()) : dataset.size();
  if (n == 0) return InvalidArgument("the dataset is empty");
  PipelineEvalResult r;
  std::vector<double> bytes(codecs.size(), 0.0), header(codecs.size(), 0.0);
  double order0 = 0;
  int64_t correct = 0;
  pipeline.set_eval_all();
  torch::NoGradGuard no_grad;
  bottleneck::NodeFace node(pipeline);
  bottleneck::ServerFace server(pipeline);
  ProgressBar bar(stderr, "eval " + pipeline.spec().name, (n + options.batch_size - 1) / options.batch_size,
                  options.progress ? 0.5 : 1e9);
  for (int64_t begin = 0, step = 0; begin < n; begin += options.batch_size, ++step) {
    const int64_t end = std::min(n, begin + options.batch_size);
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < end; ++i) idx.push_back(i);
    SI_ASSIGN_OR_RETURN(auto batch, dataset.batch(idx));
    auto x = data::ToFloatNormalized(batch.first, pipeline.normalization()).to(options.device);
    SI_ASSIGN_OR_RETURN(torch::Tensor features, node.Features(x));
    if (r.wire_shape.empty()) r.wire_shape.assign(features.sizes().begin() + 1, features.sizes().end());
    std::vector<torch::Tensor> decoded;
    decoded.reserve(static_cast<size_t>(end - begin));
    for (int64_t i = 0; i < end - begin; ++i) {
      const auto f = features[i];
      for (size_t c = 0; c < codecs.size(); ++c) {
        SI_ASSIGN_OR_RETURN(auto enc, node.Encode(f, &codecs[c]));
        bytes[c] += static_cast<double>(enc.frame.size());
        SI_ASSIGN_OR_RETURN(auto view, codec::ParseFrame(enc.frame.data(), enc.frame.size()));
        header[c] += static_cast<double>(enc.frame.size() - view.payload_size);
        if (c == 0) {
          order0 += codec::Order0Bytes(enc.symbols.data(), enc.symbols.size(), codecs[0].quant.spec.bits);
          SI_ASSIGN_OR_RETURN(auto back, server.Decode(enc.frame.data(), enc.frame.size()));
          decoded.push_back(back);
        }
      }
    }
    SI_ASSIGN_OR_RETURN(torch::Tensor logits, server.Scores(torch::stack(decoded)));
    correct += logits.argmax(1).to(torch::kCPU).eq(batch.second).sum().item<int64_t>();
    if (options.progress) bar.update(step + 1, end, "top1 " + std::to_string(100.0 * correct / end).substr(0, 5) + "%");
  }
  r.images = n;
  r.top1 = 100.0 * static_cast<double>(correct) / static_cast<double>(n);
  r.order0_bytes = order0 / static_cast<double>(n);
  for (size_t c = 0; c < codecs.size(); ++c) {
    r.coders.push_back({codec::CoderName(codecs[c].coder), bytes[c] / n, header[c] / n});
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.progress) bar.finish("top1 " + std::to_string(r.top1).substr(0, 5) + "%");
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
