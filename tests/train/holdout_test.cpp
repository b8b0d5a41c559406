// The held-out split (data.holdout): settings are chosen on training images that no run trains
// or calibrates on, so the test set is looked at once per chosen setting (issue 20, item 4).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/status.h"
#include "train/config.h"
#include "train/loop.h"

namespace splitinfer::train {
namespace {

TEST(HoldoutTest, AFixedDrawOfDistinctSortedIndices) {
  const auto a = HeldOutIndices(60000, 5000);
  ASSERT_EQ(a.size(), 5000u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 5000u);
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 60000);
  EXPECT_EQ(HeldOutIndices(60000, 5000), a);  // the same images every time
  // Spread over the whole set, not its first images (a shuffle, not a prefix).
  EXPECT_GT(a.back(), 55000);
  EXPECT_LT(a.front(), 100);
  // mt19937_64's output is fixed by the standard, so the draw is the same on every machine:
  // pinned here (a change would move every study's split and void its held-out scores).
  EXPECT_EQ(HeldOutIndices(100, 5), (std::vector<int64_t>{24, 37, 46, 80, 84}));
  EXPECT_TRUE(HeldOutIndices(10, 0).empty());
}

TEST(HoldoutTest, TrainingAndHeldOutImagesPartitionTheTrainingSet) {
  DataConfig c;  // Fashion-MNIST, 60,000 training images
  c.holdout = 5000;
  auto train = OpenSplit(c, data::Split::kTrain);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  auto held = OpenHoldout(c);
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ((*train)->size(), 55000);
  EXPECT_EQ((*held)->size(), 5000);
  // The held-out images are the drawn ones: the first of them is the training set's image at
  // the first drawn index, and the training part skips it.
  DataConfig all;
  auto full = OpenSplit(all, data::Split::kTrain).value();
  const auto drawn = HeldOutIndices(60000, 5000);
  auto first_held = (*held)->image(0).value();
  EXPECT_TRUE(torch::equal(first_held, full->image(drawn[0]).value()));
  EXPECT_EQ((*held)->label(0), full->label(drawn[0]));
  const int64_t last = drawn.back();
  auto b = (*held)->batch({4999}).value();
  EXPECT_TRUE(torch::equal(b.first[0], full->image(last).value()));
  // An index beyond either part is refused, not read from the images around it.
  EXPECT_EQ((*held)->image(5000).status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ((*train)->batch({55000}).status().code(), ErrorCode::kOutOfRange);
  // limit_train applies to what is left for training.
  c.limit_train = 100;
  EXPECT_EQ(OpenSplit(c, data::Split::kTrain).value()->size(), 100);
  // The test set is not touched by the held-out split.
  EXPECT_EQ(OpenSplit(c, data::Split::kTest).value()->size(), 10000);
}

TEST(HoldoutTest, ErrorsNameTheKey) {
  DataConfig none;
  auto held = OpenHoldout(none);
  EXPECT_EQ(held.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(held.status().message().find("data.holdout"), std::string::npos);
  DataConfig too_many;
  too_many.holdout = 60000;
  auto all = OpenSplit(too_many, data::Split::kTrain);
  EXPECT_EQ(all.status().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(all.status().message().find("60000"), std::string::npos);
  auto negative = ParseTrainConfig("data: {holdout: -5}\n", "t.yaml");
  EXPECT_EQ(negative.status().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(negative.status().message().find("holdout"), std::string::npos);
  auto given = ParseTrainConfig("data: {holdout: 5000}\n", "t.yaml");
  ASSERT_TRUE(given.ok()) << given.status().ToString();
  EXPECT_EQ(given->data.holdout, 5000);
  // Only a config that holds images out says so: states written before the key still resume.
  EXPECT_FALSE(ToJson(ParseTrainConfig("{}\n", "t").value())["data"].contains("holdout"));
  EXPECT_EQ(ToJson(*given)["data"]["holdout"], 5000);
}

}  // namespace
}  // namespace splitinfer::train
