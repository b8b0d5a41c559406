// plan/validate: `splitinfer plan --validate`. The chosen configurations run through the real
// runtime (the node here, with the link emulated at each rate, against an in-process server on
// loopback or a running `serve` of the same pipelines) and the measured median end-to-end
// latency is set beside the prediction. Against a running server the node and the server can sit
// on other cores, another machine, or (bench/throttled_split.sh) a node slowed by a CPU quota:
// `plan --validate --prepare` writes the pipelines and the server config to start it with.
//
// A plain-PTQ choice becomes a pipeline here: the profiled checkpoint, the split, a quantizer
// calibrated (min-MSE clip) on training images, the coder. A trained pipeline is used as is.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "plan/planner.h"

namespace splitinfer::plan {

struct ValidateOptions {
  std::string checkpoint;     // the profiled model (a model reference: checkpoint, TorchScript file or zoo name)
  std::string data;           // a dataset reference (bottleneck::OpenDatasetFor; "" = the model's own)
  std::string work_dir;       // where generated pipelines go
  int64_t images = 200;       // test images per configuration (the first ones; after a warm-up of 20)
  int threads = 1;            // node and server threads (as profiled)
  std::string transport = "unary";  // the plan's (PlanOptions::transport): split choices are run so
  std::string server;               // "" = an in-process server; HOST:PORT = a running serve of PrepareServer's config
  std::string image_format = "png";  // server-only choices: png or jpeg (PlanOptions::image_format)
  int jpeg_quality = 90;
  bool progress = true;
};

struct Validation {
  double rate = 0;
  std::string kind, name;
  double predicted_ms = 0, measured_median_ms = 0, measured_p95_ms = 0;
  double error_pct = 0;       // (predicted - measured) / measured
  // Where the time goes, predicted and measured (medians): node compute, encode, link + call
  // (the time from sending to the answer, less the server's own time), server.
  double predicted_node_ms = 0, predicted_encode_ms = 0, predicted_link_ms = 0, predicted_server_ms = 0;
  double measured_node_ms = 0, measured_encode_ms = 0, measured_link_ms = 0, measured_server_ms = 0;
  std::string metric = "top1";  // top1, or ap50 for a detector
  double score = 0;             // the metric in percent, measured on the validated images
  nlohmann::json ToJson() const;
};

// Writes the pipelines the plans' choices need (a plain-PTQ choice calibrated here; a trained
// pipeline as it is) and a server config serving them all, `server.yaml` in work_dir; returns its
// path. `splitinfer serve --config` it to validate against a server started apart.
Result<std::string> PrepareServer(const std::vector<RatePlan>& plans, const ValidateOptions& options);

// Each plan carries its own rate and RTT.
Result<std::vector<Validation>> Validate(const std::vector<RatePlan>& plans, const ValidateOptions& options);

}  // namespace splitinfer::plan
