#include "bottleneck/modules.h"

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "models/checkpoint.h"

namespace splitinfer::bottleneck {
namespace nn = torch::nn;
namespace {

nn::Conv2d Conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2));
}

constexpr const char* kMetaKey = "splitinfer_artifact";

}  // namespace

int64_t ParameterCount(const nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// ------------------------------------------------------------------------------- Autoencoder

nlohmann::json ToJson(const AutoencoderOptions& o) {
  return {{"channels", o.channels}, {"latent_channels", o.latent_channels}, {"downsample", o.downsample},
          {"relu_output", o.relu_output}};
}

AutoencoderImpl::AutoencoderImpl(const AutoencoderOptions& o) : options_(o) {
  encoder = register_module("encoder", nn::Sequential(Conv(o.channels, o.channels, 3, o.downsample ? 2 : 1),
                                                      nn::ReLU(), Conv(o.channels, o.latent_channels, 1), nn::ReLU()));
  decoder_in = register_module("decoder_in", nn::Sequential(Conv(o.latent_channels, o.channels, 1), nn::ReLU()));
  decoder_out = register_module("decoder_out", nn::Sequential(Conv(o.channels, o.channels, 3)));
  clip = register_module("clip", LearnedClip(1.0));
}

torch::Tensor AutoencoderImpl::encode(const torch::Tensor& f) { return encoder->forward(f); }

torch::Tensor AutoencoderImpl::decode(const torch::Tensor& z, int64_t h, int64_t w) {
  auto y = decoder_in->forward(z);
  if (y.size(2) != h || y.size(3) != w) {
    y = nn::functional::interpolate(
        y, nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest));
  }
  y = decoder_out->forward(y);
  return options_.relu_output ? torch::relu(y) : y;
}

// ------------------------------------------------------------------------------- Compensator

nlohmann::json ToJson(const CompensatorOptions& o) {
  return {{"channels", o.channels}, {"hidden", o.hidden}, {"relu_output", o.relu_output}};
}

CompensatorImpl::CompensatorImpl(const CompensatorOptions& o) : options_(o) {
  auto last = Conv(o.hidden, o.channels, 3);
  {
    torch::NoGradGuard g;
    last->weight.zero_();
    last->bias.zero_();
  }
  body = register_module("body", nn::Sequential(Conv(o.channels, o.hidden, 3), nn::BatchNorm2d(o.hidden), nn::ReLU(),
                                                Conv(o.hidden, o.hidden, 3), nn::BatchNorm2d(o.hidden), nn::ReLU(),
                                                last));
}

torch::Tensor CompensatorImpl::forward(const torch::Tensor& x) {
  auto y = x + body->forward(x);
  return options_.relu_output ? torch::relu(y) : y;
}

// ------------------------------------------------------------------------- SharedAutoencoder

nlohmann::json ToJson(const SharedAutoencoderOptions& o) {
  nlohmann::json points = nlohmann::json::array();
  for (const auto& p : o.points) points.push_back({{"name", p.name}, {"channels", p.channels}});
  return {{"points", points}, {"width", o.width}, {"latent_channels", o.latent_channels}, {"bit_widths", o.bit_widths}};
}

SharedAutoencoderImpl::SharedAutoencoderImpl(const SharedAutoencoderOptions& o) : options_(o) {
  in_adapters = register_module("in_adapters", nn::ModuleList());
  out_adapters = register_module("out_adapters", nn::ModuleList());
  for (const auto& p : o.points) {
    in_adapters->push_back(nn::Sequential(Conv(p.channels, o.width, 1), nn::ReLU()));
    out_adapters->push_back(nn::Sequential(Conv(o.width, p.channels, 1)));
  }
  core_encoder = register_module(
      "core_encoder", nn::Sequential(Conv(o.width, o.width, 3), nn::ReLU(), Conv(o.width, o.latent_channels, 1), nn::ReLU()));
  core_decoder = register_module(
      "core_decoder", nn::Sequential(Conv(o.latent_channels, o.width, 1), nn::ReLU(), Conv(o.width, o.width, 3), nn::ReLU()));
  clips_ = register_parameter("clips", torch::ones({static_cast<int64_t>(o.points.size()),
                                                    static_cast<int64_t>(o.bit_widths.size())}));
}

torch::Tensor SharedAutoencoderImpl::encode(const torch::Tensor& f, size_t point) {
  return core_encoder->forward(in_adapters[point]->as<nn::Sequential>()->forward(f));
}

torch::Tensor SharedAutoencoderImpl::decode(const torch::Tensor& z, size_t point) {
  return torch::relu(out_adapters[point]->as<nn::Sequential>()->forward(core_decoder->forward(z)));
}

torch::Tensor SharedAutoencoderImpl::quantize(const torch::Tensor& z, size_t point, int bits) {
  const size_t b = bits_index(bits).value();
  auto hi = clips_.index({static_cast<int64_t>(point), static_cast<int64_t>(b)}).abs() + 1e-6;
  return FakeQuantize(z, torch::zeros({}, z.options()), hi, bits);
}

double SharedAutoencoderImpl::clip_hi(size_t point, int bits) const {
  const size_t b = bits_index(bits).value();
  return std::abs(clips_.index({static_cast<int64_t>(point), static_cast<int64_t>(b)}).item<double>()) + 1e-6;
}

void SharedAutoencoderImpl::set_clip_hi(size_t point, int bits, double hi) {
  torch::NoGradGuard g;
  clips_.index_put_({static_cast<int64_t>(point), static_cast<int64_t>(bits_index(bits).value())}, hi);
}

Result<size_t> SharedAutoencoderImpl::point_index(const std::string& name) const {
  std::string names;
  for (size_t i = 0; i < options_.points.size(); ++i) {
    if (options_.points[i].name == name) return i;
    names += (i ? ", " : "") + options_.points[i].name;
  }
  return NotFound("the shared autoencoder does not serve split point '" + name + "'; it serves " + names);
}

Result<size_t> SharedAutoencoderImpl::bits_index(int bits) const {
  std::string list;
  for (size_t i = 0; i < options_.bit_widths.size(); ++i) {
    if (options_.bit_widths[i] == bits) return i;
    list += (i ? ", " : "") + std::to_string(options_.bit_widths[i]);
  }
  return InvalidArgument("the shared autoencoder was trained for bit widths " + list + ", not " + std::to_string(bits));
}

int64_t SharedAutoencoderImpl::shared_parameter_count() const {
  return ParameterCount(*core_encoder) + ParameterCount(*core_decoder);
}

// --------------------------------------------------------------------------------- artifacts

Status SaveArtifact(const std::string& path, nn::Module& module, const nlohmann::json& meta) {
  try {
    torch::serialize::OutputArchive archive;
    module.save(archive);
    archive.write(kMetaKey, c10::IValue(meta.dump()));
    archive.save_to(path + ".tmp");
    std::filesystem::rename(path + ".tmp", path);
  } catch (const std::exception& e) {
    return IoError("cannot write " + path + ": " + e.what());
  }
  std::ofstream json(std::filesystem::path(path).replace_extension(".json"));
  json << meta.dump(2) << "\n";
  if (!json) return IoError("cannot write the JSON beside " + path);
  return Status::Ok();
}

namespace {
Result<torch::serialize::InputArchive> OpenArtifact(const std::string& path) {
  if (!std::filesystem::exists(path)) return NotFound("artifact " + path + " not found");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, torch::kCPU);
  } catch (const c10::Error& e) {
    return DataLoss("cannot read " + path + ": not a LibTorch archive or corrupt (" + e.what_without_backtrace() + ")");
  }
  return archive;
}

Result<nlohmann::json> MetaOf(torch::serialize::InputArchive& archive, const std::string& path, const char* kind) {
  c10::IValue v;
  if (!archive.try_read(kMetaKey, v) || !v.isString()) {
    return DataLoss(path + " is not a splitinfer bottleneck artifact (no '" + kMetaKey + "' metadata)");
  }
  auto j = nlohmann::json::parse(v.toStringRef(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss(path + ": artifact metadata is not a JSON object");
  if (kind != nullptr && j.value("kind", "") != kind) {
    return Mismatch(path + " holds a " + j.value("kind", std::string("?")) + ", not a " + kind);
  }
  return j;
}

template <typename T>
T Get(const nlohmann::json& j, const char* key, T fallback) {
  return j.contains(key) ? j.at(key).get<T>() : fallback;
}

template <typename Holder, typename Options>
Result<Holder> LoadAs(const std::string& path, const char* kind, Options (*parse)(const nlohmann::json&)) {
  SI_ASSIGN_OR_RETURN(auto archive, OpenArtifact(path));
  SI_ASSIGN_OR_RETURN(auto meta, MetaOf(archive, path, kind));
  Options options;
  try {
    options = parse(meta.at("options"));
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(path + ": bad " + kind + " options in the metadata (" + e.what() + ")");
  }
  Holder module(options);
  SI_RETURN_IF_ERROR(models::LoadModuleChecked(*module, archive, "", path, kind));
  module->eval();
  return module;
}

AutoencoderOptions ParseAe(const nlohmann::json& j) {
  AutoencoderOptions o;
  o.channels = j.at("channels").get<int64_t>();
  o.latent_channels = j.at("latent_channels").get<int64_t>();
  o.downsample = Get(j, "downsample", false);
  o.relu_output = Get(j, "relu_output", true);
  return o;
}
CompensatorOptions ParseComp(const nlohmann::json& j) {
  CompensatorOptions o;
  o.channels = j.at("channels").get<int64_t>();
  o.hidden = j.at("hidden").get<int64_t>();
  o.relu_output = Get(j, "relu_output", true);
  return o;
}
SharedAutoencoderOptions ParseShared(const nlohmann::json& j) {
  SharedAutoencoderOptions o;
  o.points.clear();
  for (const auto& p : j.at("points")) o.points.push_back({p.at("name").get<std::string>(), p.at("channels").get<int64_t>()});
  o.width = j.at("width").get<int64_t>();
  o.latent_channels = j.at("latent_channels").get<int64_t>();
  o.bit_widths = j.at("bit_widths").get<std::vector<int>>();
  return o;
}
}  // namespace

Result<nlohmann::json> ReadArtifactMeta(const std::string& path) {
  SI_ASSIGN_OR_RETURN(auto archive, OpenArtifact(path));
  return MetaOf(archive, path, nullptr);
}

Result<Autoencoder> LoadAutoencoder(const std::string& path) {
  return LoadAs<Autoencoder, AutoencoderOptions>(path, "autoencoder", ParseAe);
}
Result<Compensator> LoadCompensator(const std::string& path) {
  return LoadAs<Compensator, CompensatorOptions>(path, "compensator", ParseComp);
}
Result<SharedAutoencoder> LoadSharedAutoencoder(const std::string& path) {
  return LoadAs<SharedAutoencoder, SharedAutoencoderOptions>(path, "shared_autoencoder", ParseShared);
}

}  // namespace splitinfer::bottleneck
