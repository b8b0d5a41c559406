#include "eval/lowbit.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bottleneck/faces.h"
#include "bottleneck/model_data.h"
#include "bottleneck/pipeline.h"
#include "models/device.h"
#include "codec/feature_codec.h"
#include "core/progress.h"
#include "core/stats.h"
#include "data/datasets.h"
#include "data/transforms.h"
#include "models/build_info.h"
#include "models/checkpoint.h"
#include "models/lowbit/convert.h"
#include "models/zoo/zoo.h"

namespace splitinfer::eval {

namespace {

struct Model {
  std::shared_ptr<models::SplitModel> net;
  std::string ref, name, dataset;
  std::vector<int64_t> input_shape;
  data::Normalization norm;
  models::CheckpointMeta meta;
};

Result<Model> LoadModel(const std::string& what, const models::ModelMetaFlags& flags) {
  SI_ASSIGN_OR_RETURN(models::OpenedModel opened, models::OpenModel(what, torch::kCPU, flags));
  if (models::IsDetector(opened.meta)) {
    // Out of scope of the detection work (issue 18): the kernels have no LeakyReLU, and the
    // heads are scored by top-1 here.
    return Unimplemented(what + " is a detector (" + opened.meta.model +
                         "): its head (convolutions with LeakyReLU) has no low-bit form; run a detector's head with "
                         "LibTorch (docs/head_format.md)");
  }
  Model m;
  m.net = opened.net;
  m.ref = what;
  m.name = opened.meta.model;
  // A zoo model has random weights: no dataset to calibrate on or score against.
  m.dataset = opened.kind == models::ModelKind::kZoo ? "" : opened.meta.dataset;
  m.input_shape = opened.meta.input_shape;
  m.norm = {opened.meta.norm_mean, opened.meta.norm_std};
  m.meta = opened.meta;
  return m;
}

// Normalised images for calibration (or timing): the first training images of `data` (a
// dataset reference) or else of the model's own dataset, else (a zoo model: random weights)
// smooth random images (a blurred noise field, fixed seed).
Result<torch::Tensor> CalibrationImages(const Model& m, int64_t n, const std::string& data) {
  if (!data.empty() || !m.dataset.empty()) {
    SI_ASSIGN_OR_RETURN(auto train, bottleneck::OpenDatasetFor(m.meta, data, data::Split::kTrain));
    std::vector<int64_t> idx(static_cast<size_t>(std::min<int64_t>(n, train->size())));
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
    SI_ASSIGN_OR_RETURN(auto batch, train->batch(idx));
    return data::ToFloatNormalized(batch.first, m.norm);
  }
  const auto u8 = data::SmoothRandomImages(n, m.input_shape[0], m.input_shape[1], m.input_shape[2], /*seed=*/7);
  return data::ToFloatNormalized(u8, m.norm);
}


}  // namespace

nlohmann::json QuantizeHeadReport::ToJson() const {
  return {{"model", model}, {"split", split}, {"out", out}, {"convs", convs}, {"weight_bytes", weight_bytes},
          {"float_graph_error", float_graph_error}, {"stopped", stopped}};
}

Result<QuantizeHeadReport> QuantizeHead(const QuantizeHeadOptions& o) {
  if (o.out.empty()) return InvalidArgument("quantize-head needs --out FILE");
  if (o.calibration_images < 1) return InvalidArgument("--calibration must be at least 1 image");
  torch::NoGradGuard no_grad;
  SI_ASSIGN_OR_RETURN(Model m, LoadModel(o.checkpoint, o.model_flags));
  SI_ASSIGN_OR_RETURN(auto split, m.net->find_split(o.split));
  SI_ASSIGN_OR_RETURN(auto graph, models::lowbit::ExtractHead(*m.net, m.name, split, m.input_shape));
  SI_ASSIGN_OR_RETURN(auto images, CalibrationImages(m, o.calibration_images, o.data));
  QuantizeHeadReport r;
  r.model = m.name;
  r.split = o.split;
  r.out = o.out;
  // The float graph must be the LibTorch head before anything is quantized.
  SI_ASSIGN_OR_RETURN(r.float_graph_error,
                      models::lowbit::CheckAgainstTorch(graph, *m.net, split, images.narrow(0, 0, std::min<int64_t>(2, images.size(0)))));
  if (r.float_graph_error > 1e-3) {
    return Internal("the extracted head of " + m.name + " differs from LibTorch's by " +
                    std::to_string(r.float_graph_error) + " (relative): its blocks are not what the converter assumes");
  }
  if (o.finetune) {
    SI_ASSIGN_OR_RETURN(const bool tuned, o.finetune(graph));
    if (!tuned) {
      r.stopped = true;
      return r;
    }
  }
  std::vector<kernels::Tensor3> calib;
  for (int64_t i = 0; i < images.size(0); ++i) calib.push_back(models::lowbit::ToTensor3(images[i]));
  SI_RETURN_IF_ERROR(kernels::QuantizeGraph(graph, calib, o.quant));
  for (const auto& op : graph.ops) {
    if (op.kind != kernels::HeadOpKind::kConv || !op.quantized) continue;
    ++r.convs;
    r.weight_bytes += static_cast<int64_t>((op.quant.weight_codes.size() * op.quant.wbits + 7) / 8);
  }
  SI_RETURN_IF_ERROR(kernels::SaveHead(o.out, graph));
  return r;
}

nlohmann::json HeadEvalReport::ToJson() const {
  nlohmann::json j = {{"model", model},           {"split", split},           {"impl", impl},
                      {"wbits", wbits},           {"abits", abits},           {"group_size", group_size},
                      {"act_ranges", act_ranges},
                      {"images", images},         {"top1_float_head", top1_float}, {"top1_lowbit_head", top1_lowbit},
                      {"loss_pp", top1_float - top1_lowbit}};
  if (!pipeline.empty()) {
    j["pipeline"] = pipeline;
    j["bytes_per_image"] = bytes_per_image;
  }
  return j;
}

Result<HeadEvalReport> EvaluateHead(const HeadEvalOptions& o) {
  torch::NoGradGuard no_grad;
  SI_ASSIGN_OR_RETURN(auto graph, kernels::LoadHead(o.head_file));
  SI_ASSIGN_OR_RETURN(auto head, kernels::QuantizedHead::Prepare(graph));
  if (o.impl == kernels::HeadImpl::kAuto) SI_RETURN_IF_ERROR(head.Tune());  // as the node does
  SI_ASSIGN_OR_RETURN(Model m, LoadModel(o.checkpoint, o.model_flags));
  if (m.name != graph.model) {
    return Mismatch("head file " + o.head_file + " is of " + graph.model + ", the checkpoint of " + m.name);
  }
  SI_ASSIGN_OR_RETURN(auto split, m.net->find_split(graph.split));
  std::unique_ptr<bottleneck::Pipeline> pipe;
  if (!o.pipeline.empty()) {
    SI_ASSIGN_OR_RETURN(auto p, bottleneck::Pipeline::Load(o.pipeline, torch::kCPU));
    if (p.model_meta().model != graph.model || p.split().name != graph.split) {
      return Mismatch("pipeline " + o.pipeline + " runs " + p.model_meta().model + " split at " + p.split().name +
                      ", the head file is " + graph.model + " up to " + graph.split);
    }
    pipe = std::make_unique<bottleneck::Pipeline>(std::move(p));
  }
  if (m.dataset.empty() && o.data.empty()) {
    return InvalidArgument("accuracy needs a trained model with a dataset (or --data), not a zoo name");
  }
  SI_ASSIGN_OR_RETURN(auto test, bottleneck::OpenDatasetFor(m.meta, o.data, data::Split::kTest));
  const int64_t n = o.limit > 0 ? std::min(o.limit, test->size()) : test->size();
  HeadEvalReport r;
  r.model = graph.model;
  r.split = graph.split;
  r.pipeline = o.pipeline;
  r.impl = kernels::HeadImplName(o.impl);
  for (const auto& op : graph.ops) {
    if (op.kind == kernels::HeadOpKind::kConv && op.quantized) {
      r.wbits = op.quant.wbits;
      r.abits = op.quant.abits;
      r.group_size = op.shape.group_size;
      if (op.quant.per_region_inputs()) r.act_ranges = "region";
    }
  }
  // Downstream of the head: the pipeline (encoder, frame round trip, decoder/compensator, tail)
  // or the model's tail. Returns predicted classes; adds the frame bytes to *bytes.
  double bytes = 0, ignored = 0;
  auto classify = [&](const torch::Tensor& head_out, double* out_bytes) -> Result<torch::Tensor> {
    if (!pipe) return m.net->tail(head_out, split).argmax(1);
    bottleneck::NodeFace node(*pipe);
    bottleneck::ServerFace server(*pipe);
    SI_ASSIGN_OR_RETURN(const auto f, node.FeaturesFromHead(head_out));
    std::vector<torch::Tensor> back;
    for (int64_t i = 0; i < f.size(0); ++i) {
      SI_ASSIGN_OR_RETURN(auto enc, node.Encode(f[i]));
      *out_bytes += static_cast<double>(enc.frame.size());
      SI_ASSIGN_OR_RETURN(auto d, server.Decode(enc.frame.data(), enc.frame.size()));
      back.push_back(d);
    }
    SI_ASSIGN_OR_RETURN(auto scores, server.Scores(torch::stack(back)));
    return scores.argmax(1);
  };
  int64_t correct_float = 0, correct_lowbit = 0;
  const auto& norm = pipe ? pipe->normalization() : m.norm;
  ProgressBar bar(stderr, "head " + r.impl, n, o.progress ? 0.5 : 1e9);
  const int64_t batch = 200;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t end = std::min(n, start + batch);
    std::vector<int64_t> idx;
    for (int64_t i = start; i < end; ++i) idx.push_back(i);
    SI_ASSIGN_OR_RETURN(auto b, test->batch(idx));
    const auto x = data::ToFloatNormalized(b.first, norm);
    const auto labels = b.second;
    SI_ASSIGN_OR_RETURN(auto pf, classify(m.net->head(x, split), &ignored));
    correct_float += pf.eq(labels).sum().item<int64_t>();
    std::vector<torch::Tensor> outs;
    for (int64_t i = 0; i < x.size(0); ++i) {
      SI_ASSIGN_OR_RETURN(auto y, head.Run(models::lowbit::ToTensor3(x[i]), o.impl));
      outs.push_back(models::lowbit::FromTensor3(y)[0]);
    }
    SI_ASSIGN_OR_RETURN(auto pl, classify(torch::stack(outs), &bytes));
    correct_lowbit += pl.eq(labels).sum().item<int64_t>();
    if (o.progress) bar.update(end, end, "low-bit " + std::to_string(100.0 * correct_lowbit / end).substr(0, 5) + "%");
  }
  if (o.progress) bar.finish("");
  r.images = n;
  r.top1_float = 100.0 * static_cast<double>(correct_float) / static_cast<double>(n);
  r.top1_lowbit = 100.0 * static_cast<double>(correct_lowbit) / static_cast<double>(n);
  r.bytes_per_image = pipe ? bytes / static_cast<double>(n) : 0;
  return r;
}

nlohmann::json HeadBenchReport::ToJson() const {
  nlohmann::json j = {{"impl", impl}, {"model", model}, {"split", split}, {"input", input},
                      {"median_ms", median_ms}, {"p95_ms", p95_ms}, {"runs", runs}};
  if (!kernel_path.empty()) j["kernel_path"] = kernel_path;
  j["compute"] = compute;
  if (!layers.empty()) {
    // What --impl auto chose per conv, from its own timing of both kernels.
    nlohmann::json l = nlohmann::json::array();
    for (const auto& t : layers)
      l.push_back({{"name", t.name}, {"int8_ms", t.int8_ms}, {"lut_ms", t.lut_ms}, {"kernel", t.lut ? "lut" : "int8"}});
    j["layers"] = l;
  }
  return j;
}

Result<HeadBenchReport> BenchHead(const HeadBenchOptions& o) {
  if (o.threads < 1) return InvalidArgument("--threads must be at least 1");
  if (o.runs < 1) return InvalidArgument("--runs must be at least 1");
  torch::NoGradGuard no_grad;
  models::ConfigureThreads(o.threads);
  SI_ASSIGN_OR_RETURN(Model m, LoadModel(o.checkpoint, o.model_flags));
  SI_ASSIGN_OR_RETURN(auto split, m.net->find_split(o.split));
  SI_ASSIGN_OR_RETURN(auto images, CalibrationImages(m, 1, o.data));
  HeadBenchReport r;
  r.compute = models::ComputeLine(models::DescribeCompute());
  r.impl = o.impl;
  r.model = m.name;
  r.split = o.split;
  r.input = std::to_string(m.input_shape[0]) + "x" + std::to_string(m.input_shape[1]) + "x" +
            std::to_string(m.input_shape[2]);
  if (!o.input.empty() && o.input != r.input) {
    return InvalidArgument("--input " + o.input + ": " + m.name + " takes " + r.input +
                           " (its head and any head file from it are built for that shape)");
  }
  std::vector<double> ms;
  using Clock = std::chrono::steady_clock;
  if (o.impl == "torch") {
    for (int i = 0; i < o.warmup + o.runs; ++i) {
      const auto t0 = Clock::now();
      auto y = m.net->head(images, split);
      const auto t1 = Clock::now();
      if (i >= o.warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  } else {
    auto parsed = kernels::ParseHeadImpl(o.impl);
    if (!parsed.ok()) return InvalidArgument(parsed.status().message() + " (or torch: LibTorch float)");
    const kernels::HeadImpl impl = *parsed;
    if (o.quantized.empty()) return InvalidArgument("--impl " + o.impl + " needs --quantized FILE (from quantize-head)");
    SI_ASSIGN_OR_RETURN(auto graph, kernels::LoadHead(o.quantized));
    if (graph.model != m.name || graph.split != o.split) {
      return Mismatch("head file " + o.quantized + " is " + graph.model + " up to " + graph.split + ", not " + m.name +
                      " up to " + o.split);
    }
    SI_ASSIGN_OR_RETURN(auto head, kernels::QuantizedHead::Prepare(graph, o.path));
    SI_RETURN_IF_ERROR(head.SetThreads(o.threads));
    r.kernel_path = kernels::KernelPathName(head.path());
    if (impl == kernels::HeadImpl::kAuto) {
      SI_RETURN_IF_ERROR(head.Tune());
      r.layers = head.timings();
    }
    const auto x = models::lowbit::ToTensor3(images[0]);
    for (int i = 0; i < o.warmup + o.runs; ++i) {
      const auto t0 = Clock::now();
      SI_ASSIGN_OR_RETURN(auto y, head.Run(x, impl));
      const auto t1 = Clock::now();
      if (i >= o.warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  }
  r.runs = o.runs;
  r.median_ms = Median(ms);
  r.p95_ms = Percentile(ms, 0.95);
  return r;
}

}  // namespace splitinfer::eval
