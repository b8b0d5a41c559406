#include "runtime/batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <torch/torch.h>

namespace splitinfer::runtime {
namespace {

using Clock = Batcher::Clock;
const auto kFar = std::chrono::hours(1);

TEST(BatcherTest, GroupsConcurrentItemsUpToMaxBatchAndAnswersEach) {
  std::atomic<int64_t> largest{0}, runs{0};
  BatcherOptions o;
  o.max_batch = 4;
  o.max_wait = std::chrono::milliseconds(500);
  Batcher b(o, [&](int, const torch::Tensor& x) -> Result<torch::Tensor> {
    largest = std::max<int64_t>(largest, x.size(0));
    ++runs;
    return x * 2;  // "logits" that let each item check it got its own row back
  });
  std::vector<std::future<BatchOutput>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(b.Submit(0, torch::full({3}, float(i)), Clock::now() + kFar));
  for (int i = 0; i < 10; ++i) {
    auto out = futures[i].get();
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_FLOAT_EQ(out.logits[0].item<float>(), 2.0f * i);
    EXPECT_LE(out.batch_size, 4);
  }
  EXPECT_EQ(largest.load(), 4);  // ten items queued at once fill batches of four
  EXPECT_EQ(runs.load(), 3);     // 4 + 4 + 2
}

TEST(BatcherTest, KindsAreNeverMixed) {
  BatcherOptions o;
  o.max_batch = 8;
  o.max_wait = std::chrono::milliseconds(20);
  Batcher b(o, [&](int kind, const torch::Tensor& x) -> Result<torch::Tensor> {
    return torch::full({x.size(0), 1}, float(kind));
  });
  std::vector<std::pair<int, std::future<BatchOutput>>> f;
  for (int i = 0; i < 6; ++i) f.emplace_back(i % 2, b.Submit(i % 2, torch::zeros({2}), Clock::now() + kFar));
  for (auto& [kind, fut] : f) EXPECT_FLOAT_EQ(fut.get().logits[0].item<float>(), float(kind));
}

TEST(BatcherTest, ExpiredItemsAndFailuresAreAnsweredWithTheirStatus) {
  BatcherOptions o;
  o.max_batch = 2;
  o.max_wait = std::chrono::milliseconds(1);
  Batcher failing(o, [&](int, const torch::Tensor&) -> Result<torch::Tensor> {
    return Internal("tail exploded");
  });
  auto out = failing.Submit(0, torch::zeros({1}), Clock::now() + kFar).get();
  EXPECT_EQ(out.status.code(), ErrorCode::kInternal);
  EXPECT_EQ(out.status.message(), "tail exploded");

  Batcher throwing(o, [&](int, const torch::Tensor& x) -> Result<torch::Tensor> {
    return x.view({7, 7});  // c10::Error: shape mismatch, caught per batch
  });
  out = throwing.Submit(0, torch::zeros({3}), Clock::now() + kFar).get();
  EXPECT_EQ(out.status.code(), ErrorCode::kInternal);

  Batcher ok(o, [&](int, const torch::Tensor& x) -> Result<torch::Tensor> { return x; });
  out = ok.Submit(0, torch::zeros({1}), Clock::now() - std::chrono::milliseconds(1)).get();
  EXPECT_EQ(out.status.code(), ErrorCode::kDeadlineExceeded);
}

TEST(BatcherTest, DestructionFinishesQueuedItems) {
  std::vector<std::future<BatchOutput>> f;
  {
    BatcherOptions o;
    o.max_batch = 1;
    Batcher b(o, [&](int, const torch::Tensor& x) -> Result<torch::Tensor> {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      return x;
    });
    for (int i = 0; i < 5; ++i) f.push_back(b.Submit(0, torch::zeros({1}), Clock::now() + kFar));
  }
  for (auto& x : f) EXPECT_TRUE(x.get().status.ok());
}

}  // namespace
}  // namespace splitinfer::runtime
