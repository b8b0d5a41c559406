// plan/planner: the latency model and the search over partition points and codec settings.
//
//   split:       node blocks 0..k + encode + (request bytes) / rate + RTT + (reply bytes) / rate
//                + call + decode + [compensator/decoder] + server blocks k+1..n-1
//   server-only: PNG encode on the node + (PNG + request overhead) / rate + RTT + reply / rate
//                + call + PNG decode + all blocks on the server
//   node-only:   all blocks on the node
// where call, the server's per-request work and the bytes around the frame are the profile's
// measurements for the transport (unary or stream, PlanOptions::transport; PNG for
// server-only), and, for the networked choices, each side's compute is scaled by its idle
// slowdown (PlanOptions::idle_slowdown).
//
// Candidates: every (split, bits, granularity, coder) cell of the node profile's codec table
// (plain PTQ of the profiled model) and every trained pipeline in the profile. With study
// results (results.json), each candidate carries its measured top-1 and measured frame bytes;
// --min-accuracy keeps only candidates whose measured accuracy meets it (a candidate without a
// measurement is then excluded, and the reason is counted). No LibTorch: planning is arithmetic.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "plan/profile.h"

namespace splitinfer::plan {

struct MeasuredAccuracy {
  std::string run, method, split, granularity, coder, pipeline;
  int bits = 0;
  double score = 0, bytes_per_image = 0;  // score: the metric in percent
  std::string metric = "top1";  // the study's task metric: top1 (a classifier) or ap50 (a detector)
};
// The metric a profiled model is scored by: ap50 for a detector, top1 for a classifier.
std::string MetricOf(const Profile& profile);
// results.json (array) or results.jsonl (one object per line) from `splitinfer experiment`.
// Every row is in one metric (a row without `metric` is a classifier's top1); INVALID_ARGUMENT
// for a file that mixes them.
Result<std::vector<MeasuredAccuracy>> LoadResults(const std::string& path);

struct PlanOptions {
  std::vector<double> rates;            // bytes per second
  double rtt_s = 0.010;
  std::vector<double> rtts_s;           // when given: one RTT per rate (links YAML), else rtt_s for all
  double min_accuracy = -1;             // percent of the task's metric (top-1 or AP50); < 0 = none
  std::vector<int> bits;                // only these bit widths (empty = all): without measured
                                        // accuracy (random weights), keeps 1-bit PTQ out of the plan
  // How the node calls the server for split and pipeline choices: "unary" (a full frame per
  // ModelInfer call, all scores back) or "stream" (a session on ModelStreamInfer: session
  // frames, top-1 replies). Server-only choices send PNG in unary calls either way. The call
  // time, the server's per-request work and the bytes around each frame are the profile's
  // measurements for that transport (Profile::transports).
  std::string transport = "unary";
  // How server-only choices send the image: "png" (lossless) or "jpeg" (as a camera does, at the
  // node profile's jpeg quality; both profiles must have measured JPEG).
  std::string image_format = "png";
  // Only for profiles that did not count bytes (TransportProfile::BytesMeasured() false: made
  // before 2026-12-07, or without a pipeline to serve): the shipped pipeline's unary overheads
  // as measured then (docs/wire_protocol.md "Bytes on the link": a request beyond its frame
  // 95.5 - 42.5, a reply beyond 4 bytes per class 101.0 - 40; a PNG request's longer input name
  // and length prefixes add ~5). Each choice says whether it used them (overheads_measured).
  double assumed_request_overhead_bytes = 53;
  double assumed_png_request_overhead_bytes = 58;
  double assumed_reply_overhead_bytes = 61;
  // A detector's reply without a measured one: boxes as the node asks for them (score >= 0.001)
  // fill max_detections, 100 boxes of 24 bytes (docs/wire_protocol.md, "Detections"), plus
  // the four outputs' names and shapes.
  double assumed_detector_reply_bytes = 2400 + 120;
  int64_t server_batch = 1;
  // Scale each side's compute by its profile's idle_slowdown at the gap it waits between images
  // (node: link + call + server; server: node + link + call). Off: times as profiled (hot).
  bool idle_slowdown = true;
};

struct Choice {
  std::string kind;                     // split | pipeline | server-only | node-only
  std::string name;                     // "stem b2 channel cabac", a pipeline name, ...
  std::string split, granularity, coder, pipeline_file;
  std::string transport;                // unary | stream | png (server-only); empty for node-only
  bool overheads_measured = true;       // false: PlanOptions::assumed_* bytes were used
  int bits = 0;
  std::string metric = "top1";          // what `score` is: top1 or ap50 (MetricOf the profile)
  double score = -1;                    // measured accuracy in percent, -1 when unknown
  double frame_bytes = 0, request_bytes = 0, reply_bytes = 0;
  double node_ms = 0, encode_ms = 0, transmit_ms = 0, rtt_ms = 0, call_ms = 0, decode_ms = 0, server_ms = 0,
         total_ms = 0;
  double node_slowdown = 1, server_slowdown = 1;  // the idle slowdowns applied (see PlanOptions)
  nlohmann::json ToJson() const;
};

struct RatePlan {
  double rate = 0, rtt_s = 0;
  Choice best, server_only, node_only;
  Choice best_split;  // the fastest split/pipeline choice that meets the constraint (even when a baseline wins)
  bool has_split = false;
  double speedup_vs_server_only = 0, speedup_vs_node_only = 0;
  int64_t candidates = 0, excluded_accuracy = 0, excluded_unmeasured = 0;
  nlohmann::json ToJson() const;
};

// A link the planner is run at: configs/devices/links.yaml lists them as
// {name, rate_mb_s, rtt_ms} under `links`.
struct Link {
  std::string name;
  double rate_bytes_per_s = 0, rtt_s = 0;
};
Result<std::vector<Link>> LoadLinks(const std::string& path);

// The latency of every candidate at one link, sorted fastest first (baselines included).
std::vector<Choice> EvaluateAll(const Profile& node, const Profile& server, double rate, const PlanOptions& options,
                                const std::vector<MeasuredAccuracy>& results);

Result<std::vector<RatePlan>> Plan(const Profile& node, const Profile& server, const PlanOptions& options,
                                   const std::vector<MeasuredAccuracy>& results);

}  // namespace splitinfer::plan
