// kernels/parallel: the threads a low-bit head may use. No LibTorch.
//
// A node has a few cores (a Pi 4 has 4) and runs one image at a time, so a head's only
// parallelism is inside each convolution: its output pixels are split among the threads, each
// writing its own pixels, so the result is the one-thread result bit for bit. The pool keeps
// its workers between convolutions (a thread start per convolution would cost more than a
// small one takes). Between loops a worker watches for the next one for a short while (a head's
// convolutions start microseconds apart, and a wake through the kernel costs tens of them),
// then sleeps on a condition variable, so an idle node uses no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace splitinfer::kernels {

class ThreadPool {
 public:
  // `threads` >= 1 in all, the caller of ParallelFor being one of them (threads - 1 workers).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // fn(task) for every task in [0, tasks), spread over the threads; returns when all are done.
  // One loop at a time: a second caller waits for the first's loop to finish.
  void ParallelFor(int tasks, const std::function<void(int)>& fn);

 private:
  void Work();
  void Drain(const std::function<void(int)>& fn, int tasks);

  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // one ParallelFor at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;  // a new loop; guarded by mu_
  std::atomic<uint64_t> published_{0};  // generation_, for the workers' watch before they sleep
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* fn_ = nullptr;  // the current loop's; guarded by mu_
  int tasks_ = 0;                                // guarded by mu_
  std::atomic<int> next_{0};                     // the next task to take; reset under mu_
  int busy_ = 0;  // workers inside the current loop; guarded by mu_
};

}  // namespace splitinfer::kernels
