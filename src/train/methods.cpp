#include "train/methods.h"

#include "config/yaml_reader.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <optional>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include "bottleneck/modules.h"
#include "bottleneck/pipeline.h"
#include "core/progress.h"
#include "data/transforms.h"
#include "models/checkpoint.h"
#include "models/device.h"
#include "bottleneck/model_data.h"
#include "data/detection.h"
#include "detect/loss.h"
#include "eval/detection/detector.h"
#include "train/loop.h"
#include "train/schedule.h"

namespace splitinfer::train {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using bottleneck::Pipeline;
using bottleneck::PipelineSpec;

// ------------------------------------------------------------------------------ config

namespace {

const std::set<std::string> kMethods = {"ptq", "tail", "tcl", "qat", "ae", "qcnet", "shared_ae", "per_point_ae"};

// The keys each method reads: any other valid key would be ignored, so it is refused (a
// tcl_lambda on a ptq run is a mistake, not a setting).
std::set<std::string> KeysOf(const std::string& method) {
  const std::set<std::string> quant = {"split", "bits", "granularity", "clip", "percentile", "region",
                                       "reconstruction", "calibration_images"};
  const std::set<std::string> training = {"epochs", "batch_size", "optimizer", "lr", "weight_decay",
                                          "schedule", "kd_weight", "kd_temperature"};
  std::set<std::string> keys = {"method", "seed"};
  auto add = [&keys](const std::set<std::string>& more) { keys.insert(more.begin(), more.end()); };
  if (method == "ptq") {
    add(quant);
  } else if (method == "tail") {
    add(quant), add(training), add({"feature_kd_weight", "learn_quantizer"});
  } else if (method == "qat") {
    add(quant), add(training);
  } else if (method == "qcnet") {
    add(quant), add(training), add({"warmup_epochs", "compensator_hidden", "finetune_tail", "feature_kd_weight",
                                    "learn_quantizer"});
  } else if (method == "tcl") {
    add(quant), add(training), add({"tcl_lambda", "tcl_schedule", "tcl_learn_levels"});
  } else if (method == "ae") {
    add({"split", "bits", "calibration_images"}), add(training);
    add({"latent_channels", "downsample", "finetune_head", "finetune_tail", "recon_weight", "warmup_epochs"});
  } else {  // shared_ae, per_point_ae
    add({"points", "bits", "bit_widths", "calibration_images"}), add(training);
    add({"latent_channels", "downsample", "recon_weight", "warmup_epochs"});
    add({method == "per_point_ae" ? "point_width" : "shared_width"});
  }
  return keys;
}

}  // namespace

Result<MethodConfig> ParseMethodConfig(const std::string& text, const std::string& origin) {
  SI_ASSIGN_OR_RETURN(YAML::Node root, config::ParseYaml(text, origin));
  if (!root.IsMap()) return InvalidArgument(origin + ": a run is a YAML mapping (method: ..., split: ..., ...)");
  MethodConfig c;
  config::MapReader r(root, "", origin);
  std::string granularity, clip, reconstruction, tcl_schedule;
  std::vector<uint32_t> region;
  SI_RETURN_IF_ERROR(r.get("method", &c.method));
  SI_RETURN_IF_ERROR(r.get("split", &c.split));
  SI_RETURN_IF_ERROR(r.get("points", &c.points));
  SI_RETURN_IF_ERROR(r.get("bits", &c.bits));
  SI_RETURN_IF_ERROR(r.get("bit_widths", &c.bit_widths));
  SI_RETURN_IF_ERROR(r.get("granularity", &granularity));
  SI_RETURN_IF_ERROR(r.get("clip", &clip));
  SI_RETURN_IF_ERROR(r.get("percentile", &c.quant.percentile));
  SI_RETURN_IF_ERROR(r.get("region", &region));
  SI_RETURN_IF_ERROR(r.get("reconstruction", &reconstruction));
  SI_RETURN_IF_ERROR(r.get("calibration_images", &c.calibration_images));
  SI_RETURN_IF_ERROR(r.get("epochs", &c.epochs));
  SI_RETURN_IF_ERROR(r.get("batch_size", &c.batch_size));
  SI_RETURN_IF_ERROR(r.get("optimizer", &c.optimizer.name));
  SI_RETURN_IF_ERROR(r.get("lr", &c.optimizer.lr));
  SI_RETURN_IF_ERROR(r.get("weight_decay", &c.optimizer.weight_decay));
  SI_RETURN_IF_ERROR(r.get("schedule", &c.schedule.name));
  SI_RETURN_IF_ERROR(r.get("finetune_head", &c.finetune_head));
  SI_RETURN_IF_ERROR(r.get("finetune_tail", &c.finetune_tail));
  SI_RETURN_IF_ERROR(r.get("kd_weight", &c.kd_weight));
  SI_RETURN_IF_ERROR(r.get("kd_temperature", &c.kd_temperature));
  SI_RETURN_IF_ERROR(r.get("feature_kd_weight", &c.feature_kd_weight));
  SI_RETURN_IF_ERROR(r.get("learn_quantizer", &c.learn_quantizer));
  SI_RETURN_IF_ERROR(r.get("tcl_lambda", &c.tcl_lambda));
  SI_RETURN_IF_ERROR(r.get("tcl_schedule", &tcl_schedule));
  SI_RETURN_IF_ERROR(r.get("tcl_learn_levels", &c.tcl_learn_levels));
  SI_RETURN_IF_ERROR(r.get("latent_channels", &c.latent_channels));
  SI_RETURN_IF_ERROR(r.get("downsample", &c.downsample));
  SI_RETURN_IF_ERROR(r.get("recon_weight", &c.recon_weight));
  SI_RETURN_IF_ERROR(r.get("warmup_epochs", &c.warmup_epochs));
  SI_RETURN_IF_ERROR(r.get("shared_width", &c.shared_width));
  SI_RETURN_IF_ERROR(r.get("point_width", &c.point_width));
  SI_RETURN_IF_ERROR(r.get("compensator_hidden", &c.compensator_hidden));
  SI_RETURN_IF_ERROR(r.get("seed", &c.seed));
  SI_RETURN_IF_ERROR(r.finish());  // a key no method reads
  if (!kMethods.count(c.method)) {
    return InvalidArgument(origin + ": unknown method '" + c.method +
                           "'; use ptq, tail, tcl, qat, ae, qcnet, shared_ae or per_point_ae");
  }
  const std::set<std::string> own = KeysOf(c.method);
  for (const auto& kv : root) {
    const auto key = kv.first.as<std::string>();
    if (!own.count(key)) {
      std::string list;
      for (const auto& k : own) list += (list.empty() ? "" : ", ") + k;
      return InvalidArgument(origin + ": key '" + key + "' does nothing for method " + c.method + "; its keys: " + list);
    }
  }
  if (!granularity.empty()) {
    SI_ASSIGN_OR_RETURN(c.quant.granularity, codec::GranularityFromName(granularity));
  }
  c.quant.clip = codec::ClipMethod::kMse;
  if (!clip.empty()) {
    SI_ASSIGN_OR_RETURN(c.quant.clip, codec::ClipFromName(clip));
  }
  if (r.has("region")) {
    if (region.size() != 3) return InvalidArgument(origin + ": region is [C, H, W]");
    for (int i = 0; i < 3; ++i) c.quant.region[i] = region[i];
  } else {
    c.quant.region[0] = 8, c.quant.region[1] = 7, c.quant.region[2] = 7;
  }
  if (!reconstruction.empty()) {
    if (reconstruction != "level" && reconstruction != "centroid") {
      return InvalidArgument(origin + ": reconstruction is level or centroid");
    }
    c.quant.reconstruction =
        reconstruction == "centroid" ? codec::Reconstruction::kCentroid : codec::Reconstruction::kLevel;
  }
  if (!tcl_schedule.empty()) {
    SI_ASSIGN_OR_RETURN(c.tcl_schedule, bottleneck::LambdaScheduleFromName(tcl_schedule));
  }
  c.quant.bits = c.bits;
  SI_RETURN_IF_ERROR(codec::ValidateSpec(c.quant));
  if (c.optimizer.name != "sgd" && c.optimizer.name != "adamw") {
    return InvalidArgument(origin + ": optimizer is sgd or adamw, got '" + c.optimizer.name + "'");
  }
  if (c.schedule.name != "cosine" && c.schedule.name != "onecycle" && c.schedule.name != "constant") {
    return InvalidArgument(origin + ": schedule is cosine, onecycle or constant");
  }
  if (c.epochs < 0 || c.warmup_epochs < 0 || c.batch_size < 1 || c.calibration_images < 1) {
    return InvalidArgument(origin + ": epochs and warmup_epochs must be >= 0, batch_size and calibration_images >= 1");
  }
  if (c.latent_channels < 1 || c.shared_width < 1 || c.compensator_hidden < 1) {
    return InvalidArgument(origin + ": latent_channels, shared_width and compensator_hidden must be >= 1");
  }
  if (c.point_width < 0) return InvalidArgument(origin + ": point_width must be >= 0 (0 = each point's channels)");
  if (!(c.feature_kd_weight >= 0)) return InvalidArgument(origin + ": feature_kd_weight must be >= 0");
  if (c.learn_quantizer && (c.quant.granularity == codec::Granularity::kRegion ||
                            c.quant.reconstruction == codec::Reconstruction::kCentroid)) {
    return InvalidArgument(origin + ": learn_quantizer learns level ranges per tensor or per channel; it does not "
                           "combine with region granularity or centroid reconstruction");
  }
  for (int b : c.bit_widths) {
    if (b < 1 || b > 8) return InvalidArgument(origin + ": bit_widths entries must be 1..8");
  }
  if ((c.method == "shared_ae" || c.method == "per_point_ae") && c.points.empty()) {
    return InvalidArgument(origin + ": method " + c.method + " needs `points:` (the split points it serves)");
  }
  return c;
}

nlohmann::json ToJson(const MethodConfig& c) {
  nlohmann::json j = {{"method", c.method},
          {"split", c.split},
          {"points", c.points},
          {"bits", c.bits},
          {"bit_widths", c.bit_widths},
          {"granularity", codec::GranularityName(c.quant.granularity)},
          {"clip", codec::ClipName(c.quant.clip)},
          {"percentile", c.quant.percentile},
          {"region", {c.quant.region[0], c.quant.region[1], c.quant.region[2]}},
          {"reconstruction", c.quant.reconstruction == codec::Reconstruction::kCentroid ? "centroid" : "level"},
          {"calibration_images", c.calibration_images},
          {"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"optimizer", c.optimizer.name},
          {"lr", c.optimizer.lr},
          {"weight_decay", c.optimizer.weight_decay},
          {"schedule", c.schedule.name},
          {"finetune_head", c.finetune_head},
          {"finetune_tail", c.finetune_tail},
          {"kd_weight", c.kd_weight},
          {"kd_temperature", c.kd_temperature},
          {"tcl_lambda", c.tcl_lambda},
          {"tcl_schedule", bottleneck::LambdaScheduleName(c.tcl_schedule)},
          {"tcl_learn_levels", c.tcl_learn_levels},
          {"latent_channels", c.latent_channels},
          {"downsample", c.downsample},
          {"recon_weight", c.recon_weight},
          {"warmup_epochs", c.warmup_epochs},
          {"shared_width", c.shared_width},
          {"compensator_hidden", c.compensator_hidden},
          {"seed", c.seed}};
  // Only when set: runs made before the key existed keep their identity (and resume).
  if (c.point_width > 0) j["point_width"] = c.point_width;
  if (c.feature_kd_weight > 0) j["feature_kd_weight"] = c.feature_kd_weight;
  if (c.learn_quantizer) j["learn_quantizer"] = true;
  return j;
}

// ------------------------------------------------------------------------------ machinery

namespace {

using LossFn = std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& x, const torch::Tensor& y,
                                                                     double t, int64_t step)>;

// One training stage: which parameters move, how modes are set, and the loss. Everything in
// `root` is saved after each epoch so that a killed run resumes where it stopped.
struct Stage {
  std::string name;
  int64_t epochs = 0;
  std::vector<torch::Tensor> params;
  torch::nn::Module* root = nullptr;
  std::function<void()> set_modes;
  LossFn loss;  // returns {loss, logits or undefined}
  std::function<nlohmann::json()> epoch_info;  // optional: extra fields for the epoch's log line
};

// A module that owns (registers) whatever a method trains, for saving and resuming together.
struct BundleImpl : torch::nn::Module {
  template <typename M>
  void hold(const std::string& name, M module) {
    register_module(name, module.ptr());
  }
  void hold(const std::string& name, std::shared_ptr<torch::nn::Module> module) {
    register_module(name, std::move(module));
  }
  // Whether it trains stays as the caller set it (register_parameter would switch it on).
  void hold_param(const std::string& name, const torch::Tensor& t) { register_parameter(name, t, t.requires_grad()); }
};
TORCH_MODULE(Bundle);

struct Ctx {
  const MethodConfig& c;
  const MethodInputs& in;
  std::unique_ptr<data::Dataset> train_set;  // a detector's: data::DetectionImages (boxes in detection())
  data::Normalization norm;
  std::optional<detect::YoloLayout> detector;  // set for a detector: its outputs are YOLO heads
  detect::YoloLossGains gains;                  // a detector's: the gains it was trained with
  models::OpenedModel teacher;  // the float model, frozen (a checkpoint or TorchScript chain)
  models::SplitPoint split;
  std::vector<int64_t> split_shape;  // per image
  std::string name;                  // the run's name (its folder)
};

std::string OutPath(const Ctx& ctx, const std::string& file) { return (fs::path(ctx.in.out_dir) / file).string(); }

// A path written into a pipeline file: relative to the pipeline's folder.
std::string RelativeToOut(const Ctx& ctx, const std::string& path) {
  return fs::relative(fs::absolute(path), fs::absolute(ctx.in.out_dir)).string();
}

void Freeze(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.set_requires_grad(false);
}

std::vector<torch::Tensor> BlockParams(models::SplitModel& model, int64_t begin, int64_t end) {
  std::vector<torch::Tensor> out;
  for (int64_t i = begin; i < end && i < model.num_blocks(); ++i) {
    for (auto& p : model.block_parameters(i)) out.push_back(p);
  }
  return out;
}

void SetBlocksTrain(models::SplitModel& model, int64_t begin, int64_t end, bool train) {
  for (int64_t i = begin; i < end && i < model.num_blocks(); ++i) model.set_block_train(i, train);
}

torch::Tensor KdLoss(const torch::Tensor& student, const torch::Tensor& teacher, double temperature) {
  auto log_p = F::log_softmax(student / temperature, F::LogSoftmaxFuncOptions(1));
  auto q = F::softmax(teacher / temperature, F::SoftmaxFuncOptions(1));
  return F::kl_div(log_p, q, F::KLDivFuncOptions().reduction(torch::kBatchMean)) * temperature * temperature;
}

// The task's loss with distillation from the float model: cross-entropy + KL on softened
// logits for a classifier; for a detector, YOLO's loss against the boxes (y: targets [M, 6]) +
// the mean squared difference from the float detector's raw head outputs (kd_weight weighs it).
torch::Tensor TaskLoss(const Ctx& ctx, const torch::Tensor& logits, const torch::Tensor& y,
                       const std::function<torch::Tensor()>& teacher_logits) {
  if (ctx.detector) {
    auto yolo = detect::ComputeYoloLoss(logits, y, *ctx.detector, ctx.gains);
    TORCH_CHECK(yolo.ok(), yolo.status().ToString());  // RunStage reports LibTorch errors by name
    auto loss = yolo.value().total;
    if (ctx.c.kd_weight > 0) loss = loss + ctx.c.kd_weight * F::mse_loss(logits, teacher_logits());
    return loss;
  }
  auto loss = F::cross_entropy(logits, y);
  if (ctx.c.kd_weight > 0) loss = loss + ctx.c.kd_weight * KdLoss(logits, teacher_logits(), ctx.c.kd_temperature);
  return loss;
}

// Features of the first n training images (no augmentation) through fn, on the CPU.
Result<torch::Tensor> Collect(Ctx& ctx, const std::function<torch::Tensor(const torch::Tensor&)>& fn) {
  torch::NoGradGuard g;
  const int64_t n = std::min(ctx.c.calibration_images, ctx.train_set->size());
  std::vector<torch::Tensor> parts;
  for (int64_t b = 0; b < n; b += 250) {
    std::vector<int64_t> idx;
    for (int64_t i = b; i < std::min(n, b + 250); ++i) idx.push_back(i);
    SI_ASSIGN_OR_RETURN(auto batch, ctx.train_set->batch(idx));
    parts.push_back(fn(data::ToFloatNormalized(batch.first, ctx.norm).to(ctx.in.device)).to(torch::kCPU));
  }
  return torch::cat(parts);
}

Result<codec::QuantParams> CalibrateWith(Ctx& ctx, const codec::QuantSpec& spec,
                                          const std::function<torch::Tensor(const torch::Tensor&)>& fn) {
  SI_ASSIGN_OR_RETURN(auto samples, Collect(ctx, fn));
  return codec::Calibrate(spec, samples);
}

// A static per-tensor zero-based quantizer over [0, hi] (what QAT and the autoencoders learn).
codec::QuantParams TensorParams(int bits, double hi, const std::vector<int64_t>& dims) {
  codec::QuantParams q;
  q.spec.bits = bits;
  q.spec.range = codec::RangeKind::kZeroBased;
  q.spec.granularity = codec::Granularity::kTensor;
  q.dims.assign(dims.begin(), dims.end());
  q.lo = {0.0f};
  q.hi = {static_cast<float>(hi)};
  return q;
}

Status WriteJson(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path + ".tmp");
  f << j.dump(2) << "\n";
  f.close();
  if (!f) return IoError("cannot write " + path);
  std::error_code ec;
  fs::rename(path + ".tmp", path, ec);
  if (ec) return IoError("cannot write " + path + ": " + ec.message());
  return Status::Ok();
}

// A fine-tuned copy of the base model, in the base's own form (checkpoint or TorchScript).
Status SaveModel(Ctx& ctx, models::SplitModel& model, const std::string& file) {
  models::CheckpointMeta meta = ctx.teacher.meta;
  meta.top1 = -1;  // measured by the pipeline evaluation, not here
  meta.train_config = {{"method", ToJson(ctx.c)}, {"base_checkpoint", ctx.in.base_checkpoint}};
  auto st = models::SaveModel(OutPath(ctx, file), model, meta);
  model.to_device(ctx.in.device);
  return st;
}

PipelineSpec BaseSpec(const Ctx& ctx, const std::string& split) {
  PipelineSpec s;
  s.name = ctx.name;
  s.model = RelativeToOut(ctx, ctx.in.base_checkpoint);
  s.reference_model = s.model;
  s.split = split;
  s.coder = "cabac";
  return s;
}

// What a run's states and done.json are bound to: its settings, and the held-out split when
// there is one (a run trained on every training image is not one that held 5,000 out). Absent
// when 0, so that runs made before the key existed still resume.
nlohmann::json RunIdentity(const MethodConfig& c, const MethodInputs& in) {
  nlohmann::json j = ToJson(c);
  if (in.data.holdout > 0) j["data_holdout"] = in.data.holdout;
  return j;
}

Status RunStage(Ctx& ctx, const Stage& stage) {
  if (stage.epochs == 0) return Status::Ok();
  const MethodConfig& c = ctx.c;
  auto optimizer = MakeOptimizer(c.optimizer, stage.params);
  const std::string state_path = OutPath(ctx, stage.name + ".state.pt");
  const EpochState epoch_state{state_path, "root", RunIdentity(c, ctx.in).dump(), "delete " + ctx.in.out_dir + " to retrain"};
  SI_ASSIGN_OR_RETURN(const int64_t start, LoadEpochState(epoch_state, *stage.root, *optimizer, ctx.in.device));
  const int64_t n = ctx.train_set->size();
  const int64_t steps_per_epoch = (n + c.batch_size - 1) / c.batch_size;
  const int64_t total = steps_per_epoch * stage.epochs;
  for (int64_t epoch = start; epoch < stage.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    stage.set_modes();
    torch::manual_seed(c.seed * 7919ULL + static_cast<uint64_t>(epoch));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed * 104729ULL + static_cast<uint64_t>(epoch));
    const auto order = EpochOrder(n, c.seed, epoch);
    ProgressBar bar(stderr, ctx.name + " " + stage.name + " " + std::to_string(epoch + 1) + "/" +
                                std::to_string(stage.epochs),
                    steps_per_epoch, 60.0);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, scored = 0;
    for (int64_t step = 0; step < steps_per_epoch; ++step) {
      const int64_t b = step * c.batch_size, e = std::min(n, b + c.batch_size);
      std::vector<int64_t> idx(order.begin() + b, order.begin() + e);
      torch::Tensor x, y;
      if (ctx.detector) {
        // Images with their boxes, unaugmented: the node is frozen, the server learns to read
        // its quantized features (y: YOLO targets [M, 6]).
        const auto& det = static_cast<const data::DetectionImages&>(*ctx.train_set).detection();
        std::vector<data::DetectionSample> samples;
        for (int64_t i : idx) {
          SI_ASSIGN_OR_RETURN(auto sample, det.sample(i));
          samples.push_back(std::move(sample));
        }
        auto [images, targets] = data::CollateDetection(samples);
        x = data::ToFloatNormalized(images, ctx.norm).to(ctx.in.device);
        y = targets.to(ctx.in.device);
      } else {
        SI_ASSIGN_OR_RETURN(auto batch, ctx.train_set->batch(idx));
        x = data::TrainTransform(batch.first, ctx.norm, c.augment, gen).to(ctx.in.device);
        y = batch.second.to(ctx.in.device);
      }
      const int64_t global = epoch * steps_per_epoch + step;
      SetLearningRate(*optimizer, LearningRate(c.schedule, c.optimizer.lr, global, total));
      optimizer->zero_grad();
      torch::Tensor loss, logits;
      try {
        std::tie(loss, logits) = stage.loss(x, y, static_cast<double>(global) / static_cast<double>(total), global);
        loss.backward();
      } catch (const c10::Error& err) {
        return Internal(ctx.name + " " + stage.name + ": " + err.what_without_backtrace());
      }
      optimizer->step();
      const double l = loss.item<double>();
      if (!std::isfinite(l)) {
        return Internal(ctx.name + " " + stage.name + " diverged at epoch " + std::to_string(epoch + 1) + " (loss " +
                        std::to_string(l) + "); lower lr" + kDivergedHint);
      }
      loss_sum += l * static_cast<double>(e - b);
      seen += e - b;
      if (logits.defined() && !ctx.detector) {
        correct += logits.argmax(1).eq(y).sum().item<int64_t>();
        scored += e - b;
      }
      if (ctx.in.progress) {
        bar.update(step + 1, seen, "loss " + std::to_string(loss_sum / seen).substr(0, 6) +
                                       (scored ? " acc " + std::to_string(100.0 * correct / scored).substr(0, 5) + "%" : ""));
      }
    }
    if (ctx.in.progress) bar.finish("loss " + std::to_string(loss_sum / seen).substr(0, 6));
    SI_RETURN_IF_ERROR(SaveEpochState(epoch_state, *stage.root, *optimizer, epoch + 1));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json line = {{"stage", stage.name}, {"epoch", epoch + 1}, {"loss", loss_sum / seen}, {"seconds", secs}};
    if (scored) line["train_acc"] = 100.0 * correct / scored;
    if (stage.epoch_info) line.update(stage.epoch_info());
    std::ofstream(OutPath(ctx, "log.jsonl"), std::ios::app) << line.dump() << "\n";
  }
  return Status::Ok();
}

// A second, trainable copy of the base model (the teacher stays frozen).
Result<std::shared_ptr<models::SplitModel>> LoadCopy(Ctx& ctx) {
  SI_ASSIGN_OR_RETURN(auto m, models::OpenModel(ctx.in.base_checkpoint, ctx.in.device));
  return m.net;
}

torch::Tensor HeadNoGrad(Ctx& ctx, models::SplitModel& model, const torch::Tensor& x) {
  torch::NoGradGuard g;
  return model.head(x, ctx.split);
}

// ------------------------------------------------------------------------------ methods

// A pipeline whose node and server both run a fine-tuned copy of the model (TCL, QAT).
Result<std::vector<PipelineSpec>> FineTunedModelPipeline(Ctx& ctx, models::SplitModel& model,
                                                         const codec::QuantParams& quant) {
  SI_RETURN_IF_ERROR(WriteJson(OutPath(ctx, "quant.json"), codec::ToJson(quant)));
  SI_RETURN_IF_ERROR(SaveModel(ctx, model, "model.pt"));
  PipelineSpec s = BaseSpec(ctx, ctx.c.split);
  s.model = "model.pt";
  s.quantizer = "quant.json";
  return std::vector<PipelineSpec>{s};
}


Result<std::vector<PipelineSpec>> Ptq(Ctx& ctx) {
  SI_ASSIGN_OR_RETURN(auto quant, CalibrateWith(ctx, ctx.c.quant, [&](const torch::Tensor& x) {
                        return ctx.teacher.net->head(x, ctx.split);
                      }));
  SI_RETURN_IF_ERROR(WriteJson(OutPath(ctx, "quant.json"), codec::ToJson(quant)));
  PipelineSpec s = BaseSpec(ctx, ctx.c.split);
  s.quantizer = "quant.json";
  return std::vector<PipelineSpec>{s};
}

Result<std::vector<PipelineSpec>> Tail(Ctx& ctx, bool with_compensator) {
  const MethodConfig& c = ctx.c;
  SI_ASSIGN_OR_RETURN(auto quant, CalibrateWith(ctx, c.quant, [&](const torch::Tensor& x) {
                        return ctx.teacher.net->head(x, ctx.split);
                      }));
  SI_RETURN_IF_ERROR(WriteJson(OutPath(ctx, "quant.json"), codec::ToJson(quant)));
  // learn_quantizer: the node's ranges (and so its thresholds: at 1 bit the one threshold is
  // the range's midpoint) learned with the server's parts on the task loss, through the fake
  // quantizer, which is the codec's reconstruction bit for bit. A node-side change.
  bottleneck::RangeTensors learned;
  if (c.learn_quantizer) {
    SI_ASSIGN_OR_RETURN(learned, bottleneck::ToRangeTensors(quant, ctx.split_shape.size(), ctx.in.device));
    learned.hi.set_requires_grad(true);
    if (quant.spec.range == codec::RangeKind::kAffine) learned.lo.set_requires_grad(true);
  }
  SI_ASSIGN_OR_RETURN(auto model, LoadCopy(ctx));
  const int64_t cut = ctx.split.block + 1, nblocks = model->num_blocks();
  Freeze(*model->state_module());
  bottleneck::Compensator comp{nullptr};
  Bundle root;
  root->hold("model", model->state_module());
  if (with_compensator) {
    comp = bottleneck::Compensator(bottleneck::CompensatorOptions{ctx.split_shape[0], c.compensator_hidden, true});
    comp->to(ctx.in.device);
    root->hold("compensator", comp);
  }
  if (c.learn_quantizer) root->hold_param("quantizer_lo", learned.lo), root->hold_param("quantizer_hi", learned.hi);
  auto dequantized = [&](const torch::Tensor& x) {
    auto f = ctx.teacher.net->head(x, ctx.split);  // frozen: teacher and node are the same
    return std::make_pair(f, codec::SimulateBatch(quant, f).value());
  };
  auto teacher_logits = [&](const torch::Tensor& f) {
    return [&ctx, f]() {
      torch::NoGradGuard g;
      return ctx.teacher.net->tail(f, ctx.split);
    };
  };
  // What the server's parts see in the joint stage: the codec's reconstruction, or with
  // learn_quantizer the fake quantizer over the ranges being learned (gradient to them).
  auto server_input = [&](const torch::Tensor& f, const torch::Tensor& d) {
    return c.learn_quantizer ? bottleneck::FakeQuantize(f, learned.lo, learned.hi, c.bits) : d;
  };
  if (with_compensator) {
    // QCNet stage 1: the compensator learns to reconstruct the float features.
    Stage recon{"reconstruct", c.warmup_epochs, comp->parameters(), root.get(),
                [&] { comp->train(); },
                [&](const torch::Tensor& x, const torch::Tensor&, double, int64_t) {
                  torch::Tensor f, d;
                  {
                    torch::NoGradGuard g;
                    std::tie(f, d) = dequantized(x);
                  }
                  return std::make_pair(F::mse_loss(comp->forward(d), f), torch::Tensor());
                }};
    SI_RETURN_IF_ERROR(RunStage(ctx, recon));
  }
  std::vector<torch::Tensor> params;
  if (with_compensator) params = comp->parameters();
  if (c.learn_quantizer) {
    params.push_back(learned.hi);
    if (learned.lo.requires_grad()) params.push_back(learned.lo);
  }
  if (c.finetune_tail || !with_compensator) {
    for (auto& p : BlockParams(*model, cut, nblocks)) {
      p.set_requires_grad(true);
      params.push_back(p);
    }
  }
  // A classifier's tail runs block by block when the float model's features are a target or its
  // logits are (then its blocks run once for both, and the features' distance is logged either
  // way, so a run without feature distillation is the control of one with it).
  const bool blockwise = c.feature_kd_weight > 0 || (c.kd_weight > 0 && !ctx.detector);
  double feature_sum = 0;
  int64_t feature_steps = 0;
  Stage joint{"finetune", c.epochs, params, root.get(),
              [&] {
                model->set_eval();
                SetBlocksTrain(*model, cut, nblocks, c.finetune_tail || !with_compensator);
                if (with_compensator) comp->train();
              },
              [&](const torch::Tensor& x, const torch::Tensor& y, double, int64_t) {
                torch::Tensor f, d;
                {
                  torch::NoGradGuard g;
                  std::tie(f, d) = dequantized(x);
                }
                torch::Tensor h = server_input(f, d);
                if (with_compensator) h = comp->forward(h);
                if (!blockwise) {
                  auto logits = model->tail(h, ctx.split);
                  return std::make_pair(TaskLoss(ctx, logits, y, teacher_logits(f)), logits);
                }
                // Block by block beside the float model on the float features: the distance
                // after each block but the last, relative to the float features' mean square
                // (logged, and a loss term when feature_kd_weight > 0). The float model's last
                // block gives the distillation's teacher logits, so it runs once per step.
                torch::Tensor t = f, feature = torch::zeros({}, f.options());
                for (int64_t b = cut; b < nblocks; ++b) {
                  h = model->run_blocks(h, b, b + 1);
                  if (b + 1 == nblocks && c.kd_weight <= 0) break;
                  {
                    torch::NoGradGuard g;
                    t = ctx.teacher.net->run_blocks(t, b, b + 1);
                  }
                  if (b + 1 == nblocks) break;
                  auto hb = c.feature_kd_weight > 0 ? h : h.detach();
                  feature = feature + F::mse_loss(hb, t) / (t.pow(2).mean() + 1e-8);
                }
                feature = feature / std::max<int64_t>(nblocks - cut - 1, 1);
                feature_sum += feature.item<double>();
                ++feature_steps;
                auto loss = TaskLoss(ctx, h, y, [t] { return t; });
                if (c.feature_kd_weight > 0) loss = loss + c.feature_kd_weight * feature;
                return std::make_pair(loss, h);
              }};
  if (blockwise) {
    joint.epoch_info = [&] {
      nlohmann::json j = {{"feature_kd", feature_sum / std::max<int64_t>(feature_steps, 1)}};
      feature_sum = 0, feature_steps = 0;
      return j;
    };
  }
  SI_RETURN_IF_ERROR(RunStage(ctx, joint));
  if (c.learn_quantizer) {
    SI_RETURN_IF_ERROR(bottleneck::SetRanges(learned, &quant));
    SI_RETURN_IF_ERROR(WriteJson(OutPath(ctx, "quant.json"), codec::ToJson(quant)));
  }
  PipelineSpec s = BaseSpec(ctx, c.split);
  s.quantizer = "quant.json";
  if (c.finetune_tail || !with_compensator) {
    SI_RETURN_IF_ERROR(SaveModel(ctx, *model, "server.pt"));
    s.server_model = "server.pt";
  }
  if (with_compensator) {
    comp->to(torch::kCPU);
    SI_RETURN_IF_ERROR(bottleneck::SaveArtifact(
        OutPath(ctx, "compensator.pt"), *comp,
        {{"kind", "compensator"}, {"options", bottleneck::ToJson(comp->options())}, {"split", c.split},
         {"bits", c.bits}}));
    s.compensator = "compensator.pt";
  }
  return std::vector<PipelineSpec>{s};
}

Result<std::vector<PipelineSpec>> Tcl(Ctx& ctx) {
  const MethodConfig& c = ctx.c;
  // The levels the clustering loss pulls toward: the targeted quantizer's, per tensor (or per
  // channel), calibrated on the float model's features.
  codec::QuantSpec level_spec = c.quant;
  if (level_spec.granularity == codec::Granularity::kRegion) level_spec.granularity = codec::Granularity::kTensor;
  level_spec.reconstruction = codec::Reconstruction::kLevel;
  // The float model's features of the calibration images, collected once: they fix the levels
  // and give the "before" distance.
  SI_ASSIGN_OR_RETURN(auto float_features, Collect(ctx, [&](const torch::Tensor& x) {
                        return ctx.teacher.net->head(x, ctx.split);
                      }));
  SI_ASSIGN_OR_RETURN(auto levels, codec::Calibrate(level_spec, float_features));
  SI_ASSIGN_OR_RETURN(auto range, bottleneck::ToRangeTensors(levels, ctx.split_shape.size(), ctx.in.device));
  auto lo = range.lo;
  auto hi = range.hi.set_requires_grad(c.tcl_learn_levels);
  // Where TCL is meant to act: the split features' mean squared distance to their nearest level
  // (in steps, ClusteringLoss) on the calibration images, before and after (issue 20, item 2).
  auto level_distance = [&](const torch::Tensor& f) {
    torch::NoGradGuard g;
    return bottleneck::ClusteringLoss(f.to(lo.device()), lo, hi.detach(), c.bits).item<double>();
  };
  const double distance_before = level_distance(float_features);
  SI_ASSIGN_OR_RETURN(auto model, LoadCopy(ctx));
  Bundle root;
  root->hold("model", model->state_module());
  root->hold_param("levels_hi", hi);
  auto params = model->state_module()->parameters();
  if (c.tcl_learn_levels) params.push_back(hi);
  double last_lambda = 0, cluster_sum = 0;
  int64_t cluster_steps = 0;
  Stage stage{"tcl", c.epochs, params, root.get(), [&] { model->set_train(true); },
              [&](const torch::Tensor& x, const torch::Tensor& y, double t, int64_t) {
                auto f = model->head(x, ctx.split);
                auto logits = model->tail(f, ctx.split);
                last_lambda = bottleneck::ClusteringWeight(c.tcl_schedule, c.tcl_lambda, t);
                auto loss = TaskLoss(ctx, logits, y, [&] {
                  torch::NoGradGuard g;
                  return ctx.teacher.net->forward_all(x);
                });
                auto cluster = bottleneck::ClusteringLoss(f, lo, hi, c.bits);
                cluster_sum += cluster.item<double>();
                ++cluster_steps;
                loss = loss + last_lambda * cluster;
                return std::make_pair(loss, logits);
              }};
  stage.epoch_info = [&] {
    nlohmann::json j = {{"cluster_loss", cluster_sum / std::max<int64_t>(cluster_steps, 1)}, {"lambda", last_lambda}};
    cluster_sum = 0, cluster_steps = 0;
    return j;
  };
  SI_RETURN_IF_ERROR(RunStage(ctx, stage));
  model->set_eval();
  // The fine-tuned model's features, collected once: the "after" distance and the recalibration.
  SI_ASSIGN_OR_RETURN(auto tuned_features, Collect(ctx, [&](const torch::Tensor& x) {
                        return model->head(x, ctx.split);
                      }));
  const double distance_after = level_distance(tuned_features);
  SI_RETURN_IF_ERROR(WriteJson(OutPath(ctx, "level_distance.json"),
                               {{"before", distance_before},
                                {"after", distance_after},
                                {"unit", "mean squared distance to the nearest level, in quantizer steps"},
                                {"levels", c.tcl_learn_levels ? "learned with the loss (after: the learned range)"
                                                              : "calibrated on the float model's features"},
                                {"images", std::min(c.calibration_images, ctx.train_set->size())}}));
  if (ctx.in.progress) {
    std::fprintf(stderr, "%s: features' distance to the %d-bit levels %.4f -> %.4f steps^2\n", ctx.name.c_str(), c.bits,
                 distance_before, distance_after);
  }
  // Two pipelines from the one fine-tuned model, so the study shows which PTQ suits TCL:
  //   NAME        plain PTQ with exactly the levels the features were pulled onto (for region
  //               granularity, whose ranges the loss did not target, recalibrated instead);
  //   NAME_recal  plain PTQ calibrated afresh on the fine-tuned features (the configured clip).
  SI_ASSIGN_OR_RETURN(auto recal, codec::Calibrate(c.quant, tuned_features));
  codec::QuantParams quant = recal;
  if (c.quant.granularity != codec::Granularity::kRegion) {
    quant = levels;
    quant.spec.reconstruction = codec::Reconstruction::kLevel;
    SI_RETURN_IF_ERROR(bottleneck::SetRanges({lo, hi}, &quant));
  }
  SI_ASSIGN_OR_RETURN(auto specs, FineTunedModelPipeline(ctx, *model, quant));
  SI_RETURN_IF_ERROR(WriteJson(OutPath(ctx, "quant_recal.json"), codec::ToJson(recal)));
  PipelineSpec r = specs.front();
  r.name = ctx.name + "_recal";
  r.quantizer = "quant_recal.json";
  specs.push_back(r);
  return specs;
}

Result<std::vector<PipelineSpec>> Qat(Ctx& ctx) {
  const MethodConfig& c = ctx.c;
  codec::QuantSpec init_spec;
  init_spec.bits = c.bits;
  init_spec.clip = codec::ClipMethod::kMse;
  SI_ASSIGN_OR_RETURN(auto init, CalibrateWith(ctx, init_spec, [&](const torch::Tensor& x) {
                        return ctx.teacher.net->head(x, ctx.split);
                      }));
  SI_ASSIGN_OR_RETURN(auto model, LoadCopy(ctx));
  bottleneck::LearnedClip clip(init.hi[0]);
  clip->to(ctx.in.device);
  Bundle root;
  root->hold("model", model->state_module());
  root->hold("clip", clip);
  auto params = model->state_module()->parameters();
  params.push_back(clip->parameters()[0]);
  Stage stage{"qat", c.epochs, params, root.get(), [&] { model->set_train(true); },
              [&](const torch::Tensor& x, const torch::Tensor& y, double, int64_t) {
                auto logits = model->tail(clip->forward(model->head(x, ctx.split), c.bits), ctx.split);
                auto loss = TaskLoss(ctx, logits, y, [&] {
                  torch::NoGradGuard g;
                  return ctx.teacher.net->forward_all(x);
                });
                return std::make_pair(loss, logits);
              }};
  SI_RETURN_IF_ERROR(RunStage(ctx, stage));
  return FineTunedModelPipeline(ctx, *model, TensorParams(c.bits, clip->hi(), ctx.split_shape));
}

Result<std::vector<PipelineSpec>> Ae(Ctx& ctx) {
  const MethodConfig& c = ctx.c;
  SI_ASSIGN_OR_RETURN(auto model, LoadCopy(ctx));
  const int64_t cut = ctx.split.block + 1, nblocks = model->num_blocks();
  Freeze(*model->state_module());
  bottleneck::Autoencoder ae(
      bottleneck::AutoencoderOptions{ctx.split_shape[0], c.latent_channels, c.downsample, /*relu_output=*/true});
  ae->to(ctx.in.device);
  Bundle root;
  root->hold("model", model->state_module());
  root->hold("ae", ae);
  const int64_t h = ctx.split_shape[1], w = ctx.split_shape[2];
  auto through = [&](const torch::Tensor& f) { return ae->decode(ae->clip->forward(ae->encode(f), c.bits), h, w); };
  Stage warm{"reconstruct", c.warmup_epochs, ae->parameters(), root.get(), [&] { ae->train(); },
             [&](const torch::Tensor& x, const torch::Tensor&, double, int64_t) {
               auto f = HeadNoGrad(ctx, *ctx.teacher.net, x);
               return std::make_pair(F::mse_loss(through(f), f), torch::Tensor());
             }};
  SI_RETURN_IF_ERROR(RunStage(ctx, warm));
  auto params = ae->parameters();
  if (c.finetune_head) {
    for (auto& p : BlockParams(*model, 0, cut)) p.set_requires_grad(true), params.push_back(p);
  }
  if (c.finetune_tail) {
    for (auto& p : BlockParams(*model, cut, nblocks)) p.set_requires_grad(true), params.push_back(p);
  }
  Stage joint{"finetune", c.epochs, params, root.get(),
              [&] {
                model->set_eval();
                SetBlocksTrain(*model, 0, cut, c.finetune_head);
                SetBlocksTrain(*model, cut, nblocks, c.finetune_tail);
                ae->train();
              },
              [&](const torch::Tensor& x, const torch::Tensor& y, double, int64_t) {
                auto f = c.finetune_head ? model->head(x, ctx.split) : HeadNoGrad(ctx, *model, x);
                auto fh = through(f);
                auto logits = model->tail(fh, ctx.split);
                auto loss = TaskLoss(ctx, logits, y, [&] {
                  torch::NoGradGuard g;
                  return ctx.teacher.net->forward_all(x);
                });
                if (c.recon_weight > 0) loss = loss + c.recon_weight * F::mse_loss(fh, f.detach());
                return std::make_pair(loss, logits);
              }};
  SI_RETURN_IF_ERROR(RunStage(ctx, joint));
  std::vector<int64_t> latent{c.latent_channels, c.downsample ? (h + 1) / 2 : h, c.downsample ? (w + 1) / 2 : w};
  SI_RETURN_IF_ERROR(WriteJson(OutPath(ctx, "quant.json"), codec::ToJson(TensorParams(c.bits, ae->clip->hi(), latent))));
  ae->to(torch::kCPU);
  SI_RETURN_IF_ERROR(bottleneck::SaveArtifact(OutPath(ctx, "autoencoder.pt"), *ae,
                                              {{"kind", "autoencoder"}, {"options", bottleneck::ToJson(ae->options())},
                                               {"split", c.split}, {"bits", c.bits}}));
  PipelineSpec s = BaseSpec(ctx, c.split);
  s.bottleneck = "autoencoder.pt";
  s.quantizer = "quant.json";
  if (c.finetune_head) {
    SI_RETURN_IF_ERROR(SaveModel(ctx, *model, "model.pt"));
    s.model = "model.pt";
  } else if (c.finetune_tail) {
    SI_RETURN_IF_ERROR(SaveModel(ctx, *model, "server.pt"));
    s.server_model = "server.pt";
  }
  return std::vector<PipelineSpec>{s};
}

// One SharedAutoencoder over `points` (shared_ae), or one per point (per_point_ae: width =
// point_width, or the point's channels, trained alone). Head and tail stay frozen, so every point keeps serving the
// shipped model; bit widths are drawn per batch so any of them works at run time.
Result<std::vector<PipelineSpec>> SharedAe(Ctx& ctx, bool per_point) {
  const MethodConfig& c = ctx.c;
  struct Point {
    models::SplitPoint split;
    int64_t channels;
  };
  std::vector<Point> points;
  for (const auto& name : c.points) {
    SI_ASSIGN_OR_RETURN(auto sp, ctx.teacher.net->find_split(name));
    torch::NoGradGuard g;
    auto f = ctx.teacher.net->head(models::ExampleInput(ctx.teacher.meta, 1, ctx.in.device), sp);
    if (f.dim() != 4) return InvalidArgument("split point '" + name + "' is not a convolutional feature map");
    points.push_back({sp, f.size(1)});
  }
  std::vector<std::vector<size_t>> groups;  // which points each autoencoder serves
  if (per_point) {
    for (size_t i = 0; i < points.size(); ++i) groups.push_back({i});
  } else {
    std::vector<size_t> all(points.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    groups.push_back(all);
  }
  std::vector<PipelineSpec> specs;
  for (const auto& group : groups) {
    bottleneck::SharedAutoencoderOptions o;
    for (size_t i : group) o.points.push_back({points[i].split.name, points[i].channels});
    o.width = !per_point ? c.shared_width : c.point_width > 0 ? c.point_width : points[group[0]].channels;
    o.latent_channels = c.latent_channels;
    o.bit_widths = c.bit_widths;
    bottleneck::SharedAutoencoder sae(o);
    sae->to(ctx.in.device);
    const std::string tag = per_point ? "_" + points[group[0]].split.name : "";
    Bundle root;
    root->hold("shared", sae);
    Stage stage{"train" + tag, c.epochs, sae->parameters(), root.get(), [&] { sae->train(); },
                [&](const torch::Tensor& x, const torch::Tensor& y, double, int64_t step) {
                  // Points take turns; the bit width is drawn per batch from a generator seeded
                  // by the step, so resuming draws the same widths.
                  const size_t k = static_cast<size_t>(step) % group.size();
                  std::mt19937 rng(static_cast<uint32_t>(c.seed * 31 + static_cast<uint64_t>(step)));
                  const int bits = c.bit_widths[rng() % c.bit_widths.size()];
                  const auto& sp = points[group[k]].split;
                  torch::Tensor f;
                  {
                    torch::NoGradGuard g;
                    f = ctx.teacher.net->head(x, sp);
                  }
                  auto fh = sae->decode(sae->quantize(sae->encode(f, k), k, bits), k);
                  auto logits = ctx.teacher.net->tail(fh, sp);
                  auto loss = TaskLoss(ctx, logits, y, [&] {
                    torch::NoGradGuard g;
                    return ctx.teacher.net->tail(f, sp);
                  });
                  if (c.recon_weight > 0) loss = loss + c.recon_weight * F::mse_loss(fh, f);
                  return std::make_pair(loss, logits);
                }};
    SI_RETURN_IF_ERROR(RunStage(ctx, stage));
    sae->to(torch::kCPU);
    const std::string file = "autoencoder" + tag + ".pt";
    SI_RETURN_IF_ERROR(bottleneck::SaveArtifact(
        OutPath(ctx, file), *sae,
        {{"kind", "shared_autoencoder"}, {"options", bottleneck::ToJson(o)}, {"parameters", bottleneck::ParameterCount(*sae)}}));
    sae->to(ctx.in.device);
    for (size_t i : group) {
      for (int bits : c.bit_widths) {
        PipelineSpec s = BaseSpec(ctx, points[i].split.name);
        s.name = ctx.name + "_" + points[i].split.name + "_b" + std::to_string(bits);
        s.bottleneck = file;
        s.bits = bits;
        specs.push_back(s);
      }
    }
  }
  return specs;
}

}  // namespace

Result<MethodOutput> RunMethod(const MethodConfig& c, const MethodInputs& in) {
  if (in.out_dir.empty()) return InvalidArgument("no output directory for the method's artifacts");
  std::error_code ec;
  fs::create_directories(in.out_dir, ec);
  if (ec) return IoError("cannot create " + in.out_dir + ": " + ec.message());
  const std::string done_path = (fs::path(in.out_dir) / "done.json").string();
  const std::string config_text = RunIdentity(c, in).dump();
  if (fs::exists(done_path)) {
    std::ifstream f(done_path);
    auto j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.value("config", nlohmann::json()).dump() == config_text) {
      MethodOutput out;
      for (const auto& p : j.at("pipelines")) out.pipelines.push_back((fs::path(in.out_dir) / p.get<std::string>()).string());
      out.train_seconds = j.value("train_seconds", 0.0);
      return out;
    }
    return Mismatch(done_path + " belongs to other method settings; delete " + in.out_dir + " to retrain");
  }

  SI_ASSIGN_OR_RETURN(auto teacher, models::OpenModel(in.base_checkpoint, in.device));
  Freeze(*teacher.net->state_module());
  Ctx ctx{c, in, nullptr, {}, std::nullopt, {}, teacher, {}, {}, fs::path(in.out_dir).filename().string()};
  if (models::IsDetector(teacher.meta)) {
    // A detector's methods: PTQ (calibration needs images, not boxes), the server-side ones
    // (tail, QCNet) and the autoencoder with YOLO's loss on the boxes (TaskLoss); TCL, QAT and
    // the shared autoencoders are not tested on detectors yet and are refused.
    if (c.method != "ptq" && c.method != "qcnet" && c.method != "tail" && c.method != "ae") {
      return Unimplemented("method " + c.method + " on a detector (" + in.base_checkpoint +
                           ") is not built yet; ptq, tail, qcnet and ae are");
    }
    if (in.data.holdout > 0) {
      return Unimplemented("data.holdout on a detector's data is not built yet (" + in.base_checkpoint +
                           "); hold images out by giving the training annotations fewer images");
    }
    SI_ASSIGN_OR_RETURN(auto images, bottleneck::OpenDetectionDataFor(teacher.meta, in.data.dataset + ":" + in.data.dir,
                                                                       data::Split::kTrain, in.progress));
    ctx.train_set = std::make_unique<data::DetectionImages>(std::move(images));
    SI_ASSIGN_OR_RETURN(ctx.detector, detect::LayoutFor(teacher.meta));
    // The loss the detector was trained with (its training config's gains, else the defaults).
    const DetectConfig defaults;
    const auto d = teacher.meta.train_config.value("detect", nlohmann::json::object());
    ctx.gains.box = d.value("box_gain", defaults.box_gain);
    ctx.gains.cls = d.value("class_gain", defaults.class_gain);
    ctx.gains.objectness = d.value("objectness_gain", defaults.objectness_gain);
  } else {
    SI_ASSIGN_OR_RETURN(ctx.train_set, OpenSplit(SizedFor(in.data, teacher.meta), data::Split::kTrain));
    SI_RETURN_IF_ERROR(bottleneck::CheckDatasetFits(teacher.meta, *ctx.train_set));
  }
  ctx.norm.mean = teacher.meta.norm_mean;
  ctx.norm.std = teacher.meta.norm_std;
  if (c.method != "shared_ae" && c.method != "per_point_ae") {
    SI_ASSIGN_OR_RETURN(ctx.split, teacher.net->find_split(c.split));
    torch::NoGradGuard g;
    auto f = teacher.net->head(models::ExampleInput(teacher.meta, 1, in.device), ctx.split);
    ctx.split_shape.assign(f.sizes().begin() + 1, f.sizes().end());
    if ((c.method == "ae" || c.method == "qcnet") && f.dim() != 4) {
      return InvalidArgument("method " + c.method + " needs a convolutional feature map at split '" + c.split + "'");
    }
  }
  // Per-run seeds: the method's own generator state, independent of earlier runs in a study.
  torch::manual_seed(c.seed);
  Result<std::vector<PipelineSpec>> specs = InvalidArgument("unknown method " + c.method);
  if (c.method == "ptq") specs = Ptq(ctx);
  else if (c.method == "tail") specs = Tail(ctx, /*with_compensator=*/false);
  else if (c.method == "qcnet") specs = Tail(ctx, /*with_compensator=*/true);
  else if (c.method == "tcl") specs = Tcl(ctx);
  else if (c.method == "qat") specs = Qat(ctx);
  else if (c.method == "ae") specs = Ae(ctx);
  else if (c.method == "shared_ae") specs = SharedAe(ctx, /*per_point=*/false);
  else if (c.method == "per_point_ae") specs = SharedAe(ctx, /*per_point=*/true);
  if (!specs.ok()) return specs.status();

  MethodOutput out;
  nlohmann::json names = nlohmann::json::array();
  for (const auto& s : specs.value()) {
    const std::string file = (specs.value().size() == 1 ? std::string("pipeline") : s.name) + ".yaml";
    SI_RETURN_IF_ERROR(bottleneck::SavePipelineSpec((fs::path(in.out_dir) / file).string(), s));
    out.pipelines.push_back((fs::path(in.out_dir) / file).string());
    names.push_back(file);
  }
  // Training time over all runs (a resumed stage counts only the epochs it ran now, so sum the log).
  double seconds = 0;
  {
    std::ifstream log((fs::path(in.out_dir) / "log.jsonl").string());
    std::string line;
    while (std::getline(log, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) seconds += j.value("seconds", 0.0);
    }
  }
  out.train_seconds = seconds;
  SI_RETURN_IF_ERROR(WriteJson(done_path, {{"config", RunIdentity(c, in)}, {"pipelines", names}, {"train_seconds", seconds}}));
  return out;
}

}  // namespace splitinfer::train
