// plan/profile: what the latency model needs to know about one machine running one model.
//
//   per block: median time at batch 1 (node) and at the server's batch sizes, after warm-up
//   per split point: the feature shape and its float32 bytes
//   per split x bits x granularity x coder: encode and decode time, frame bytes (real features)
//   the server-only baseline: PNG encode time and bytes of the input, PNG decode time
//
// `splitinfer profile` measures it on this machine; DeriveProfile scales a measured profile to
// another CPU by per-operator factors (configs/devices/*.yaml says where each factor comes from).
// Profiles are YAML, so a profile measured on a real board can replace a derived one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "models/model_flags.h"

namespace splitinfer::plan {

struct BlockProfile {
  std::string name;
  std::string op;                     // dominant operator kind: conv, matmul, other (for scaling)
  std::map<int64_t, double> ms;       // batch size -> median milliseconds for the whole batch
};

struct SplitProfile {
  std::string name;
  int64_t block = 0;                  // the last block on the node
  std::vector<int64_t> shape;         // per-image feature shape
  int64_t float_bytes = 0;
};

struct CodecProfile {
  std::string split;
  int bits = 0;
  std::string granularity;            // tensor | channel
  std::string coder;                  // none | lzma | zstd | cabac
  double encode_ms = 0, decode_ms = 0, frame_bytes = 0;
  double session_frame_bytes = 0;     // the same frames inside a session (0: not measured)
};

// A trained pipeline (autoencoder, compensator, fine-tuned model) measured as a whole: its node
// side (head + encoder) and server side (compensator/decoder + tail) at batch 1, and its codec.
struct PipelineProfile {
  std::string name, file, split, coder;
  int bits = 0;
  double node_ms = 0, server_ms = 0, encode_ms = 0, decode_ms = 0, frame_bytes = 0;
  double session_frame_bytes = 0;     // 0: not measured
};

// What one request costs beyond compute, codec and link, for one way of calling the server:
//   unary   a full frame per ModelInfer call, all scores back (the stateless v1 form)
//   stream  a session on ModelStreamInfer: session frames, top-1 replies (docs/wire_protocol.md)
//   png     the server-only baseline: the image as PNG per ModelInfer call
// Bytes are per image as the node counts them (serialised message + gRPC's 5-byte prefix); a
// request is frame + request_overhead_bytes, a reply reply_overhead_bytes +
// reply_bytes_per_class x classes. Negative overheads: not measured (profiles made before
// 2026-12-07, or without a pipeline to serve); the planner then assumes the shipped pipeline's.
struct TransportProfile {
  double call_ms = 0;                 // the call as the node sees it outside the server's time
  double server_request_ms = 0;       // the server's own work beyond decode and compute
  double request_overhead_bytes = -1, reply_overhead_bytes = -1;
  double reply_bytes_per_class = 0;   // 4 (FP32 scores) for unary and png, 0 for top-1 replies
  bool BytesMeasured() const { return request_overhead_bytes >= 0 && reply_overhead_bytes >= 0; }
};
inline constexpr const char* kTransports[] = {"unary", "stream", "png"};

struct Profile {
  std::string machine;                // "2 cores, Intel(R) Xeon(R) Processor" or the derived name
  std::string device = "cpu";
  int threads = 1;
  // What the times were measured with: LibTorch, the BLAS library really loaded, oneDNN, CPU
  // kernels, GPUs (models::ComputeLine). A profile made on the reference BLAS says so here.
  std::string compute;
  std::string model;                  // zoo name
  std::string task = "classify";      // classify | detect (the model's metadata)
  std::string source;                 // checkpoint path, or "random weights"
  std::vector<int64_t> input_shape;   // C, H, W
  int64_t classes = 0;                // logits per image (sizes the reply)
  std::string inputs;                 // what the codec was measured on: "fmnist test images", ...
  std::vector<BlockProfile> blocks;
  std::vector<SplitProfile> splits;
  std::vector<CodecProfile> codecs;
  std::vector<PipelineProfile> pipelines;
  double png_encode_ms = 0, png_decode_ms = 0, png_bytes = 0;
  // The server-only path as a camera sends it: the image as JPEG at jpeg_quality. 0 bytes: not
  // measured (a build without libturbojpeg, or a profile made before 2026-12-07).
  int jpeg_quality = 0;
  double jpeg_encode_ms = 0, jpeg_decode_ms = 0, jpeg_bytes = 0;
  // Idle gap (ms) -> the whole model's batch-1 time after that long idle / back to back. A node
  // that waits on the link, and a server that waits for the next frame, start each image cold
  // (caches, TLB, clocks): on the 2-vCPU VM the model is ~1.3x slower after 10 ms idle and
  // ~3x after 100 ms. Empty: no such effect.
  std::map<double, double> idle_slowdown;
  // Per request, beyond compute, codec and link, per transport (see MeasureCalls in profile.cpp
  // for how): "unary" and "png" always, "stream" when the profile served a pipeline.
  std::map<std::string, TransportProfile> transports;
  // The whole model answering a stream of different images (normalise, run, argmax) over the sum
  // of its blocks timed on one repeated input: the planner scales batch-1 block sums by it.
  double stream_factor = 1;
  // What answering one image costs after the network, at batch 1: a classifier's top class, a
  // detector's decoding, score threshold 0.25 and NMS (with random weights far more boxes pass
  // than with trained ones). Paid by the side that runs the last block: the node for node-only,
  // the server otherwise. 0 in profiles from before it was measured (a classifier's is ~0).
  double answer_ms = 0;
  std::string calls_measured_with;
  std::string derived_from;           // for derived profiles: the measured profile and factors file

  double BlocksMs(int64_t begin, int64_t end, int64_t batch) const;  // blocks [begin, end)
  // idle_slowdown at `gap_ms`, linear between measured gaps, flat beyond the last; 1 if none.
  double SlowdownAfter(double gap_ms) const;
};

struct ProfileOptions {
  std::string model;                  // a model reference (models/model_ref.h)
  models::ModelMetaFlags model_flags;  // for a TorchScript file without its own metadata
  std::string data;  // images for the codec and PNG: a dataset reference ("" = the model's own)
  std::string device = "cpu";
  int threads = 1;
  std::vector<int64_t> batches = {1, 8, 32};
  int warmup = 3, repeats = 10;
  int64_t codec_maps = 16;            // feature maps per codec cell (half calibrate, half measure)
  int jpeg_quality = 90;              // the server-only path's JPEG (a camera's q90)
  std::vector<int> bits = {1, 2, 4, 8};
  std::vector<std::string> granularities = {"tensor", "channel"};
  std::vector<std::string> coders = {"none", "lzma", "zstd", "cabac"};
  std::vector<std::string> pipelines;  // pipeline YAMLs of this model to measure as well
  std::vector<double> idle_gaps_ms = {0, 1, 2, 5, 10, 20, 50, 100, 200, 500};
  int idle_repeats = 25;              // rounds over all gaps (median per gap), at most
  double idle_budget_ms = 20000;      // time for the rounds, so that slow models get fewer (>= 5)
  int64_t call_images = 200;          // images per mode for the per-request costs
  // A build without the runtime (gRPC) cannot measure the per-request call: it takes this value
  // (ms), which the profile records as given, not measured. Negative: not given.
  double call_ms = -1;
  int stream_images = 100;            // images for stream_factor
  bool progress = true;
};

Result<Profile> MeasureProfile(const ProfileOptions& options);

// Per-operator factors: node time = measured time x factor[op] (factor "default" for others),
// codec times x factor["codec"], PNG x factor["png"], the loopback call x factor["rpc"] (1 if
// absent). The idle slowdown is a ratio and is kept as measured. The YAML holds the factors and
// their source.
struct ScaleFactors {
  std::string name;                   // e.g. "raspberry-pi-4"
  std::map<std::string, double> factors;
  std::string source;                 // where the factors come from (printed into the profile)
};
Result<ScaleFactors> LoadScaleFactors(const std::string& path);
Profile DeriveProfile(const Profile& measured, const ScaleFactors& factors);

Status SaveProfile(const std::string& path, const Profile& profile);
Result<Profile> LoadProfile(const std::string& path);

}  // namespace splitinfer::plan
