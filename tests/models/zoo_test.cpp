// The ImageNet zoo: torchvision-exact parameter counts, the split contract
// tail(head(x, s), s) == forward(x) bit for bit in eval mode at every split point, and the
// feature shapes each split sends.
//
// CNNs run on 64x64 input (fully convolutional + adaptive pooling) to keep the suite fast;
// ViT-B/16 needs 224x224 (fixed position embedding).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

constexpr uint64_t kSeed = 20240601;

using Shape = std::vector<int64_t>;  // feature shape without the batch dimension

struct ZooCase {
  std::string name;
  BlockChain (*make)(const ModelOptions&);
  int64_t params;  // torchvision's count for the same architecture
  int64_t input_size;
  std::vector<std::pair<std::string, Shape>> splits;  // expected split points and feature shapes
  bool literal_every_split = true;  // run head() + tail() at every split (false: too slow)
};

std::ostream& operator<<(std::ostream& os, const ZooCase& c) { return os << c.name; }

std::vector<ZooCase> Cases() {
  return {
      {"resnet18", &MakeResNet18, 11689512, 64,
       {{"stem", {64, 16, 16}},
        {"layer1", {64, 16, 16}},
        {"layer2", {128, 8, 8}},
        {"layer3", {256, 4, 4}},
        {"layer4", {512, 2, 2}}}},
      {"resnet50", &MakeResNet50, 25557032, 64,
       {{"stem", {64, 16, 16}},
        {"layer1", {256, 16, 16}},
        {"layer2", {512, 8, 8}},
        {"layer3", {1024, 4, 4}},
        {"layer4", {2048, 2, 2}}}},
      {"convnext_tiny", &MakeConvNeXtTiny, 28589128, 64,
       {{"stem", {96, 16, 16}},
        {"stage1", {96, 16, 16}},
        {"stage2", {192, 8, 8}},
        {"stage3", {384, 4, 4}},
        {"stage4", {768, 2, 2}}}},
      {"efficientnet_v2_s", &MakeEfficientNetV2S, 21458488, 64,
       {{"stem", {24, 32, 32}},
        {"stage1", {24, 32, 32}},
        {"stage2", {48, 16, 16}},
        {"stage3", {64, 8, 8}},
        {"stage4", {128, 4, 4}},
        {"stage5", {160, 4, 4}},
        {"stage6", {256, 2, 2}},
        {"head", {1280, 2, 2}}}},
      {"vit_b_16", &MakeViTB16, 86567656, 224, [] {
         std::vector<std::pair<std::string, Shape>> s = {{"patch_embed", {197, 768}}};
         for (int i = 0; i < 12; ++i) s.push_back({"encoder_" + std::to_string(i), {197, 768}});
         return s;
       }(),
       /*literal_every_split=*/false},
  };
}

// Models are large (ViT-B/16: 350 MB); build each once per process and share it between tests.
BlockChain& Model(const ZooCase& c) {
  static std::map<std::string, BlockChain> cache;
  auto it = cache.find(c.name);
  if (it == cache.end()) {
    torch::manual_seed(kSeed);
    it = cache.emplace(c.name, c.make(ModelOptions{})).first;
  }
  return it->second;
}

const ZooCase& CaseNamed(const std::string& name) {
  static const std::vector<ZooCase> cases = Cases();
  for (const auto& c : cases) {
    if (c.name == name) return c;
  }
  throw std::invalid_argument("no zoo case " + name);
}

class ZooTest : public ::testing::TestWithParam<ZooCase> {};

TEST_P(ZooTest, ParameterCountMatchesTorchvision) {
  const ZooCase& c = GetParam();
  EXPECT_EQ(Model(c)->parameter_count(), c.params);
  EXPECT_EQ(Model(c)->model_name(), c.name);
}

TEST_P(ZooTest, SplitPointsAreStemAndStages) {
  const ZooCase& c = GetParam();
  std::vector<std::string> want, got;
  for (const auto& [name, shape] : c.splits) want.push_back(name);
  for (const auto& s : Model(c)->split_points()) got.push_back(s.name);
  EXPECT_EQ(got, want);
  EXPECT_EQ(Model(c)->block_names().back(), "classifier");
}

TEST_P(ZooTest, HeadThenTailEqualsForwardAtEverySplit) {
  const ZooCase& c = GetParam();
  BlockChain& model = Model(c);
  model->eval();
  torch::NoGradGuard no_grad;
  if (c.name == "vit_b_16") {
    // torchvision zero-initialises ViT's head; zero logits would make the comparison vacuous.
    torch::manual_seed(kSeed);
    model->named_parameters()["classifier.head.weight"].normal_(0.0, 0.02);
  }
  torch::manual_seed(kSeed);
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  const torch::Tensor x = torch::randn({1, 3, c.input_size, c.input_size});
  const torch::Tensor want = model->forward_all(x);
  ASSERT_EQ(want.sizes(), (torch::IntArrayRef{1, 1000}));
  ASSERT_GT(want.abs().sum().item<double>(), 0.0);

  const auto splits = model->split_points();
  ASSERT_EQ(splits.size(), c.splits.size());

  // One walk, block by block: the feature at every block boundary, with the shapes the splits
  // send, must compose to exactly forward(). This covers every cut in one forward pass.
  std::vector<torch::Tensor> features;  // features[b] = output of block b
  torch::Tensor h = x;
  for (int64_t b = 0; b < model->num_blocks(); ++b) {
    h = model->run_blocks(h, b, b + 1);
    features.push_back(h);
  }
  EXPECT_TRUE(torch::equal(features.back(), want));
  for (size_t i = 0; i < splits.size(); ++i) {
    Shape shape = {1};
    shape.insert(shape.end(), c.splits[i].second.begin(), c.splits[i].second.end());
    EXPECT_EQ(features[splits[i].block].sizes(), torch::IntArrayRef(shape)) << splits[i].name;
  }

  // The literal contract through head() and tail(). Each check costs a full forward pass; ViT-B/16
  // at 224x224 takes ~10 s per pass on a 2-core CPU, so it checks only the cheap ends: head() at
  // the first cut and tail() at the last (the walk above covers the cuts in between).
  for (size_t i = 0; i < splits.size(); ++i) {
    SCOPED_TRACE("split " + splits[i].name);
    const torch::Tensor& at_split = features[splits[i].block];
    if (c.literal_every_split) {
      const torch::Tensor feature = model->head(x, splits[i]);
      EXPECT_TRUE(torch::equal(feature, at_split));
      EXPECT_TRUE(torch::equal(model->tail(feature, splits[i]), want));
    } else if (i == 0) {
      EXPECT_TRUE(torch::equal(model->head(x, splits[i]), at_split));
    } else if (i + 1 == splits.size()) {
      EXPECT_TRUE(torch::equal(model->tail(at_split, splits[i]), want));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ImageNet, ZooTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<ZooCase>& info) { return info.param.name; });

// The cut the TCL paper evaluates most: ResNet-50 after the stem, at the real 224x224 size.
TEST(ZooShapes, ResNet50FeaturesAt224) {
  BlockChain& model = Model(CaseNamed("resnet50"));
  model->eval();
  torch::NoGradGuard no_grad;
  const std::map<std::string, Shape> want = {{"stem", {1, 64, 56, 56}},
                                             {"layer1", {1, 256, 56, 56}},
                                             {"layer2", {1, 512, 28, 28}},
                                             {"layer3", {1, 1024, 14, 14}},
                                             {"layer4", {1, 2048, 7, 7}}};
  // Walk the chain once, block by block, instead of re-running the head for every split.
  torch::manual_seed(kSeed);
  torch::Tensor h = torch::randn({1, 3, 224, 224});
  const auto names = model->block_names();
  for (int64_t b = 0; b + 1 < model->num_blocks(); ++b) {
    h = model->run_blocks(h, b, b + 1);
    EXPECT_EQ(h.sizes(), torch::IntArrayRef(want.at(names[b]))) << names[b];
  }
}

// num_classes and in_channels reach the first and last layer of every architecture.
TEST(ZooOptions, ClassesAndChannels) {
  torch::NoGradGuard no_grad;
  const ModelOptions options{/*num_classes=*/10, /*in_channels=*/1};
  const std::vector<std::pair<BlockChain (*)(const ModelOptions&), int64_t>> makers = {
      {&MakeResNet18, 32}, {&MakeResNet50, 32}, {&MakeConvNeXtTiny, 32}, {&MakeEfficientNetV2S, 32}};
  for (const auto& [make, size] : makers) {
    BlockChain model = make(options);
    SCOPED_TRACE(model->model_name());
    model->eval();
    EXPECT_EQ(model->forward_all(torch::randn({1, 1, size, size})).sizes(), (torch::IntArrayRef{1, 10}));
  }
  // ViT by its parameter shapes: a 224x224 forward pass costs ~10 s here.
  BlockChain vit = MakeViTB16(options);
  auto params = vit->named_parameters();
  EXPECT_EQ(params["patch_embed.conv_proj.weight"].sizes(), (torch::IntArrayRef{768, 1, 16, 16}));
  EXPECT_EQ(params["classifier.head.weight"].sizes(), (torch::IntArrayRef{10, 768}));
}

// Training mode runs the stochastic-depth and dropout paths and backpropagates to the input
// block's weights.
TEST(ZooTraining, StochasticDepthPathsBackpropagate) {
  torch::manual_seed(kSeed);
  for (auto make : {&MakeConvNeXtTiny, &MakeEfficientNetV2S}) {
    BlockChain model = make(ModelOptions{});
    SCOPED_TRACE(model->model_name());
    model->train();
    model->forward_all(torch::randn({2, 3, 32, 32})).sum().backward();
    const torch::Tensor grad = model->named_parameters()[model->block_names()[0] + ".conv.weight"].grad();
    ASSERT_TRUE(grad.defined());
    EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
  }
}

TEST(ZooErrors, ViTRejectsOtherImageSizes) {
  torch::NoGradGuard no_grad;
  EXPECT_THROW(Model(CaseNamed("vit_b_16"))->forward_all(torch::randn({1, 3, 64, 64})), c10::Error);
}

}  // namespace
}  // namespace splitinfer::models
