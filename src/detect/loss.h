// detect/loss: the YOLO training loss for YOLOv3-tiny's packed output (detect/yolo.h), in the
// form YOLOv5 made standard (its gains and the objectness target), on YOLOv3's decoding:
//
//   assignment  each target box is a positive for every anchor whose width and height are both
//               within 4x of the box's (YOLOv5's anchor_t), at the cell holding the box's centre
//               in that anchor's head; a box no anchor fits goes to its best-fitting anchor, so
//               no object is ignored
//   box         1 - GIoU between the decoded positive (sigmoid offset in the cell, anchor x exp)
//               and the target, mean over positives
//   objectness  BCE over every prediction; a positive's target is its GIoU with the box
//               (detached, clamped to >= 0), everything else 0; per-head mean, weighted 1.0 at
//               stride 16 and 0.4 at stride 32
//   class       BCE over the positives' class logits against one-hot targets, mean
//   total       (0.05 box + 1.0 objectness + 0.5 class) x batch size
#pragma once

#include <torch/types.h>

#include "core/status.h"
#include "detect/yolo.h"

namespace splitinfer::detect {

struct YoloLossGains {
  double box = 0.05, objectness = 1.0, cls = 0.5;
  double anchor_ratio = 4.0;
  double balance16 = 1.0, balance32 = 0.4;
};

struct YoloLoss {
  torch::Tensor total;                   // scalar, differentiable
  double box = 0, objectness = 0, cls = 0;  // the unweighted parts, for logs
  int64_t positives = 0;
};

// `targets`: float [M, 6] = (batch index, class, x, y, w, h) in input pixels (CollateDetection).
// INVALID_ARGUMENT for an output of the wrong shape, or a target with a batch index, class or
// box out of range.
Result<YoloLoss> ComputeYoloLoss(const torch::Tensor& output, const torch::Tensor& targets, const YoloLayout& layout,
                                 const YoloLossGains& gains = {});

}  // namespace splitinfer::detect
