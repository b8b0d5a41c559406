#include "core/stats.h"

#include <gtest/gtest.h>

namespace splitinfer {
namespace {

TEST(StatsTest, MedianAndNearestRankPercentile) {
  EXPECT_EQ(Median({}), 0.0);
  EXPECT_EQ(Median({3, 1, 2}), 2.0);
  EXPECT_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(Percentile({}, 0.5), 0.0);
  const std::vector<double> v = {5, 1, 4, 2, 3, 10, 9, 8, 7, 6};
  EXPECT_EQ(Percentile(v, 0.5), 5.0);   // ceil(5) = 5th smallest
  EXPECT_EQ(Percentile(v, 0.95), 10.0);  // ceil(9.5) = 10th
  EXPECT_EQ(Percentile(v, 0.91), 10.0);
  EXPECT_EQ(Percentile(v, 0.9), 9.0);
  EXPECT_EQ(Percentile(v, 0.0), 1.0);
}

}  // namespace
}  // namespace splitinfer
