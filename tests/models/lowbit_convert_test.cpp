#include "models/lowbit/convert.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <torch/script.h>

#include "models/torchscript_chain.h"
#include "models/zoo/zoo.h"
#include "test_seed.h"

#ifndef SPLITINFER_TEST_DATA_DIR
#define SPLITINFER_TEST_DATA_DIR "tests/data"
#endif

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
    auto graph = ExtractHead(**model, name, split, shape);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    auto err = CheckAgainstTorch(*graph, **model, split, images);
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
  auto graph = ExtractHead(**model, "convnext_tiny", split, {3, 64, 64});
  EXPECT_EQ(graph.status().code(), ErrorCode::kUnimplemented);
  EXPECT_NE(graph.status().message().find("block stem"), std::string::npos) << graph.status().message();
}

// A user's scripted model (tools/export_torchscript.py --tiny): block "features" is
// Sequential(Conv2d, BatchNorm2d, ReLU) as three lone layers, which fold into one op; block
// "block" ends in an AdaptiveAvgPool2d, which has no kernel and is named.
TEST(LowbitConvertTest, TorchScriptHeadMatchesLibTorchAndOtherLayersAreNamed) {
  auto file = LoadTorchScriptFile(std::string(SPLITINFER_TEST_DATA_DIR) + "/fixtures/tiny_chain_meta.pt");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  SplitModel& chain = *file->chain;
  const torch::jit::Module* features = TorchScriptBlock(chain, 0);
  ASSERT_NE(features, nullptr);
  EXPECT_EQ(TorchScriptBlock(chain, 99), nullptr);
  {
    torch::NoGradGuard g;
    torch::manual_seed(::splitinfer::testing::TestSeed());
    for (const auto& t : features->named_parameters(/*recurse=*/true)) {
      if (t.name == "1.weight") t.value.uniform_(0.5, 1.5);
      if (t.name == "1.bias") t.value.uniform_(-0.2, 0.2);
    }
    for (const auto& t : features->named_buffers(/*recurse=*/true)) {
      if (t.name == "1.running_mean") t.value.uniform_(-0.3, 0.3);
      if (t.name == "1.running_var") t.value.uniform_(0.5, 2.0);
    }
  }
  chain.set_eval();
  auto split = chain.find_split("features");
  ASSERT_TRUE(split.ok());
  auto graph = ExtractHead(chain, "tiny_chain", *split, {1, 28, 28});
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  ASSERT_EQ(graph->ops.size(), 1u);
  EXPECT_TRUE(graph->ops[0].relu);
  EXPECT_EQ(graph->ops[0].shape.stride, 2);
  auto err = CheckAgainstTorch(*graph, chain, *split, torch::randn({2, 1, 28, 28}));
  ASSERT_TRUE(err.ok()) << err.status().ToString();
  EXPECT_LT(*err, 1e-4);

  auto block = chain.find_split("block");
  ASSERT_TRUE(block.ok());
  auto refused = ExtractHead(chain, "tiny_chain", *block, {1, 28, 28});
  EXPECT_EQ(refused.status().code(), ErrorCode::kUnimplemented);
  EXPECT_NE(refused.status().message().find("block block.2 is a AdaptiveAvgPool2d"), std::string::npos)
      << refused.status().message();
}

TEST(LowbitConvertTest, TensorRoundTrip) {
  const auto t = torch::randn({3, 4, 5});
  const auto back = FromTensor3(ToTensor3(t));
  EXPECT_TRUE(torch::equal(back[0], t));
}

}  // namespace
}  // namespace splitinfer::models::lowbit
