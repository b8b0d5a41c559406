#include "plan/validate.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bottleneck/model_data.h"
#include "bottleneck/pipeline.h"
#include "codec/quantize/quantize.h"
#include "data/datasets.h"
#include "data/transforms.h"
#include "models/checkpoint.h"
#include "models/model_ref.h"
#if SPLITINFER_WITH_RUNTIME
#include "runtime/node.h"
#include "runtime/server.h"
#endif

namespace splitinfer::plan {

namespace fs = std::filesystem;

nlohmann::json Validation::ToJson() const {
  return {{"rate_bytes_per_s", rate}, {"kind", kind},
          {"name", name},             {"predicted_ms", predicted_ms},
          {"measured_median_ms", measured_median_ms}, {"measured_p95_ms", measured_p95_ms},
          {"error_pct", error_pct},   {metric, score},
          {"predicted_stages_ms",
           {{"node", predicted_node_ms}, {"encode", predicted_encode_ms}, {"link", predicted_link_ms},
            {"server", predicted_server_ms}}},
          {"measured_stages_ms",
           {{"node", measured_node_ms}, {"encode", measured_encode_ms}, {"link", measured_link_ms},
            {"server", measured_server_ms}}}};
}

#if SPLITINFER_WITH_RUNTIME

namespace {

// A pipeline file for a plain-PTQ choice: the checkpoint, the split, a calibrated quantizer.
Result<std::string> PtqPipeline(const Choice& c, const ValidateOptions& o) {
  const std::string stem = c.split + "_b" + std::to_string(c.bits) + "_" + c.granularity + "_" + c.coder;
  const fs::path yaml = fs::path(o.work_dir) / (stem + ".yaml");
  if (fs::exists(yaml)) return yaml.string();
  torch::NoGradGuard g;
  SI_ASSIGN_OR_RETURN(auto loaded, models::OpenModel(o.checkpoint, torch::kCPU));
  SI_ASSIGN_OR_RETURN(auto split, loaded.net->find_split(c.split));
  SI_ASSIGN_OR_RETURN(auto train, bottleneck::OpenDatasetFor(loaded.meta, o.data, data::Split::kTrain));
  std::vector<int64_t> idx(static_cast<size_t>(std::min<int64_t>(512, train->size())));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  SI_ASSIGN_OR_RETURN(auto batch, train->batch(idx));
  const auto f = loaded.net->head(data::ToFloatNormalized(batch.first, {loaded.meta.norm_mean, loaded.meta.norm_std}),
                                    split);
  codec::QuantSpec spec;
  spec.bits = c.bits;
  SI_ASSIGN_OR_RETURN(spec.granularity, codec::GranularityFromName(c.granularity));
  spec.clip = codec::ClipMethod::kMse;
  spec.range = f.min().item<float>() < 0 ? codec::RangeKind::kSymmetric : codec::RangeKind::kZeroBased;
  SI_ASSIGN_OR_RETURN(auto quant, codec::Calibrate(spec, f.contiguous()));
  std::ofstream(fs::path(o.work_dir) / (stem + ".quant.json")) << codec::ToJson(quant).dump(1) << "\n";
  bottleneck::PipelineSpec s;
  s.name = stem;
  // A file by its absolute path (the server may run elsewhere in the tree); a zoo name as it is
  // (random weights from the zoo's fixed seed: the same in every process).
  s.model = fs::exists(o.checkpoint) ? fs::absolute(o.checkpoint).string() : o.checkpoint;
  s.split = c.split;
  s.quantizer = stem + ".quant.json";
  s.coder = c.coder;
  SI_RETURN_IF_ERROR(bottleneck::SavePipelineSpec(yaml.string(), s));
  return yaml.string();
}

}  // namespace

namespace {

// Every pipeline the plans need, by choice name.
Result<std::map<std::string, std::string>> PipelinesFor(const std::vector<RatePlan>& plans, const ValidateOptions& o) {
  if (o.checkpoint.empty()) return InvalidArgument("--validate needs --checkpoint FILE (the profiled model)");
  std::error_code ec;
  fs::create_directories(o.work_dir, ec);
  if (ec) return IoError("cannot create " + o.work_dir + ": " + ec.message());
  std::map<std::string, std::string> file_of;  // choice name -> pipeline file
  for (const auto& p : plans) {
    if (!p.has_split) continue;
    if (p.best_split.kind == "split") {
      SI_ASSIGN_OR_RETURN(file_of[p.best_split.name], PtqPipeline(p.best_split, o));
    } else {
      file_of[p.best_split.name] = p.best_split.pipeline_file;
    }
  }
  if (file_of.empty()) {
    // Only baselines won: they still need a pipeline of the model to name it.
    Choice any;
    any.kind = "split";
    any.split = "stem";
    any.bits = 8;
    any.granularity = "tensor";
    any.coder = "zstd";
    any.name = "baseline";
    SI_ASSIGN_OR_RETURN(file_of[any.name], PtqPipeline(any, o));
  }
  return file_of;
}

}  // namespace

Result<std::string> PrepareServer(const std::vector<RatePlan>& plans, const ValidateOptions& o) {
  SI_ASSIGN_OR_RETURN(auto file_of, PipelinesFor(plans, o));
  const fs::path config = fs::path(o.work_dir) / "server.yaml";
  std::ofstream out(config);
  out << "# written by splitinfer plan --validate --prepare: serve with `splitinfer serve --config " << config.string()
      << "`\npipelines:\n";
  for (const auto& [name, file] : file_of) out << "  - " << fs::absolute(file).string() << "\n";
  out << "threads: " << o.threads << "\n";
  if (!out) return IoError("cannot write " + config.string());
  return config.string();
}

Result<std::vector<Validation>> Validate(const std::vector<RatePlan>& plans, const ValidateOptions& o) {
  SI_ASSIGN_OR_RETURN(auto file_of, PipelinesFor(plans, o));
  std::unique_ptr<runtime::Server> server;
  std::string address = o.server;
  if (address.empty()) {
    runtime::ServerConfig sc;
    for (const auto& [name, file] : file_of) sc.pipelines.push_back(file);
    sc.listen = "127.0.0.1:0";
    sc.threads = o.threads;
    SI_ASSIGN_OR_RETURN(server, runtime::Server::Start(sc));
    address = "127.0.0.1:" + std::to_string(server->port());
  }
  std::vector<Validation> out;
  for (const auto& p : plans) {
    // The best split (whether or not a baseline beats it) and both baselines.
    std::vector<const Choice*> choices = {&p.server_only, &p.node_only};
    if (p.has_split) choices.insert(choices.begin(), &p.best_split);
    for (const Choice* c : choices) {
      runtime::NodeOptions no;
      no.server = address;
      no.pipeline = c->kind == "split" || c->kind == "pipeline" ? file_of.at(c->name) : file_of.begin()->second;
      no.mode = c->kind == "server-only" ? "server-only" : c->kind == "node-only" ? "node-only" : "split";
      no.threads = o.threads;
      no.progress = false;
      no.data = o.data;
      // The transport the plan modelled (its call cost and bytes are the profile's for it);
      // server-only sends PNG in unary calls either way.
      no.transport = o.transport;
      no.image_format = o.image_format;
      no.jpeg_quality = o.jpeg_quality;
      // Warm-up: first calls pay for connection set-up and allocator growth.
      no.limit = 20;
      SI_RETURN_IF_ERROR(runtime::RunNode(no).status());
      no.limit = o.images;
      no.link.rate_bytes_per_s = p.rate;
      no.link.rtt_s = p.rtt_s;
      SI_ASSIGN_OR_RETURN(auto rep, runtime::RunNode(no));
      Validation v;
      v.rate = p.rate;
      v.kind = c->kind;
      v.name = c->name;
      v.predicted_ms = c->total_ms;
      v.measured_median_ms = rep.total.median_ms;
      v.measured_p95_ms = rep.total.p95_ms;
      v.error_pct = 100.0 * (v.predicted_ms - v.measured_median_ms) / v.measured_median_ms;
      v.metric = rep.task == "detect" ? "ap50" : "top1";
      v.score = rep.task == "detect" ? 100.0 * rep.coco.ap50 : rep.top1;
      v.predicted_node_ms = c->node_ms;
      v.predicted_encode_ms = c->encode_ms;
      v.predicted_link_ms = c->transmit_ms + c->rtt_ms + c->call_ms;
      v.predicted_server_ms = c->decode_ms + c->server_ms;
      v.measured_node_ms = rep.node_compute.median_ms;
      v.measured_encode_ms = rep.encode.median_ms;
      v.measured_link_ms = rep.transmit.median_ms;
      v.measured_server_ms = rep.server.median_ms;
      if (o.progress) {
        std::fprintf(stderr, "validate %g MB/s %-11s %-28s predicted %8.2f ms measured %8.2f ms (%+.1f %%)\n",
                     p.rate / 1e6, v.kind.c_str(), v.name.c_str(), v.predicted_ms, v.measured_median_ms, v.error_pct);
      }
      out.push_back(v);
    }
  }
  if (server) server->Shutdown(5);
  return out;
}

#else  // !SPLITINFER_WITH_RUNTIME

Result<std::string> PrepareServer(const std::vector<RatePlan>&, const ValidateOptions&) {
  return Unimplemented("plan --validate --prepare writes pipelines for the runtime, which this build lacks: install "
                       "libgrpc++-dev, protobuf-compiler-grpc, prometheus-cpp-dev and libpng-dev, then rebuild");
}

Result<std::vector<Validation>> Validate(const std::vector<RatePlan>&, const ValidateOptions&) {
  return Unimplemented("plan --validate runs the choices through the runtime, which this build lacks: install "
                       "libgrpc++-dev, protobuf-compiler-grpc, prometheus-cpp-dev and libpng-dev, then rebuild");
}

#endif  // SPLITINFER_WITH_RUNTIME

}  // namespace splitinfer::plan
