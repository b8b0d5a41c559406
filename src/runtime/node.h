// runtime/node: `splitinfer node`. Runs the head (and encoder) of a pipeline on this machine,
// sends each image's frame to the server over an (optionally emulated) link and reports
// accuracy and per-image latency by stage.
//
//   image -> node compute (head [+ encoder]) -> encode (quantize, code, frame) -> transmit
//         -> server (as it reports) -> reply;  total = all of it, per image, batch 1
//
// Modes: split (the pipeline), server-only (the image as PNG; the server runs the whole float
// model), node-only (the whole float model here; nothing is sent). Before the first frame the
// node checks the server's ModelMetadata (protocol, frame version, codec, split, pipeline id,
// feature shape) against its own pipeline: a mismatch is FAILED_PRECONDITION naming both sides.
// UNAVAILABLE and RESOURCE_EXHAUSTED replies are retried with exponential backoff and counted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "eval/detection/coco_eval.h"
#include "runtime/client_tls.h"
#include "runtime/link.h"

namespace splitinfer::runtime {

struct NodeOptions {
  std::string server = "127.0.0.1:8001";
  std::string pipeline;    // pipeline YAML (what the node runs; its name is the model asked for)
  std::string model_name;  // override the model name asked of the server
  std::string data;      // a dataset reference ("" = the model's own); a bare DIR is an image folder
  std::string data_dir;  // with data fmnist (or the older fmnist-test): its files, if not Debian's
  int64_t limit = 0;                 // images (0 = all)
  std::string mode = "split";        // split | server-only | node-only
  // server-only: how the image travels: "png" (lossless) or "jpeg" (as a camera sends it, at
  // jpeg_quality 1-100)
  std::string image_format = "png";
  int jpeg_quality = 90;
  LinkOptions link;
  int threads = 1;  // threads for the node's compute (LibTorch's, and the low-bit head's direct kernel)
  // Split mode: run the head with the low-bit kernels from this head file (quantize-head)
  // instead of LibTorch; the encoder (if any), codec and frame are unchanged.
  std::string lowbit_head;
  std::string lowbit_impl = "int8";  // int8 | lut | reference | auto (kernels::ParseHeadImpl)
  std::string token;   // bearer token
  ClientTls tls;        // ca: PEM root certificate (use TLS); cert, key: a client certificate
  // split mode: "stream" (one ModelStreamInfer session: the first frame in full, then session
  // frames and top1 replies) or "unary" (one ModelInfer call per frame, full frames, scores).
  std::string transport = "stream";
  int max_retries = 8;
  double deadline_s = 30;  // per request
  // A detector's boxes: those scoring below this are not sent back. 0.001, as `eval` scores a
  // detector (AP needs the low-scoring boxes); a deployment would ask for more (the server's
  // default is 0.25) and get fewer reply bytes.
  double score_threshold = 0.001;
  bool progress = true;
};

struct LatencyStats {
  double median_ms = 0, p95_ms = 0, mean_ms = 0;
};
LatencyStats Summarise(std::vector<double> seconds);
// The q-quantile (0 < q <= 1, nearest rank) of `seconds`, in milliseconds; sorts in place; 0 if empty.
double PercentileMs(std::vector<double>& seconds, double q);

struct NodeReport {
  std::string mode, task, model, server_address;
  std::string image_format;  // server-only: png | jpeg (with jpeg_quality)
  int jpeg_quality = 0;
  int64_t images = 0, correct = 0;
  double top1 = 0;  // a classifier's
  // A detector's: COCO's metrics over the images sent (AP50, AP as fractions), boxes returned.
  eval::CocoMetrics coco;
  int64_t detections = 0;
  double score_threshold = 0;
  double frame_bytes_per_image = 0;    // the frame (or PNG) alone
  double message_bytes_per_image = 0;  // the whole serialised request, as the link carries it
  double reply_bytes_per_image = 0;    // the serialised reply and gRPC's prefix, the link's other way
  LatencyStats node_compute, encode, transmit, server, total;
  int64_t retries = 0;
  double rate_bytes_per_s = 0, rtt_s = 0;
  int threads = 1;
  double seconds = 0;
  nlohmann::json ToJson() const;

 private:
  nlohmann::json ToJsonCommon() const;
};

Result<NodeReport> RunNode(const NodeOptions& options);

}  // namespace splitinfer::runtime
