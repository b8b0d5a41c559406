#include "train/config.h"

#include "config/yaml_reader.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace splitinfer::train {
namespace {

using config::MapReader;

Status OneOf(const std::string& origin, const std::string& key, const std::string& value,
             std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return Status::Ok();
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  return InvalidArgument(origin + ": " + key + " = '" + value + "' is not one of: " + list);
}

}  // namespace

Status ReadDataConfig(config::MapReader& data, DataConfig* out) {
  SI_RETURN_IF_ERROR(data.get("dataset", &out->dataset));
  SI_RETURN_IF_ERROR(data.get("dir", &out->dir));
  SI_RETURN_IF_ERROR(data.get("limit_train", &out->limit_train));
  SI_RETURN_IF_ERROR(data.get("limit_test", &out->limit_test));
  SI_RETURN_IF_ERROR(data.get("holdout", &out->holdout));
  SI_RETURN_IF_ERROR(data.get("image_size", &out->image_size));
  SI_RETURN_IF_ERROR(data.get("resize", &out->resize));
  SI_RETURN_IF_ERROR(data.get("resize_size", &out->resize_size));
  SI_RETURN_IF_ERROR(data.finish());
  const std::string& origin = data.origin();
  if (out->holdout < 0) {
    return OutOfRange(origin + ": " + data.qualified("holdout") + " = " + std::to_string(out->holdout) +
                      " must be >= 0 (training images kept out for choosing settings; 0 = none)");
  }
  if (!out->resize.empty()) {
    SI_RETURN_IF_ERROR(OneOf(origin, data.qualified("resize"), out->resize, {"center_crop", "stretch"}));
  }
  return OneOf(origin, data.qualified("dataset"), out->dataset,
               {data::kFashionMnist, data::kImageFolder, data::kTinyImageNet, data::kCoco, data::kScenes});
}

Result<TrainConfig> ParseTrainConfig(const std::string& yaml_text, const std::string& origin) {
  SI_ASSIGN_OR_RETURN(YAML::Node root, config::ParseYaml(yaml_text, origin));
  TrainConfig c;
  MapReader top(root, "", origin);
  SI_RETURN_IF_ERROR(top.check_is_map());

  SI_ASSIGN_OR_RETURN(MapReader model, top.child("model"));
  SI_RETURN_IF_ERROR(model.get("name", &c.model.name));
  SI_RETURN_IF_ERROR(model.get("num_classes", &c.model.options.num_classes));
  SI_RETURN_IF_ERROR(model.get("in_channels", &c.model.options.in_channels));
  SI_RETURN_IF_ERROR(model.get("width", &c.model.options.width));
  SI_RETURN_IF_ERROR(model.get("depth", &c.model.options.depth));
  SI_RETURN_IF_ERROR(model.finish());

  SI_ASSIGN_OR_RETURN(MapReader data, top.child("data"));
  SI_RETURN_IF_ERROR(ReadDataConfig(data, &c.data));

  c.augment_given = top.has("augment");
  SI_ASSIGN_OR_RETURN(MapReader aug, top.child("augment"));
  SI_RETURN_IF_ERROR(aug.get("crop_padding", &c.augment.crop_padding));
  SI_RETURN_IF_ERROR(aug.get("flip_probability", &c.augment.flip_probability));
  SI_RETURN_IF_ERROR(aug.finish());

  c.detect.given = top.has("detect");
  SI_ASSIGN_OR_RETURN(MapReader det, top.child("detect"));
  std::vector<std::vector<double>> anchors;
  SI_RETURN_IF_ERROR(det.get("anchors", &anchors));
  if (det.has("anchors")) {
    bool ok = anchors.size() == 6;
    for (const auto& a : anchors) ok = ok && a.size() == 2 && a[0] > 0 && a[1] > 0 && a[0] < 1e5 && a[1] < 1e5;
    if (!ok) {
      return InvalidArgument(origin + ": detect.anchors must be 6 [width, height] pairs of positive pixels, smallest "
                             "first (or leave it out: k-means on the training boxes)");
    }
    for (const auto& a : anchors) c.detect.anchors.push_back({a[0], a[1]});
  }
  SI_RETURN_IF_ERROR(det.get_in("min_scale", &c.detect.augment.min_scale, 0.1, 10.0));
  SI_RETURN_IF_ERROR(det.get_in("max_scale", &c.detect.augment.max_scale, 0.1, 10.0));
  SI_RETURN_IF_ERROR(det.get_in("translate", &c.detect.augment.translate, 0.0, 0.5));
  SI_RETURN_IF_ERROR(det.get("hflip", &c.detect.augment.hflip));
  SI_RETURN_IF_ERROR(det.get_in("min_visible", &c.detect.augment.min_visible, 0.0, 1.0));
  SI_RETURN_IF_ERROR(det.get_in("box_gain", &c.detect.box_gain, 0.0, 100.0));
  SI_RETURN_IF_ERROR(det.get_in("class_gain", &c.detect.class_gain, 0.0, 100.0));
  SI_RETURN_IF_ERROR(det.get_in("objectness_gain", &c.detect.objectness_gain, 0.0, 100.0));
  SI_RETURN_IF_ERROR(det.get_in("nms_iou", &c.detect.nms_iou, 0.0, 1.0));
  SI_RETURN_IF_ERROR(det.finish());
  if (c.detect.augment.min_scale > c.detect.augment.max_scale) {
    return InvalidArgument(origin + ": detect.min_scale must not exceed detect.max_scale");
  }

  SI_ASSIGN_OR_RETURN(MapReader opt, top.child("optimizer"));
  SI_RETURN_IF_ERROR(opt.get("name", &c.optimizer.name));
  SI_RETURN_IF_ERROR(opt.get("lr", &c.optimizer.lr));
  SI_RETURN_IF_ERROR(opt.get("momentum", &c.optimizer.momentum));
  SI_RETURN_IF_ERROR(opt.get("nesterov", &c.optimizer.nesterov));
  SI_RETURN_IF_ERROR(opt.get("weight_decay", &c.optimizer.weight_decay));
  SI_RETURN_IF_ERROR(opt.finish());
  SI_RETURN_IF_ERROR(OneOf(origin, "optimizer.name", c.optimizer.name, {"sgd", "adamw"}));

  SI_ASSIGN_OR_RETURN(MapReader sched, top.child("schedule"));
  SI_RETURN_IF_ERROR(sched.get("name", &c.schedule.name));
  SI_RETURN_IF_ERROR(sched.get("warmup_fraction", &c.schedule.warmup_fraction));
  SI_RETURN_IF_ERROR(sched.get("final_lr_fraction", &c.schedule.final_lr_fraction));
  SI_RETURN_IF_ERROR(sched.finish());
  SI_RETURN_IF_ERROR(OneOf(origin, "schedule.name", c.schedule.name, {"onecycle", "cosine", "constant"}));

  SI_RETURN_IF_ERROR(top.get("epochs", &c.epochs));
  SI_RETURN_IF_ERROR(top.get("batch_size", &c.batch_size));
  SI_RETURN_IF_ERROR(top.get("eval_batch_size", &c.eval_batch_size));
  SI_RETURN_IF_ERROR(top.get("label_smoothing", &c.label_smoothing));
  SI_RETURN_IF_ERROR(top.get("amp", &c.amp));
  SI_RETURN_IF_ERROR(top.get("seed", &c.seed));
  SI_RETURN_IF_ERROR(top.get("threads", &c.threads));
  SI_RETURN_IF_ERROR(top.get("init_checkpoint", &c.init_checkpoint));
  SI_RETURN_IF_ERROR(top.finish());

  auto range = [&](const std::string& key, double v, double lo, double hi) -> Status {
    if (v < lo || v > hi) {
      return OutOfRange(origin + ": " + key + " = " + std::to_string(v) + " outside [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
    }
    return Status::Ok();
  };
  SI_RETURN_IF_ERROR(range("epochs", c.epochs, 1, 100000));
  SI_RETURN_IF_ERROR(range("batch_size", c.batch_size, 1, 65536));
  SI_RETURN_IF_ERROR(range("eval_batch_size", c.eval_batch_size, 1, 65536));
  SI_RETURN_IF_ERROR(range("optimizer.lr", c.optimizer.lr, 0, 100));
  SI_RETURN_IF_ERROR(range("optimizer.weight_decay", c.optimizer.weight_decay, 0, 1));
  SI_RETURN_IF_ERROR(range("label_smoothing", c.label_smoothing, 0, 0.99));
  SI_RETURN_IF_ERROR(range("schedule.warmup_fraction", c.schedule.warmup_fraction, 0, 1));
  SI_RETURN_IF_ERROR(range("augment.crop_padding", c.augment.crop_padding, 0, 64));
  SI_RETURN_IF_ERROR(range("augment.flip_probability", c.augment.flip_probability, 0, 1));
  SI_RETURN_IF_ERROR(range("threads", c.threads, 0, 1024));
  return c;
}

Result<TrainConfig> LoadTrainConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("config file " + path + " not found or not readable");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseTrainConfig(ss.str(), path);
}

nlohmann::json ToJson(const TrainConfig& c) {
  nlohmann::json j = {
      {"model",
       {{"name", c.model.name},
        {"num_classes", c.model.options.num_classes},
        {"in_channels", c.model.options.in_channels},
        {"width", c.model.options.width},
        {"depth", c.model.options.depth}}},
      {"data",
       {{"dataset", c.data.dataset},
        {"dir", c.data.dir},
        {"limit_train", c.data.limit_train},
        {"limit_test", c.data.limit_test},
        {"image_size", c.data.image_size},
        {"resize", c.data.resize},
        {"resize_size", c.data.resize_size}}},
      {"augment", {{"crop_padding", c.augment.crop_padding}, {"flip_probability", c.augment.flip_probability}}},
      {"optimizer",
       {{"name", c.optimizer.name},
        {"lr", c.optimizer.lr},
        {"momentum", c.optimizer.momentum},
        {"nesterov", c.optimizer.nesterov},
        {"weight_decay", c.optimizer.weight_decay}}},
      {"schedule",
       {{"name", c.schedule.name},
        {"warmup_fraction", c.schedule.warmup_fraction},
        {"final_lr_fraction", c.schedule.final_lr_fraction}}},
      {"epochs", c.epochs},
      {"batch_size", c.batch_size},
      {"eval_batch_size", c.eval_batch_size},
      {"label_smoothing", c.label_smoothing},
      {"amp", c.amp},
      {"seed", c.seed},
      {"threads", c.threads},
      {"init_checkpoint", c.init_checkpoint},
  };
  // Only when set: a state written before the key existed still matches its config.
  if (c.data.holdout > 0) j["data"]["holdout"] = c.data.holdout;
  if (c.detect.given) {
    const auto& a = c.detect.augment;
    j["detect"] = {{"anchors", c.detect.anchors},         {"min_scale", a.min_scale},
                   {"max_scale", a.max_scale},            {"translate", a.translate},
                   {"hflip", a.hflip},                    {"min_visible", a.min_visible},
                   {"box_gain", c.detect.box_gain},       {"class_gain", c.detect.class_gain},
                   {"objectness_gain", c.detect.objectness_gain}, {"nms_iou", c.detect.nms_iou}};
  }
  return j;
}

}  // namespace splitinfer::train
