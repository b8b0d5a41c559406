// detect/yolo: turning YOLOv3-tiny's packed output (models/zoo/yolo.cpp) into boxes: decoding
// with the anchors, score filtering and per-class non-maximum suppression.
//
// Output layout: [N, A(5+C), cells], A = 3 anchors per scale, cells = the stride-32 grid then
// the stride-16 grid, each row-major. Per cell and anchor (anchor-major channels): tx, ty, tw, th,
// objectness, C class logits. As YOLOv3 decodes them:
//   centre = (sigmoid(t_xy) + cell) x stride, size = anchor x exp(t_wh), score = sigmoid(obj) x
//   sigmoid(class)
// Anchors are in input pixels, smallest first (the cfg's order: the stride-16 head uses the
// first three, the stride-32 head the last three). t_wh is clamped before exp so that no input
// gives an infinite box; a non-finite output never becomes a detection.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "core/status.h"
#include "models/checkpoint.h"

namespace splitinfer::detect {

struct YoloLayout {
  int64_t num_classes = 80;
  int64_t input_h = 416, input_w = 416;
  std::vector<std::array<double, 2>> anchors = {{10, 14}, {23, 27}, {37, 58}, {81, 82}, {135, 169}, {344, 319}};
  // The grids of the two heads: ceil(input / stride).
  int64_t cells() const;
  Status Check(const torch::Tensor& output) const;  // INVALID_ARGUMENT naming the shape it expected
};

// How a detector's metadata decodes its output (classes, input size, anchors).
// INVALID_ARGUMENT for metadata that is not a detector's (task detect, [C, S, S], 6 anchors).
Result<YoloLayout> LayoutFor(const models::CheckpointMeta& meta);

struct Box {
  float x = 0, y = 0, w = 0, h = 0;  // top-left corner and size, input pixels (COCO's convention)
  float score = 0;
  int64_t label = 0;                 // class index
};

// YOLOv5's starting point for a head's output-convolution bias (one head: A(5+C) values,
// anchor-major): objectness as if 8 objects per image were spread over the head's `cells`, each
// class at probability 0.6 / (C - 0.99). Without it every prediction starts at probability 0.5
// and the first steps only learn that most cells are empty. Works in place, without autograd.
void InitYoloHeadBias(torch::Tensor bias, const YoloLayout& layout, int64_t cells);

// [N, cells x A, 4 + 1 + C]: centre x, centre y, w, h (input pixels), objectness probability,
// class probabilities. Differentiable (the loss uses the raw output; this is for inference).
Result<torch::Tensor> DecodeYolo(const torch::Tensor& output, const YoloLayout& layout);

struct PostProcessOptions {
  float score_threshold = 0.001f;  // COCO evaluations keep low scores: AP needs the whole curve
  float iou_threshold = 0.45f;     // per-class NMS
  int64_t max_detections = 100;    // per image, COCO's maxDets
  // Boxes over the threshold an image may take into NMS, best first (YOLOv5's max_nms): NMS is
  // quadratic per class, and an untrained detector puts a quarter of a 416x416 input's 200,000
  // (box, class) pairs over 0.25. A trained one stays far below it.
  int64_t max_candidates = 30000;
};

// Per image: boxes with score = objectness x class probability over the threshold (one per
// class a cell's anchor scores above it; at most max_candidates, the best), per-class NMS,
// clipped to the input, best first.
Result<std::vector<std::vector<Box>>> PostProcess(const torch::Tensor& output, const YoloLayout& layout,
                                                  const PostProcessOptions& options);

// Greedy NMS over boxes of one class: indices kept, by descending score (ties: lower index first).
std::vector<size_t> Nms(const std::vector<Box>& boxes, float iou_threshold);

}  // namespace splitinfer::detect
