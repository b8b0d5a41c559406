#include "models/model_ref.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <caffe2/serialize/inline_container.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/torchscript_chain.h"
#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

std::string ZooList() {
  std::string known;
  for (const auto& n : ModelNames()) known += (known.empty() ? "" : ", ") + n;
  return known;
}

std::vector<std::string> SplitOn(const std::string& text, const std::string& separators) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : text) {
    if (separators.find(c) != std::string::npos) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// A checkpoint's module (torch::serialize::OutputArchive) pickles its "splitinfer_meta"
// attribute into data.pkl; the tensors are separate records, so data.pkl stays small.
bool PickleNamesCheckpointMeta(caffe2::serialize::PyTorchStreamReader& reader) {
  if (!reader.hasRecord("data.pkl")) return false;
  auto [data, size] = reader.getRecord("data.pkl");
  const char* p = static_cast<const char*>(data.get());
  const std::string key = "splitinfer_meta";
  return std::search(p, p + size, key.begin(), key.end()) != p + size;
}

Status CheckFlagsAgree(const ModelMetaFlags& f) {
  if (!f.input_shape.empty() && f.input_shape.size() != 3) {
    return InvalidArgument("--input-shape must be C,H,W (e.g. 3x224x224)");
  }
  if (f.mean.size() != f.std.size()) return InvalidArgument("--mean and --std must be given together, one value per channel");
  if (!f.mean.empty() && !f.input_shape.empty() && static_cast<int64_t>(f.mean.size()) != f.input_shape[0]) {
    return InvalidArgument("--mean/--std have " + std::to_string(f.mean.size()) + " values but --input-shape has " +
                           std::to_string(f.input_shape[0]) + " channels");
  }
  return Status::Ok();
}

// The metadata of a chain, from the archive, FILE.json or the flags (flags win field by field).
Result<CheckpointMeta> ChainMeta(const std::string& path, const std::string& embedded, const ModelMetaFlags& flags,
                                 std::string& source) {
  nlohmann::json j;
  const std::string sidecar = std::filesystem::path(path).replace_extension(".json").string();
  std::error_code ec;
  if (!embedded.empty()) {
    j = nlohmann::json::parse(embedded, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return DataLoss(path + ": its embedded " + kTorchScriptMetaFile + " is not valid JSON");
    source = path + " (embedded " + kTorchScriptMetaFile + ")";
  } else if (std::filesystem::is_regular_file(sidecar, ec)) {
    std::ifstream in(sidecar);
    j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return DataLoss(sidecar + " (metadata of " + path + ") is not valid JSON");
    source = sidecar;
  } else {
    const bool enough = flags.input_shape.size() == 3 && !flags.mean.empty() && !flags.class_names.empty();
    if (!enough) {
      return FailedPrecondition(
          path + " is a TorchScript model without splitinfer metadata (input shape, normalisation, classes): export "
                 "it with tools/export_torchscript.py, write " + sidecar + " (docs/your_model.md), or give "
                 "--input-shape, --mean, --std and --classes");
    }
    j = {{"format", kTorchScriptFormat}, {"format_version", 1}};
    source = "command-line flags";
  }
  if (j.is_object() && j.value("format", "") == kCheckpointFormat) {
    return DataLoss(source + " describes a checkpoint, but " + path +
                    " is a TorchScript module (give it format: splitinfer-torchscript)");
  }
  // Flags fill or override fields before validation, so a file may leave out what flags give.
  if (!flags.input_shape.empty()) j["input_shape"] = flags.input_shape;
  if (!flags.mean.empty()) j["normalization"] = {{"mean", flags.mean}, {"std", flags.std}};
  if (!flags.class_names.empty()) {
    j["class_names"] = flags.class_names;
    if (j.contains("options")) j["options"].erase("num_classes");
  }
  if (!flags.split_points.empty()) j["split_points"] = flags.split_points;
  if (!flags.resize.empty() || flags.resize_size != 0) {
    auto pre = j.value("preprocess", nlohmann::json::object());
    if (!flags.resize.empty()) pre["resize"] = flags.resize;
    if (flags.resize_size != 0) pre["resize_size"] = flags.resize_size;
    j["preprocess"] = pre;
  }
  if (flags.any() && source != "command-line flags") source += " with command-line flags";
  return MetaFromJson(j, source);
}

}  // namespace

const char* ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kZoo: return "zoo";
    case ModelKind::kCheckpoint: return "checkpoint";
    case ModelKind::kTorchScript: return "torchscript";
  }
  return "?";
}

Result<std::vector<int64_t>> ParseInputShape(const std::string& text) {
  std::vector<int64_t> shape;
  for (const auto& part : SplitOn(text, "x,")) {
    const std::string t = Trim(part);
    char* end = nullptr;
    const long long v = t.empty() ? 0 : std::strtoll(t.c_str(), &end, 10);
    if (t.empty() || *end != '\0' || v < 1 || v > 65536) {
      return InvalidArgument("--input-shape '" + text + "': expected C x H x W, each 1..65536 (e.g. 3x224x224)");
    }
    shape.push_back(v);
  }
  if (shape.size() != 3) return InvalidArgument("--input-shape '" + text + "': expected three sizes C x H x W");
  return shape;
}

Result<std::vector<double>> ParseNumberList(const std::string& flag, const std::string& text) {
  std::vector<double> values;
  for (const auto& part : SplitOn(text, ",")) {
    const std::string t = Trim(part);
    char* end = nullptr;
    const double v = t.empty() ? 0 : std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !std::isfinite(v)) {
      return InvalidArgument(flag + " '" + text + "': expected numbers separated by commas, one per channel");
    }
    values.push_back(v);
  }
  return values;
}

Result<std::vector<std::string>> ParseClassNames(const std::string& text) {
  std::vector<std::string> names;
  const std::string t = Trim(text);
  if (!t.empty() && std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c); })) {
    const long long n = t.size() > 7 ? 0 : std::stoll(t);
    if (n < 1 || n > 1000000) return InvalidArgument("--classes " + t + ": a class count must be 1..1000000");
    for (long long c = 0; c < n; ++c) names.push_back(std::to_string(c));
    return names;
  }
  std::error_code ec;
  if (std::filesystem::is_regular_file(t, ec)) {
    std::ifstream in(t);
    std::string line;
    while (std::getline(in, line)) {
      if (!Trim(line).empty()) names.push_back(Trim(line));
    }
    if (names.empty()) return InvalidArgument("--classes " + t + ": the file names no classes (one name per line)");
    return names;
  }
  for (const auto& part : SplitOn(t, ",")) {
    if (Trim(part).empty()) {
      return InvalidArgument("--classes '" + text +
                             "': expected a count, a file with one name per line, or names separated by commas");
    }
    names.push_back(Trim(part));
  }
  return names;
}

namespace {
// The kind, and for a chain the text of its embedded metadata ("" when it has none).
Result<std::pair<ModelKind, std::string>> Inspect(const std::string& ref) {
  std::error_code ec;
  if (!std::filesystem::exists(ref, ec)) {
    const auto names = ModelNames();
    if (std::find(names.begin(), names.end(), ref) != names.end()) return std::make_pair(ModelKind::kZoo, std::string());
    return NotFound("model '" + ref + "' is neither a file nor a zoo model (zoo: " + ZooList() +
                    "); give a zoo name, a checkpoint from `splitinfer train`, or a TorchScript file");
  }
  if (!std::filesystem::is_regular_file(ref, ec)) return InvalidArgument("model " + ref + " is not a regular file");
  try {
    caffe2::serialize::PyTorchStreamReader reader(ref);
    const std::string meta_record = std::string("extra/") + kTorchScriptMetaFile;
    if (reader.hasRecord(meta_record)) {
      auto [data, size] = reader.getRecord(meta_record);
      return std::make_pair(ModelKind::kTorchScript, std::string(static_cast<const char*>(data.get()), size));
    }
    return std::make_pair(PickleNamesCheckpointMeta(reader) ? ModelKind::kCheckpoint : ModelKind::kTorchScript,
                          std::string());
  } catch (const std::exception& e) {
    std::string what = e.what();
    return DataLoss("model file " + ref +
                    " is not a PyTorch archive (neither a splitinfer checkpoint nor a torch.jit.save file): " +
                    what.substr(0, what.find('\n')));
  }
}
}  // namespace

Result<ModelKind> DetectModelKind(const std::string& ref) {
  SI_ASSIGN_OR_RETURN(auto inspected, Inspect(ref));
  return inspected.first;
}

Result<OpenedModel> OpenModel(const std::string& ref, const torch::Device& device, const ModelMetaFlags& flags) {
  SI_ASSIGN_OR_RETURN(auto inspected, Inspect(ref));
  const ModelKind kind = inspected.first;
  OpenedModel m;
  m.kind = kind;
  m.ref = ref;
  if (kind != ModelKind::kTorchScript && flags.any()) {
    return InvalidArgument(std::string("--input-shape, --mean, --std, --classes and --split-points describe a "
                                       "TorchScript file; ") + ref + " is a " + ModelKindName(kind) +
                           ", which carries its own");
  }
  SI_RETURN_IF_ERROR(CheckFlagsAgree(flags));
  if (kind == ModelKind::kZoo) {
    const ZooDefaults zoo = DefaultsFor(ref);
    // Random weights from a fixed seed: a node and a server that both open "resnet50" (a
    // pipeline naming the zoo, as `plan --validate` writes them for a profiled zoo model) must
    // hold the same weights, or the server's tail would read another head's features and the
    // quantizer calibrated on one would not fit the other.
    torch::manual_seed(kZooWeightSeed);
    SI_ASSIGN_OR_RETURN(m.native, CreateModel(ref, zoo.options));
    m.meta.model = ref;
    m.meta.options = zoo.options;
    m.meta.input_shape = zoo.input_shape;
    m.meta.norm_mean = zoo.norm_mean;
    m.meta.norm_std = zoo.norm_std;
    m.meta.task = zoo.task;
    m.meta.anchors = zoo.anchors;
    for (int64_t c = 0; c < zoo.options.num_classes; ++c) m.meta.class_names.push_back(std::to_string(c));
    m.meta_source = "zoo defaults (random weights)";
  } else if (kind == ModelKind::kCheckpoint) {
    SI_ASSIGN_OR_RETURN(LoadedModel loaded, LoadCheckpoint(ref, torch::kCPU));
    m.native = loaded.model;
    m.meta = std::move(loaded.meta);
    m.meta_source = ref;
  } else {
    SI_ASSIGN_OR_RETURN(m.meta, ChainMeta(ref, inspected.second, flags, m.meta_source));
    if (m.meta.model.empty()) m.meta.model = std::filesystem::path(ref).stem().string();
    SI_ASSIGN_OR_RETURN(TorchScriptFile file, LoadTorchScriptFile(ref, m.meta.split_points, m.meta.model));
    m.net = std::shared_ptr<SplitModel>(std::move(file.chain));
  }
  if (m.native) m.net = m.native.ptr();
  m.net->to_device(device);
  m.net->set_eval();
  if (kind == ModelKind::kTorchScript) {
    // One zero image through the chain: a wrong input shape or class list fails here, naming
    // the metadata's source, rather than deep inside the first command that uses the model.
    torch::NoGradGuard no_grad;
    std::vector<int64_t> shape{1};
    shape.insert(shape.end(), m.meta.input_shape.begin(), m.meta.input_shape.end());
    torch::Tensor out;
    try {
      out = m.net->forward_all(torch::zeros(shape, device));
    } catch (const std::exception& e) {
      std::string what = e.what();
      what = what.substr(0, what.find('\n'));
      return Mismatch(ref + " cannot run an input of shape " + nlohmann::json(m.meta.input_shape).dump() +
                      " (from " + m.meta_source + "): " + what);
    }
    if (out.dim() != 2 || out.size(1) != static_cast<int64_t>(m.meta.class_names.size())) {
      std::stringstream ss;
      ss << out.sizes();
      return Mismatch(ref + " answers an input of shape " + nlohmann::json(m.meta.input_shape).dump() +
                      " with scores of shape " + ss.str() + ", but " + m.meta_source + " names " +
                      std::to_string(m.meta.class_names.size()) + " classes");
    }
  }
  return m;
}

Status SaveModel(const std::string& path, SplitModel& net, const CheckpointMeta& meta) {
  net.to_device(torch::kCPU);  // files are device-neutral
  if (auto* native = dynamic_cast<BlockChainImpl*>(&net)) {
    BlockChain holder(std::static_pointer_cast<BlockChainImpl>(native->shared_from_this()));
    return SaveCheckpoint(path, holder, meta);
  }
  return SaveTorchScriptChain(net, path, MetaToJson(meta, kTorchScriptFormat).dump(2));
}

}  // namespace splitinfer::models
