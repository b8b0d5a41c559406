// TorchScript import: the fixture tests/data/fixtures/tiny_chain.pt (written by
// `tools/export_torchscript.py --tiny`: children features, block, fc; its forward flattens
// before fc in code, like torchvision's ResNet) must cut like a native chain and reproduce the
// module's own forward(); bad files are specific error codes, never exceptions.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "models/torchscript_chain.h"

#ifndef SPLITINFER_TEST_DATA_DIR
#define SPLITINFER_TEST_DATA_DIR "tests/data"
#endif

namespace splitinfer::models {
namespace {

constexpr uint64_t kSeed = 1234;

std::string FixturePath() { return std::string(SPLITINFER_TEST_DATA_DIR) + "/fixtures/tiny_chain.pt"; }

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / ("splitinfer_torchscript_test_" + name)).string();
}

std::unique_ptr<SplitModel> LoadFixture() {
  auto model = LoadTorchScriptChain(FixturePath());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  (*model)->set_eval();
  return std::move(model).value();
}

TEST(TorchScriptChain, BlocksAndSplitPointsAreTheChildren) {
  auto model = LoadFixture();
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->model_name(), "tiny_chain");
  EXPECT_EQ(model->block_names(), (std::vector<std::string>{"features", "block", "fc"}));
  const auto splits = model->split_points();
  ASSERT_EQ(splits.size(), 2u);
  EXPECT_EQ(splits[0].name, "features");
  EXPECT_EQ(splits[0].block, 0);
  EXPECT_EQ(splits[1].name, "block");
  EXPECT_EQ(splits[1].block, 1);
}

TEST(TorchScriptChain, HeadThenTailEqualsForwardAndModuleForward) {
  auto model = LoadFixture();
  ASSERT_NE(model, nullptr);
  torch::NoGradGuard no_grad;
  torch::manual_seed(kSeed);
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  const torch::Tensor x = torch::randn({2, 1, 28, 28});
  const torch::Tensor full = model->forward_all(x);
  ASSERT_EQ(full.sizes(), (torch::IntArrayRef{2, 10}));

  // The reference: the scripted module's own forward(), which flattens before fc itself.
  torch::jit::Module module = torch::jit::load(FixturePath());
  module.eval();
  EXPECT_TRUE(torch::equal(module.forward({x}).toTensor(), full));

  const std::vector<std::vector<int64_t>> feature_shapes = {{2, 8, 14, 14}, {2, 16, 1, 1}};
  const auto splits = model->split_points();
  for (size_t i = 0; i < splits.size(); ++i) {
    SCOPED_TRACE("split " + splits[i].name);
    const torch::Tensor feature = model->head(x, splits[i]);
    EXPECT_EQ(feature.sizes(), torch::IntArrayRef(feature_shapes[i]));
    EXPECT_TRUE(torch::equal(model->tail(feature, splits[i]), full));
  }
}

// Errors inside a block surface as c10::Error, the one type stage boundaries convert, even
// though the TorchScript interpreter itself throws std::runtime_error.
TEST(TorchScriptChain, BlockFailureThrowsC10Error) {
  auto model = LoadFixture();
  ASSERT_NE(model, nullptr);
  torch::NoGradGuard no_grad;
  const torch::Tensor three_channels = torch::zeros({1, 3, 28, 28});  // the fixture takes 1 channel
  EXPECT_THROW(model->forward_all(three_channels), c10::Error);
}

TEST(TorchScriptChain, UnknownSplitIsNotFound) {
  auto model = LoadFixture();
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->find_split("layer9").status().code(), ErrorCode::kNotFound);
  // The last child is not a split point: nothing would be left for the server.
  EXPECT_EQ(model->find_split("fc").status().code(), ErrorCode::kNotFound);
  auto block = model->find_split("block");
  ASSERT_TRUE(block.ok()) << block.status().ToString();
  EXPECT_EQ(block->block, 1);
}

TEST(TorchScriptChain, MissingFileIsNotFound) {
  auto model = LoadTorchScriptChain(TempPath("does_not_exist.pt"));
  EXPECT_EQ(model.status().code(), ErrorCode::kNotFound) << model.status().ToString();
}

TEST(TorchScriptChain, GarbageFileIsDataLoss) {
  const std::string path = TempPath("garbage.pt");
  {
    std::mt19937 rng(kSeed);
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>(rng() & 0xff));
  }
  auto model = LoadTorchScriptChain(path);
  EXPECT_EQ(model.status().code(), ErrorCode::kDataLoss) << model.status().ToString();
  std::filesystem::remove(path);
}

TEST(TorchScriptChain, TruncatedFileIsDataLoss) {
  const std::string path = TempPath("truncated.pt");
  {
    std::ifstream in(FixturePath(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 1000u);
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  auto model = LoadTorchScriptChain(path);
  EXPECT_EQ(model.status().code(), ErrorCode::kDataLoss) << model.status().ToString();
  std::filesystem::remove(path);
}

TEST(TorchScriptChain, ModuleWithoutChildrenIsInvalidArgument) {
  const std::string path = TempPath("no_children.pt");
  torch::jit::Module identity("Identity");
  identity.define("def forward(self, x):\n  return x\n");
  identity.save(path);
  auto model = LoadTorchScriptChain(path);
  EXPECT_EQ(model.status().code(), ErrorCode::kInvalidArgument) << model.status().ToString();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace splitinfer::models
