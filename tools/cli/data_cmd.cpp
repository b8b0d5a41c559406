#include "tools/cli/data_cmd.h"

#include <cstdio>
#include <memory>
#include <string>

#include "data/fashion_mnist.h"
#include "data/scenes.h"

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

}  // namespace

std::function<Status()> AddDataCommands(CLI::App& app, std::function<bool()>* selected) {
  auto* data_cmd = app.add_subcommand("data", "datasets splitinfer makes: make-scenes");
  data_cmd->require_subcommand(1);
  auto args = std::make_shared<SceneArgs>();
  auto* scenes = data_cmd->add_subcommand(
      "make-scenes", "write a COCO-format detection dataset of scenes composed of Fashion-MNIST items");
  scenes->add_option("--config", args->config, "the generator's parameters, e.g. configs/data/scenes.yaml")->required();
  scenes->add_option("--out", args->out, "a new folder for the dataset (train/, test/, annotations/)")->required();
  scenes->add_option("--fmnist-dir", args->fmnist_dir, "Fashion-MNIST's files (default: Debian's package)");
  scenes->add_flag("--quiet", args->quiet, "no progress bar");
  *selected = [scenes] { return scenes->parsed(); };
  return [args]() { return RunMakeScenes(*args); };
}

}  // namespace splitinfer::cli
