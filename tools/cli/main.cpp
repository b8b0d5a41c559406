// The `splitinfer` command: parses arguments, calls the library, prints. No logic lives here
// that a library test could not reach.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/datasets.h"
#include "bottleneck/pipeline.h"
#include "eval/evaluate.h"
#include "eval/detection/detector.h"
#include "bottleneck/model_data.h"
#include "study/experiment.h"
#include "eval/pipeline_eval.h"
#include "eval/features.h"
#include "codec/lossless/lossless.h"
#include "models/build_info.h"
#include "models/checkpoint.h"
#include "models/model_ref.h"
#include "models/device.h"
#include "models/zoo/zoo.h"
#include "train/config.h"
#include "tools/cli/codec_cmd.h"
#include "tools/cli/lowbit_cmd.h"
#include "tools/cli/model_args.h"
#include "tools/cli/runtime_cmd.h"
#include "tools/cli/data_cmd.h"
#include "tools/cli/plan_cmd.h"
#include "train/trainer.h"

#ifndef SPLITINFER_WITH_RUNTIME
#define SPLITINFER_WITH_RUNTIME 0
#endif
#ifndef SPLITINFER_WITH_PNG
#define SPLITINFER_WITH_PNG 0
#endif
#ifndef SPLITINFER_WITH_OPENCV
#define SPLITINFER_WITH_OPENCV 0
#endif
#ifndef SPLITINFER_WITH_JPEG
#define SPLITINFER_WITH_JPEG 0
#endif

namespace si = splitinfer;

namespace {

struct TrainArgs {
  std::string config, out, device = "cpu";
  si::cli::ModelArgs model;
  bool restart = false;
  int64_t seed = -1, epochs = 0, stop_after = 0;
};

si::Status RunTrain(const TrainArgs& a) {
  SI_ASSIGN_OR_RETURN(si::train::TrainConfig config, si::train::LoadTrainConfig(a.config));
  if (a.seed >= 0) config.seed = static_cast<uint64_t>(a.seed);
  if (a.epochs > 0) config.epochs = a.epochs;
  if (!a.model.ref.empty()) config.model.name = a.model.ref;
  SI_ASSIGN_OR_RETURN(torch::Device device, si::models::ParseDevice(a.device));
  si::train::TrainOptions options;
  SI_ASSIGN_OR_RETURN(options.model_flags, si::cli::MetaFlags(a.model));
  options.out_dir = a.out;
  options.device = device;
  options.restart = a.restart;
  options.stop_after_epochs = a.stop_after;
  SI_ASSIGN_OR_RETURN(si::train::TrainResult r, si::train::Train(config, options));
  if (r.finished && r.ap50 >= 0) {
    std::printf("trained %s for %lld epochs: test AP %.4f, AP50 %.4f; model %s\n", config.model.name.c_str(),
                static_cast<long long>(r.epochs_done), r.ap, r.ap50, r.checkpoint.c_str());
  } else if (r.finished) {
    std::printf("trained %s for %lld epochs: test top1 %.2f%%; model %s\n", config.model.name.c_str(),
                static_cast<long long>(r.epochs_done), r.top1, r.checkpoint.c_str());
  } else if (r.ap50 >= 0) {
    std::printf("stopped after epoch %lld of %lld (test AP %.4f, AP50 %.4f); run the same command again to resume\n",
                static_cast<long long>(r.epochs_done), static_cast<long long>(config.epochs), r.ap, r.ap50);
  } else {
    std::printf("stopped after epoch %lld of %lld (test top1 %.2f%%); run the same command again to resume\n",
                static_cast<long long>(r.epochs_done), static_cast<long long>(config.epochs), r.top1);
  }
  return si::Status::Ok();
}

struct EvalArgs {
  std::string pipeline;
  si::cli::ModelArgs model;
  std::string split, device = "cpu", data_dir, dump_features, detections_out;
  bool json = false, progress = false, class_agnostic = false;
  int64_t limit = 0, batch_size = 500;
  int threads = 0;
};

// eval --pipeline on a detector's pipeline: COCO AP through real frames, and the float detector's.
si::Status RunEvalDetectorPipeline(const EvalArgs& a, si::bottleneck::Pipeline& pipeline, const torch::Device& device) {
  SI_ASSIGN_OR_RETURN(auto dataset, si::bottleneck::OpenDetectionDataFor(pipeline.model_meta(), a.data_dir,
                                                                         si::data::Split::kTest, !a.json));
  si::eval::PipelineEvalOptions po;
  po.batch_size = a.batch_size;
  po.limit = a.limit;
  po.device = device;
  po.progress = a.progress;
  SI_ASSIGN_OR_RETURN(auto r, si::eval::EvaluateDetectorPipeline(pipeline, *dataset, po));
  const auto& spec = pipeline.spec();
  const std::string reference = spec.Resolve(spec.reference_model.empty() ? spec.model : spec.reference_model);
  SI_ASSIGN_OR_RETURN(auto ref, si::models::OpenModel(reference, device));
  si::eval::DetectorEvalOptions o;
  o.batch_size = a.batch_size;
  o.limit = a.limit;
  o.device = device;
  SI_ASSIGN_OR_RETURN(auto fr, si::eval::EvaluateDetector(*ref.net, *dataset, ref.meta, o));
  const auto& q = pipeline.codec().quant;
  const auto& m = *r.detection;
  if (a.json) {
    nlohmann::json j = {{"pipeline", spec.name},
                        {"file", a.pipeline},
                        {"task", si::models::kTaskDetect},
                        {"split", spec.split},
                        {"bits", q.spec.bits},
                        {"coder", r.coders[0].coder},
                        {"ap", m.ap},
                        {"ap50", m.ap50},
                        {"metrics", m.ToJson()},
                        {"images", r.images},
                        {"bytes_per_image", r.coders[0].bytes_per_image},
                        {"header_bytes", r.coders[0].header_bytes},
                        {"wire_shape", r.wire_shape},
                        {"float_ap", fr.metrics.ap},
                        {"float_ap50", fr.metrics.ap50},
                        {"seconds", r.seconds}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("pipeline %s (split %s, %d bit, %s): AP %.4f, AP50 %.4f over %lld images, %.1f bytes per image on the "
                "wire (header %.1f); float detector AP %.4f, AP50 %.4f\n",
                spec.name.c_str(), spec.split.c_str(), q.spec.bits, r.coders[0].coder.c_str(), m.ap, m.ap50,
                static_cast<long long>(r.images), r.coders[0].bytes_per_image, r.coders[0].header_bytes,
                fr.metrics.ap, fr.metrics.ap50);
  }
  return si::Status::Ok();
}

// eval --pipeline: the wire path (real frames) against the float reference model.
si::Status RunEvalPipeline(const EvalArgs& a) {
  si::models::ConfigureThreads(a.threads);
  SI_ASSIGN_OR_RETURN(torch::Device device, si::models::ParseDevice(a.device));
  SI_ASSIGN_OR_RETURN(auto pipeline, si::bottleneck::Pipeline::Load(a.pipeline, device));
  if (si::models::IsDetector(pipeline.model_meta())) return RunEvalDetectorPipeline(a, pipeline, device);
  SI_ASSIGN_OR_RETURN(auto dataset, si::bottleneck::OpenDatasetFor(pipeline.model_meta(), a.data_dir, si::data::Split::kTest));
  si::eval::PipelineEvalOptions po;
  po.batch_size = a.batch_size;
  po.limit = a.limit;
  po.device = device;
  po.progress = a.progress;
  SI_ASSIGN_OR_RETURN(auto r, si::eval::EvaluatePipeline(pipeline, *dataset, po));
  const auto& spec = pipeline.spec();
  const std::string reference = spec.Resolve(spec.reference_model.empty() ? spec.model : spec.reference_model);
  SI_ASSIGN_OR_RETURN(auto ref, si::models::OpenModel(reference, device));
  si::eval::EvalOptions eo;
  eo.batch_size = a.batch_size;
  eo.limit = a.limit;
  eo.device = device;
  SI_ASSIGN_OR_RETURN(auto fr, si::eval::Evaluate(*ref.net, *dataset, {ref.meta.norm_mean, ref.meta.norm_std},
                                                  std::nullopt, eo));
  const auto& q = pipeline.codec().quant;
  if (a.json) {
    nlohmann::json j = {{"pipeline", spec.name},
                        {"file", a.pipeline},
                        {"split", spec.split},
                        {"bits", q.spec.bits},
                        {"coder", r.coders[0].coder},
                        {"top1", r.top1},
                        {"images", r.images},
                        {"bytes_per_image", r.coders[0].bytes_per_image},
                        {"header_bytes", r.coders[0].header_bytes},
                        {"wire_shape", r.wire_shape},
                        {"float_top1", fr.top1},
                        {"seconds", r.seconds}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("pipeline %s (split %s, %d bit, %s): top1 %.2f%% over %lld images, %.1f bytes per image on the wire "
                "(header %.1f); float model %.2f%%\n",
                spec.name.c_str(), spec.split.c_str(), q.spec.bits, r.coders[0].coder.c_str(), r.top1,
                static_cast<long long>(r.images), r.coders[0].bytes_per_image, r.coders[0].header_bytes, fr.top1);
  }
  return si::Status::Ok();
}

struct StudyArgs {
  std::string config, out, device = "cpu", only;
  bool report_only = false;
  int threads = 0;
};

si::Status RunExperiment(const StudyArgs& a, const std::string& command) {
  SI_ASSIGN_OR_RETURN(auto config, si::study::LoadStudyConfig(a.config));
  SI_ASSIGN_OR_RETURN(torch::Device device, si::models::ParseDevice(a.device));
  si::study::StudyOptions o;
  o.out_dir = a.out;
  o.device = device;
  o.command = command;
  o.threads = a.threads;
  o.only = a.only;
  o.report_only = a.report_only;
  SI_RETURN_IF_ERROR(si::study::RunStudy(config, o));
  std::printf("study written to %s (results.csv, results.json, report.md, plots/)\n", a.out.c_str());
  return si::Status::Ok();
}

// eval on a detector: COCO's AP over the test split, and optionally its detections in COCO's
// results format (the boxes in the original images' pixels) for any COCO evaluator.
si::Status RunEvalDetector(const EvalArgs& a, si::models::OpenedModel& loaded,
                           const std::optional<si::models::SplitPoint>& split, const torch::Device& device) {
  const auto& meta = loaded.meta;
  std::vector<torch::Tensor> dumped;
  if (!a.dump_features.empty() && !split) {
    return si::InvalidArgument("--dump-features needs --split: features are taken at the cut");
  }
  std::vector<int64_t> feature_shape;
  si::models::SplitModel& net = *loaded.net;
  // With a split, head and tail run separately (the node's and the server's halves).
  auto forward = [&](const torch::Tensor& x) -> si::Result<torch::Tensor> {
    if (!split) return net.forward_all(x);
    const auto f = net.head(x, *split);
    if (feature_shape.empty()) feature_shape.assign(f.sizes().begin() + 1, f.sizes().end());
    if (!a.dump_features.empty()) dumped.push_back(f.to(torch::kCPU).clone());
    return net.tail(f, *split);
  };
  SI_ASSIGN_OR_RETURN(auto dataset, si::bottleneck::OpenDetectionDataFor(meta, a.data_dir, si::data::Split::kTest, !a.json));
  si::eval::DetectorEvalOptions o;
  o.batch_size = a.batch_size;
  o.limit = a.limit;
  o.device = device;
  o.progress = a.progress;
  o.class_agnostic = a.class_agnostic;
  net.set_eval();
  SI_ASSIGN_OR_RETURN(auto r, si::eval::EvaluateDetector(forward, *dataset, meta, o));
  if (!dumped.empty()) SI_RETURN_IF_ERROR(si::eval::SaveFeatures(a.dump_features, torch::cat(dumped)));
  if (!a.detections_out.empty()) {
    std::ofstream out(a.detections_out);
    out << si::eval::DetectionsToCocoResults(r.detections).dump() << "\n";
    if (!out) return si::IoError("cannot write " + a.detections_out);
  }
  if (a.json) {
    nlohmann::json j = {{"model", meta.model},
                        {"checkpoint", a.model.ref},
                        {"task", meta.task},
                        {"split", split ? nlohmann::json(split->name) : nlohmann::json(nullptr)},
                        {"annotations", dataset->annotation_file()},
                        {"images", r.images},
                        {"seconds", r.seconds},
                        {"metrics", r.metrics.ToJson()}};
    if (a.class_agnostic) j["class_agnostic"] = true;
    j["ap"] = r.metrics.ap;
    j["ap50"] = r.metrics.ap50;
    if (!a.detections_out.empty()) j["detections_out"] = a.detections_out;
    if (split) j["feature_shape"] = feature_shape;
    std::printf("%s\n", j.dump().c_str());
  } else {
    const auto& m = r.metrics;
    std::printf("detector %s on %s: AP %.4f, AP50 %.4f, AP75 %.4f (small %.4f, medium %.4f, large %.4f) over %lld "
                "images, %lld detections, in %.1f s\n",
                meta.model.c_str(), dataset->annotation_file().c_str(), m.ap, m.ap50, m.ap75, m.ap_small, m.ap_medium,
                m.ap_large, static_cast<long long>(r.images), static_cast<long long>(m.detections), r.seconds);
  }
  return si::Status::Ok();
}

si::Status RunEval(const EvalArgs& a) {
  if (!a.pipeline.empty()) {
    if (!a.model.ref.empty() || !a.split.empty() || !a.dump_features.empty()) {
      return si::InvalidArgument("--pipeline names the model and split itself; drop --model, --split and "
                                 "--dump-features");
    }
    if (a.class_agnostic) {
      return si::InvalidArgument("--class-agnostic scores a detector given with --model, not a pipeline");
    }
    return RunEvalPipeline(a);
  }
  if (a.model.ref.empty()) return si::InvalidArgument("eval needs --model (a checkpoint, TorchScript file or zoo name) or --pipeline FILE");
  si::models::ConfigureThreads(a.threads);
  SI_ASSIGN_OR_RETURN(torch::Device device, si::models::ParseDevice(a.device));
  SI_ASSIGN_OR_RETURN(const auto flags, si::cli::MetaFlags(a.model));
  SI_ASSIGN_OR_RETURN(si::models::OpenedModel loaded, si::models::OpenModel(a.model.ref, device, flags));
  std::optional<si::models::SplitPoint> split;
  if (!a.split.empty()) {
    SI_ASSIGN_OR_RETURN(si::models::SplitPoint s, loaded.net->find_split(a.split));
    split = s;
  }
  const auto& meta = loaded.meta;
  if (si::models::IsDetector(meta)) return RunEvalDetector(a, loaded, split, device);
  if (!a.detections_out.empty()) return si::InvalidArgument("--detections-out is for detectors; " + a.model.ref + " is a classifier");
  if (a.class_agnostic) return si::InvalidArgument("--class-agnostic is for detectors; " + a.model.ref + " is a classifier");
  SI_ASSIGN_OR_RETURN(auto dataset, si::bottleneck::OpenDatasetFor(meta, a.data_dir, si::data::Split::kTest));
  si::eval::EvalOptions options;
  options.batch_size = a.batch_size;
  options.limit = a.limit;
  options.device = device;
  options.progress = a.progress;
  const si::data::Normalization norm{meta.norm_mean, meta.norm_std};
  std::vector<torch::Tensor> dumped;
  if (!a.dump_features.empty()) {
    if (!split) return si::InvalidArgument("--dump-features needs --split: features are taken at the cut");
    options.feature_sink = [&dumped](const torch::Tensor& f) { dumped.push_back(f.to(torch::kCPU).clone()); };
  }
  SI_ASSIGN_OR_RETURN(si::eval::EvalResult r, si::eval::Evaluate(*loaded.net, *dataset, norm, split, options));
  if (!dumped.empty()) SI_RETURN_IF_ERROR(si::eval::SaveFeatures(a.dump_features, torch::cat(dumped)));
  if (a.json) {
    nlohmann::json j = {{"model", meta.model},
                        {"checkpoint", a.model.ref},
                        {"kind", si::models::ModelKindName(loaded.kind)},
                        {"split", split ? nlohmann::json(split->name) : nlohmann::json(nullptr)},
                        {"top1", r.top1},
                        {"images", r.images},
                        {"seconds", r.seconds}};
    if (r.top5 >= 0) j["top5"] = r.top5;
    if (split) {
      j["feature_shape"] = r.feature_shape;
      j["feature_float_bytes"] = r.feature_float_bytes;
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model %s on %s: top1 %.2f%%", meta.model.c_str(), dataset->name().c_str(), r.top1);
    if (r.top5 >= 0) std::printf(", top5 %.2f%%", r.top5);
    std::printf(" over %lld images in %.1f s\n", static_cast<long long>(r.images), r.seconds);
    if (split) {
      std::printf("split after '%s': node runs blocks 0..%lld, feature %s = %lld float bytes per image\n",
                  split->name.c_str(), static_cast<long long>(split->block),
                  nlohmann::json(r.feature_shape).dump().c_str(), static_cast<long long>(r.feature_float_bytes));
    }
  }
  return si::Status::Ok();
}

si::Status RunModels(bool params) {
  for (const auto& name : si::models::ModelNames()) {
    SI_ASSIGN_OR_RETURN(si::models::BlockChain m, si::models::CreateModel(name, si::models::DefaultsFor(name).options));
    std::printf("%-18s", name.c_str());
    if (params) std::printf(" %12lld params ", static_cast<long long>(m->parameter_count()));
    std::printf(" splits:");
    for (const auto& s : m->split_points()) std::printf(" %s", s.name.c_str());
    std::printf("\n");
  }
  return si::Status::Ok();
}

// `splitinfer version`: what this build has (optional parts) and computes with (LibTorch, the
// BLAS really loaded, oneDNN, CPU kernels, GPUs). Tests read --json to know which checks apply.
si::Status RunVersion(bool json) {
  const si::models::ComputeInfo c = si::models::DescribeCompute();
  nlohmann::json parts = {
      {"runtime", SPLITINFER_WITH_RUNTIME != 0},
      {"image_folders", SPLITINFER_WITH_OPENCV != 0},
      {"lzma", si::codec::CoderBuiltIn(si::codec::CoderId::kLzma)},
      {"png", SPLITINFER_WITH_PNG != 0},
      {"jpeg", SPLITINFER_WITH_JPEG != 0},
  };
  if (json) {
    nlohmann::json j = {{"version", SPLITINFER_VERSION_STRING},
                        {"torch", c.torch_version},
                        {"cuda_devices", c.cuda_devices},
                        {"blas", c.blas},
                        {"blas_path", c.blas_path},
                        {"onednn", c.onednn},
                        {"cpu_capability", c.cpu_capability},
                        {"parts", parts}};
    std::printf("%s\n", j.dump().c_str());
    return si::Status::Ok();
  }
  std::printf("splitinfer %s\n%s\n", SPLITINFER_VERSION_STRING, si::models::ComputeLine(c).c_str());
  std::string on, off;
  for (const auto& [name, value] : parts.items()) (value.get<bool>() ? on : off) += " " + name;
  std::printf("parts on:%s\nparts off:%s\n", on.c_str(), off.empty() ? " none" : off.c_str());
  return si::Status::Ok();
}

int Report(const si::Status& s) {
  if (s.ok()) return 0;
  std::fprintf(stderr, "splitinfer: error: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything creates a oneDNN primitive (build_info.h: oneDNN 3.x's AVX-512 convolution
  // backward gives non-finite gradients now and then); a user's own ONEDNN_MAX_CPU_ISA wins.
  si::models::CapOneDnnIsaWhereBackwardIsBroken();
  CLI::App app{"splitinfer: run one DNN across an IoT node and a server"};
  app.require_subcommand(1);

  TrainArgs train_args;
  auto* train = app.add_subcommand("train", "train a zoo model, or fine-tune a checkpoint or TorchScript file (resumable: rerun to continue)");
  train->add_option("--config", train_args.config, "YAML config, e.g. configs/fmnist_resnet.yaml")->required();
  train->add_option("--out", train_args.out, "output directory (checkpoint.pt, state.pt, log.jsonl)")->required();
  train->add_option("--device", train_args.device, "cpu | cuda | cuda:N");
  si::cli::AddModelOptions(train, train_args.model, /*required=*/false);  // overrides model.name
  train->add_option("--seed", train_args.seed, "overrides the config's seed");
  train->add_option("--epochs", train_args.epochs, "overrides the config's epochs");
  train->add_option("--stop-after", train_args.stop_after, "stop (resumably) after this many epochs in this run");
  train->add_flag("--restart", train_args.restart, "ignore an existing state.pt in --out");

  EvalArgs eval_args;
  auto* eval = app.add_subcommand("eval", "top-1/top-5 of a classifier, COCO AP of a detector, on a test set");
  si::cli::AddModelOptions(eval, eval_args.model, /*required=*/false);
  eval->add_option("--pipeline", eval_args.pipeline,
                   "pipeline YAML (e.g. models/fmnist_best.yaml): evaluate the wire path, real frames included");
  eval->add_option("--split", eval_args.split, "run head and tail separately, cut after this block");
  eval->add_option("--device", eval_args.device, "cpu | cuda | cuda:N");
  eval->add_option("--data", eval_args.data_dir,
                   "fmnist, imagefolder:DIR, tinyimagenet:DIR, or a directory of the model's own dataset kind; "
                   "detectors: coco:DIR or scenes:CONFIG (default: the model's)");
  eval->add_option("--detections-out", eval_args.detections_out,
                   "detectors: write the detections as COCO results JSON (image_id, category_id, bbox, score)");
  eval->add_flag("--class-agnostic", eval_args.class_agnostic,
                 "detectors: score every box as one category (COCOeval's useCats=0): finding objects, not naming them");
  eval->add_option("--limit", eval_args.limit, "evaluate only the first N test images");
  eval->add_option("--batch-size", eval_args.batch_size, "images per forward pass")->check(CLI::Range(1, 65536));
  eval->add_option("--threads", eval_args.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024));
  eval->add_option("--dump-features", eval_args.dump_features,
                   "with --split: save the features at the cut (FILE.pt: a LibTorch tensor; otherwise raw "
                   "little-endian float32 with FILE.json giving the shape)");
  eval->add_flag("--json", eval_args.json, "print one JSON object");
  eval->add_flag("--progress", eval_args.progress, "progress bar on stderr");

  bool params = false;
  auto* list = app.add_subcommand("models", "list the model zoo with split points");
  list->add_flag("--params", params, "also build each model and count its parameters");

  StudyArgs study_args;
  auto* experiment = app.add_subcommand("experiment", "run the rate-accuracy study grid (resumable: rerun to continue)");
  experiment->add_option("--config", study_args.config, "study YAML, e.g. configs/fmnist_study.yaml")->required();
  experiment->add_option("--out", study_args.out, "output directory (results.*, report.md, plots/, runs/)")->required();
  experiment->add_option("--device", study_args.device, "cpu | cuda | cuda:N");
  experiment->add_option("--threads", study_args.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024));
  experiment->add_option("--only", study_args.only, "run only the runs whose name contains this text");
  experiment->add_flag("--report-only", study_args.report_only,
                       "write the report, tables and plots from the results in --out so far; run nothing");

  bool version_json = false;
  auto* version = app.add_subcommand("version", "this build: optional parts, LibTorch, the BLAS loaded, GPUs");
  version->add_flag("--json", version_json, "print one JSON object");

  CLI::App* codec = nullptr;
  auto run_codec = si::cli::AddCodecCommands(app, &codec);

  std::function<bool()> runtime_selected;
  auto run_runtime = si::cli::AddRuntimeCommands(app, &runtime_selected);

  std::function<bool()> lowbit_selected;
  auto run_lowbit = si::cli::AddLowbitCommands(app, &lowbit_selected);

  std::function<bool()> plan_selected;
  auto run_plan = si::cli::AddPlanCommands(app, &plan_selected);

  std::function<bool()> data_selected;
  auto run_data = si::cli::AddDataCommands(app, &data_selected);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, as every other error of the tool (CLI11's own exit prints a second line).
    const std::string sub = app.get_subcommands().empty() ? "" : " " + app.get_subcommands().front()->get_name();
    std::fprintf(stderr, "%s (splitinfer%s --help lists the options)\n", e.what(), sub.c_str());
    return e.get_exit_code();
  }
  try {
    if (*train) return Report(RunTrain(train_args));
    if (*eval) return Report(RunEval(eval_args));
    if (*list) return Report(RunModels(params));
    if (*version) return Report(RunVersion(version_json));
    if (*experiment) {
      std::string command = "splitinfer";
      for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
      return Report(RunExperiment(study_args, command));
    }
    if (*codec) return Report(run_codec());
    if (runtime_selected()) return Report(run_runtime());
    if (lowbit_selected()) return Report(run_lowbit());
    if (plan_selected()) return Report(run_plan());
    if (data_selected()) return Report(run_data());
  } catch (const c10::Error& e) {
    // Library code converts LibTorch errors at stage boundaries; this is the last net.
    return Report(si::Internal(std::string("LibTorch: ") + e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return Report(si::Internal(e.what()));
  }
  return 0;
}
