// runtime/server: `splitinfer serve`. Loads pipelines and answers the Open Inference Protocol
// over gRPC (wire.h, docs/wire_protocol.md).
//
//   ModelInfer / ModelStreamInfer
//     -> auth (bearer token) -> in-flight limit -> parse + validate inputs (wire.h)
//     -> frames: ServerFace::Decode per frame | images: PNG/UINT8/FP32 -> normalised tensor
//     -> Batcher (per model: max_batch, max_wait) -> server-side network -> softmax, top-k
//
// InferenceCore is the whole request path without sockets, so tests can drive it directly;
// Server puts it behind gRPC with health checking, reflection, TLS and Prometheus metrics.
// One bad request gets its own error status; nothing it does can stop the server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "codec/frame/session.h"
#include "core/status.h"
#include "runtime/batcher.h"
#include "runtime/metrics.h"
#include "runtime/wire.h"

namespace grpc {
class Server;
}

namespace splitinfer::runtime {

struct ServerConfig {
  std::vector<std::string> pipelines;  // pipeline YAML files; each is served under its name
  std::string listen = "127.0.0.1:8001";
  std::string device = "cpu";
  int threads = 0;  // LibTorch intra-op threads (0 = LibTorch's default)
  BatcherOptions batch;
  RequestLimits limits;
  int64_t max_message_bytes = 4 << 20;  // gRPC receive limit; larger messages: RESOURCE_EXHAUSTED
  int64_t max_in_flight = 256;          // images accepted and not yet answered, over all clients
  double default_deadline_s = 30;       // for requests that carry no deadline
  int64_t max_streams = 64;             // open ModelStreamInfer calls (each holds a writer thread)
  int max_threads = 256;                // gRPC's threads for calls (its resource quota)
  int64_t max_connections = 256;        // connections with calls in progress (server.cpp: ConnectionGate)
  int malloc_arenas = 4;                // glibc malloc arenas for the process (0 = glibc's default, 8 per core)
  std::string token;                    // bearer token ("" = none); token_file in YAML
  bool insecure_token = false;          // allow a token without TLS (a trusted network only)
  std::string tls_cert, tls_key;        // PEM files (both or neither)
  std::string tls_client_ca;            // PEM: require client certificates signed by it (mutual TLS)
  std::string metrics_listen;           // Prometheus endpoint HOST:PORT ("" = off)
};

// The server YAML (keys: pipelines, listen, device, threads, max_batch, max_wait_ms,
// max_message_bytes, max_in_flight, max_images_per_request, default_deadline_s, max_streams,
// max_threads, max_connections, malloc_arenas, token_file, insecure_token, tls_cert, tls_key, tls_client_ca, metrics), or a pipeline YAML, which is served alone with defaults.
Result<ServerConfig> LoadServerConfig(const std::string& path);

// The metrics' model label of requests for a model that is not served (one series for all).
inline constexpr const char* kUnknownModelLabel = "_unknown";

class InferenceCore {
 public:
  using Clock = std::chrono::steady_clock;
  static Result<std::unique_ptr<InferenceCore>> Create(const ServerConfig& config, Metrics* metrics);
  ~InferenceCore();

  Status Infer(const inference::ModelInferRequest& request, inference::ModelInferResponse* response,
               Clock::time_point deadline);

  // The two halves of Infer, so that a stream can accept request k+1 while request k waits for
  // its batch: Begin validates, decodes and queues; Finish waits and writes the response.
  struct Pending;
  // What one stream's requests share (docs/wire_protocol.md, "Sessions"): the session a full
  // frame opened (its model, the frame header session frames reuse, the reply form it asked
  // for). Only the stream's reader touches it.
  struct StreamState {
    std::string model_name;  // "" until a full frame opened a session
    std::optional<codec::Session> session;
    bool compact = false;  // "reply": "top1" on the opening request
    Params params;         // the opening request's parameters: the session's requests carry none
  };
  // `stream`: the calling stream's state (nullptr for a unary call, where session frames and
  // session requests are FAILED_PRECONDITION).
  Result<std::shared_ptr<Pending>> Begin(const inference::ModelInferRequest& request, Clock::time_point deadline,
                                         StreamState* stream = nullptr);
  Status Finish(Pending& pending, inference::ModelInferResponse* response);
  // Runs one step of request `id`, turning any exception into that request's INTERNAL status
  // naming the id (Infer and the stream run every step through it).
  static Status Guarded(const std::string& id, const std::function<Status()>& step);

  Status Metadata(const inference::ModelMetadataRequest& request, inference::ModelMetadataResponse* response);
  bool ModelReady(const std::string& name, const std::string& version);
  std::vector<std::string> model_names() const;
  int64_t in_flight() const { return in_flight_.load(); }
  const ServerConfig& config() const { return config_; }
  // Counts one answered request in the metrics (Infer does; a stream counts each message).
  void Count(const std::string& model, const Status& status);

 private:
  struct Model;
  InferenceCore(ServerConfig config, Metrics* metrics);
  Result<Model*> Find(const std::string& name, const std::string& version);

  ServerConfig config_;
  Metrics* metrics_;
  std::map<std::string, std::unique_ptr<Model>> models_;
  std::atomic<int64_t> in_flight_{0};
};

class Server {
 public:
  // Loads the pipelines, binds, starts serving; returns once requests are accepted.
  static Result<std::unique_ptr<Server>> Start(const ServerConfig& config);
  ~Server();

  int port() const { return port_; }  // the bound port (useful with listen "HOST:0")
  InferenceCore& core() { return *core_; }
  Metrics& metrics() { return *metrics_; }
  // Stops accepting, lets in-flight requests finish for up to `grace_s`, then cancels the rest.
  void Shutdown(double grace_s);
  void Wait();

 private:
  Server() = default;
  struct Service;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<InferenceCore> core_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace splitinfer::runtime
