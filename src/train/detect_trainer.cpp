// Training a detector (task detect): the supervised trainer's files, resumption and schedule
// (trainer.h), with YOLO's loss, detection augmentation and COCO AP on the test split after
// each epoch instead of cross-entropy, crops and top-1.
#include "train/detect_trainer.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bottleneck/model_data.h"
#include "core/progress.h"
#include "core/random.h"
#include "data/transforms.h"
#include "detect/anchors.h"
#include "detect/loss.h"
#include "eval/detection/detector.h"
#include "models/checkpoint.h"
#include "models/device.h"
#include "models/model_ref.h"
#include "models/zoo/zoo.h"
#include "train/loop.h"
#include "train/schedule.h"

namespace splitinfer::train {
namespace fs = std::filesystem;
namespace {

// One training image's augmentation seed: a function of (seed, epoch, image), so a resumed run
// draws what the uninterrupted one would.
uint64_t SampleSeed(uint64_t seed, int64_t epoch, int64_t index) {
  SplitMix64 mix(seed * 0x100000001B3ull + static_cast<uint64_t>(epoch) * 1000003ull + static_cast<uint64_t>(index));
  return mix.Next();
}

}  // namespace

Result<bool> IsDetectorConfig(const TrainConfig& config) {
  SI_ASSIGN_OR_RETURN(const models::ModelKind kind, models::DetectModelKind(config.model.name));
  bool detector = false;
  if (kind == models::ModelKind::kZoo) {
    detector = models::DefaultsFor(config.model.name).task == models::kTaskDetect;
  } else if (kind == models::ModelKind::kCheckpoint) {
    SI_ASSIGN_OR_RETURN(const models::CheckpointMeta meta, models::ReadCheckpointMeta(config.model.name));
    detector = models::IsDetector(meta);
  }
  if (!detector && config.detect.given) {
    return InvalidArgument("`detect:` configures a detector's training; " + config.model.name +
                           " is a classifier (use `augment:`)");
  }
  if (detector && config.augment_given) {
    return InvalidArgument("`augment:` configures a classifier's training; " + config.model.name +
                           " is a detector: its augmentation is detect.min_scale, max_scale, translate, hflip");
  }
  return detector;
}

Result<TrainResult> TrainDetector(const TrainConfig& config, const TrainOptions& options) {
  if (options.out_dir.empty()) return InvalidArgument("no output directory (--out DIR)");
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) return IoError("cannot create " + options.out_dir + ": " + ec.message());
  models::ConfigureThreads(static_cast<int>(config.threads));
  torch::manual_seed(config.seed);

  // The model: a zoo detector built from model.* (optionally from init_checkpoint's weights), or
  // a detector checkpoint fine-tuned as it is (its input size, classes and anchors).
  SI_ASSIGN_OR_RETURN(const models::ModelKind kind, models::DetectModelKind(config.model.name));
  models::CheckpointMeta meta;
  models::BlockChain net{nullptr};
  bool fresh = true;  // random weights: the heads' biases get YOLO's prior
  if (kind == models::ModelKind::kCheckpoint) {
    if (!config.init_checkpoint.empty()) {
      return InvalidArgument("init_checkpoint starts a zoo architecture from a checkpoint; model.name " +
                             config.model.name + " is already a file to start from: drop init_checkpoint");
    }
    SI_ASSIGN_OR_RETURN(models::LoadedModel loaded, models::LoadCheckpoint(config.model.name, torch::kCPU));
    net = loaded.model;
    meta = loaded.meta;
    fresh = false;
    if (config.data.image_size != 0 && config.data.image_size != meta.input_shape[1]) {
      return InvalidArgument("data.image_size " + std::to_string(config.data.image_size) + " differs from " +
                             config.model.name + "'s input side " + std::to_string(meta.input_shape[1]) +
                             "; leave it out to train at the detector's size");
    }
    if (!config.detect.anchors.empty() && config.detect.anchors != meta.anchors) {
      return InvalidArgument("detect.anchors differ from " + config.model.name + "'s; a trained detector keeps its anchors");
    }
  } else if (kind == models::ModelKind::kZoo) {
    const models::ZooDefaults zoo = models::DefaultsFor(config.model.name);
    const int64_t side = config.data.image_size > 0 ? config.data.image_size : zoo.input_shape[1];
    if (side % 32 != 0) {
      return InvalidArgument("data.image_size " + std::to_string(side) +
                             " is not a multiple of 32 (YOLOv3-tiny's coarsest stride)");
    }
    meta.task = models::kTaskDetect;
    meta.model = config.model.name;
    meta.options = config.model.options;
    meta.input_shape = {config.model.options.in_channels, side, side};
    // Darknet's input: pixels / 255, no mean or standard deviation.
    meta.norm_mean.assign(static_cast<size_t>(config.model.options.in_channels), 0.0);
    meta.norm_std.assign(static_cast<size_t>(config.model.options.in_channels), 1.0);
    SI_ASSIGN_OR_RETURN(net, models::CreateModel(config.model.name, config.model.options));
    if (!config.init_checkpoint.empty()) {
      SI_ASSIGN_OR_RETURN(models::LoadedModel init, models::LoadCheckpoint(config.init_checkpoint, torch::kCPU));
      if (init.meta.model != config.model.name || init.meta.options.width != config.model.options.width ||
          init.meta.options.num_classes != config.model.options.num_classes ||
          init.meta.options.in_channels != config.model.options.in_channels) {
        return Mismatch("init_checkpoint " + config.init_checkpoint + " holds " + init.meta.model + " (width " +
                        std::to_string(init.meta.options.width) + "), not the configured model");
      }
      SI_RETURN_IF_ERROR(models::CopyWeights(*net, *init.model, config.init_checkpoint));
      fresh = false;
    }
  } else {
    return Unimplemented(config.model.name + " is a TorchScript file; detectors train from the zoo (yolov3_tiny) or "
                         "from a splitinfer detector checkpoint");
  }

  if (config.data.holdout > 0) {
    return Unimplemented("data.holdout for a detector's training is not built yet (" + config.data.dataset +
                         "); hold images out by giving the training annotations fewer images");
  }
  const data::DatasetRef ref{config.data.dataset, config.data.dir};
  const int64_t side = meta.input_shape[1], channels = meta.input_shape[0];
  SI_ASSIGN_OR_RETURN(auto train_set, data::OpenDetectionDataset(ref, data::Split::kTrain, side, channels, options.progress));
  SI_ASSIGN_OR_RETURN(auto test_set, data::OpenDetectionDataset(ref, data::Split::kTest, side, channels, options.progress));
  if (kind == models::ModelKind::kCheckpoint) {
    SI_RETURN_IF_ERROR(bottleneck::CheckClassNames(meta, train_set->class_names(), ref.kind + ":" + ref.dir));
  } else {
    if (static_cast<int64_t>(train_set->class_names().size()) != config.model.options.num_classes) {
      return InvalidArgument("model.num_classes = " + std::to_string(config.model.options.num_classes) + " but " +
                             train_set->annotation_file() + " has " +
                             std::to_string(train_set->class_names().size()) + " categories");
    }
    meta.class_names = train_set->class_names();
    if (!config.detect.anchors.empty()) {
      meta.anchors = config.detect.anchors;
    } else {
      SI_ASSIGN_OR_RETURN(const detect::AnchorFit fit,
                          detect::FitAnchors(data::LetterboxedBoxSizes(*train_set), 6, config.seed + 1));
      meta.anchors = fit.anchors;
      if (options.progress) {
        std::string text;
        for (const auto& a : fit.anchors) text += " " + Fixed(a[0], 1) + "x" + Fixed(a[1], 1);
        std::fprintf(stderr, "train: anchors by k-means on the training boxes:%s (mean best IoU %.3f)\n", text.c_str(),
                     fit.mean_best_iou);
      }
    }
  }
  SI_ASSIGN_OR_RETURN(const detect::YoloLayout layout, detect::LayoutFor(meta));
  if (fresh) {
    for (auto& p : net->named_parameters()) {
      const bool big = p.key().size() >= 13 && p.key().compare(p.key().size() - 13, 13, "head_big.bias") == 0;
      const bool small = p.key().size() >= 15 && p.key().compare(p.key().size() - 15, 15, "head_small.bias") == 0;
      if (big) detect::InitYoloHeadBias(p.value(), layout, ((side + 31) / 32) * ((side + 31) / 32));
      if (small) detect::InitYoloHeadBias(p.value(), layout, ((side + 15) / 16) * ((side + 15) / 16));
    }
  }

  net->to(options.device);
  auto optimizer = MakeOptimizer(config.optimizer, net->parameters());
  const nlohmann::json config_json = ToJson(config);
  const std::string state_path = (fs::path(options.out_dir) / "state.pt").string();
  const EpochState epoch_state{state_path, "model", config_json.dump(), "use another --out, or --restart to discard it"};
  int64_t start_epoch = 0;
  if (!options.restart) {
    SI_ASSIGN_OR_RETURN(start_epoch, LoadEpochState(epoch_state, *net, *optimizer, options.device));
    if (start_epoch > 0) {
      std::fprintf(stderr, "train: resuming from %s after epoch %lld\n", state_path.c_str(),
                   static_cast<long long>(start_epoch));
    }
  }
  std::ofstream(fs::path(options.out_dir) / "config.json") << config_json.dump(2) << "\n";

  const int64_t n = config.data.limit_train > 0 ? std::min(config.data.limit_train, train_set->size()) : train_set->size();
  const int64_t steps_per_epoch = (n + config.batch_size - 1) / config.batch_size;
  const int64_t total_steps = steps_per_epoch * config.epochs;
  const data::Normalization norm{meta.norm_mean, meta.norm_std};
  detect::YoloLossGains gains;
  gains.box = config.detect.box_gain;
  gains.cls = config.detect.class_gain;
  gains.objectness = config.detect.objectness_gain;
  eval::DetectorEvalOptions eval_options;
  eval_options.batch_size = config.eval_batch_size;
  eval_options.limit = config.data.limit_test;
  eval_options.device = options.device;
  eval_options.post.iou_threshold = static_cast<float>(config.detect.nms_iou);
  models::BlockChain& model = net;
  auto measure = [&]() { return eval::EvaluateDetector(*model, *test_set, meta, eval_options); };

  TrainResult result;
  result.epochs_done = start_epoch;
  int64_t epochs_this_run = 0;
  for (int64_t epoch = start_epoch; epoch < config.epochs; ++epoch) {
    if (options.stop_after_epochs > 0 && epochs_this_run >= options.stop_after_epochs) break;
    model->train(true);
    torch::manual_seed(config.seed * 7919ULL + static_cast<uint64_t>(epoch));
    const auto order = EpochOrder(n, config.seed, epoch);
    ProgressBar bar(stderr, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config.epochs),
                    steps_per_epoch, 60.0);
    double loss_sum = 0, box_sum = 0, obj_sum = 0, cls_sum = 0;
    int64_t seen = 0;
    for (int64_t step = 0; step < steps_per_epoch; ++step) {
      const int64_t begin = step * config.batch_size, end = std::min(n, begin + config.batch_size);
      std::vector<data::DetectionSample> samples;
      for (int64_t k = begin; k < end; ++k) {
        const int64_t i = order[static_cast<size_t>(k)];
        SI_ASSIGN_OR_RETURN(auto s, train_set->sample(i, &config.detect.augment, SampleSeed(config.seed, epoch, i)));
        samples.push_back(std::move(s));
      }
      auto [images, targets] = data::CollateDetection(samples);
      const auto x = data::ToFloatNormalized(images, norm).to(options.device);
      SetLearningRate(*optimizer, LearningRate(config.schedule, config.optimizer.lr,
                                               epoch * steps_per_epoch + step, total_steps));
      optimizer->zero_grad();
      SI_ASSIGN_OR_RETURN(const detect::YoloLoss loss,
                          detect::ComputeYoloLoss(model->forward_all(x), targets.to(options.device), layout, gains));
      loss.total.backward();
      optimizer->step();
      const double l = loss.total.item<double>();
      if (!std::isfinite(l)) {
        return Internal("training diverged at epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step) +
                        " (loss " + std::to_string(l) + "); lower optimizer.lr" + kDivergedHint);
      }
      const double b = static_cast<double>(end - begin);
      loss_sum += l;
      box_sum += loss.box * b;
      obj_sum += loss.objectness * b;
      cls_sum += loss.cls * b;
      seen += end - begin;
      if (options.progress) {
        bar.update(step + 1, seen,
                   "loss " + Fixed(loss_sum / seen, 4) + " (box " + Fixed(box_sum / seen, 3) + ", obj " +
                       Fixed(obj_sum / seen, 4) + ", cls " + Fixed(cls_sum / seen, 4) + ")");
      }
    }
    SI_ASSIGN_OR_RETURN(const eval::DetectorEvalResult ev, measure());
    result.ap = ev.metrics.ap;
    result.ap50 = ev.metrics.ap50;
    if (options.progress) {
      bar.finish("loss " + Fixed(loss_sum / seen, 4) + " test AP " + Fixed(ev.metrics.ap, 4) + " AP50 " +
                 Fixed(ev.metrics.ap50, 4));
    }
    SI_RETURN_IF_ERROR(SaveEpochState(epoch_state, *model, *optimizer, epoch + 1));
    const nlohmann::json line = {
        {"epoch", epoch + 1},
        {"train_loss", loss_sum / seen},
        {"box", box_sum / seen},
        {"objectness", obj_sum / seen},
        {"class", cls_sum / seen},
        {"test_ap", ev.metrics.ap},
        {"test_ap50", ev.metrics.ap50},
        {"test_ap75", ev.metrics.ap75},
        {"seconds_eval", ev.seconds},
        {"lr", LearningRate(config.schedule, config.optimizer.lr, (epoch + 1) * steps_per_epoch - 1, total_steps)}};
    std::ofstream(fs::path(options.out_dir) / "log.jsonl", std::ios::app) << line.dump() << "\n";
    result.epochs_done = epoch + 1;
    ++epochs_this_run;
  }
  if (result.epochs_done < config.epochs) return result;  // stopped early; resumable

  model->eval();
  if (start_epoch == config.epochs) {  // nothing trained in this run: measure the loaded model
    SI_ASSIGN_OR_RETURN(const eval::DetectorEvalResult ev, measure());
    result.ap = ev.metrics.ap;
    result.ap50 = ev.metrics.ap50;
  }
  meta.dataset = config.data.dataset;
  meta.ap = result.ap;
  meta.ap50 = result.ap50;
  meta.epochs = config.epochs;
  meta.train_config = config_json;
  result.checkpoint = (fs::path(options.out_dir) / "checkpoint.pt").string();
  SI_RETURN_IF_ERROR(models::SaveModel(result.checkpoint, *model, meta));
  result.finished = true;
  return result;
}

}  // namespace splitinfer::train
