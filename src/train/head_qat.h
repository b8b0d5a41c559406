// train/head_qat: fine-tune a network head for low-bit weights and activations (issue 7), so
// that 2-bit local-region weights lose little accuracy.
//
//   head file (float graph, BN folded) -> torch module running the graph with fake quantization
//   (weights: per local region, the odd LUT levels of kernels/lut.h with scale max|w| / (2^b-1);
//   activations: per local region (or per tensor), ranges calibrated once on training images; straight-through
//   gradients) -> the model's float tail, frozen -> CE + distillation from the float model
//   -> the fine-tuned float graph, written back as a head file for quantize-head to quantize.
//
// The fake quantization is the arithmetic kernels::QuantizeGraph applies afterwards (same
// scales, same levels, same activation formula), so what was trained is what runs. Resumable:
// OUT.state.pt after every epoch (weights, AdamW moments, settings; train/loop.h EpochState).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "kernels/head.h"

namespace splitinfer::train {

struct HeadFinetuneOptions {
  std::string checkpoint;        // the float model (its tail and its logits for distillation)
  kernels::QuantizeOptions quant;
  int64_t epochs = 3;
  int64_t batch_size = 128;
  double lr = 1e-4;
  double kd_weight = 1.0, kd_temperature = 4.0;
  int64_t calibration_images = 512;
  int64_t limit_train = 0;       // 0 = all (tests use a few hundred)
  std::string state_path;        // OUT.state.pt (resume; refused if written with other settings)
  int64_t stop_after_epochs = 0;  // > 0: stop (resumably) after this many epochs in this run
  bool progress = true;
};

// `graph` is the float head extracted from `checkpoint`. Returns the epochs done so far; when
// that is options.epochs, `graph` holds the fine-tuned float weights (not yet quantized), and
// otherwise (stop_after_epochs) it is unchanged and the state file holds the progress.
Result<int64_t> FinetuneHead(kernels::HeadGraph& graph, const HeadFinetuneOptions& options);

}  // namespace splitinfer::train
