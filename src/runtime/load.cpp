#include "runtime/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <torch/torch.h>

#include "bottleneck/faces.h"
#include "bottleneck/model_data.h"
#include "bottleneck/pipeline.h"
#include "core/system.h"
#include "data/datasets.h"
#include "data/detection.h"
#include "models/checkpoint.h"
#include "data/transforms.h"
#include "runtime/node.h"
#include "runtime/proto/inference.grpc.pb.h"
#include "runtime/wire.h"

namespace splitinfer::runtime {

using Clock = std::chrono::steady_clock;

namespace {
// 0 when the process cannot be read (gone, or no /proc): the report then shows no figure.
double ResidentMiB(int64_t pid) {
  const std::optional<ProcessUsage> usage = ReadProcessUsage(pid);
  return usage ? usage->resident_mib : 0;
}
}  // namespace

nlohmann::json LoadLevel::ToJson() const {
  return {{"concurrency", concurrency}, {"seconds", seconds},       {"ok", ok},
          {"errors", errors},           {"throughput", throughput}, {"p50_ms", p50_ms},
          {"p95_ms", p95_ms},           {"p99_ms", p99_ms},         {"refused_p50_ms", refused_p50_ms},
          {"rss_before_mb", rss_before_mb}, {"rss_after_mb", rss_after_mb}};
}


Result<std::vector<LoadLevel>> RunLoad(const LoadOptions& o) {
  if (o.pipeline.empty()) return InvalidArgument("load needs --pipeline FILE (frames are made with its node side)");
  if (o.concurrency.empty()) return InvalidArgument("load needs at least one concurrency level");
  for (int c : o.concurrency) {
    if (c < 1 || c > 4096) return InvalidArgument("concurrency levels must be 1..4096, got " + std::to_string(c));
  }
  SI_ASSIGN_OR_RETURN(const std::shared_ptr<grpc::ChannelCredentials> creds, ChannelCredentialsFor(o.tls));
  // The frames: the node side of the pipeline on the first test images.
  std::vector<std::string> requests;
  std::string model;
  {
    torch::NoGradGuard g;
    SI_ASSIGN_OR_RETURN(auto pipeline, bottleneck::Pipeline::Load(o.pipeline, torch::kCPU));
    model = pipeline.spec().name;
    // The first test images: a classifier's as its dataset gives them, a detector's letterboxed
    // to its input (answered with boxes at the server's default threshold).
    const bool detector = models::IsDetector(pipeline.model_meta());
    torch::Tensor images;
    if (detector) {
      SI_ASSIGN_OR_RETURN(auto scenes,
                          bottleneck::OpenDetectionDataFor(pipeline.model_meta(), o.data, data::Split::kTest, o.progress));
      const int64_t n = std::min<int64_t>(std::max<int64_t>(o.frames, 1), scenes->size());
      std::vector<torch::Tensor> list;
      for (int64_t i = 0; i < n; ++i) {
        SI_ASSIGN_OR_RETURN(auto sample, scenes->sample(i));
        list.push_back(sample.image);
      }
      images = torch::stack(list);
    } else {
      SI_ASSIGN_OR_RETURN(auto data, bottleneck::OpenDatasetFor(pipeline.model_meta(), o.data, data::Split::kTest));
      const int64_t n = std::min<int64_t>(std::max<int64_t>(o.frames, 1), data->size());
      std::vector<int64_t> idx(n);
      for (int64_t i = 0; i < n; ++i) idx[i] = i;
      SI_ASSIGN_OR_RETURN(auto batch, data->batch(idx));
      images = batch.first;
    }
    const int64_t n = images.size(0);
    bottleneck::NodeFace node(pipeline);
    SI_ASSIGN_OR_RETURN(auto f, node.Features(data::ToFloatNormalized(images, pipeline.normalization())));
    for (int64_t i = 0; i < n; ++i) {
      SI_ASSIGN_OR_RETURN(auto enc, node.Encode(f[i]));
      inference::ModelInferRequest q;
      q.set_model_name(model);
      auto* in = q.add_inputs();
      in->set_name(kInputFrame);
      in->set_datatype("BYTES");
      in->add_shape(1);
      in->mutable_contents()->add_bytes_contents(std::string(enc.frame.begin(), enc.frame.end()));
      if (!detector) q.add_outputs()->set_name(kOutputScores);
      requests.push_back(q.SerializeAsString());
    }
  }
  std::vector<LoadLevel> levels;
  for (int c : o.concurrency) {
    LoadLevel level;
    level.concurrency = c;
    if (o.server_pid > 0) level.rss_before_mb = ResidentMiB(o.server_pid);
    // One channel per client, as separate nodes would have (and so no shared HTTP/2 connection).
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::vector<double> ok_s, refused_s;
    std::vector<std::thread> clients;
    const auto start = Clock::now();
    for (int k = 0; k < c; ++k) {
      clients.emplace_back([&, k] {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        auto stub = inference::GRPCInferenceService::NewStub(
            grpc::CreateCustomChannel(o.server, creds, args));
        std::vector<double> my_ok, my_refused;
        std::map<std::string, int64_t> my_errors;
        inference::ModelInferRequest q;
        for (size_t i = static_cast<size_t>(k); !stop.load(); i += static_cast<size_t>(c)) {
          q.ParseFromString(requests[i % requests.size()]);
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(static_cast<int64_t>(o.deadline_s * 1000)));
          if (!o.token.empty()) ctx.AddMetadata("authorization", "Bearer " + o.token);
          inference::ModelInferResponse r;
          const auto t0 = Clock::now();
          const grpc::Status s = stub->ModelInfer(&ctx, q, &r);
          const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
          if (s.ok()) {
            my_ok.push_back(dt);
          } else {
            ++my_errors[GrpcCodeName(s.error_code())];
            if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) my_refused.push_back(dt);
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        ok_s.insert(ok_s.end(), my_ok.begin(), my_ok.end());
        refused_s.insert(refused_s.end(), my_refused.begin(), my_refused.end());
        for (const auto& [code, n] : my_errors) level.errors[code] += n;
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.duration_s));
    stop = true;
    for (auto& t : clients) t.join();
    level.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    level.ok = static_cast<int64_t>(ok_s.size());
    level.throughput = static_cast<double>(level.ok) / level.seconds;
    level.p50_ms = PercentileMs(ok_s, 0.50);
    level.p95_ms = PercentileMs(ok_s, 0.95);
    level.p99_ms = PercentileMs(ok_s, 0.99);
    level.refused_p50_ms = PercentileMs(refused_s, 0.50);
    if (o.server_pid > 0) level.rss_after_mb = ResidentMiB(o.server_pid);
    if (o.progress) {
      int64_t errors = 0;
      for (const auto& [code, n] : level.errors) errors += n;
      std::fprintf(stderr, "load c=%d: %.1f req/s, p50 %.2f ms, p99 %.2f ms, %lld errors\n", c, level.throughput,
                   level.p50_ms, level.p99_ms, static_cast<long long>(errors));
    }
    levels.push_back(level);
  }
  return levels;
}

}  // namespace splitinfer::runtime
