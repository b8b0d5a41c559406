#include "bottleneck/pipeline.h"

#include "config/yaml_reader.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include "codec/lossless/cabac.h"
#include "core/bytes.h"
#include "core/system.h"
#include "models/zoo/zoo.h"

namespace splitinfer::bottleneck {
namespace fs = std::filesystem;

namespace {
// A model named by the zoo ("resnet50": random weights from the zoo's seed) rather than a file
// beside the pipeline: kept as a name wherever the pipeline file lives.
bool IsZooName(const std::string& p, const std::string& base_dir) {
  if (p.find('/') != std::string::npos || fs::exists(fs::path(base_dir) / p)) return false;
  const auto names = models::ModelNames();
  return std::find(names.begin(), names.end(), p) != names.end();
}
}  // namespace

std::string PipelineSpec::Resolve(const std::string& p) const {
  if (p.empty() || fs::path(p).is_absolute() || base_dir.empty() || IsZooName(p, base_dir)) return p;
  return (fs::path(base_dir) / p).lexically_normal().string();
}

PipelineSpec PipelineSpec::RebasedTo(const std::string& dir) const {
  PipelineSpec out = *this;
  const fs::path base = fs::absolute(dir).lexically_normal();
  for (std::string* p : {&out.model, &out.server_model, &out.bottleneck, &out.compensator, &out.quantizer,
                         &out.reference_model, &out.cabac_model}) {
    // Resolve gives a path usable from here; absolute, it can be made relative to anywhere.
    if (!p->empty() && !IsZooName(*p, base_dir)) *p = fs::absolute(Resolve(*p)).lexically_normal().lexically_relative(base).string();
  }
  out.base_dir = dir;
  return out;
}

uint32_t DerivePipelineId(const std::string& name, const std::string& split) {
  const std::string key = name + "/" + split;
  // 7 bits: the id is a one-byte varint on the wire (at 30 bytes per frame, four more bytes of
  // a full CRC would be 13 %). It guards against a frame reaching the wrong pipeline, which a
  // deployment runs a handful of, not against forgery (the CRC32C covers corruption).
  return Crc32c(reinterpret_cast<const uint8_t*>(key.data()), key.size()) & 0x7Fu;
}

Result<PipelineSpec> ParsePipelineSpec(const std::string& text, const std::string& origin, const std::string& base_dir) {
  SI_ASSIGN_OR_RETURN(YAML::Node root, config::ParseYaml(text, origin));
  if (!root.IsMap()) return InvalidArgument(origin + ": a pipeline file is a YAML mapping (name: ..., model: ..., ...)");
  PipelineSpec s;
  s.base_dir = base_dir;
  config::MapReader r(root, "", origin);
  for (const auto& [key, out] : {std::pair<const char*, std::string*>{"name", &s.name},
                                 {"model", &s.model},
                                 {"server_model", &s.server_model},
                                 {"split", &s.split},
                                 {"bottleneck", &s.bottleneck},
                                 {"compensator", &s.compensator},
                                 {"quantizer", &s.quantizer},
                                 {"reference_model", &s.reference_model},
                                 {"cabac_model", &s.cabac_model},
                                 {"coder", &s.coder}}) {
    SI_RETURN_IF_ERROR(r.get(key, out));
  }
  SI_RETURN_IF_ERROR(r.get("bits", &s.bits));
  SI_RETURN_IF_ERROR(r.get("coder_level", &s.coder_level));
  SI_RETURN_IF_ERROR(r.get("pipeline_id", &s.pipeline_id));
  SI_RETURN_IF_ERROR(r.finish());
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"model", &s.model},
                                   {"split", &s.split}}) {
    if (value->empty()) return InvalidArgument(origin + ": missing required key '" + key + "'");
  }
  if (s.quantizer.empty() && s.bottleneck.empty()) {
    return InvalidArgument(origin + ": missing required key 'quantizer' (only a shared autoencoder's pipeline may omit "
                           "it: its clip for each bit width is part of the artifact)");
  }
  if (s.name.empty()) s.name = fs::path(origin).stem().string();
  if (s.bits < 0 || s.bits > 8) return InvalidArgument(origin + ": bits must be 1..8, got " + std::to_string(s.bits));
  if (s.pipeline_id < -1 || s.pipeline_id > 0xFFFFFFFFLL) {
    return InvalidArgument(origin + ": pipeline_id must be 0..4294967295");
  }
  SI_RETURN_IF_ERROR(codec::CoderFromName(s.coder).status());
  return s;
}

Result<PipelineSpec> LoadPipelineSpec(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("pipeline file " + path + " not found");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParsePipelineSpec(ss.str(), path, fs::path(path).parent_path().string());
}

Status SavePipelineSpec(const std::string& path, const PipelineSpec& s) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << s.name;
  out << YAML::Key << "model" << YAML::Value << s.model;
  if (!s.server_model.empty()) out << YAML::Key << "server_model" << YAML::Value << s.server_model;
  out << YAML::Key << "split" << YAML::Value << s.split;
  if (!s.bottleneck.empty()) out << YAML::Key << "bottleneck" << YAML::Value << s.bottleneck;
  if (!s.compensator.empty()) out << YAML::Key << "compensator" << YAML::Value << s.compensator;
  out << YAML::Key << "quantizer" << YAML::Value << s.quantizer;
  if (s.bits > 0) out << YAML::Key << "bits" << YAML::Value << s.bits;
  out << YAML::Key << "coder" << YAML::Value << s.coder;
  if (!s.cabac_model.empty()) out << YAML::Key << "cabac_model" << YAML::Value << s.cabac_model;
  if (s.coder_level >= 0) out << YAML::Key << "coder_level" << YAML::Value << s.coder_level;
  if (s.pipeline_id >= 0) out << YAML::Key << "pipeline_id" << YAML::Value << s.pipeline_id;
  if (!s.reference_model.empty()) out << YAML::Key << "reference_model" << YAML::Value << s.reference_model;
  out << YAML::EndMap;
  std::ofstream f(path + ".tmp");
  f << "# splitinfer pipeline (see src/bottleneck/pipeline.h)\n" << out.c_str() << "\n";
  f.close();
  if (!f) return IoError("cannot write " + path);
  std::error_code ec;
  fs::rename(path + ".tmp", path, ec);
  if (ec) return IoError("cannot write " + path + ": " + ec.message());
  return Status::Ok();
}

Result<Pipeline> Pipeline::Load(const std::string& path, const torch::Device& device) {
  SI_ASSIGN_OR_RETURN(PipelineSpec spec, LoadPipelineSpec(path));
  return FromSpec(spec, device);
}

Result<Pipeline> Pipeline::FromSpec(const PipelineSpec& spec, const torch::Device& device) {
  Pipeline p;
  p.spec_ = spec;
  p.device_ = device;
  SI_ASSIGN_OR_RETURN(p.node_, models::OpenModel(spec.Resolve(spec.model), device));
  if (!spec.server_model.empty()) {
    SI_ASSIGN_OR_RETURN(p.server_, models::OpenModel(spec.Resolve(spec.server_model), device));
    if (p.server_.meta.model != p.node_.meta.model || p.server_.meta.options.width != p.node_.meta.options.width) {
      return Mismatch(spec.Resolve(spec.server_model) + " holds " + p.server_.meta.model + ", but the node model is " +
                      p.node_.meta.model + " of another architecture or width");
    }
  } else {
    p.server_ = p.node_;
  }
  SI_ASSIGN_OR_RETURN(p.split_, p.node_.net->find_split(spec.split));
  p.norm_.mean = p.node_.meta.norm_mean;
  p.norm_.std = p.node_.meta.norm_std;

  // The per-image feature shape at the split, from one dummy forward pass.
  {
    torch::NoGradGuard g;
    auto f = p.node_.net->head(models::ExampleInput(p.node_.meta, 1, device), p.split_);
    p.split_shape_.assign(f.sizes().begin() + 1, f.sizes().end());
  }
  if (!spec.bottleneck.empty()) {
    const std::string path = spec.Resolve(spec.bottleneck);
    SI_ASSIGN_OR_RETURN(auto meta, ReadArtifactMeta(path));
    const std::string kind = meta.value("kind", "");
    if (kind == "autoencoder") {
      SI_ASSIGN_OR_RETURN(p.ae_, LoadAutoencoder(path));
      if (p.ae_->options().channels != p.split_shape_[0]) {
        return Mismatch(path + " encodes " + std::to_string(p.ae_->options().channels) + " channels, but split '" +
                        spec.split + "' has " + std::to_string(p.split_shape_[0]));
      }
      p.ae_->to(device);
    } else if (kind == "shared_autoencoder") {
      SI_ASSIGN_OR_RETURN(p.shared_, LoadSharedAutoencoder(path));
      SI_ASSIGN_OR_RETURN(p.shared_point_, p.shared_->point_index(spec.split));
      if (p.shared_->options().points[p.shared_point_].channels != p.split_shape_[0]) {
        return Mismatch(path + ": point '" + spec.split + "' channel count differs from the model's");
      }
      if (spec.bits == 0) return InvalidArgument(spec.name + ": a shared autoencoder needs `bits:` (the run-time choice)");
      SI_RETURN_IF_ERROR(p.shared_->bits_index(spec.bits).status());
      p.shared_->to(device);
    } else {
      return Mismatch(path + " holds a " + kind + ", not an autoencoder (bottleneck: expects autoencoder or "
                      "shared_autoencoder)");
    }
  }
  if (!spec.compensator.empty()) {
    SI_ASSIGN_OR_RETURN(p.comp_, LoadCompensator(spec.Resolve(spec.compensator)));
    p.comp_->to(device);
  }

  // Quantizer: calibrated for what goes on the wire (the latent when there is an encoder). A
  // shared autoencoder carries a learned clip per (point, bits), so the node can switch.
  std::vector<uint32_t> wire_dims;
  {
    torch::NoGradGuard g;
    p.set_eval_all();
    auto f = p.NodeFeatures(models::ExampleInput(p.node_.meta, 1, device));
    wire_dims.assign(f.sizes().begin() + 1, f.sizes().end());
  }
  if (spec.quantizer.empty()) {
    if (p.shared_.is_empty()) return InvalidArgument(spec.name + ": no quantizer file and no shared autoencoder");
    auto& q = p.codec_.quant;
    q.spec.bits = spec.bits;
    q.spec.range = codec::RangeKind::kZeroBased;
    q.spec.granularity = codec::Granularity::kTensor;
    q.dims = wire_dims;
    q.lo = {0.0f};
    q.hi = {static_cast<float>(p.shared_->clip_hi(p.shared_point_, spec.bits))};
  } else {
  const std::string qpath = spec.Resolve(spec.quantizer);
  std::ifstream qin(qpath);
  if (!qin) return NotFound("quantizer file " + qpath + " not found");
  auto qjson = nlohmann::json::parse(qin, nullptr, /*allow_exceptions=*/false);
  if (qjson.is_discarded()) return DataLoss(qpath + " is not valid JSON");
  SI_ASSIGN_OR_RETURN(p.codec_.quant, codec::QuantParamsFromJson(qjson, qpath));
  if (spec.bits != 0 && spec.bits != p.codec_.quant.spec.bits) {
    return Mismatch(spec.name + ": bits " + std::to_string(spec.bits) + " but " + qpath + " quantizes to " +
                    std::to_string(p.codec_.quant.spec.bits) + " bits");
  }
  if (wire_dims != p.codec_.quant.dims) {
    return Mismatch(qpath + " was calibrated for features of another shape than this pipeline sends");
  }
  }
  SI_ASSIGN_OR_RETURN(p.codec_.coder, codec::CoderFromName(spec.coder));
  if (p.codec_.coder == codec::CoderId::kCabacTrained) {
    if (spec.cabac_model.empty()) {
      return InvalidArgument(spec.name + ": coder cabac-trained needs `cabac_model: FILE`, the context model "
                             "`splitinfer codec train-cabac --pipeline` writes");
    }
    const std::string mpath = spec.Resolve(spec.cabac_model);
    SI_ASSIGN_OR_RETURN(auto bytes, ReadBinaryFile(mpath, "cabac model", 64u << 20));
    SI_ASSIGN_OR_RETURN(codec::CabacModel model, codec::CabacModel::Parse(bytes.data(), bytes.size()));
    const codec::SymbolGeometry want = codec::GeometryOf(p.codec_.header()), got = model.geometry();
    if (got.channels != want.channels || got.height != want.height || got.width != want.width ||
        got.bits != want.bits) {
      return Mismatch(mpath + " was trained for other symbol maps than this pipeline's quantizer makes; "
                      "train it again with `splitinfer codec train-cabac --pipeline`");
    }
    p.cabac_model_ = std::make_shared<const codec::CabacModel>(std::move(model));
    p.codec_.coder_options.cabac_model = p.cabac_model_.get();
    // The serialised model ends with an FNV-1a-32 of everything before it: its identity.
    uint32_t sum = 0;
    for (int b = 0; b < 4; ++b) sum |= static_cast<uint32_t>(bytes[bytes.size() - 4 + b]) << (8 * b);
    p.cabac_model_checksum_ = sum;
  } else if (!spec.cabac_model.empty()) {
    return InvalidArgument(spec.name + ": cabac_model is only for coder cabac-trained (the coder is " + spec.coder +
                           ")");
  }
  p.codec_.coder_options.level = spec.coder_level;
  p.codec_.pipeline_id = spec.pipeline_id >= 0 ? static_cast<uint32_t>(spec.pipeline_id)
                                               : DerivePipelineId(spec.name, spec.split);
  return p;
}

std::string Pipeline::cabac_model_id() const {
  if (!cabac_model_) return "";
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", cabac_model_checksum_);
  return hex;
}

void Pipeline::set_eval_all() {
  node_.net->set_eval();
  server_.net->set_eval();
  if (!ae_.is_empty()) ae_->eval();
  if (!shared_.is_empty()) shared_->eval();
  if (!comp_.is_empty()) comp_->eval();
}

// Both sides run a lone image as a batch of two where that is faster (models::SlowBatch1Path): the
// encoder, decoder and compensator convolutions are as small as the head's.
torch::Tensor Pipeline::NodeFeatures(const torch::Tensor& images) {
  return models::RunAsBatchOfTwo(images, [&](const torch::Tensor& x) {
    auto f = node_.net->head(x, split_);
    if (!ae_.is_empty()) return ae_->encode(f);
    if (!shared_.is_empty()) return shared_->encode(f, shared_point_);
    return f;
  });
}

torch::Tensor Pipeline::NodeFeaturesFromHead(const torch::Tensor& head_output) {
  if (ae_.is_empty() && shared_.is_empty()) return head_output;
  return models::RunAsBatchOfTwo(head_output.to(device_), [&](const torch::Tensor& f) {
    return !ae_.is_empty() ? ae_->encode(f) : shared_->encode(f, shared_point_);
  });
}

torch::Tensor Pipeline::ServerLogits(const torch::Tensor& dequantized) {
  return models::RunAsBatchOfTwo(dequantized.to(device_), [&](torch::Tensor f) {
    if (!comp_.is_empty()) f = comp_->forward(f);
    if (!ae_.is_empty()) f = ae_->decode(f, split_shape_[1], split_shape_[2]);
    if (!shared_.is_empty()) f = shared_->decode(f, shared_point_);
    return server_.net->tail(f, split_);
  });
}

int64_t Pipeline::node_extra_params() const {
  if (!ae_.is_empty()) return ParameterCount(*ae_->encoder);
  if (!shared_.is_empty()) {
    return ParameterCount(*shared_->core_encoder) + ParameterCount(*shared_->in_adapters->ptr(shared_point_));
  }
  return 0;
}

int64_t Pipeline::server_extra_params() const {
  int64_t n = comp_.is_empty() ? 0 : ParameterCount(*comp_);
  if (!ae_.is_empty()) n += ParameterCount(*ae_->decoder_in) + ParameterCount(*ae_->decoder_out);
  if (!shared_.is_empty()) {
    n += ParameterCount(*shared_->core_decoder) + ParameterCount(*shared_->out_adapters->ptr(shared_point_));
  }
  return n;
}

}  // namespace splitinfer::bottleneck
