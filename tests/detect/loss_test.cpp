// The YOLO loss (detect/loss.h): target assignment by anchor ratio, refused targets, and the
// test that matters: a small YOLOv3-tiny trained with it on one image finds that image's boxes
// again through DecodeYolo/PostProcess, measured with COCO's metric.
#include "detect/loss.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "eval/detection/coco_eval.h"
#include "models/zoo/zoo.h"

namespace splitinfer::detect {
namespace {

YoloLayout Layout64(int64_t classes) {
  YoloLayout l;
  l.num_classes = classes;
  l.input_h = l.input_w = 64;
  return l;
}

TEST(YoloLossTest, AssignsByAnchorRatio) {
  YoloLayout l = Layout64(2);
  const auto out = torch::zeros({1, 21, l.cells()});
  // A 20x20 box: within 4x of the three small anchors (10x14, 23x27, 37x58), not of 81x82 and up.
  auto r = ComputeYoloLoss(out, torch::tensor({{0.0, 1.0, 10.0, 10.0, 20.0, 20.0}}), l);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->positives, 3);
  // A 2x2 box fits no anchor within 4x: it still takes its best one.
  r = ComputeYoloLoss(out, torch::tensor({{0.0, 0.0, 30.0, 30.0, 2.0, 2.0}}), l);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->positives, 1);
  // No targets: only objectness (every prediction a negative).
  r = ComputeYoloLoss(out, torch::zeros({0, 6}), l);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->positives, 0);
  EXPECT_NEAR(r->objectness, 1.4 * std::log(2.0), 1e-6);  // BCE(0 logit, 0) = log 2, heads 1.0 + 0.4
  EXPECT_DOUBLE_EQ(r->cls, 0.0);
}

TEST(YoloLossTest, RefusesTargetsOutOfRange) {
  YoloLayout l = Layout64(2);
  const auto out = torch::zeros({1, 21, l.cells()});
  auto bad_class = ComputeYoloLoss(out, torch::tensor({{0.0, 2.0, 1.0, 1.0, 5.0, 5.0}}), l);
  EXPECT_EQ(bad_class.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_class.status().message().find("class < 2"), std::string::npos) << bad_class.status().message();
  EXPECT_FALSE(ComputeYoloLoss(out, torch::tensor({{1.0, 0.0, 1.0, 1.0, 5.0, 5.0}}), l).ok());  // batch 1 of 1
  EXPECT_FALSE(ComputeYoloLoss(out, torch::tensor({{0.0, 0.0, 1.0, 1.0, 0.0, 5.0}}), l).ok());  // no width
  EXPECT_FALSE(ComputeYoloLoss(out, torch::zeros({2, 5}), l).ok());
  EXPECT_FALSE(ComputeYoloLoss(torch::zeros({1, 21, 5}), torch::zeros({0, 6}), l).ok());
}

// Two bright shapes of two classes on a noisy background, learned from scratch by the width-4
// network: after training, the detector must find both at IoU 0.5 (AP50 1.0) on that image.
TEST(YoloLossTest, TrainingWithItFindsTheBoxesAgain) {
  torch::manual_seed(1);
  YoloLayout l = Layout64(2);
  l.anchors = {{8, 8}, {12, 20}, {20, 12}, {24, 24}, {32, 16}, {16, 32}};
  auto image = torch::rand({1, 1, 64, 64}) * 0.2;
  image.index_put_({0, 0, torch::indexing::Slice(8, 28), torch::indexing::Slice(6, 18)}, 1.0);   // 12x20, class 0
  image.index_put_({0, 0, torch::indexing::Slice(40, 52), torch::indexing::Slice(30, 54)}, 0.7);  // 24x12, class 1
  const auto batch = torch::cat({image, image});
  const auto targets = torch::tensor({{0.0, 0.0, 6.0, 8.0, 12.0, 20.0}, {0.0, 1.0, 30.0, 40.0, 24.0, 12.0},
                                      {1.0, 0.0, 6.0, 8.0, 12.0, 20.0}, {1.0, 1.0, 30.0, 40.0, 24.0, 12.0}});
  auto net = models::MakeYoloV3Tiny({2, 1, /*width=*/4, 0});
  net->train();
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    auto loss = ComputeYoloLoss(net->forward_all(batch), targets, l);
    ASSERT_TRUE(loss.ok()) << loss.status().ToString();
    opt.zero_grad();
    loss->total.backward();
    opt.step();
    if (step == 0) first = loss->total.item<double>();
    last = loss->total.item<double>();
  }
  EXPECT_LT(last, first / 5) << "first " << first << " last " << last;
  net->eval();
  torch::NoGradGuard g;
  auto dets = PostProcess(net->forward_all(image), l, {});
  ASSERT_TRUE(dets.ok());
  std::vector<eval::DetectionBox> d;
  for (const auto& b : (*dets)[0]) d.push_back({1, b.label, {b.x, b.y, b.w, b.h}, b.score});
  const std::vector<eval::GroundTruthBox> gt = {{1, 0, {6, 8, 12, 20}, 240, false}, {1, 1, {30, 40, 24, 12}, 288, false}};
  auto m = eval::EvaluateCoco({1}, {0, 1}, gt, d);
  ASSERT_TRUE(m.ok());
  EXPECT_DOUBLE_EQ(m->ap50, 1.0) << "AP " << m->ap << ", " << d.size() << " detections";
}

}  // namespace
}  // namespace splitinfer::detect
