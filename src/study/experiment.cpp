#include "study/experiment.h"

#include "config/yaml_reader.h"

#include "core/system.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include "bottleneck/pipeline.h"
#include "codec/lossless/lossless.h"
#include "core/progress.h"
#include "data/datasets.h"
#include "bottleneck/model_data.h"
#include "data/detection.h"
#include "eval/detection/detector.h"
#include "eval/evaluate.h"
#include "eval/image_baseline.h"
#include "eval/pipeline_eval.h"
#include "eval/report.h"
#include "models/checkpoint.h"
#include "models/model_ref.h"
#include "models/device.h"
#include "train/loop.h"

namespace splitinfer::study {
using namespace eval;  // NOLINT: the study is built on eval's evaluation and report
namespace fs = std::filesystem;

namespace {

std::string Scalar(const YAML::Node& n) { return n.as<std::string>(); }

// Expands `split`, `bits`, `granularity` and `seed` lists of one run node into one node per
// combination (a list of seeds repeats the run: NAME_seed1, NAME_seed2, ...).
std::vector<std::pair<std::string, YAML::Node>> Expand(const std::string& name, const YAML::Node& run) {
  std::vector<std::pair<std::string, YAML::Node>> out{{name, YAML::Clone(run)}};
  for (const char* key : {"split", "bits", "granularity", "seed"}) {
    if (!run[key] || !run[key].IsSequence()) continue;
    std::vector<std::pair<std::string, YAML::Node>> next;
    for (const auto& [n, node] : out) {
      for (const auto& v : run[key]) {
        YAML::Node copy = YAML::Clone(node);
        copy[key] = YAML::Clone(v);
        const std::string k = key;
        const std::string tag = k == "bits" ? "b" + Scalar(v) : k == "seed" ? "seed" + Scalar(v) : Scalar(v);
        next.emplace_back(n + "_" + tag, copy);
      }
    }
    out = std::move(next);
  }
  return out;
}


// OUT/finished_runs.jsonl: one line {"run": NAME, "machine": TEXT} per finished run, appended
// after the run's rows are in results.jsonl. A line that does not parse (cut off by a kill
// mid-write) is skipped with a warning: that run is finished again, and its rows, already
// logged, are not evaluated twice.
std::map<std::string, std::string> ReadFinishedRuns(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("run") || !j["run"].is_string() ||
        !j.contains("machine") || !j["machine"].is_string()) {
      std::fprintf(stderr, "study: %s:%lld is not {\"run\": NAME, \"machine\": TEXT}; skipping it\n", path.c_str(),
                   static_cast<long long>(number));
      continue;
    }
    out[j["run"].get<std::string>()] = j["machine"].get<std::string>();
  }
  return out;
}

Status AppendFinishedRun(const std::string& path, const std::string& run, const std::string& machine) {
  // A line cut off by a kill gets its newline first, so that the new line stands alone.
  bool needs_newline = false;
  {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (in && in.tellg() > 0) {
      in.seekg(-1, std::ios::end);
      needs_newline = in.get() != '\n';
    }
  }
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << (needs_newline ? "\n" : "") << nlohmann::json{{"run", run}, {"machine", machine}}.dump() << "\n";
  out.flush();
  if (!out) return IoError("cannot append to " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

Result<StudyConfig> ParseStudyConfig(const std::string& text, const std::string& origin) {
  SI_ASSIGN_OR_RETURN(YAML::Node root, config::ParseYaml(text, origin));
  if (!root.IsMap()) return InvalidArgument(origin + ": a study config is a YAML mapping");
  StudyConfig c;
  config::MapReader top(root, "", origin);
  SI_RETURN_IF_ERROR(top.get("model", &c.model));
  SI_ASSIGN_OR_RETURN(config::MapReader data, top.child("data"));
  SI_RETURN_IF_ERROR(train::ReadDataConfig(data, &c.data));
  SI_RETURN_IF_ERROR(top.get("coders", &c.coders));
  SI_RETURN_IF_ERROR(top.get("image_baselines", &c.image_baselines));
  SI_RETURN_IF_ERROR(top.get("eval_batch_size", &c.eval_batch_size));
  SI_ASSIGN_OR_RETURN(config::MapReader ptq, top.child("ptq"));
  top.allow({"runs"});  // each run is a method config, read by train::ParseMethodConfig
  SI_RETURN_IF_ERROR(top.finish());
  if (c.model.empty()) return InvalidArgument(origin + ": missing required key 'model' (the float checkpoint)");
  std::vector<std::string> built;
  for (const auto& name : c.coders) {
    SI_ASSIGN_OR_RETURN(auto id, codec::CoderFromName(name));
    if (id == codec::CoderId::kCabacTrained) {
      return InvalidArgument(origin + ": coder cabac-trained needs a trained context model; use cabac in studies");
    }
    (codec::CoderBuiltIn(id) ? built : c.coders_not_built).push_back(name);
  }
  c.coders = built;
  if (c.coders.empty()) return InvalidArgument(origin + ": coders must name at least one lossless coder");
  // The ptq grid's keys are those of a ptq run, with `splits` for `split`; each value may be a
  // list, and every combination becomes a run.
  ptq.allow({"splits", "bits", "granularity", "clip", "region", "reconstruction", "calibration_images"});
  SI_RETURN_IF_ERROR(ptq.finish());
  try {
    if (root["ptq"]) {
      const auto p = root["ptq"];
      YAML::Node run;
      run["method"] = "ptq";
      run["split"] = p["splits"] ? p["splits"] : YAML::Node("stem");
      run["bits"] = p["bits"] ? p["bits"] : YAML::Node(1);
      run["granularity"] = p["granularity"] ? p["granularity"] : YAML::Node("tensor");
      for (const char* k : {"clip", "region", "reconstruction", "calibration_images"}) {
        if (p[k]) run[k] = p[k];
      }
      // Always expand as lists so the names carry split, bits and granularity.
      for (const char* k : {"split", "bits", "granularity"}) {
        if (!run[k].IsSequence()) {
          YAML::Node seq(YAML::NodeType::Sequence);
          seq.push_back(run[k]);
          run[k] = seq;
        }
      }
      for (auto& [name, node] : Expand("ptq", run)) {
        SI_ASSIGN_OR_RETURN(auto m, train::ParseMethodConfig(YAML::Dump(node), origin + ": " + name));
        c.runs.push_back({name, m});
      }
    }
    if (root["runs"]) {
      if (!root["runs"].IsSequence()) return InvalidArgument(origin + ": runs is a list of run mappings");
      std::set<std::string> names;
      for (const auto& r : root["runs"]) {
        if (!r.IsMap() || !r["name"]) return InvalidArgument(origin + ": every run needs a name");
        const std::string base = r["name"].as<std::string>();
        YAML::Node node = YAML::Clone(r);
        node.remove("name");
        for (auto& [name, n] : Expand(base, node)) {
          if (!names.insert(name).second) return InvalidArgument(origin + ": two runs are named '" + name + "'");
          SI_ASSIGN_OR_RETURN(auto m, train::ParseMethodConfig(YAML::Dump(n), origin + ": run " + name));
          c.runs.push_back({name, m});
        }
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(origin + ": " + e.what());
  }
  return c;
}

Result<StudyConfig> LoadStudyConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("study config " + path + " not found");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseStudyConfig(ss.str(), path);
}

std::string HeldOutNote(const StudyConfig& config) {
  if (config.data.holdout <= 0) return "";
  const std::string n = std::to_string(config.data.holdout);
  auto meta = models::ReadCheckpointMeta(config.model);
  if (!meta.ok()) return "whether the base model's own training used them is not recorded (" + config.model + " is no checkpoint)";
  const auto data = meta->train_config.value("data", nlohmann::json::object());
  if (data.value("dataset", std::string()) == config.data.dataset && data.value("holdout", int64_t{0}) == config.data.holdout) {
    return "the base model was trained with the same " + n + " images held out (its checkpoint's train_config), so no part of any row has seen them";
  }
  return "the base model's own training used them: its checkpoint's train_config holds no data.holdout of " + n;
}

namespace {
// results.csv, results.json, report.md and plots/ from every row so far.
Status WriteOutputs(const StudyOptions& options, const std::vector<ResultRow>& rows,
                    const std::map<std::string, std::string>& finished_runs, const std::string& machine,
                    const std::string& holdout_note) {
  SI_RETURN_IF_ERROR(WriteCsv((fs::path(options.out_dir) / "results.csv").string(), rows));
  SI_RETURN_IF_ERROR(WriteJson((fs::path(options.out_dir) / "results.json").string(), rows));
  ReportOptions ro;
  ro.command = options.command;
  ro.holdout_note = holdout_note;
  // Every machine that made a run, with how many runs it made (a study may continue elsewhere).
  std::map<std::string, int> per_machine;
  for (const auto& [run, m] : finished_runs) ++per_machine[m];
  if (per_machine.empty()) per_machine[machine] = 0;
  ro.machine.clear();
  for (const auto& [m, n] : per_machine) {
    if (!ro.machine.empty()) ro.machine += "; ";
    ro.machine += m;
    if (per_machine.size() > 1) ro.machine += " (" + std::to_string(n) + " runs)";
  }
  return WriteReport(options.out_dir, rows, ro);
}
}  // namespace

Status RunStudy(const StudyConfig& config, const StudyOptions& options) {
  if (options.out_dir.empty()) return InvalidArgument("no output directory (--out DIR)");
  std::error_code ec;
  fs::create_directories(fs::path(options.out_dir) / "runs", ec);
  if (ec) return IoError("cannot create " + options.out_dir + ": " + ec.message());
  models::ConfigureThreads(options.threads);
  for (const auto& name : config.coders_not_built) {
    if (options.progress) std::fprintf(stderr, "study: coder %s is not built in (no liblzma): no rows for it\n", name.c_str());
  }
  const std::string log_path = (fs::path(options.out_dir) / "results.jsonl").string();
  SI_ASSIGN_OR_RETURN(auto rows, ReadRows(log_path));
  if (options.report_only) {  // the report of the rows so far (a study still running, say)
    if (rows.empty()) return FailedPrecondition(log_path + " has no rows: run the study first");
    const auto finished = ReadFinishedRuns((fs::path(options.out_dir) / "finished_runs.jsonl").string());
    return WriteOutputs(options, rows, finished, "", HeldOutNote(config));
  }
  std::set<std::string> done;
  for (const auto& r : rows) done.insert(r.run);
  auto append = [&](const ResultRow& r) -> Status {
    SI_RETURN_IF_ERROR(AppendRow(log_path, r));
    rows.push_back(r);
    done.insert(r.run);
    return Status::Ok();
  };

  SI_ASSIGN_OR_RETURN(auto base, models::OpenModel(config.model, options.device));
  const train::DataConfig data_config = train::SizedFor(config.data, base.meta);
  // The task decides the data and the metric: a classifier's top-1 on an image dataset, or a
  // detector's AP50 (COCO's AP at IoU 0.5, x 100 so that points mean the same) on a detection
  // dataset, whose images alone stand in for the input-image baselines.
  const bool detector = models::IsDetector(base.meta);
  std::unique_ptr<data::Dataset> test_set;
  const data::CocoDetectionDataset* detection_test = nullptr;  // a detector's: owned by test_set
  if (detector) {
    // Refused before anything is measured: the methods not built for detection yet
    // (train/methods.cpp says the same per run).
    for (const auto& run : config.runs) {
      const std::string& m = run.method.method;
      if (m != "ptq" && m != "tail" && m != "qcnet" && m != "ae") {
        return Unimplemented("method " + m + " on a detector (" + config.model + ", run " + run.name +
                             ") is not built yet; ptq, tail, qcnet and ae are");
      }
    }
    // Opened once: the images for baselines and the boxes for the metric are the same split.
    SI_ASSIGN_OR_RETURN(auto opened, bottleneck::OpenDetectionDataFor(base.meta, config.data.dataset + ":" +
                                                                                 config.data.dir,
                                                                      data::Split::kTest, options.progress));
    auto images = std::make_unique<data::DetectionImages>(std::move(opened));
    detection_test = &images->detection();
    test_set = std::move(images);
  } else {
    SI_ASSIGN_OR_RETURN(test_set, train::OpenSplit(data_config, data::Split::kTest));
    SI_RETURN_IF_ERROR(bottleneck::CheckDatasetFits(base.meta, *test_set));
  }
  // Held-out training images (data.holdout): every pipeline is scored on them too, so that a
  // setting can be chosen there and reported once on the test set.
  std::unique_ptr<data::Dataset> holdout_set;
  if (data_config.holdout > 0) {
    if (detector) {
      return Unimplemented("data.holdout on a detector's study is not built yet (" + config.model +
                           "); remove the key");
    }
    SI_ASSIGN_OR_RETURN(holdout_set, train::OpenHoldout(data_config));
  }
  data::Normalization norm{base.meta.norm_mean, base.meta.norm_std};
  const int64_t test_limit = config.data.limit_test;
  auto row_for = [&](const std::string& run, const std::string& method) {
    ResultRow r;
    r.run = run;
    r.method = method;
    if (detector) r.metric = "ap50";
    return r;
  };

  // The float reference, measured here (not copied from the checkpoint's metadata).
  double float_score = 0, float_ap = -1;
  for (const auto& r : rows) {
    if (r.method == "float" && r.split.empty()) {
      float_score = r.score;
      float_ap = r.ap;
    }
  }
  if (!done.count("float")) {
    ResultRow r = row_for("float", "float");
    r.coder = "none";
    if (detector) {
      DetectorEvalOptions eo;
      eo.batch_size = config.eval_batch_size;
      eo.limit = test_limit;
      eo.device = options.device;
      SI_ASSIGN_OR_RETURN(auto ev, EvaluateDetector(*base.net, *detection_test, base.meta, eo));
      r.score = 100.0 * std::max(0.0, ev.metrics.ap50);
      r.ap = 100.0 * std::max(0.0, ev.metrics.ap);
      r.images = ev.images;
      std::fprintf(stderr, "study: float detector AP50 %.2f, AP %.2f on %lld images\n", r.score, r.ap,
                   static_cast<long long>(ev.images));
    } else {
      EvalOptions eo;
      eo.batch_size = config.eval_batch_size;
      eo.device = options.device;
      SI_ASSIGN_OR_RETURN(auto ev, Evaluate(*base.net, *test_set, norm, std::nullopt, eo));
      r.score = ev.top1;
      r.images = ev.images;
      if (holdout_set) {
        SI_ASSIGN_OR_RETURN(auto held, Evaluate(*base.net, *holdout_set, norm, std::nullopt, eo));
        r.holdout_score = held.top1;
      }
      std::fprintf(stderr, "study: float model top-1 %.2f%% on %lld images\n", ev.top1,
                   static_cast<long long>(ev.images));
    }
    r.float_score = r.score;
    float_score = r.score;
    float_ap = r.ap;
    SI_RETURN_IF_ERROR(append(r));
  }
  if (config.image_baselines && !done.count("input_png")) {
    auto b = MeasureLosslessImages(*test_set, detector ? test_limit : 0);
    if (b.ok()) {
      for (const auto& [method, bytes] : {std::pair<std::string, double>{"input_png", b.value().png_bytes},
                                          {"input_webp", b.value().webp_bytes}}) {
        ResultRow r = row_for(method, method);
        r.coder = method.substr(6);
        r.score = float_score;
        r.float_score = float_score;
        r.ap = float_ap;
        r.bytes_per_image = bytes;
        r.images = b.value().images;
        SI_RETURN_IF_ERROR(append(r));
      }
    } else {
      std::fprintf(stderr, "study: input-image baselines skipped: %s\n", b.status().ToString().c_str());
    }
  }
  // A detector's lossy input baseline: JPEG at the lowest quality that keeps the float AP50
  // (within half a point), the bytes a split has to beat at equal detection quality.
  if (detector && config.image_baselines && !done.count("input_jpeg")) {
    DetectorEvalOptions eo;
    eo.batch_size = config.eval_batch_size;
    eo.limit = test_limit;
    eo.device = options.device;
    auto m = JpegMatchingAp50(*base.net, *detection_test, base.meta, float_score / 100.0, 0.005, eo);
    if (m.ok()) {
      ResultRow r = row_for("input_jpeg", "input_jpeg");
      r.coder = "jpeg-q" + std::to_string(m->quality);
      r.score = 100.0 * std::max(0.0, m->metrics.ap50);
      r.float_score = float_score;
      r.ap = 100.0 * std::max(0.0, m->metrics.ap);
      r.bytes_per_image = m->bytes_per_image;
      r.images = m->metrics.images;
      SI_RETURN_IF_ERROR(append(r));
      std::string ladder;
      for (const auto& t : m->tried) {
        ladder += " q" + std::to_string(t.quality) + ": " + std::to_string(100 * t.ap50).substr(0, 5) + " (" +
                  std::to_string(static_cast<int64_t>(t.bytes_per_image)) + " B)";
      }
      std::fprintf(stderr, "study: JPEG baseline quality %d%s; tried%s\n", m->quality,
                   m->matched ? "" : " (no quality kept the float AP50)", ladder.c_str());
    } else {
      std::fprintf(stderr, "study: JPEG baseline skipped: %s\n", m.status().ToString().c_str());
    }
  }

  // Runs whose every row is in results.jsonl, with the machine that made them. With this file
  // and results.jsonl alone (no OUT/runs/), a study continues on another machine: a finished run
  // is not trained again there.
  const std::string finished_path = (fs::path(options.out_dir) / "finished_runs.jsonl").string();
  auto finished_runs = ReadFinishedRuns(finished_path);
  const std::string machine =
      MachineDescription() + (options.device.is_cuda() ? " + CUDA GPU" : ", no GPU used");

  std::vector<const StudyRun*> todo;
  for (const auto& run : config.runs) {
    if (!options.only.empty() && run.name.find(options.only) == std::string::npos) continue;
    if (finished_runs.count(run.name)) continue;
    todo.push_back(&run);
  }
  ProgressBar bar(stderr, "study", static_cast<int64_t>(todo.size()), 0.0);
  int64_t finished = 0;
  for (const StudyRun* run : todo) {
    const std::string run_dir = (fs::path(options.out_dir) / "runs" / run->name).string();
    train::MethodInputs in;
    in.base_checkpoint = config.model;
    in.data = data_config;
    in.out_dir = run_dir;
    in.device = options.device;
    in.progress = options.progress;
    SI_ASSIGN_OR_RETURN(auto out, train::RunMethod(run->method, in));
    for (const auto& path : out.pipelines) {
      SI_ASSIGN_OR_RETURN(auto pipeline, bottleneck::Pipeline::Load(path, options.device));
      const std::string name = pipeline.spec().name;
      if (done.count(name)) continue;
      PipelineEvalOptions po;
      po.batch_size = config.eval_batch_size;
      po.device = options.device;
      po.extra_coders = config.coders;
      if (detector) po.limit = test_limit;
      SI_ASSIGN_OR_RETURN(auto ev, detector ? EvaluateDetectorPipeline(pipeline, *detection_test, po)
                                            : EvaluatePipeline(pipeline, *test_set, po));
      const double score = detector ? 100.0 * std::max(0.0, ev.detection->ap50) : ev.top1;
      double holdout_score = -1;
      if (holdout_set) {  // the accuracy does not depend on the lossless coder: one pass
        PipelineEvalOptions ho = po;
        ho.extra_coders.clear();
        SI_ASSIGN_OR_RETURN(auto held, EvaluatePipeline(pipeline, *holdout_set, ho));
        holdout_score = held.top1;
      }
      for (const auto& cb : ev.coders) {
        if (std::find(config.coders.begin(), config.coders.end(), cb.coder) == config.coders.end()) continue;
        ResultRow r = row_for(name, run->method.method);
        if (detector) r.ap = 100.0 * std::max(0.0, ev.detection->ap);
        r.split = pipeline.spec().split;
        r.bits = pipeline.codec().quant.spec.bits;
        r.granularity = codec::GranularityName(pipeline.codec().quant.spec.granularity);
        r.coder = cb.coder;
        r.score = score;
        r.holdout_score = holdout_score;
        r.float_score = float_score;
        r.bytes_per_image = cb.bytes_per_image;
        r.header_bytes = cb.header_bytes;
        r.order0_bytes = ev.order0_bytes;
        r.images = ev.images;
        r.node_params = pipeline.node_extra_params();
        r.server_params = pipeline.server_extra_params();
        r.train_seconds = out.train_seconds;
        r.pipeline = fs::relative(fs::absolute(path), fs::absolute(options.out_dir)).string();
        SI_RETURN_IF_ERROR(append(r));
      }
      std::fprintf(stderr, "study: %s %s %.2f%% (float %.2f%%), %.1f bytes/image with %s\n", name.c_str(),
                   detector ? "AP50" : "top-1", score, float_score, ev.coders[0].bytes_per_image,
                   ev.coders[0].coder.c_str());
    }
    SI_RETURN_IF_ERROR(AppendFinishedRun(finished_path, run->name, machine));
    finished_runs[run->name] = machine;
    bar.update(++finished, finished, run->name);
    SI_RETURN_IF_ERROR(WriteCsv((fs::path(options.out_dir) / "results.csv").string(), rows));
  }
  bar.finish("done");
  return WriteOutputs(options, rows, finished_runs, machine, HeldOutNote(config));
}

}  // namespace splitinfer::study
