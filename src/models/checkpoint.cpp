#include "models/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <torch/script.h>
#include <torch/torch.h>

#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {
constexpr const char* kMetaKey = "splitinfer_meta";

std::string JsonPathFor(const std::string& path) {
  return std::filesystem::path(path).replace_extension(".json").string();
}
}  // namespace

nlohmann::json MetaToJson(const CheckpointMeta& m, const char* format) {
  nlohmann::json j = {{"format", format},
          {"format_version", kCheckpointFormatVersion},
          {"model", m.model},
          {"options",
           {{"num_classes", m.options.num_classes},
            {"in_channels", m.options.in_channels},
            {"width", m.options.width},
            {"depth", m.options.depth}}},
          {"input_shape", m.input_shape},
          {"normalization", {{"mean", m.norm_mean}, {"std", m.norm_std}}},
          {"class_names", m.class_names},
          {"dataset", m.dataset},
          {"top1", m.top1},
          {"epochs", m.epochs},
          {"train_config", m.train_config}};
  if (!m.split_points.empty()) j["split_points"] = m.split_points;
  j["task"] = m.task;
  if (IsDetector(m)) j["detection"] = {{"anchors", m.anchors}, {"ap", m.ap}, {"ap50", m.ap50}};
  j["preprocess"] = {{"resize", m.resize}, {"resize_size", m.resize_size}};
  return j;
}

Result<CheckpointMeta> MetaFromJson(const nlohmann::json& j, const std::string& origin) {
  try {
    if (!j.is_object()) return DataLoss(origin + ": splitinfer metadata must be a JSON object");
    const std::string format = j.value("format", "");
    const bool scripted = format == kTorchScriptFormat;
    if (format != kCheckpointFormat && !scripted) {
      return DataLoss(origin + " is not splitinfer metadata (its 'format' must be '" + kCheckpointFormat + "' or '" +
                      kTorchScriptFormat + "', found '" + format + "')");
    }
    const int version = j.value("format_version", scripted ? 1 : -1);
    if (version < 0) return DataLoss(origin + ": checkpoint metadata has no format_version");
    if (version > kCheckpointFormatVersion) {
      return Unimplemented(origin + " has metadata format version " + std::to_string(version) +
                           "; this build reads up to " + std::to_string(kCheckpointFormatVersion) +
                           " (upgrade splitinfer)");
    }
    CheckpointMeta m;
    m.model = scripted ? j.value("model", "") : j.at("model").get<std::string>();
    m.input_shape = j.at("input_shape").get<std::vector<int64_t>>();
    m.norm_mean = j.at("normalization").at("mean").get<std::vector<double>>();
    m.norm_std = j.at("normalization").at("std").get<std::vector<double>>();
    m.class_names = j.value("class_names", std::vector<std::string>{});
    if (scripted) {
      const auto o = j.value("options", nlohmann::json::object());
      m.options.num_classes = o.value("num_classes", static_cast<int64_t>(m.class_names.size()));
      m.options.in_channels = m.input_shape.empty() ? 0 : m.input_shape[0];
      if (m.class_names.empty()) {
        for (int64_t c = 0; c < m.options.num_classes; ++c) m.class_names.push_back(std::to_string(c));
      }
      if (m.class_names.empty()) {
        return DataLoss(origin + ": TorchScript metadata names no classes (give class_names or options.num_classes)");
      }
    } else {
      const auto& o = j.at("options");
      m.options.num_classes = o.at("num_classes").get<int64_t>();
      m.options.in_channels = o.at("in_channels").get<int64_t>();
      m.options.width = o.at("width").get<int64_t>();
      m.options.depth = o.value("depth", int64_t{0});
    }
    m.dataset = j.value("dataset", "");
    m.top1 = j.value("top1", -1.0);
    m.epochs = j.value("epochs", int64_t{0});
    m.train_config = j.value("train_config", nlohmann::json::object());
    m.split_points = j.value("split_points", std::vector<std::string>{});
    m.task = j.value("task", std::string(kTaskClassify));  // files from before tasks are classifiers
    if (m.task != kTaskClassify && m.task != kTaskDetect) {
      return DataLoss(origin + ": task '" + m.task + "' is neither " + kTaskClassify + " nor " + kTaskDetect);
    }
    if (IsDetector(m)) {
      if (scripted) {
        return Unimplemented(origin + ": task detect is for splitinfer's own yolov3_tiny checkpoints; a TorchScript "
                             "detector cannot be decoded yet (its output layout is unknown)");
      }
      const auto& d = j.at("detection");
      m.anchors = d.at("anchors").get<std::vector<std::array<double, 2>>>();
      m.ap = d.value("ap", -1.0);
      m.ap50 = d.value("ap50", -1.0);
      bool anchors_ok = m.anchors.size() == 6;
      for (const auto& a : m.anchors) anchors_ok = anchors_ok && a[0] > 0 && a[1] > 0 && a[0] < 1e6 && a[1] < 1e6;
      if (!anchors_ok) {
        return DataLoss(origin + ": detection.anchors must be 6 [width, height] pairs of positive pixels "
                        "(3 per YOLOv3-tiny head)");
      }
      if (m.input_shape.size() == 3 && m.input_shape[1] != m.input_shape[2]) {
        return DataLoss(origin + ": a detector's input is square (letterboxed); input_shape has H " +
                        std::to_string(m.input_shape[1]) + " != W " + std::to_string(m.input_shape[2]));
      }
    }
    const auto pre = j.value("preprocess", nlohmann::json::object());
    m.resize = pre.value("resize", std::string("center_crop"));
    m.resize_size = pre.value("resize_size", int64_t{0});
    if (m.resize != "center_crop" && m.resize != "stretch") {
      return DataLoss(origin + ": preprocess.resize '" + m.resize + "' is neither center_crop nor stretch");
    }
    if (m.input_shape.size() != 3 || m.input_shape[0] < 1 || m.input_shape[1] < 1 || m.input_shape[2] < 1 ||
        m.norm_mean.size() != static_cast<size_t>(m.input_shape[0]) || m.norm_std.size() != m.norm_mean.size() ||
        m.options.in_channels != m.input_shape[0]) {
      return DataLoss(origin + ": inconsistent metadata (input_shape must be [C,H,W] with C, H, W >= 1, and "
                      "normalization one mean and one std per channel)");
    }
    if (m.resize_size != 0 && m.resize_size < std::max(m.input_shape[1], m.input_shape[2])) {
      return DataLoss(origin + ": preprocess.resize_size " + std::to_string(m.resize_size) +
                      " is smaller than the input's larger side; the centre crop would not fit");
    }
    for (double s : m.norm_std) {
      if (!(s > 0)) return DataLoss(origin + ": normalization std must be > 0 for every channel");
    }
    if (static_cast<int64_t>(m.class_names.size()) != m.options.num_classes) {
      return DataLoss(origin + ": " + std::to_string(m.class_names.size()) + " class names for " +
                      std::to_string(m.options.num_classes) + " classes");
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(origin + ": malformed splitinfer metadata: " + e.what());
  }
}

Status RequireClassifier(const CheckpointMeta& meta, const std::string& what) {
  if (!IsDetector(meta)) return Status::Ok();
  return FailedPrecondition(meta.model + " is a detector (task detect), but " + what +
                            " takes classifiers (class scores); detectors are trained with `splitinfer train` and measured "
                            "with `splitinfer eval --model FILE --data coco:DIR` (docs/detection.md)");
}

Status SaveCheckpoint(const std::string& path, BlockChain& model, const CheckpointMeta& meta) {
  const std::string json_text = MetaToJson(meta).dump(2);
  try {
    torch::serialize::OutputArchive archive;
    model->save(archive);
    archive.write(kMetaKey, c10::IValue(json_text));
    // Write to a temporary name and rename, so an interrupted save never leaves a torn file.
    const std::string tmp = path + ".tmp";
    archive.save_to(tmp);
    std::filesystem::rename(tmp, path);
  } catch (const c10::Error& e) {
    return IoError("cannot write checkpoint " + path + ": " + e.what_without_backtrace());
  } catch (const std::filesystem::filesystem_error& e) {
    return IoError("cannot write checkpoint " + path + ": " + e.what());
  }
  std::ofstream out(JsonPathFor(path));
  out << json_text << "\n";
  if (!out) return IoError("cannot write " + JsonPathFor(path));
  return Status::Ok();
}

namespace {
Result<CheckpointMeta> ReadMetaFromArchive(torch::serialize::InputArchive& archive, const std::string& path) {
  c10::IValue v;
  if (!archive.try_read(kMetaKey, v) || !v.isString()) {
    return DataLoss(path + " has no splitinfer metadata; it is not a checkpoint written by `splitinfer train`");
  }
  nlohmann::json j = nlohmann::json::parse(v.toStringRef(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return DataLoss(path + ": checkpoint metadata is not valid JSON");
  return MetaFromJson(j, path);
}

Result<torch::serialize::InputArchive> OpenArchive(const std::string& path, const torch::Device& device) {
  if (!std::filesystem::exists(path)) return NotFound("checkpoint " + path + " not found");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, device);
  } catch (const c10::Error& e) {
    return DataLoss("cannot read checkpoint " + path + ": not a LibTorch archive or corrupt (" +
                    e.what_without_backtrace() + ")");
  }
  return archive;
}
}  // namespace

// Walks the module tree beside the archive's nested sub-archives (Module::save writes one per
// child), checking every tensor's presence and shape before copying it in. LibTorch's own
// Module::load would silently *replace* a parameter of another shape, and for a missing key
// names only the first one behind a backtrace.
Status LoadModuleChecked(torch::nn::Module& module, torch::serialize::InputArchive& archive,
                         const std::string& prefix, const std::string& path, const std::string& model_name) {
  auto mismatch = [&](const std::string& what) {
    return Mismatch(path + " does not fit model " + model_name + ": " + what +
                    " (a checkpoint of another model, width or depth?)");
  };
  torch::NoGradGuard no_grad;
  for (bool buffers : {false, true}) {
    auto items = buffers ? module.named_buffers(/*recurse=*/false) : module.named_parameters(/*recurse=*/false);
    for (auto& item : items) {
      torch::Tensor t;
      const std::string name = prefix + item.key();
      if (!archive.try_read(item.key(), t, /*is_buffer=*/buffers)) return mismatch("no tensor '" + name + "'");
      if (t.sizes() != item.value().sizes()) {
        std::stringstream ss;
        ss << "'" << name << "' has shape " << t.sizes() << ", the model expects " << item.value().sizes();
        return mismatch(ss.str());
      }
      item.value().copy_(t);
    }
  }
  for (auto& child : module.named_children()) {
    torch::serialize::InputArchive sub;
    if (!archive.try_read(child.key(), sub)) return mismatch("no sub-module '" + prefix + child.key() + "'");
    SI_RETURN_IF_ERROR(LoadModuleChecked(*child.value(), sub, prefix + child.key() + ".", path, model_name));
  }
  return Status::Ok();
}

torch::Tensor ExampleInput(const CheckpointMeta& meta, int64_t n, const torch::Device& device) {
  std::vector<int64_t> shape{n};
  shape.insert(shape.end(), meta.input_shape.begin(), meta.input_shape.end());
  return torch::zeros(shape, device);
}

Result<CheckpointMeta> ReadCheckpointMeta(const std::string& path) {
  SI_ASSIGN_OR_RETURN(auto archive, OpenArchive(path, torch::kCPU));
  return ReadMetaFromArchive(archive, path);
}

Result<LoadedModel> LoadCheckpoint(const std::string& path, const torch::Device& device) {
  SI_ASSIGN_OR_RETURN(auto archive, OpenArchive(path, torch::kCPU));
  SI_ASSIGN_OR_RETURN(CheckpointMeta meta, ReadMetaFromArchive(archive, path));
  SI_ASSIGN_OR_RETURN(BlockChain model, CreateModel(meta.model, meta.options));
  SI_RETURN_IF_ERROR(LoadModuleChecked(*model, archive, "", path, meta.model));
  model->to(device);
  model->eval();
  return LoadedModel{model, meta};
}

Status CopyWeights(torch::nn::Module& dst, const torch::nn::Module& src, const std::string& origin) {
  torch::NoGradGuard no_grad;
  auto src_params = src.named_parameters(true);
  auto src_buffers = src.named_buffers(true);
  for (auto& p : dst.named_parameters(true)) {
    const auto* s = src_params.find(p.key());
    if (s == nullptr || s->sizes() != p.value().sizes()) return Mismatch(origin + ": parameter '" + p.key() + "' differs");
    p.value().copy_(*s);
  }
  for (auto& b : dst.named_buffers(true)) {
    const auto* s = src_buffers.find(b.key());
    if (s == nullptr || s->sizes() != b.value().sizes()) return Mismatch(origin + ": buffer '" + b.key() + "' differs");
    b.value().copy_(*s);
  }
  return Status::Ok();
}

}  // namespace splitinfer::models
