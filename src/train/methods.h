// Compression-aware training methods: each turns the shipped float model into one or more
// trained pipelines (bottleneck/pipeline.h) for a split point and bit width.
//
//   ptq          calibrate the codec's quantizer on float features; nothing is trained
//   tail         the server's tail fine-tuned on dequantized features (node untouched)
//   tcl          whole model fine-tuned with CE + λ(t)·ClusteringLoss at the split, then PTQ: with
//                the levels the loss pulled toward (NAME) and recalibrated (NAME_recal)
//   qat          whole model fine-tuned through fake quantization with a learned clip (STE)
//   ae           an autoencoder at the split (quantized latent, STE), + tail (and head) fine-tune
//   qcnet        a server-side compensator: reconstruction first, then with the tail on CE
//                (feature_kd_weight > 0, tail and qcnet: also the float model's features after
//                every tail block as targets)
//   shared_ae    one autoencoder for several split points, bit width drawn per batch
//   per_point_ae the same architecture trained for one point at a time (shared_ae's baseline)
//
// Every method optionally distils the float model's logits (kd_weight > 0). Runs are
// resumable: each training stage writes OUT/<stage>.state.pt after every epoch, and OUT/done.json
// when the method has written its pipelines, so running it again only evaluates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "bottleneck/fake_quant.h"
#include "codec/quantize/quantize.h"
#include "core/status.h"
#include "train/config.h"

namespace splitinfer::train {

struct MethodConfig {
  std::string method = "ptq";
  std::string split = "stem";
  std::vector<std::string> points;  // shared_ae / per_point_ae: the split points served
  int bits = 1;
  std::vector<int> bit_widths{1, 2, 4, 8};  // shared_ae / per_point_ae: drawn per batch
  codec::QuantSpec quant;  // ptq/tail/qcnet/tcl calibration: granularity, clip, region, reconstruction
  int64_t calibration_images = 2000;  // training images (no augmentation) used to calibrate

  // Training (ignored by ptq).
  int64_t epochs = 2;
  int64_t batch_size = 128;
  OptimizerConfig optimizer{"adamw", 1e-3, 0.9, false, 0.0};
  ScheduleConfig schedule{"cosine", 0.05, 1e-2};
  data::AugmentOptions augment{/*crop_padding=*/2, /*flip_probability=*/0.5};
  bool finetune_head = false;  // ae: also train the node's head
  bool finetune_tail = true;   // ae / qcnet: train the tail together with the new module
  double kd_weight = 0.0;      // distillation from the float model's logits
  // tail / qcnet: distillation from the float model's features after every tail block but the
  // last (the server's blocks see the float features there), each MSE relative to the float
  // features' mean square, so that one weight means the same at every block.
  double feature_kd_weight = 0.0;
  double kd_temperature = 4.0;
  // tail / qcnet: the node's quantizer ranges (per tensor or per channel; at 1 bit the threshold
  // is the range's midpoint) learned with the server's parts on the task loss, starting from the
  // calibrated ones. This changes the node's quantizer, so a study names it as its own variant.
  bool learn_quantizer = false;

  // tcl
  double tcl_lambda = 1.0;
  bottleneck::LambdaSchedule tcl_schedule = bottleneck::LambdaSchedule::kLinear;
  bool tcl_learn_levels = false;  // levels' range learned with the loss instead of fixed from calibration

  // ae / shared_ae / per_point_ae
  int64_t latent_channels = 8;
  bool downsample = false;
  double recon_weight = 1.0;
  int64_t warmup_epochs = 1;  // ae: reconstruction-only epochs; qcnet: compensator-only epochs
  int64_t shared_width = 96;
  // per_point_ae: 0 = each point's autoencoder as wide as the point's channels; N = adapters to
  // N channels and a core that wide, shared_ae's design with one per point (its fair baseline).
  int64_t point_width = 0;
  int64_t compensator_hidden = 64;

  uint64_t seed = 0;
};

// Parses one run's method settings (YAML mapping). Unknown keys are INVALID_ARGUMENT naming them.
Result<MethodConfig> ParseMethodConfig(const std::string& yaml_text, const std::string& origin);
nlohmann::json ToJson(const MethodConfig& c);

struct MethodInputs {
  std::string base_checkpoint;  // the shipped float model
  DataConfig data;
  std::string out_dir;          // artifacts and pipelines go here
  torch::Device device = torch::kCPU;
  bool progress = true;
};

struct MethodOutput {
  std::vector<std::string> pipelines;  // pipeline YAML paths (one, or one per point x bits)
  double train_seconds = 0;            // summed over all runs that trained it
};

Result<MethodOutput> RunMethod(const MethodConfig& config, const MethodInputs& inputs);

}  // namespace splitinfer::train
