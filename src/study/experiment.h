// The rate-accuracy study: one command runs a grid of (split point x method x bits x quantizer
// granularity x lossless coder) on the shipped model and writes the table, report and plots.
//
//   config (YAML) -> cells: float, input baselines, ptq grid, trained runs (expanded lists)
//     -> each cell: train (train/methods, resumable) -> pipelines -> wire-path evaluation
//        (eval/pipeline_eval: real frames, every coder) -> rows appended to OUT/results.jsonl
//   -> OUT/results.csv, results.json, report.md, plots/*.svg (eval/report)
//
// Killing and re-running the same command continues: finished pipelines are read back from
// results.jsonl and trained artifacts from OUT/runs/<run>/. Runs listed in
// OUT/finished_runs.jsonl (with the machine that made them) are not run again, so a study can
// go on elsewhere from results.jsonl and finished_runs.jsonl alone; report.md names every
// machine that made runs.
//
//   model: models/resnet_fmnist.pt
//   data: {dataset: fmnist, holdout: 5000}  # dir, limit_train, limit_test as in training configs;
//                                           # holdout: training images kept out, every row scored
//                                           # on them too (holdout_top1) to choose settings by
//   coders: [none, lzma, zstd, cabac]
//   image_baselines: true
//   ptq: {splits: [stem, stage1], bits: [1, 2, 4, 8], granularity: [tensor, channel, region],
//         clip: mse, region: [8, 7, 7]}
//   runs:
//     - {name: tcl, method: tcl, split: stem, bits: [1, 2, 3], epochs: 3, tcl_lambda: 1.0}
//   (run keys: see train/methods.h; split, bits, granularity and seed may be lists: seed: [1, 2, 3]
//   repeats a run with three seeds, NAME_seed1 .. NAME_seed3)
//
// The model's task sets the metric every row, table and plot ranks by (eval/report.h): top-1
// for a classifier; AP50 (x 100) and AP for a detector, whose data is a detection dataset
// (data: {dataset: coco | scenes, dir: ...}) and whose input-image baselines are its letterboxed
// inputs. For a detector ptq, tail, qcnet and ae are built (YOLO's loss + distillation from the
// float detector's outputs); other methods are refused up front.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "core/status.h"
#include "train/config.h"
#include "train/methods.h"

namespace splitinfer::study {

struct StudyRun {
  std::string name;
  train::MethodConfig method;
};

struct StudyConfig {
  std::string model;  // the float checkpoint every method starts from
  train::DataConfig data;
  std::vector<std::string> coders{"none", "lzma", "zstd", "cabac"};
  std::vector<std::string> coders_not_built;  // listed, but not in this build (lzma without liblzma)
  bool image_baselines = true;
  int64_t eval_batch_size = 500;
  std::vector<StudyRun> runs;  // ptq grid first, then the trained runs, in file order
};

// Unknown keys are INVALID_ARGUMENT naming them; list values expand into one run per
// combination, named <name>_<split>_b<bits>_<granularity>_seed<N> for the keys that were lists.
Result<StudyConfig> ParseStudyConfig(const std::string& yaml_text, const std::string& origin);
Result<StudyConfig> LoadStudyConfig(const std::string& path);

struct StudyOptions {
  std::string out_dir;
  torch::Device device = torch::kCPU;
  std::string command;  // printed in the report
  bool progress = true;
  int threads = 0;
  std::string only;  // run only runs whose name contains this (empty = all)
  bool report_only = false;  // write results.csv/json, report.md and plots from the rows so far; run nothing
};

Status RunStudy(const StudyConfig& config, const StudyOptions& options);

// What report.md says of the base model and the held-out images (empty without data.holdout):
// whether the base checkpoint was itself trained with the same images held out (its
// train_config's dataset and data.holdout; the draw depends only on those), so that settings
// chosen on them were chosen on images no part of any row has seen.
std::string HeldOutNote(const StudyConfig& config);

}  // namespace splitinfer::study
