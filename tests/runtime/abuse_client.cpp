// The abuse test's client (tests/runtime/abuse_test.sh starts `serve` and runs this against it).
// For a fixed time, all at once: requests for made-up model names, more streams than max_streams,
// streams that write and never read, clients that leave mid-stream, oversized and malformed
// requests, and a flood of FLOOD more connections (beyond the server's max_connections). Before (after a warm-up round of the same length, so that allocator arenas and gRPC's
// threads exist) and after, it reads the server's resident memory and thread count from
// /proc/PID/status; afterwards it checks that a good request is answered and that /metrics
// labels only the served models and "_unknown". Exit 0 when every bound holds, 1 otherwise.
//
//   abuse_client ADDR PID METRICS_HOST:PORT SECONDS MAX_STREAMS MAX_THREADS FLOOD
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include "core/system.h"
#include "runtime/proto/inference.grpc.pb.h"

namespace {

using Stub = inference::GRPCInferenceService::Stub;
using Clock = std::chrono::steady_clock;


std::string HttpGet(const std::string& host_port, const std::string& path) {
  const auto colon = host_port.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string body;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) body.append(buf, static_cast<size_t>(n));
  close(fd);
  return body;
}

inference::ModelInferRequest ImageRequest(const std::string& model) {
  inference::ModelInferRequest q;
  q.set_model_name(model);
  auto* in = q.add_inputs();
  in->set_name("image");
  in->set_datatype("UINT8");
  for (int64_t d : {1, 1, 28, 28}) in->add_shape(d);
  q.add_raw_input_contents(std::string(28 * 28, '\x40'));
  return q;
}

inference::ModelInferRequest FrameRequest(const std::string& model, const std::string& frame) {
  inference::ModelInferRequest q;
  q.set_model_name(model);
  auto* in = q.add_inputs();
  in->set_name("frame");
  in->set_datatype("BYTES");
  in->add_shape(1);
  in->mutable_contents()->add_bytes_contents(frame);
  return q;
}

grpc::Status Unary(Stub& stub, const inference::ModelInferRequest& q, inference::ModelInferResponse* r = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  inference::ModelInferResponse local;
  return stub.ModelInfer(&ctx, q, r ? r : &local);
}

struct Counts {
  std::atomic<int64_t> calls{0}, refused_streams{0}, streams_opened{0};
  std::atomic<int64_t> flood_answered{0}, flood_refused{0};  // the connection flood's good requests
  std::atomic<int64_t> peak_threads{0};  // the server's, sampled every 50 ms during the round
};

// One round of every kind of abuse at once, for `seconds`.
void AbuseRound(const std::string& addr, const std::string& model, int pid, double seconds, int flood, Counts* counts) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    while (!stop) {
      if (const auto st = splitinfer::ReadProcessUsage(pid)) {
        counts->peak_threads = std::max<int64_t>(counts->peak_threads, st->threads);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto channel = [&addr](int i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetString("splitinfer.abuse", std::to_string(i));  // a separate connection each
    args.SetMaxSendMessageSize(64 << 20);
    return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
  };
  // Made-up model names, up to 2 kB long.
  threads.emplace_back([&] {
    auto stub = inference::GRPCInferenceService::NewStub(channel(0));
    for (int64_t i = 0; !stop; ++i) {
      Unary(*stub, ImageRequest("made_up_" + std::to_string(i) + std::string(static_cast<size_t>(i % 2000), 'x')));
      ++counts->calls;
    }
  });
  // Oversized and malformed requests.
  threads.emplace_back([&] {
    auto stub = inference::GRPCInferenceService::NewStub(channel(1));
    for (int64_t i = 0; !stop; ++i) {
      switch (i % 4) {
        case 0: Unary(*stub, FrameRequest(model, std::string(6 << 20, 'A'))); break;  // > max_message_bytes
        case 1: Unary(*stub, FrameRequest(model, std::string(40, static_cast<char>(i)))); break;  // garbage frame
        case 2: {
          auto q = ImageRequest(model);
          q.mutable_inputs(0)->set_shape(0, int64_t{1} << 40);  // a shape that promises far more than it holds
          Unary(*stub, q);
          break;
        }
        default: {
          auto q = ImageRequest(model);
          q.mutable_inputs(0)->set_datatype("FP64");
          Unary(*stub, q);
        }
      }
      ++counts->calls;
    }
  });
  // Streams: more than the cap at once; each sends one request, reads the answer, stays open a
  // while, then half of them leave without closing (cancel) and half close properly.
  for (int t = 0; t < 12; ++t) {
    threads.emplace_back([&, t] {
      auto stub = inference::GRPCInferenceService::NewStub(channel(10 + t));
      for (int64_t i = 0; !stop; ++i) {
        grpc::ClientContext ctx;
        auto s = stub->ModelStreamInfer(&ctx);
        inference::ModelStreamInferResponse r;
        if (!s->Write(ImageRequest(model)) || !s->Read(&r)) {
          if (s->Finish().error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++counts->refused_streams;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        ++counts->streams_opened;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        if ((i + t) % 2 == 0) {
          ctx.TryCancel();
        } else {
          s->WritesDone();
        }
        while (s->Read(&r)) {
        }
        s->Finish();
      }
    });
  }
  // Slow readers: write many requests, never read, then vanish.
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto stub = inference::GRPCInferenceService::NewStub(channel(40 + t));
      while (!stop) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
        auto s = stub->ModelStreamInfer(&ctx);
        for (int i = 0; i < 500 && !stop; ++i) {
          if (!s->Write(ImageRequest(model))) break;
        }
        ctx.TryCancel();
        s->Finish();
      }
    });
  }
  // A connection flood: `flood` more connections, each sending good requests one after another,
  // so that more connections have calls in progress than max_connections allows.
  for (int t = 0; t < flood; ++t) {
    threads.emplace_back([&, t] {
      auto stub = inference::GRPCInferenceService::NewStub(channel(100 + t));
      while (!stop) {
        const auto s = Unary(*stub, ImageRequest(model));
        if (s.ok()) {
          ++counts->flood_answered;
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                   s.error_message().find("max_connections") != std::string::npos) {
          ++counts->flood_refused;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : threads) th.join();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: abuse_client ADDR PID METRICS_HOST:PORT SECONDS MAX_STREAMS MAX_THREADS FLOOD\n");
    return 2;
  }
  const std::string addr = argv[1], metrics = argv[3];
  const int pid = std::atoi(argv[2]);
  const double seconds = std::atof(argv[4]);
  const int max_streams = std::atoi(argv[5]), max_threads = std::atoi(argv[6]), flood = std::atoi(argv[7]);
  const std::string model = "fmnist_best";
  int failures = 0;
  auto check = [&failures](bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++failures;
  };

  Counts warm, counts;
  AbuseRound(addr, model, pid, seconds, flood, &warm);
  // Idle for 3 s: the server gives freed memory back after a whole idle second (IdleTrimmer in
  // src/runtime/server.cpp), so both readings are of an idle server.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const auto before = splitinfer::ReadProcessUsage(pid);
  AbuseRound(addr, model, pid, seconds, flood, &counts);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const auto after = splitinfer::ReadProcessUsage(pid);
  if (!before || !after) {
    std::printf("FAIL cannot read /proc/%d/status: is the server still running?\n", pid);
    return 1;
  }
  std::printf("abuse: %lld unary calls, %lld streams served, %lld refused at the cap, in %.0f s\n",
              static_cast<long long>(counts.calls.load()), static_cast<long long>(counts.streams_opened.load()),
              static_cast<long long>(counts.refused_streams.load()), seconds);
  std::printf("server: resident %.1f -> %.1f MiB, threads %lld -> %lld (at most %lld during the round)\n",
              before->resident_mib, after->resident_mib, static_cast<long long>(before->threads),
              static_cast<long long>(after->threads),
              static_cast<long long>(counts.peak_threads.load()));

  check(after->resident_mib <= before->resident_mib * 1.10,
        "resident memory grew by at most 10 %");
  // The server's own threads (LibTorch's pool, the batcher, metrics, gRPC's pollers) plus at
  // most max_threads gRPC call threads and one writer per open stream.
  check(counts.peak_threads <= before->threads + max_threads + max_streams,
        "threads during the round within the idle count + max_threads + max_streams");
  check(after->threads <= before->threads + 4, "threads back to the idle count afterwards (+4)");
  check(counts.refused_streams > 0, "streams beyond max_streams were refused");
  check(counts.streams_opened > 0, "streams within the cap were served");
  std::printf("connection flood: %lld answered, %lld refused at max_connections\n",
              static_cast<long long>(counts.flood_answered.load()), static_cast<long long>(counts.flood_refused.load()));
  check(counts.flood_refused > 0, "calls on connections beyond max_connections were refused, naming it");
  check(counts.flood_answered > 0, "calls on connections within the cap were answered");

  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  inference::ModelInferResponse r;
  const auto s = Unary(*stub, ImageRequest(model), &r);
  check(s.ok() && r.outputs_size() >= 1 && r.outputs(0).shape_size() == 2 && r.outputs(0).shape(1) == 10,
        "a good request is answered afterwards (" + s.error_message() + ")");

  const std::string text = HttpGet(metrics, "/metrics");
  std::set<std::string> labels;
  int64_t series = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#' || line.rfind("splitinfer_", 0) != 0) continue;
    ++series;
    const size_t m = line.find("model=\"");
    if (m != std::string::npos) labels.insert(line.substr(m + 7, line.find('"', m + 7) - m - 7));
  }
  std::string list;
  for (const auto& l : labels) list += (list.empty() ? "" : ", ") + l;
  std::printf("metrics: %lld splitinfer series, model labels: %s\n", static_cast<long long>(series), list.c_str());
  check(!text.empty() && labels.size() <= 2 && labels.count("_unknown") && (labels.size() == 1 || labels.count(model)),
        "metrics label only the served model and _unknown");
  std::printf("%d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
