// YOLOv3-tiny (src/models/zoo/yolo.cpp): the parameter count computed from Darknet's cfg, the
// packed output of both heads, head/tail equality at every split, the refused cuts, and the
// small variant the CPU trains.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

// pjreddie/darknet cfg/yolov3-tiny.cfg, layer by layer: (in, out, k, batch_normalize). A
// batch-normalised conv has no bias and 2 x out BN parameters (scale, shift); the two 1x1
// output convs (255 = 3 x (5 + 80)) are linear with a bias. Ultralytics' YOLOv3-tiny summary
// prints the same total, 8,852,366.
int64_t CfgParameterCount(int64_t classes) {
  const int64_t out = 3 * (5 + classes);
  struct Conv {
    int64_t in, out, k;
    bool bn;
  };
  const Conv layers[] = {{3, 16, 3, true},    {16, 32, 3, true},    {32, 64, 3, true},    {64, 128, 3, true},
                         {128, 256, 3, true}, {256, 512, 3, true},  {512, 1024, 3, true}, {1024, 256, 1, true},
                         {256, 512, 3, true}, {512, out, 1, false}, {256, 128, 1, true},  {384, 256, 3, true},
                         {256, out, 1, false}};
  int64_t n = 0;
  for (const auto& c : layers) n += c.in * c.out * c.k * c.k + (c.bn ? 2 * c.out : c.out);
  return n;
}

TEST(YoloV3TinyTest, ParameterCountIsTheCfgs) {
  EXPECT_EQ(CfgParameterCount(80), 8852366);
  auto net = MakeYoloV3Tiny({/*num_classes=*/80, /*in_channels=*/3, 0, 0});
  EXPECT_EQ(net->parameter_count(), 8852366);
  EXPECT_EQ(MakeYoloV3Tiny({10, 3, 0, 0})->parameter_count(), CfgParameterCount(10));
}

TEST(YoloV3TinyTest, BothHeadsPackedAt416) {
  torch::NoGradGuard g;
  auto net = MakeYoloV3Tiny({80, 3, 0, 0});
  net->eval();
  const auto y = net->forward_all(torch::randn({1, 3, 416, 416}));
  // 13x13 cells at stride 32, then 26x26 at stride 16; 3 anchors x (4 + 1 + 80) per cell.
  EXPECT_EQ(y.sizes(), (torch::IntArrayRef{1, 255, 13 * 13 + 26 * 26}));
}

TEST(YoloV3TinyTest, SplitsCarryOneTensorAndHeadThenTailEqualsForward) {
  torch::NoGradGuard g;
  torch::manual_seed(7);
  auto net = MakeYoloV3Tiny({10, 1, /*width=*/4, 0});  // the CPU-sized variant: 1x128x128 scenes
  net->eval();
  const auto x = torch::randn({2, 1, 128, 128});
  const auto want = net->forward_all(x);
  EXPECT_EQ(want.sizes(), (torch::IntArrayRef{2, 45, 4 * 4 + 8 * 8}));
  ASSERT_GT(want.abs().sum().item<double>(), 0.0);
  std::vector<std::string> names;
  const std::vector<std::vector<int64_t>> shapes = {{2, 4, 64, 64}, {2, 8, 32, 32}, {2, 16, 16, 16},
                                                    {2, 32, 8, 8},  {2, 64, 8, 8}};
  const auto splits = net->split_points();
  ASSERT_EQ(splits.size(), 5u);
  for (size_t i = 0; i < splits.size(); ++i) {
    names.push_back(splits[i].name);
    const auto f = net->head(x, splits[i]);
    EXPECT_EQ(f.sizes(), torch::IntArrayRef(shapes[i])) << splits[i].name;
    EXPECT_TRUE(torch::equal(net->tail(f, splits[i]), want)) << splits[i].name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"stage1", "stage2", "stage3", "stage4", "stage5"}));
}

TEST(YoloV3TinyTest, CutsInsideTheNeckAreRefusedWithTheReason) {
  auto net = MakeYoloV3Tiny({10, 1, 4, 0});
  auto inside = net->find_split("stage6");
  EXPECT_EQ(inside.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(inside.status().message().find("reuses it"), std::string::npos) << inside.status().message();
  EXPECT_NE(inside.status().message().find("stage5"), std::string::npos) << inside.status().message();
  EXPECT_EQ(net->find_split("nowhere").status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(net->find_split("stage5").ok());
}

}  // namespace
}  // namespace splitinfer::models
