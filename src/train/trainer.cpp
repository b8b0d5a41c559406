#include "train/trainer.h"


#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/progress.h"
#include "data/datasets.h"
#include "data/transforms.h"
#include "eval/evaluate.h"
#include "bottleneck/model_data.h"
#include "models/checkpoint.h"
#include "models/device.h"
#include "models/model_ref.h"
#include "models/torch_compat.h"
#include "models/zoo/zoo.h"
#include "train/detect_trainer.h"
#include "train/loop.h"
#include "train/schedule.h"

namespace splitinfer::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kStateFile = "state.pt";
constexpr const char* kCheckpointFile = "checkpoint.pt";

}  // namespace

Result<TrainResult> Train(const TrainConfig& config, const TrainOptions& options) {
  SI_ASSIGN_OR_RETURN(const bool detector, IsDetectorConfig(config));
  if (detector) return TrainDetector(config, options);
  if (options.out_dir.empty()) return InvalidArgument("no output directory (--out DIR)");
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) return IoError("cannot create " + options.out_dir + ": " + ec.message());

  models::ConfigureThreads(static_cast<int>(config.threads));
  // model.name is a model reference: a zoo architecture is built from model.* (and may start
  // from init_checkpoint); a file (checkpoint or TorchScript) is fine-tuned as it is, its
  // metadata giving the input shape, normalisation and classes.
  SI_ASSIGN_OR_RETURN(const models::ModelKind kind, models::DetectModelKind(config.model.name));
  const bool from_file = kind != models::ModelKind::kZoo;
  DataConfig data_config = config.data;
  std::shared_ptr<models::SplitModel> model;
  models::CheckpointMeta base;  // from_file: the file's metadata, kept where training does not change it
  torch::manual_seed(config.seed);
  if (from_file) {
    if (!config.init_checkpoint.empty()) {
      return InvalidArgument("init_checkpoint starts a zoo architecture from a checkpoint; model.name " +
                             config.model.name + " is already a file to start from: drop init_checkpoint");
    }
    SI_ASSIGN_OR_RETURN(models::OpenedModel opened, models::OpenModel(config.model.name, torch::kCPU, options.model_flags));
    model = opened.net;
    base = opened.meta;
    data_config = SizedFor(data_config, base);
  }
  SI_ASSIGN_OR_RETURN(auto train_set, OpenSplit(data_config, data::Split::kTrain));
  SI_ASSIGN_OR_RETURN(auto test_set, OpenSplit(data_config, data::Split::kTest));
  data::Normalization norm = data::DefaultNormalization(config.data.dataset);
  if (from_file) {
    SI_RETURN_IF_ERROR(bottleneck::CheckDatasetFits(base, *train_set));
    norm = {base.norm_mean, base.norm_std};
  } else {
    if (train_set->num_classes() != config.model.options.num_classes) {
      return InvalidArgument("model.num_classes = " + std::to_string(config.model.options.num_classes) +
                             " but dataset " + train_set->name() + " has " + std::to_string(train_set->num_classes()) +
                             " classes");
    }
    if (train_set->image_shape()[0] != config.model.options.in_channels) {
      return InvalidArgument("model.in_channels = " + std::to_string(config.model.options.in_channels) +
                             " but dataset images have " + std::to_string(train_set->image_shape()[0]) + " channels");
    }
    SI_ASSIGN_OR_RETURN(models::BlockChain native, models::CreateModel(config.model.name, config.model.options));
    if (!config.init_checkpoint.empty()) {
      SI_ASSIGN_OR_RETURN(models::LoadedModel init, models::LoadCheckpoint(config.init_checkpoint, torch::kCPU));
      if (init.meta.model != config.model.name || init.meta.options.width != config.model.options.width ||
          init.meta.options.depth != config.model.options.depth ||
          init.meta.options.num_classes != config.model.options.num_classes) {
        return Mismatch("init_checkpoint " + config.init_checkpoint + " holds " + init.meta.model + " (width " +
                        std::to_string(init.meta.options.width) + ", depth " +
                        std::to_string(init.meta.options.depth) + "), not the configured model");
      }
      SI_RETURN_IF_ERROR(models::CopyWeights(*native, *init.model, config.init_checkpoint));
    }
    model = native.ptr();
  }
  model->to_device(options.device);
  torch::nn::Module& state = *model->state_module();
  auto optimizer = MakeOptimizer(config.optimizer, state.parameters());

  const nlohmann::json config_json = ToJson(config);
  const std::string state_path = (fs::path(options.out_dir) / kStateFile).string();
  const EpochState epoch_state{state_path, "model", config_json.dump(),
                               "use another --out, or --restart to discard it"};
  int64_t start_epoch = 0;
  if (!options.restart) {
    SI_ASSIGN_OR_RETURN(start_epoch, LoadEpochState(epoch_state, state, *optimizer, options.device));
    if (start_epoch > 0) {
      std::fprintf(stderr, "train: resuming from %s after epoch %lld\n", state_path.c_str(),
                   static_cast<long long>(start_epoch));
    }
  }
  {
    std::ofstream cfg(fs::path(options.out_dir) / "config.json");
    cfg << config_json.dump(2) << "\n";
  }

  const int64_t n = train_set->size();
  const int64_t steps_per_epoch = (n + config.batch_size - 1) / config.batch_size;
  const int64_t total_steps = steps_per_epoch * config.epochs;
  const bool amp = config.amp && options.device.is_cuda();
  TrainResult result;
  result.epochs_done = start_epoch;
  int64_t epochs_this_run = 0;
  eval::EvalOptions eval_options;
  eval_options.batch_size = config.eval_batch_size;
  eval_options.device = options.device;

  for (int64_t epoch = start_epoch; epoch < config.epochs; ++epoch) {
    if (options.stop_after_epochs > 0 && epochs_this_run >= options.stop_after_epochs) break;
    model->set_train(true);
    // Everything random in this epoch derives from (seed, epoch), so resuming is exact.
    torch::manual_seed(config.seed * 7919ULL + static_cast<uint64_t>(epoch));
    auto aug_gen = at::make_generator<at::CPUGeneratorImpl>(config.seed * 104729ULL + static_cast<uint64_t>(epoch));
    const auto order = EpochOrder(n, config.seed, epoch);
    ProgressBar bar(stderr, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config.epochs),
                    steps_per_epoch, 60.0);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t step = 0; step < steps_per_epoch; ++step) {
      const int64_t begin = step * config.batch_size, end = std::min(n, begin + config.batch_size);
      std::vector<int64_t> idx(order.begin() + begin, order.begin() + end);
      SI_ASSIGN_OR_RETURN(auto batch, train_set->batch(idx));
      auto x = data::TrainTransform(batch.first, norm, config.augment, aug_gen).to(options.device);
      auto y = batch.second.to(options.device);
      SetLearningRate(*optimizer, LearningRate(config.schedule, config.optimizer.lr,
                                               epoch * steps_per_epoch + step, total_steps));
      optimizer->zero_grad();
      torch::Tensor logits;
      if (amp) {
        models::compat::SetCudaAutocast(true, at::kBFloat16);
        logits = model->forward_all(x).to(torch::kFloat32);
        models::compat::SetCudaAutocast(false);
      } else {
        logits = model->forward_all(x);
      }
      auto loss = torch::nn::functional::cross_entropy(
          logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(config.label_smoothing));
      loss.backward();
      optimizer->step();
      const double l = loss.item<double>();
      if (!std::isfinite(l)) {
        return Internal("training diverged at epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step) +
                        " (loss " + std::to_string(l) + "); lower optimizer.lr" + kDivergedHint);
      }
      loss_sum += l * static_cast<double>(end - begin);
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      seen += end - begin;
      if (options.progress) {
        bar.update(step + 1, seen,
                   "loss " + Fixed(loss_sum / seen, 4) + " acc " + Fixed(100.0 * correct / seen, 2) + "%");
      }
    }
    SI_ASSIGN_OR_RETURN(auto ev, eval::Evaluate(*model, *test_set, norm, std::nullopt, eval_options));
    result.top1 = ev.top1;
    if (options.progress) {
      bar.finish("loss " + Fixed(loss_sum / seen, 4) + " train acc " + Fixed(100.0 * correct / seen, 2) +
                 "% test top1 " + Fixed(ev.top1, 2) + "%");
    }
    SI_RETURN_IF_ERROR(SaveEpochState(epoch_state, state, *optimizer, epoch + 1));
    nlohmann::json line = {{"epoch", epoch + 1},      {"train_loss", loss_sum / seen},
                           {"train_acc", 100.0 * correct / seen}, {"test_top1", ev.top1},
                           {"lr", LearningRate(config.schedule, config.optimizer.lr, (epoch + 1) * steps_per_epoch - 1,
                                               total_steps)}};
    std::ofstream(fs::path(options.out_dir) / "log.jsonl", std::ios::app) << line.dump() << "\n";
    result.epochs_done = epoch + 1;
    ++epochs_this_run;
  }

  if (result.epochs_done < config.epochs) return result;  // stopped early; resumable

  model->set_eval();
  if (start_epoch == config.epochs) {  // nothing trained in this run: measure the loaded model
    SI_ASSIGN_OR_RETURN(auto ev, eval::Evaluate(*model, *test_set, norm, std::nullopt, eval_options));
    result.top1 = ev.top1;
  }
  models::CheckpointMeta meta = base;
  if (!from_file) {
    meta.model = config.model.name;
    meta.options = config.model.options;
    meta.input_shape = train_set->image_shape();
  }
  if (!data_config.resize.empty()) meta.resize = data_config.resize;
  if (data_config.resize_size != 0) meta.resize_size = data_config.resize_size;
  meta.norm_mean = norm.mean;
  meta.norm_std = norm.std;
  meta.class_names = train_set->class_names();
  meta.dataset = config.data.dataset;
  meta.top1 = result.top1;
  meta.epochs = config.epochs;
  meta.train_config = config_json;
  // The same file name for both kinds: what it holds (a checkpoint, or TorchScript for a
  // TorchScript model) is told by its content.
  result.checkpoint = (fs::path(options.out_dir) / kCheckpointFile).string();
  SI_RETURN_IF_ERROR(models::SaveModel(result.checkpoint, *model, meta));
  result.finished = true;
  return result;
}

}  // namespace splitinfer::train
