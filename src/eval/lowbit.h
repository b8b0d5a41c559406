// eval/lowbit: the low-bit node head end to end (issue 7): convert and calibrate a trained head
// into a head file, measure its accuracy on the test set (alone or inside a pipeline with the
// feature codec), and time it against LibTorch.
//
//   checkpoint --ExtractHead--> float graph --check vs LibTorch--> QuantizeGraph (calibration
//   images from the training set) --SaveHead--> FILE
//   FILE + test set --> low-bit head --> [pipeline encoder, codec, decoder] --> tail --> top-1
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "kernels/head.h"
#include "models/model_ref.h"

namespace splitinfer::eval {

struct QuantizeHeadOptions {
  std::string checkpoint;        // a model reference (models/model_ref.h); a zoo name calibrates on smooth random images
  models::ModelMetaFlags model_flags;  // for a TorchScript file without its own metadata
  std::string data;  // calibration images: a dataset reference ("" = the model's own dataset)
  std::string split;
  kernels::QuantizeOptions quant;
  int64_t calibration_images = 64;  // the first training images
  std::string out;
  // Runs on the float graph (checked against LibTorch) before it is quantized: quantize-head
  // --finetune plugs train::FinetuneHead in here (eval does not depend on train). Returns
  // whether the graph is fine-tuned; false means the run stopped early (--stop-after) with its
  // progress in a state file, and nothing is quantized or written.
  std::function<Result<bool>(kernels::HeadGraph&)> finetune;
};

struct QuantizeHeadReport {
  std::string model, split, out;
  int64_t convs = 0, weight_bytes = 0;  // packed weight bits of the quantized convs, in bytes
  double float_graph_error = 0;         // the extracted float graph against LibTorch (relative)
  bool stopped = false;                 // fine-tuning stopped early; no head file was written
  nlohmann::json ToJson() const;
};

Result<QuantizeHeadReport> QuantizeHead(const QuantizeHeadOptions& options);

struct HeadEvalOptions {
  std::string head_file;
  std::string checkpoint;  // the model the head came from (its tail runs on the server side)
  models::ModelMetaFlags model_flags;
  std::string data;  // the test images: a dataset reference ("" = the model's own dataset)
  std::string pipeline;    // optional: run the pipeline's encoder, codec and decoder/tail instead
  kernels::HeadImpl impl = kernels::HeadImpl::kInt8;
  int64_t limit = 0;       // test images (0 = all)
  bool progress = true;
};

struct HeadEvalReport {
  std::string model, split, pipeline, impl;
  int wbits = 0, abits = 0, group_size = 0;
  std::string act_ranges = "tensor";  // "region" when any conv has per-region activation ranges
  int64_t images = 0;
  double top1_float = 0;   // the LibTorch head, same path otherwise
  double top1_lowbit = 0;
  double bytes_per_image = 0;  // frame bytes, with a pipeline
  nlohmann::json ToJson() const;
};

Result<HeadEvalReport> EvaluateHead(const HeadEvalOptions& options);

struct HeadBenchOptions {
  std::string checkpoint;  // a model reference: zoo name, checkpoint or TorchScript file
  models::ModelMetaFlags model_flags;
  std::string data;  // the timed image: a dataset reference ("" = the model's own, random for a zoo name)
  std::string split;
  std::string impl = "torch";  // torch | int8 | lut | reference | auto
  std::string quantized;       // head file (int8, lut, reference)
  std::string input;           // "CxHxW": must be the model's input (a head file is built for one shape)
  kernels::KernelPath path = kernels::KernelPath::kAuto;  // the kernels' SIMD path (int8, lut)
  int threads = 1;
  int warmup = 5, runs = 50;
};

struct HeadBenchReport {
  std::string impl, model, split, input, kernel_path;
  std::string compute;  // models::ComputeLine: LibTorch, the BLAS loaded, oneDNN, CPU kernels
  std::vector<kernels::ConvTiming> layers;  // --impl auto: the per-conv timings behind its choices
  double median_ms = 0, p95_ms = 0;
  int runs = 0;
  nlohmann::json ToJson() const;
};

Result<HeadBenchReport> BenchHead(const HeadBenchOptions& options);

}  // namespace splitinfer::eval
