#include "tools/cli/data_cmd.h"

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "data/coco.h"
#include "data/detection.h"
#include "data/datasets.h"
#include "data/fashion_mnist.h"
#include "data/scenes.h"
#include "detect/anchors.h"

namespace splitinfer::cli {
namespace {

struct SceneArgs {
  std::string config, out, fmnist_dir = data::kFashionMnistDefaultDir;
  bool quiet = false;
};

Status RunMakeScenes(const SceneArgs& a) {
  SI_ASSIGN_OR_RETURN(auto params, data::LoadSceneParams(a.config));
  SI_ASSIGN_OR_RETURN(auto r, data::MakeScenes(params, a.out, a.fmnist_dir, !a.quiet));
  std::printf("make-scenes: %lld train scenes (%lld objects), %lld test scenes (%lld objects), %lld items left out "
              "(no place within max_iou) -> %s\n",
              static_cast<long long>(r.train_scenes), static_cast<long long>(r.train_objects),
              static_cast<long long>(r.test_scenes), static_cast<long long>(r.test_objects),
              static_cast<long long>(r.dropped_objects), a.out.c_str());
  return Status::Ok();
}

struct AnchorArgs {
  std::string data;
  int64_t size = 0;
  int k = 6;
  uint64_t seed = 1;
  bool json = false;
};

// Anchors for a detector: the training boxes' sizes as they are after letterboxing to the
// detector's input (each image scaled by min(S / height, S / width)), k-means'd.
Status RunAnchors(const AnchorArgs& a) {
  // The training split as a detector reads it (the layout data/detection.h resolves).
  SI_ASSIGN_OR_RETURN(auto ds, data::OpenDetectionDataset(data::ParseDatasetRef(a.data), data::Split::kTrain, a.size, 1));
  const std::string& file = ds->annotation_file();
  const std::vector<detect::Size2> sizes = data::LetterboxedBoxSizes(*ds);
  SI_ASSIGN_OR_RETURN(auto fit, detect::FitAnchors(sizes, a.k, a.seed));
  if (a.json) {
    nlohmann::json j = {{"annotations", file}, {"input_size", a.size}, {"boxes", sizes.size()},
                        {"mean_best_iou", fit.mean_best_iou}, {"anchors", nlohmann::json::array()}};
    for (const auto& x : fit.anchors) j["anchors"].push_back({x[0], x[1]});
    std::printf("%s\n", j.dump().c_str());
    return Status::Ok();
  }
  std::printf("anchors for %s at %lldx%lld (%zu boxes, mean best IoU %.3f):", file.c_str(),
              static_cast<long long>(a.size), static_cast<long long>(a.size), sizes.size(), fit.mean_best_iou);
  for (const auto& x : fit.anchors) std::printf(" %.1fx%.1f", x[0], x[1]);
  std::printf("\n");
  return Status::Ok();
}

}  // namespace

std::function<Status()> AddDataCommands(CLI::App& app, std::function<bool()>* selected) {
  auto* data_cmd = app.add_subcommand("data", "datasets: make-scenes (a detection dataset), anchors (for a detector)");
  data_cmd->require_subcommand(1);
  auto args = std::make_shared<SceneArgs>();
  auto* scenes = data_cmd->add_subcommand(
      "make-scenes", "write a COCO-format detection dataset of scenes composed of Fashion-MNIST items");
  scenes->add_option("--config", args->config, "the generator's parameters, e.g. configs/data/scenes.yaml")->required();
  scenes->add_option("--out", args->out, "a new folder for the dataset (train/, test/, annotations/)")->required();
  scenes->add_option("--fmnist-dir", args->fmnist_dir, "Fashion-MNIST's files (default: Debian's package)");
  scenes->add_flag("--quiet", args->quiet, "no progress bar");
  auto anchor_args = std::make_shared<AnchorArgs>();
  auto* anchors = data_cmd->add_subcommand("anchors", "YOLO anchors by k-means on a detection dataset's training boxes");
  anchors->add_option("--data", anchor_args->data, "coco:DIR or scenes:CONFIG (its training annotations)")->required();
  anchors->add_option("--size", anchor_args->size, "the detector's square input side, pixels")
      ->required()
      ->check(CLI::Range(int64_t{32}, int64_t{4096}));
  anchors->add_option("--k", anchor_args->k, "anchors (YOLOv3-tiny: 6)")->check(CLI::Range(1, 64));
  anchors->add_option("--seed", anchor_args->seed, "k-means seed");
  anchors->add_flag("--json", anchor_args->json, "print one JSON object");
  *selected = [scenes, anchors] { return scenes->parsed() || anchors->parsed(); };
  return [args, anchor_args, scenes]() { return scenes->parsed() ? RunMakeScenes(*args) : RunAnchors(*anchor_args); };
}

}  // namespace splitinfer::cli
