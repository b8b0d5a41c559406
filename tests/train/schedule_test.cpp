#include "train/schedule.h"

#include <gtest/gtest.h>

namespace splitinfer::train {
namespace {

TEST(ScheduleTest, OneCycleRisesThenFalls) {
  ScheduleConfig s{"onecycle", 0.2, 1e-3};
  const int64_t total = 101;
  EXPECT_NEAR(LearningRate(s, 0.5, 0, total), 0.5 / 25, 1e-12);
  EXPECT_NEAR(LearningRate(s, 0.5, 20, total), 0.5, 1e-12);  // peak at 20 % of the steps
  EXPECT_NEAR(LearningRate(s, 0.5, 100, total), 0.5e-3, 1e-12);
  double prev = 0;
  for (int64_t i = 0; i <= 20; ++i) {
    const double lr = LearningRate(s, 0.5, i, total);
    EXPECT_GE(lr, prev);
    prev = lr;
  }
  for (int64_t i = 21; i < total; ++i) {
    const double lr = LearningRate(s, 0.5, i, total);
    EXPECT_LE(lr, prev);
    prev = lr;
  }
}

TEST(ScheduleTest, CosineWarmsUpLinearly) {
  ScheduleConfig s{"cosine", 0.1, 0.0};
  EXPECT_NEAR(LearningRate(s, 1.0, 0, 11), 0.0, 1e-12);
  EXPECT_NEAR(LearningRate(s, 1.0, 1, 11), 1.0, 1e-12);
  EXPECT_NEAR(LearningRate(s, 1.0, 10, 11), 0.0, 1e-12);
  EXPECT_NEAR(LearningRate(s, 1.0, 5, 11), 0.5 * (1 + std::cos(M_PI * (0.5 - 0.1) / 0.9)), 1e-12);
}

TEST(ScheduleTest, Constant) {
  ScheduleConfig s{"constant", 0.3, 0.0};
  EXPECT_EQ(LearningRate(s, 0.07, 5, 10), 0.07);
}

}  // namespace
}  // namespace splitinfer::train
