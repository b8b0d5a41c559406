#include "tools/cli/runtime_cmd.h"

#include <csignal>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <pthread.h>

#include "core/system.h"
#include "models/build_info.h"
#include "runtime/load.h"
#include "runtime/node.h"
#include "runtime/server.h"

namespace splitinfer::cli {

namespace {

void AddClientTlsOptions(CLI::App* cmd, runtime::ClientTls* tls) {
  cmd->add_option("--tls-ca", tls->ca, "PEM root certificate: connect with TLS");
  cmd->add_option("--tls-cert", tls->cert, "PEM client certificate, for a server that requires one (with --tls-key)");
  cmd->add_option("--tls-key", tls->key, "PEM key of --tls-cert");
}

struct ServeArgs {
  std::string config, listen, metrics, device, token_file, port_file;
  int threads = -1;
  int64_t max_batch = 0;
  double max_wait_ms = -1, grace_s = 10;
  bool insecure_token = false;
};

Status RunServe(const ServeArgs& a) {
  SI_ASSIGN_OR_RETURN(runtime::ServerConfig c, runtime::LoadServerConfig(a.config));
  if (!a.listen.empty()) c.listen = a.listen;
  if (!a.metrics.empty()) c.metrics_listen = a.metrics;
  if (!a.device.empty()) c.device = a.device;
  if (a.threads >= 0) c.threads = a.threads;
  if (a.max_batch > 0) c.batch.max_batch = a.max_batch;
  if (a.max_wait_ms >= 0) c.batch.max_wait = std::chrono::microseconds(static_cast<int64_t>(a.max_wait_ms * 1000));
  if (!a.token_file.empty()) {
    SI_ASSIGN_OR_RETURN(c.token, ReadFirstLine(a.token_file, "token file"));
  }
  if (a.insecure_token) c.insecure_token = true;
  // SIGTERM/SIGINT are taken by sigwait below: block them before gRPC starts its threads, so
  // that every thread inherits the mask and none is interrupted.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  SI_ASSIGN_OR_RETURN(auto server, runtime::Server::Start(c));
  std::string names;
  for (const auto& n : server->core().model_names()) names += (names.empty() ? "" : ", ") + n;
  const std::string host = c.listen.substr(0, c.listen.rfind(':'));
  std::printf("serving %s on %s:%d%s%s\n", names.c_str(), host.c_str(), server->port(),
              c.token.empty() ? "" : c.tls_cert.empty() ? " (bearer token required, in plain text)" : " (bearer token required)", c.tls_cert.empty() ? "" : " (TLS)");
  if (!c.metrics_listen.empty()) std::printf("metrics on http://%s/metrics\n", c.metrics_listen.c_str());
  std::printf("compute: %s\n", models::ComputeLine(models::DescribeCompute()).c_str());
  std::fflush(stdout);
  if (!a.port_file.empty()) {
    std::ofstream f(a.port_file + ".tmp");
    f << server->port() << "\n";
    f.close();
    std::rename((a.port_file + ".tmp").c_str(), a.port_file.c_str());
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::printf("signal %d: finishing in-flight requests (up to %.0f s), then stopping\n", sig, a.grace_s);
  std::fflush(stdout);
  server->Shutdown(a.grace_s);
  std::printf("stopped\n");
  return Status::Ok();
}

struct NodeArgs {
  runtime::NodeOptions o;
  std::string rate = "0", rtt = "0", token_file;
  std::vector<std::string> head;  // {"lowbit", FILE}
  bool json = false, quiet = false;
};

void PrintStats(const char* name, const runtime::LatencyStats& s) {
  std::printf("  %-13s median %8.3f ms   p95 %8.3f ms   mean %8.3f ms\n", name, s.median_ms, s.p95_ms, s.mean_ms);
}

Status RunNodeCmd(NodeArgs a) {
  SI_ASSIGN_OR_RETURN(a.o.link.rate_bytes_per_s, runtime::ParseRate(a.rate));
  SI_ASSIGN_OR_RETURN(a.o.link.rtt_s, runtime::ParseDuration(a.rtt));
  if (!a.token_file.empty()) {
    SI_ASSIGN_OR_RETURN(a.o.token, ReadFirstLine(a.token_file, "token file"));
  }
  a.o.progress = !a.json && !a.quiet;
  std::error_code ec;
  if (!a.o.model_name.empty() && std::filesystem::is_regular_file(a.o.model_name, ec)) {
    return InvalidArgument("node --served-model '" + a.o.model_name +
                           "' is a file; the node runs the model its --pipeline names, and --served-model (old "
                           "spelling --model) is only the name the server serves it under");
  }
  if (!a.head.empty()) {
    if (a.head.size() != 2 || a.head[0] != "lowbit") {
      return InvalidArgument("--head takes `lowbit FILE` (the only head besides LibTorch's)");
    }
    a.o.lowbit_head = a.head[1];
  }
  SI_ASSIGN_OR_RETURN(auto r, runtime::RunNode(a.o));
  if (a.json) {
    std::printf("%s\n", r.ToJson().dump().c_str());
    return Status::Ok();
  }
  std::printf("node %s: model %s%s%s, %lld images, ", r.mode.c_str(), r.model.c_str(),
              r.server_address.empty() ? "" : " at ", r.server_address.c_str(), static_cast<long long>(r.images));
  if (r.task == "detect") {
    std::printf("AP50 %.4f, AP %.4f (%lld boxes at score >= %g)\n", r.coco.ap50, r.coco.ap,
                static_cast<long long>(r.detections), r.score_threshold);
  } else {
    std::printf("top1 %.2f%%\n", r.top1);
  }
  std::printf("  link %s, rtt %.1f ms; %.1f bytes per image (%.1f with the request around it, %.1f back); %lld "
              "retries\n",
              runtime::FormatRate(r.rate_bytes_per_s).c_str(), r.rtt_s * 1e3, r.frame_bytes_per_image,
              r.message_bytes_per_image, r.reply_bytes_per_image, static_cast<long long>(r.retries));
  PrintStats("node compute", r.node_compute);
  PrintStats("encode", r.encode);
  PrintStats("transmit", r.transmit);
  PrintStats("server", r.server);
  PrintStats("total", r.total);
  return Status::Ok();
}

struct LoadArgs {
  runtime::LoadOptions o;
  std::string levels = "1,2,4,8,16,32,64", token_file;
  bool json = false;
};

Status RunLoadCmd(LoadArgs a) {
  a.o.concurrency.clear();
  std::stringstream ss(a.levels);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      size_t used = 0;
      const int c = std::stoi(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      a.o.concurrency.push_back(c);
    } catch (const std::exception&) {
      return InvalidArgument("--concurrency takes numbers separated by commas (1,2,4), not '" + a.levels + "'");
    }
  }
  if (!a.token_file.empty()) {
    SI_ASSIGN_OR_RETURN(a.o.token, ReadFirstLine(a.token_file, "token file"));
  }
  SI_ASSIGN_OR_RETURN(auto levels, runtime::RunLoad(a.o));
  if (a.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& l : levels) j.push_back(l.ToJson());
    std::printf("%s\n", j.dump().c_str());
    return Status::Ok();
  }
  std::printf("%11s %8s %10s %9s %9s %9s %8s %s\n", "concurrency", "seconds", "req/s", "p50 ms", "p95 ms", "p99 ms",
              "ok", "errors");
  for (const auto& l : levels) {
    std::string errors;
    for (const auto& [code, n] : l.errors) errors += code + "=" + std::to_string(n) + " ";
    std::printf("%11d %8.1f %10.1f %9.2f %9.2f %9.2f %8lld %s\n", l.concurrency, l.seconds, l.throughput, l.p50_ms,
                l.p95_ms, l.p99_ms, static_cast<long long>(l.ok), errors.empty() ? "none" : errors.c_str());
  }
  return Status::Ok();
}

}  // namespace

std::function<Status()> AddRuntimeCommands(CLI::App& app, std::function<bool()>* selected) {
  auto serve_args = std::make_shared<ServeArgs>();
  auto* serve = app.add_subcommand("serve", "serve pipelines over gRPC (Open Inference Protocol); SIGTERM stops it");
  serve->add_option("--config", serve_args->config,
                    "server YAML (pipelines: [...], limits) or one pipeline YAML, e.g. models/fmnist_best.yaml")
      ->required();
  serve->add_option("--listen", serve_args->listen, "HOST:PORT (default from the config, else 127.0.0.1:8001; :0 = any free port)");
  serve->add_option("--metrics", serve_args->metrics, "serve Prometheus metrics on HOST:PORT/metrics");
  serve->add_option("--device", serve_args->device, "cpu | cuda | cuda:N");
  serve->add_option("--threads", serve_args->threads, "LibTorch threads (0 = all cores)")->check(CLI::Range(0, 1024));
  serve->add_option("--max-batch", serve_args->max_batch, "dynamic batching: largest batch")->check(CLI::Range(1, 4096));
  serve->add_option("--max-wait-ms", serve_args->max_wait_ms, "dynamic batching: longest wait for a fuller batch");
  serve->add_option("--token-file", serve_args->token_file, "require 'authorization: Bearer <token>' (first line)");
  serve->add_flag("--insecure-token", serve_args->insecure_token,
                  "allow the bearer token without TLS (only on a network you trust: it crosses it in plain text)");
  serve->add_option("--port-file", serve_args->port_file, "write the bound port here once serving (for scripts)");
  serve->add_option("--grace", serve_args->grace_s, "seconds to finish in-flight requests on SIGTERM");

  auto node_args = std::make_shared<NodeArgs>();
  auto* node = app.add_subcommand("node", "run a pipeline's node side against a server and report latency");
  auto& o = node_args->o;
  node->add_option("--server", o.server, "server HOST:PORT");
  node->add_option("--pipeline", o.pipeline, "pipeline YAML the node runs (e.g. models/fmnist_best.yaml)")->required();
  // --served-model, not --model: everywhere else --model is a model reference (a file or a zoo
  // name), while here the model comes from --pipeline and this is only the name the server knows
  // it by. The old spelling still works, but a file given to it is refused (see RunNodeCmd).
  node->add_option("--served-model,--model", o.model_name,
                   "the name to ask the server for (default: the pipeline's name; the node's model comes from "
                   "--pipeline)");
  node->add_option("--data", o.data,
                   "fmnist, imagefolder:DIR, tinyimagenet:DIR or an image folder DIR (default: the model's dataset)");
  node->add_option("--data-dir", o.data_dir, "Fashion-MNIST directory if not Debian's");
  node->add_option("--limit", o.limit, "only the first N images");
  node->add_option("--mode", o.mode, "split | server-only | node-only")
      ->check(CLI::IsMember({"split", "server-only", "node-only"}));
  node->add_option("--image-format", o.image_format,
                   "server-only: send each image as png (lossless, the default) or jpeg (as a camera sends it)");
  node->add_option("--jpeg-quality", o.jpeg_quality, "with --image-format jpeg: quality 1-100 (default 90)");
  node->add_option("--rate", node_args->rate, "emulated link rate: 1MB/s, 500kB/s, 10Mbit/s, none");
  node->add_option("--rtt", node_args->rtt, "emulated round-trip time: 10ms, 0.1s");
  node->add_option("--threads", o.threads, "threads for the node's compute (LibTorch; --head lowbit: its direct kernel)")->check(CLI::Range(1, 1024));
  node->add_option("--head", node_args->head, "run the head as `lowbit FILE` (a quantize-head file) instead of LibTorch")
      ->expected(2);
  node->add_option("--head-impl", o.lowbit_impl, "with --head lowbit: int8 | lut | auto (the faster per conv, timed at start)");
  node->add_option("--token-file", node_args->token_file, "bearer token (first line)");
  AddClientTlsOptions(node, &o.tls);
  node->add_option("--transport", o.transport,
                   "split mode: stream (a session on ModelStreamInfer: 4-byte frame headers, top-1 replies) or unary "
                   "(one ModelInfer call per frame)")
      ->check(CLI::IsMember({"stream", "unary"}));
  node->add_option("--retries", o.max_retries, "retries per request on UNAVAILABLE / RESOURCE_EXHAUSTED");
  node->add_option("--deadline", o.deadline_s, "seconds per request");
  node->add_option("--score-threshold", o.score_threshold,
                   "a detector's boxes scoring below this are not sent back (default 0.001, as eval scores AP)");
  node->add_flag("--json", node_args->json, "print one JSON object");
  node->add_flag("--quiet", node_args->quiet, "no progress bar");

  auto load_args = std::make_shared<LoadArgs>();
  auto* load = app.add_subcommand("load", "closed-loop load test: C concurrent clients sending real frames");
  load->add_option("--server", load_args->o.server, "server HOST:PORT");
  load->add_option("--pipeline", load_args->o.pipeline, "pipeline YAML the frames are made with")->required();
  load->add_option("--data", load_args->o.data, "images the frames are made from: fmnist, imagefolder:DIR, ... "
                                                "(default: the pipeline model's dataset)");
  load->add_option("--concurrency", load_args->levels, "levels, comma-separated (default 1,2,4,8,16,32,64)");
  load->add_option("--duration", load_args->o.duration_s, "seconds per level")->check(CLI::Range(0.1, 86400.0));
  load->add_option("--server-pid", load_args->o.server_pid, "sample this process's resident memory per level");
  load->add_option("--token-file", load_args->token_file, "bearer token (first line)");
  AddClientTlsOptions(load, &load_args->o.tls);
  load->add_option("--deadline", load_args->o.deadline_s, "seconds per request");
  load->add_flag("--json", load_args->json, "print one JSON array");

  *selected = [serve, node, load] { return serve->parsed() || node->parsed() || load->parsed(); };
  return [serve, node, load, serve_args, node_args, load_args]() -> Status {
    if (serve->parsed()) return RunServe(*serve_args);
    if (node->parsed()) return RunNodeCmd(*node_args);
    if (load->parsed()) return RunLoadCmd(*load_args);
    return Status::Ok();
  };
}

}  // namespace splitinfer::cli
