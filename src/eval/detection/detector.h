// eval/detection/detector: a detector measured on a COCO-format dataset with COCO's metric
// (coco_eval.h), and its detections in COCO's results format so that any COCO evaluator can
// recompute the figures.
//
// Images are letterboxed to the detector's square input (data/detection.h); boxes are decoded
// and suppressed there (detect/yolo.h) and mapped back to the original image's pixels before
// they are scored, as a COCO evaluator sees them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "core/status.h"
#include "data/detection.h"
#include "detect/yolo.h"
#include "eval/detection/coco_eval.h"
#include "models/checkpoint.h"
#include "models/split_model.h"

namespace splitinfer::eval {

struct DetectorEvalOptions {
  int64_t batch_size = 64;
  int64_t limit = 0;  // 0 = every image of the split
  torch::Device device = torch::kCPU;
  bool progress = false;
  bool class_agnostic = false;  // score as one category (CocoScorer::Score); detections keep theirs
  detect::PostProcessOptions post;
};

struct DetectorEvalResult {
  CocoMetrics metrics;
  std::vector<DetectionBox> detections;  // original image pixels, the dataset's category ids
  int64_t images = 0;
  double seconds = 0;
};

// What produces the detector's raw output for a batch of normalised float images [B, C, S, S]
// on the evaluation device: the whole model, or a node and server with a frame between them.
using DetectorForward = std::function<Result<torch::Tensor>(const torch::Tensor& images)>;

Result<DetectorEvalResult> EvaluateDetector(const DetectorForward& forward, const data::CocoDetectionDataset& dataset,
                                            const models::CheckpointMeta& meta, const DetectorEvalOptions& options);
// The whole model in one piece.
Result<DetectorEvalResult> EvaluateDetector(models::SplitModel& model, const data::CocoDetectionDataset& dataset,
                                            const models::CheckpointMeta& meta, const DetectorEvalOptions& options);

// The JPEG input-image baseline of a detector: the input images sent as JPEG instead of a
// split's frames. Qualities are tried from `ladder` (descending); the chosen one is the last
// whose AP50 stays within `tolerance` (AP units, e.g. 0.005 = half a point) of `target_ap50`,
// stopping at the first that falls below (a quality that never matches gives the first
// rung's result, flagged). Every quality tried is kept with its AP50 and bytes.
struct JpegMatch {
  int quality = 0;
  bool matched = false;
  double bytes_per_image = 0;
  CocoMetrics metrics;
  struct Rung {
    int quality;
    double ap50, bytes_per_image;
  };
  std::vector<Rung> tried;
};
Result<JpegMatch> JpegMatchingAp50(models::SplitModel& model, const data::CocoDetectionDataset& dataset,
                                   const models::CheckpointMeta& meta, double target_ap50, double tolerance,
                                   const DetectorEvalOptions& options,
                                   const std::vector<int>& ladder = {100, 98, 96, 94, 92, 90, 85, 80, 75, 70, 60, 50,
                                                                     40, 30, 20, 10});

// COCO's results format: [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...].
nlohmann::json DetectionsToCocoResults(const std::vector<DetectionBox>& detections);

}  // namespace splitinfer::eval
