#include "models/lowbit/convert.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "models/zoo/zoo.h"
#include "test_seed.h"

namespace splitinfer::models::lowbit {
namespace {

// Batch norm with non-trivial statistics, so that folding it is really checked.
void RandomiseBatchNorm(BlockChain& model) {
  torch::NoGradGuard g;
  for (auto& m : model->modules(/*include_self=*/false)) {
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get())) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.2, 0.2);
      bn->running_mean.uniform_(-0.3, 0.3);
      bn->running_var.uniform_(0.5, 2.0);
    }
  }
  model->eval();
}

void CheckEverySplit(const std::string& name, ModelOptions mo, const std::vector<int64_t>& shape, int max_splits) {
  torch::manual_seed(::splitinfer::testing::TestSeed());
  auto model = CreateModel(name, mo);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  RandomiseBatchNorm(*model);
  const auto images = torch::randn({2, shape[0], shape[1], shape[2]});
  int done = 0;
  for (const auto& split : (*model)->split_points()) {
    if (done++ == max_splits) break;
    SCOPED_TRACE(name + " up to " + split.name);
    auto graph = ExtractHead(*model, name, split, shape);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    auto err = CheckAgainstTorch(*graph, *model, split, images);
    ASSERT_TRUE(err.ok()) << err.status().ToString();
    EXPECT_LT(*err, 1e-4);
  }
}

TEST(LowbitConvertTest, ResNetFmnistHeadsMatchLibTorch) {
  CheckEverySplit("resnet_fmnist", {/*num_classes=*/10, /*in_channels=*/1, /*width=*/8, 0}, {1, 28, 28}, 4);
}

TEST(LowbitConvertTest, TorchvisionStemBasicAndBottleneckBlocks) {
  // Small inputs keep it quick; the structure (max-pool stem, downsample shortcuts) is the same.
  CheckEverySplit("resnet18", {}, {3, 64, 64}, 2);
  CheckEverySplit("resnet50", {}, {3, 64, 64}, 2);
}

TEST(LowbitConvertTest, UnsupportedBlocksAreNamed) {
  auto model = CreateModel("convnext_tiny", {});
  ASSERT_TRUE(model.ok());
  const auto split = (*model)->split_points().front();
  auto graph = ExtractHead(*model, "convnext_tiny", split, {3, 64, 64});
  EXPECT_EQ(graph.status().code(), ErrorCode::kUnimplemented);
  EXPECT_NE(graph.status().message().find("block stem"), std::string::npos) << graph.status().message();
}

TEST(LowbitConvertTest, TensorRoundTrip) {
  const auto t = torch::randn({3, 4, 5});
  const auto back = FromTensor3(ToTensor3(t));
  EXPECT_TRUE(torch::equal(back[0], t));
}

}  // namespace
}  // namespace splitinfer::models::lowbit
