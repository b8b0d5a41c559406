#include "runtime/metrics.h"

#include <map>
#include <mutex>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "core/system.h"

namespace splitinfer::runtime {

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<prometheus::Exposer> exposer;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter().Name("splitinfer_requests_total").Help("Requests answered, by status code").Register(*registry);
  prometheus::Family<prometheus::Counter>& bytes =
      prometheus::BuildCounter().Name("splitinfer_request_bytes_total").Help("Input bytes received").Register(*registry);
  prometheus::Family<prometheus::Counter>& images =
      prometheus::BuildCounter().Name("splitinfer_images_total").Help("Images processed, by input kind").Register(*registry);
  prometheus::Family<prometheus::Histogram>& batch =
      prometheus::BuildHistogram().Name("splitinfer_batch_size").Help("Executed batch sizes").Register(*registry);
  prometheus::Family<prometheus::Histogram>& stage =
      prometheus::BuildHistogram().Name("splitinfer_stage_seconds").Help("Seconds per request stage").Register(*registry);
  prometheus::Family<prometheus::Gauge>& in_flight =
      prometheus::BuildGauge().Name("splitinfer_in_flight").Help("Images accepted and not yet answered").Register(*registry);
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

Result<std::unique_ptr<Metrics>> Metrics::Create(const std::string& listen) {
  std::unique_ptr<Metrics> m(new Metrics());
  if (!listen.empty()) {
    try {
      m->impl_->exposer = std::make_unique<prometheus::Exposer>(listen);
    } catch (const std::exception& e) {
      // civetweb starts its threads with 100 KB stacks, which OpenBLAS's 60 KB of thread-local
      // storage leaves too small: pthread_create fails and civetweb reports a "null context".
      if (BlasFromLibraries(LoadedLibraries()) == "OpenBLAS") {
        return IoError("cannot serve metrics on " + listen + ": " + e.what() +
                       " (OpenBLAS is loaded, whose thread-local storage does not fit civetweb's thread stacks: "
                       "switch libblas.so.3 to BLIS with apt-get install libblis4-pthread and update-alternatives "
                       "--set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/blis-pthread/libblas.so.3)");
      }
      return IoError("cannot serve metrics on " + listen + ": " + e.what() + " (pick a free HOST:PORT)");
    }
    m->impl_->exposer->RegisterCollectable(m->impl_->registry);
  }
  return m;
}

void Metrics::Request(const std::string& model, const std::string& code) {
  impl_->requests.Add({{"model", model}, {"code", code}}).Increment();
}
void Metrics::Bytes(const std::string& model, double b) { impl_->bytes.Add({{"model", model}}).Increment(b); }
void Metrics::Images(const std::string& model, const std::string& input, double n) {
  impl_->images.Add({{"model", model}, {"input", input}}).Increment(n);
}
void Metrics::Batch(const std::string& model, double size) {
  static const prometheus::Histogram::BucketBoundaries kBuckets{1, 2, 4, 8, 16, 32, 64, 128, 256};
  impl_->batch.Add({{"model", model}}, kBuckets).Observe(size);
}
void Metrics::Stage(const std::string& model, const std::string& stage, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets{1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
                                                                2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5};
  impl_->stage.Add({{"model", model}, {"stage", stage}}, kBuckets).Observe(seconds);
}
void Metrics::InFlight(double v) { impl_->in_flight.Add({}).Set(v); }

std::string Metrics::Scrape() const {
  prometheus::TextSerializer s;
  return s.Serialize(impl_->registry->Collect());
}

}  // namespace splitinfer::runtime
