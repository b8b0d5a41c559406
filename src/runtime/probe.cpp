#include "runtime/probe.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "runtime/proto/inference.grpc.pb.h"

namespace splitinfer::runtime {

namespace {

// Only ServerLive: the smallest call the protocol has.
class LiveOnly final : public inference::GRPCInferenceService::Service {
  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* r) override {
    r->set_live(true);
    return grpc::Status::OK;
  }
};

}  // namespace

Result<double> LoopbackCallMs(int warmup, int repeats) {
  if (repeats < 1) return InvalidArgument("LoopbackCallMs needs at least one timed call");
  LiveOnly service;
  int port = 0;
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server || port == 0) return Unavailable("cannot start a gRPC server on 127.0.0.1 to time a call");
  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  std::vector<double> ms;
  for (int i = 0; i < warmup + repeats; ++i) {
    grpc::ClientContext ctx;
    inference::ServerLiveRequest q;
    inference::ServerLiveResponse r;
    const auto t0 = std::chrono::steady_clock::now();
    const grpc::Status s = stub->ServerLive(&ctx, q, &r);
    const auto t1 = std::chrono::steady_clock::now();
    if (!s.ok()) {
      server->Shutdown();
      return Unavailable("a loopback ServerLive call failed: " + s.error_message());
    }
    if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  server->Shutdown();
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace splitinfer::runtime
