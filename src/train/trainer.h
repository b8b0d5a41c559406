// Supervised training of a zoo model, resumable at epoch boundaries.
//
// OUT/ holds: checkpoint.pt + checkpoint.json (the final model, see models/checkpoint.h),
// state.pt (model + optimizer + finished epochs, rewritten after every epoch), log.jsonl (one
// JSON line per epoch) and config.json. Running again with the same OUT resumes after the last
// finished epoch; the result is the same as an uninterrupted run because shuffling and
// augmentation for epoch e draw from generators seeded with (seed, e).
#pragma once

#include <string>

#include <torch/types.h>

#include "core/status.h"
#include "models/model_flags.h"
#include "train/config.h"

namespace splitinfer::train {

struct TrainOptions {
  std::string out_dir;
  torch::Device device = torch::kCPU;
  bool restart = false;   // ignore an existing state.pt
  bool progress = true;   // progress bar / log lines on stderr
  int64_t stop_after_epochs = 0;  // >0: stop (resumably) after this many epochs in this run
  models::ModelMetaFlags model_flags;  // model.name a TorchScript file without its own metadata
};

struct TrainResult {
  double top1 = 0;  // percent, on the test split, after the last epoch (classifiers)
  double ap = -1, ap50 = -1;  // detectors: COCO AP and AP50 on the test split, after the last epoch
  int64_t epochs_done = 0;
  bool finished = false;  // all configured epochs done and checkpoint.pt written
  std::string checkpoint;
};

// FAILED_PRECONDITION for CUDA on a CPU-only build; config errors as INVALID_ARGUMENT.
Result<TrainResult> Train(const TrainConfig& config, const TrainOptions& options);

}  // namespace splitinfer::train
