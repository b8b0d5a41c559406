// runtime/load: a closed-loop load generator for `splitinfer load` (bench/load.sh).
//
// C concurrent clients each send one frame, wait for the answer, send the next, for D seconds;
// frames are made once from real test images by the pipeline's node side. Per level: throughput,
// latency percentiles of successful requests, every failure by status code (refusals included),
// and, with the server's pid, its resident memory before and after.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "runtime/client_tls.h"

namespace splitinfer::runtime {

struct LoadOptions {
  std::string server = "127.0.0.1:8001";
  std::string pipeline;                     // pipeline YAML: frames and the model name
  std::vector<int> concurrency = {1, 2, 4, 8, 16, 32, 64};
  double duration_s = 10;                   // per level
  int64_t frames = 256;                     // distinct test images cycled through
  std::string data;                         // their dataset: a reference ("" = the pipeline model's own)
  std::string token;
  ClientTls tls;                            // as the node's
  int64_t server_pid = 0;                   // sample /proc/PID/status VmRSS (0 = don't)
  double deadline_s = 10;
  bool progress = true;
};

struct LoadLevel {
  int concurrency = 0;
  double seconds = 0;
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // gRPC code name -> count
  double throughput = 0;                  // successful requests per second
  double p50_ms = 0, p95_ms = 0, p99_ms = 0;
  double refused_p50_ms = 0;              // how fast RESOURCE_EXHAUSTED came back
  double rss_before_mb = 0, rss_after_mb = 0;
  nlohmann::json ToJson() const;
};

Result<std::vector<LoadLevel>> RunLoad(const LoadOptions& options);

}  // namespace splitinfer::runtime
