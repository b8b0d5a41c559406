// Training a detector (a model whose task is detect: yolov3_tiny), reached through
// train::Train, which sends a detector here. Same output folder, resumption and schedule as the
// classifier's trainer (trainer.h); the data is a detection dataset (data.dataset coco:DIR or
// scenes:CONFIG, data.image_size the square input side), augmentation and loss are YOLO's
// (config.h DetectConfig), and log.jsonl records the test split's COCO AP, AP50 and AP75 after
// every epoch. The checkpoint carries task detect, the anchors (given, or k-means on the
// letterboxed training boxes) and the final AP and AP50.
#pragma once

#include "core/status.h"
#include "train/config.h"
#include "train/trainer.h"

namespace splitinfer::train {

// Whether config.model names a detector (a zoo detector or a detector checkpoint).
// INVALID_ARGUMENT for a `detect:` block on a classifier or an `augment:` block on a detector.
Result<bool> IsDetectorConfig(const TrainConfig& config);

Result<TrainResult> TrainDetector(const TrainConfig& config, const TrainOptions& options);

}  // namespace splitinfer::train
