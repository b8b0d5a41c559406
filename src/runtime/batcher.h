// runtime/batcher: dynamic batching across concurrent requests (as Triton's dynamic batcher).
//
//   handler threads --Submit(item)--> queue --worker: up to max_batch items, or whatever has
//   arrived when the oldest has waited max_wait--> run(batch) --> each item's future
//
// One worker per served model runs the server-side network, so the network is never entered
// by two threads at once and a CPU or GPU sees one large batch instead of many small ones.
// Items of different kinds (decoded features, whole images) are batched separately.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "core/status.h"

namespace splitinfer::runtime {

struct BatcherOptions {
  int64_t max_batch = 16;
  // 0: run whatever is queued as soon as the network is free (batches form under load without
  // delaying a lone request); > 0 trades that latency for fuller batches.
  std::chrono::microseconds max_wait{0};
};

struct BatchOutput {
  Status status;
  torch::Tensor logits;  // [classes] for this item
  int64_t batch_size = 0;
  double queue_s = 0, compute_s = 0;
};

class Batcher {
 public:
  using Clock = std::chrono::steady_clock;
  // run(kind, stacked inputs [B, ...]) -> logits [B, classes]; exceptions are caught per batch.
  using RunFn = std::function<Result<torch::Tensor>(int kind, const torch::Tensor& batch)>;

  Batcher(BatcherOptions options, RunFn run);
  ~Batcher();  // finishes every queued item, then joins
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // `input` is one item without the batch dimension. An item still queued at `deadline` is
  // answered DEADLINE_EXCEEDED without running.
  std::future<BatchOutput> Submit(int kind, torch::Tensor input, Clock::time_point deadline);
  size_t queued() const;

 private:
  struct Item {
    int kind;
    torch::Tensor input;
    Clock::time_point enqueued, deadline;
    std::promise<BatchOutput> done;
  };
  void Loop();

  BatcherOptions options_;
  RunFn run_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace splitinfer::runtime
