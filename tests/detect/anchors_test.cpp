// Anchors by k-means on box sizes (detect/anchors.h): clusters recovered, deterministic, ordered,
// and the refused inputs.
#include "detect/anchors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace splitinfer::detect {
namespace {

TEST(AnchorsTest, SizeIouIsCentredIou) {
  EXPECT_DOUBLE_EQ(SizeIou({10, 10}, {10, 10}), 1.0);
  EXPECT_DOUBLE_EQ(SizeIou({10, 10}, {20, 10}), 0.5);
  EXPECT_DOUBLE_EQ(SizeIou({10, 40}, {40, 10}), 100.0 / 700.0);
}

TEST(AnchorsTest, RecoversThreeClustersInAreaOrder) {
  // Three tight clusters of sizes (with a deterministic spread), listed largest first.
  std::vector<Size2> sizes;
  const Size2 centres[] = {{60, 30}, {12, 24}, {30, 30}};
  for (int i = 0; i < 300; ++i) {
    const Size2& c = centres[i % 3];
    const double f = 1.0 + 0.04 * std::sin(i * 1.7);
    sizes.push_back({c[0] * f, c[1] / f});
  }
  auto fit = FitAnchors(sizes, 3, 7);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  ASSERT_EQ(fit->anchors.size(), 3u);
  // Smallest area first: 12x24, 30x30, 60x30.
  EXPECT_NEAR(fit->anchors[0][0], 12, 1.0);
  EXPECT_NEAR(fit->anchors[0][1], 24, 1.5);
  EXPECT_NEAR(fit->anchors[1][0], 30, 1.5);
  EXPECT_NEAR(fit->anchors[2][0], 60, 3.0);
  EXPECT_GT(fit->mean_best_iou, 0.9);
  // The same seed, the same anchors.
  auto again = FitAnchors(sizes, 3, 7);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->anchors, fit->anchors);
  // More anchors never fit worse on average.
  auto six = FitAnchors(sizes, 6, 7);
  ASSERT_TRUE(six.ok());
  EXPECT_GE(six->mean_best_iou, fit->mean_best_iou - 1e-9);
}

TEST(AnchorsTest, BadInputIsRefused) {
  EXPECT_EQ(FitAnchors({{1, 1}}, 0).status().code(), ErrorCode::kInvalidArgument);
  auto few = FitAnchors({{1, 1}, {2, 2}}, 6);
  EXPECT_NE(few.status().message().find("2 boxes cannot make 6 anchors"), std::string::npos) << few.status().message();
  auto zero = FitAnchors({{1, 1}, {0, 2}}, 1);
  EXPECT_NE(zero.status().message().find("box 1 has no positive finite size"), std::string::npos);
  EXPECT_EQ(FitAnchors({{1, std::numeric_limits<double>::infinity()}}, 1).status().code(), ErrorCode::kInvalidArgument);
  // All boxes alike: still k anchors (duplicates), no division by zero.
  auto same = FitAnchors(std::vector<Size2>(10, {5, 5}), 3);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->anchors.size(), 3u);
  EXPECT_DOUBLE_EQ(same->mean_best_iou, 1.0);
}

}  // namespace
}  // namespace splitinfer::detect
