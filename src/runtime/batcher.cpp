#include "runtime/batcher.h"

#include <torch/torch.h>

namespace splitinfer::runtime {

Batcher::Batcher(BatcherOptions options, RunFn run) : options_(options), run_(std::move(run)) {
  if (options_.max_batch < 1) options_.max_batch = 1;
  worker_ = std::thread([this] { Loop(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

std::future<BatchOutput> Batcher::Submit(int kind, torch::Tensor input, Clock::time_point deadline) {
  Item item{kind, std::move(input), Clock::now(), deadline, {}};
  auto future = item.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(item));
  }
  cv_.notify_one();
  return future;
}

size_t Batcher::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void Batcher::Loop() {
  torch::NoGradGuard no_grad;  // thread-local: this thread only ever runs inference
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left
    // Wait for a full batch, but never longer than max_wait past the oldest item's arrival.
    const auto until = queue_.front().enqueued + options_.max_wait;
    cv_.wait_until(lock, until, [&] { return stop_ || static_cast<int64_t>(queue_.size()) >= options_.max_batch; });
    const int kind = queue_.front().kind;
    std::vector<Item> batch;
    const auto now = Clock::now();
    for (auto it = queue_.begin(); it != queue_.end() && static_cast<int64_t>(batch.size()) < options_.max_batch;) {
      if (it->kind != kind) {
        ++it;
        continue;
      }
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
    }
    lock.unlock();
    std::vector<Item*> live;
    std::vector<torch::Tensor> inputs;
    for (auto& item : batch) {
      if (now > item.deadline) {
        BatchOutput out;
        out.status = DeadlineExceeded("the request's deadline passed while it waited for a batch; raise the deadline "
                                      "or lower the load");
        item.done.set_value(std::move(out));
        continue;
      }
      live.push_back(&item);
      inputs.push_back(item.input);
    }
    if (!live.empty()) {
      const auto start = Clock::now();
      Result<torch::Tensor> logits = Internal("not run");
      try {
        logits = run_(kind, torch::stack(inputs));
      } catch (const c10::Error& e) {
        logits = Internal(std::string("server forward failed: ") + e.what_without_backtrace());
      } catch (const std::exception& e) {
        logits = Internal(std::string("server forward failed: ") + e.what());
      }
      const double compute_s = std::chrono::duration<double>(Clock::now() - start).count();
      for (size_t i = 0; i < live.size(); ++i) {
        BatchOutput out;
        out.batch_size = static_cast<int64_t>(live.size());
        out.compute_s = compute_s;
        out.queue_s = std::chrono::duration<double>(start - live[i]->enqueued).count();
        if (logits.ok()) out.logits = logits.value()[static_cast<int64_t>(i)];
        else out.status = logits.status();
        live[i]->done.set_value(std::move(out));
      }
    }
    lock.lock();
  }
}

}  // namespace splitinfer::runtime
