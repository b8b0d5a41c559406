// Decoding YOLOv3-tiny's packed output and non-maximum suppression, against hand-worked cells.
#include "detect/yolo.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <torch/torch.h>

namespace splitinfer::detect {
namespace {

// 64x64 input, one class: a 2x2 grid at stride 32 then a 4x4 grid at stride 16, 3 x 6 channels.
YoloLayout Small() {
  YoloLayout l;
  l.num_classes = 1;
  l.input_h = l.input_w = 64;
  return l;
}
constexpr int64_t kPer = 6;  // tx ty tw th obj class

// The channel of (anchor, field) and the column of a cell, in the network's packing.
int64_t Channel(int64_t anchor, int64_t field) { return anchor * kPer + field; }
int64_t Big(int64_t gy, int64_t gx) { return gy * 2 + gx; }          // stride 32
int64_t Fine(int64_t gy, int64_t gx) { return 4 + gy * 4 + gx; }     // stride 16

TEST(YoloDecodeTest, ZeroLogitsGiveAnchorsAtCellCentres) {
  const auto l = Small();
  EXPECT_EQ(l.cells(), 20);
  auto d = DecodeYolo(torch::zeros({1, 18, 20}), l);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->sizes(), (torch::IntArrayRef{1, 60, 6}));
  // Row of (head, anchor, gy, gx): the stride-32 rows first (3 x 2 x 2), then stride 16.
  auto row = [&](int64_t r) { return (*d)[0][r]; };
  // Stride 32, anchor 0 of that head (the layout's 4th anchor, 81x82), cell (0, 0).
  EXPECT_FLOAT_EQ(row(0)[0].item<float>(), 16.0f);
  EXPECT_FLOAT_EQ(row(0)[1].item<float>(), 16.0f);
  EXPECT_FLOAT_EQ(row(0)[2].item<float>(), 81.0f);
  EXPECT_FLOAT_EQ(row(0)[3].item<float>(), 82.0f);
  EXPECT_FLOAT_EQ(row(0)[4].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(row(0)[5].item<float>(), 0.5f);
  // Stride 16, anchor 1 (23x27), cell row 1, column 2: centre (2.5 x 16, 1.5 x 16).
  const int64_t r = 12 + 1 * 16 + 1 * 4 + 2;
  EXPECT_FLOAT_EQ(row(r)[0].item<float>(), 40.0f);
  EXPECT_FLOAT_EQ(row(r)[1].item<float>(), 24.0f);
  EXPECT_FLOAT_EQ(row(r)[2].item<float>(), 23.0f);
  EXPECT_FLOAT_EQ(row(r)[3].item<float>(), 27.0f);
}

TEST(YoloDecodeTest, OffsetsAndSizesFollowTheLogits) {
  const auto l = Small();
  auto y = torch::zeros({1, 18, 20});
  y[0][Channel(2, 0)][Fine(3, 1)] = 100.0f;  // sigmoid -> 1: the cell's right edge
  y[0][Channel(2, 2)][Fine(3, 1)] = std::log(2.0f);  // twice the anchor's width
  auto d = DecodeYolo(y, l);
  ASSERT_TRUE(d.ok());
  const auto v = (*d)[0][12 + 2 * 16 + 3 * 4 + 1];
  EXPECT_FLOAT_EQ(v[0].item<float>(), 32.0f);   // (1 + 1) x 16
  EXPECT_FLOAT_EQ(v[1].item<float>(), 56.0f);   // (0.5 + 3) x 16
  EXPECT_NEAR(v[2].item<float>(), 74.0f, 1e-4);  // anchor 2 (37 wide) x 2
}

TEST(YoloDecodeTest, WrongShapesAreNamed) {
  auto bad = DecodeYolo(torch::zeros({1, 18, 21}), Small());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("[N, 18, 20]"), std::string::npos) << bad.status().message();
  auto l = Small();
  l.anchors.pop_back();
  EXPECT_NE(DecodeYolo(torch::zeros({1, 18, 20}), l).status().message().find("6 anchors"), std::string::npos);
}

TEST(YoloNmsTest, KeepsTheBestOfOverlappingBoxes) {
  const std::vector<Box> boxes = {{0, 0, 10, 10, 0.8f, 0}, {1, 1, 10, 10, 0.9f, 0}, {30, 30, 10, 10, 0.7f, 0},
                                  {0, 0, 10, 10, 0.8f, 0}};
  // IoU(0, 1) = 81 / 119 = 0.68 > 0.45: the 0.9 box takes both boxes at (0, 0).
  EXPECT_EQ(Nms(boxes, 0.45f), (std::vector<size_t>{1, 2}));
  EXPECT_EQ(Nms(boxes, 0.7f), (std::vector<size_t>{1, 0, 2}));  // 0 and 3 coincide (IoU 1)
  EXPECT_TRUE(Nms({}, 0.5f).empty());
}

TEST(YoloPostProcessTest, PerClassNmsScoresAndClipping) {
  const auto l = Small();
  auto y = torch::full({1, 18, 20}, -20.0f);  // nothing anywhere...
  for (int64_t a : {0, 1}) {                  // ...but two anchors of one cell, class 0
    y[0][Channel(a, 0)][Big(0, 0)] = 0.0f;
    y[0][Channel(a, 1)][Big(0, 0)] = 0.0f;
    y[0][Channel(a, 2)][Big(0, 0)] = std::log(20.0f / (a == 0 ? 81.0f : 135.0f));  // both 20 wide
    y[0][Channel(a, 3)][Big(0, 0)] = std::log(20.0f / (a == 0 ? 82.0f : 169.0f));
    y[0][Channel(a, 4)][Big(0, 0)] = a == 0 ? 5.0f : 4.0f;
    y[0][Channel(a, 5)][Big(0, 0)] = 10.0f;
  }
  PostProcessOptions o;
  o.score_threshold = 0.5f;
  auto r = PostProcess(y, l, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u);
  ASSERT_EQ((*r)[0].size(), 1u);  // the same box twice: NMS keeps the higher objectness
  const Box& b = (*r)[0][0];
  EXPECT_NEAR(b.x, 6.0f, 1e-4);  // centre 16, width 20
  EXPECT_NEAR(b.w, 20.0f, 1e-3);
  EXPECT_NEAR(b.score, 1.0f / (1.0f + std::exp(-5.0f)) / (1.0f + std::exp(-10.0f)), 1e-5);
  EXPECT_EQ(b.label, 0);
  // A huge box is clipped to the input.
  y[0][Channel(0, 2)][Big(0, 0)] = 1e9f;
  r = PostProcess(y, l, o);
  ASSERT_TRUE(r.ok());
  for (const auto& box : (*r)[0]) {
    EXPECT_GE(box.x, 0.0f);
    EXPECT_LE(box.x + box.w, 64.0f);
  }
}

// An untrained detector's flood of boxes: only the best max_candidates reach NMS.
TEST(YoloPostProcessTest, OnlyTheBestCandidatesReachNms) {
  const auto l = Small();
  auto y = torch::zeros({1, 18, 20});  // every anchor of every cell: objectness and classes 0.5
  y.select(1, Channel(2, 4)).fill_(3.0f);  // anchor 2 everywhere a little surer of itself
  PostProcessOptions o;
  o.score_threshold = 0.2f;
  o.iou_threshold = 1.0f;  // keep overlapping boxes: only the cap decides
  o.max_detections = 1000;
  auto all = PostProcess(y, l, o);
  ASSERT_TRUE(all.ok());
  const size_t everything = (*all)[0].size();
  EXPECT_GT(everything, 40u);
  o.max_candidates = 7;
  auto capped = PostProcess(y, l, o);
  ASSERT_TRUE(capped.ok());
  ASSERT_EQ((*capped)[0].size(), 7u);
  const float best = (*all)[0][0].score;
  for (const auto& b : (*capped)[0]) EXPECT_FLOAT_EQ(b.score, best);  // the surest anchor's
}

TEST(YoloPostProcessTest, NonFiniteOutputsNeverBecomeBoxes) {
  const auto l = Small();
  auto y = torch::full({1, 18, 20}, 10.0f);  // every cell and anchor scores high
  y[0][Channel(0, 0)][Big(1, 1)] = std::numeric_limits<float>::quiet_NaN();
  y[0][Channel(1, 4)][Big(1, 0)] = std::numeric_limits<float>::quiet_NaN();
  y[0][Channel(2, 2)][Fine(0, 0)] = std::numeric_limits<float>::infinity();
  auto r = PostProcess(y, l, {});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE((*r)[0].empty());
  EXPECT_LE(static_cast<int64_t>((*r)[0].size()), 100);
  for (const auto& b : (*r)[0]) {
    EXPECT_TRUE(std::isfinite(b.x) && std::isfinite(b.y) && std::isfinite(b.w) && std::isfinite(b.h) &&
                std::isfinite(b.score));
    EXPECT_GT(b.w, 0.0f);
  }
}

}  // namespace
}  // namespace splitinfer::detect
