// detect/anchors: YOLO's anchor boxes from the training boxes, by k-means on box sizes with
// 1 - IoU as the distance (YOLOv2's choice: a Euclidean distance would let large boxes dominate).
// Boxes and centroids are compared as if they shared a centre, so only width and height matter.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/status.h"

namespace splitinfer::detect {

using Size2 = std::array<double, 2>;  // width, height (pixels)

double SizeIou(const Size2& a, const Size2& b);

struct AnchorFit {
  std::vector<Size2> anchors;  // smallest area first (the order YOLO's cfg lists them in)
  double mean_best_iou = 0;    // mean over boxes of the IoU with their closest anchor
  int iterations = 0;
};

// Deterministic for a given seed: k-means++ seeding (by (1 - IoU)^2) from a SplitMix64 stream, then
// Lloyd iterations (centroids = per-cluster median of width and height, as YOLOv2/v3's scripts
// use, which resists outliers) until the assignment stops changing or `max_iterations`; the best
// of 10 such seedings (mean IoU of each box with its closest anchor).
// INVALID_ARGUMENT for k < 1, fewer boxes than k, or a box without a positive finite size.
Result<AnchorFit> FitAnchors(const std::vector<Size2>& sizes, int k, uint64_t seed = 1, int max_iterations = 300);

}  // namespace splitinfer::detect
