#include <gtest/gtest.h>

#include <torch/torch.h>

#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

BlockChain Fmnist(int64_t width = 16, int64_t depth = 1) {
  auto m = CreateModel("resnet_fmnist", {/*num_classes=*/10, /*in_channels=*/1, width, depth});
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.value();
}

TEST(ResNetFmnistTest, HeadThenTailEqualsForwardAtEverySplit) {
  torch::manual_seed(3);
  for (int64_t depth : {1, 2}) {
    auto m = Fmnist(16, depth);
    m->eval();
    torch::NoGradGuard no_grad;
    auto x = torch::randn({4, 1, 28, 28});
    auto full = m->forward(x);
    ASSERT_EQ(m->split_points().size(), 4u);
    for (const auto& s : m->split_points()) {
      auto f = m->head(x, s);
      EXPECT_TRUE(torch::equal(m->tail(f, s), full)) << "split " << s.name << " depth " << depth;
    }
  }
}

TEST(ResNetFmnistTest, FeatureShapesAtSplits) {
  auto m = Fmnist(64);
  m->eval();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 1, 28, 28});
  const std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"stem", {2, 64, 14, 14}}, {"stage1", {2, 64, 14, 14}}, {"stage2", {2, 128, 7, 7}}, {"stage3", {2, 256, 4, 4}}};
  for (const auto& [name, shape] : want) {
    auto s = m->find_split(name);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(m->head(x, *s).sizes(), shape) << name;
  }
  EXPECT_EQ(m->forward(x).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(ResNetFmnistTest, UnknownSplitListsTheValidOnes) {
  auto m = Fmnist();
  auto s = m->find_split("layer9");
  ASSERT_EQ(s.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(s.status().message().find("stem, stage1, stage2, stage3"), std::string::npos) << s.status().message();
}

TEST(ZooTest, UnknownModelListsKnownOnes) {
  auto m = CreateModel("resnet9000", {});
  ASSERT_EQ(m.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(m.status().message().find("resnet_fmnist"), std::string::npos);
}

TEST(ZooTest, RejectsNonsenseOptions) {
  EXPECT_EQ(CreateModel("resnet_fmnist", {/*num_classes=*/0, 1, 0, 0}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CreateModel("resnet50", {1000, 3, /*width=*/32, 0}).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer::models
