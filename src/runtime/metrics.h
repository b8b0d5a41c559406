// runtime/metrics: the server's Prometheus metrics (prometheus-cpp), served over HTTP at
// --metrics HOST:PORT/metrics. Names follow Prometheus conventions (base units, _total).
//
//   splitinfer_requests_total{model, code}         requests answered, by gRPC status code
//   splitinfer_request_bytes_total{model}          input bytes received (frames, images)
//   splitinfer_images_total{model, input}          images processed, by input kind
//   splitinfer_batch_size{model}                   histogram of executed batch sizes
//   splitinfer_stage_seconds{model, stage}         histogram per stage: decode, queue, compute, total
//   splitinfer_in_flight                           images accepted and not yet answered
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace splitinfer::runtime {

class Metrics {
 public:
  // listen "" = collect only (no HTTP endpoint). IO_ERROR when the port cannot be bound.
  static Result<std::unique_ptr<Metrics>> Create(const std::string& listen);
  ~Metrics();

  void Request(const std::string& model, const std::string& code);
  void Bytes(const std::string& model, double bytes);
  void Images(const std::string& model, const std::string& input, double n);
  void Batch(const std::string& model, double size);
  void Stage(const std::string& model, const std::string& stage, double seconds);
  void InFlight(double value);
  // The text exposition format, as the endpoint serves it (for tests and `serve --metrics-dump`).
  std::string Scrape() const;

 private:
  Metrics();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace splitinfer::runtime
