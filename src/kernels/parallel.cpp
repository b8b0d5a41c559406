#include "kernels/parallel.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace splitinfer::kernels {
namespace {

// How long a worker watches for the next loop before it sleeps.
constexpr auto kWatch = std::chrono::microseconds(200);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { Work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

// Takes tasks until none is left (the caller and the workers alike).
void ThreadPool::Drain(const std::function<void(int)>& fn, int tasks) {
  for (int t = next_.fetch_add(1, std::memory_order_relaxed); t < tasks; t = next_.fetch_add(1, std::memory_order_relaxed)) {
    fn(t);
  }
}

// A worker joins a loop only by reading its function under the lock, counted in busy_ in the
// same step; the caller clears the function in the step that sees busy_ == 0. So a worker that
// wakes after a loop has ended finds no function and sleeps again: it never takes a task of
// the next loop with the last one's function.
void ThreadPool::Work() {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* fn = nullptr;
    int tasks = 0;
    const auto until = std::chrono::steady_clock::now() + kWatch;
    for (int i = 1; published_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed); ++i) {
      CpuRelax();
      if (i % 64 == 0 && std::chrono::steady_clock::now() > until) break;
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_.load() || generation_ != seen; });
      if (stop_.load()) return;
      seen = generation_;
      if (fn_ == nullptr) continue;
      fn = fn_;
      tasks = tasks_;
      ++busy_;
    }
    Drain(*fn, tasks);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --busy_;
    }
    done_.notify_one();
  }
}

void ThreadPool::ParallelFor(int tasks, const std::function<void(int)>& fn) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    for (int t = 0; t < tasks; ++t) fn(t);
    return;
  }
  std::lock_guard<std::mutex> call(call_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    tasks_ = tasks;
    next_.store(0, std::memory_order_relaxed);
    published_.store(++generation_, std::memory_order_release);
  }
  wake_.notify_all();
  Drain(fn, tasks);
  // Every task is taken; wait for the workers still running one. The lock's release/acquire
  // orders their writes before our return.
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return busy_ == 0; });
  fn_ = nullptr;
}

}  // namespace splitinfer::kernels
