#include "eval/evaluate.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "data/fashion_mnist.h"
#include "models/zoo/zoo.h"

namespace splitinfer::eval {
namespace {

TEST(CountTopKTest, CountsRowsWhoseTopKHoldsTheLabel) {
  auto logits = torch::tensor({{0.1, 0.9, 0.0}, {0.8, 0.15, 0.05}, {0.2, 0.3, 0.5}});
  auto labels = torch::tensor({1, 1, 0}, torch::kInt64);
  EXPECT_EQ(CountTopK(logits, labels, 1), 1);
  EXPECT_EQ(CountTopK(logits, labels, 2), 2);
  EXPECT_EQ(CountTopK(logits, labels, 3), 3);
  EXPECT_EQ(CountTopK(logits, labels, 10), 3);  // k clamped to the class count
}

TEST(EvaluateTest, SplitPathGivesTheSameAccuracyAndReportsTheFeature) {
  auto test = data::LoadFashionMnist(data::Split::kTest);
  ASSERT_TRUE(test.ok());
  auto small = test->take(300);
  torch::manual_seed(1);
  auto model = models::CreateModel("resnet_fmnist", {10, 1, 8, 1}).value();
  EvalOptions o;
  o.batch_size = 128;  // not a divisor of 300: the last batch is partial
  auto whole = Evaluate(*model, small, data::FashionMnistNormalization(), std::nullopt, o);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(whole->images, 300);
  EXPECT_EQ(whole->top5, -1);  // 10 classes: no top-5
  for (const auto& s : model->split_points()) {
    auto split = Evaluate(*model, small, data::FashionMnistNormalization(), s, o);
    ASSERT_TRUE(split.ok());
    EXPECT_EQ(split->top1, whole->top1) << s.name;
  }
  auto stem = Evaluate(*model, small, data::FashionMnistNormalization(), model->find_split("stem").value(), o);
  EXPECT_EQ(stem->feature_shape, (std::vector<int64_t>{8, 14, 14}));
  EXPECT_EQ(stem->feature_float_bytes, 8 * 14 * 14 * 4);
}

TEST(EvaluateTest, LimitAndEmptyDataset) {
  auto test = data::LoadFashionMnist(data::Split::kTest);
  ASSERT_TRUE(test.ok());
  auto model = models::CreateModel("resnet_fmnist", {10, 1, 8, 1}).value();
  EvalOptions o;
  o.limit = 50;
  auto r = Evaluate(*model, *test, data::FashionMnistNormalization(), std::nullopt, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->images, 50);
  auto empty = test->take(0);
  EXPECT_EQ(Evaluate(*model, empty, data::FashionMnistNormalization(), std::nullopt, {}).status().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer::eval
