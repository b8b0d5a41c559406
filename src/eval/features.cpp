#include "eval/features.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace splitinfer::eval {
namespace fs = std::filesystem;
namespace {
bool IsPt(const std::string& path) { return fs::path(path).extension() == ".pt"; }
std::string JsonPath(const std::string& path) { return path + ".json"; }
}  // namespace

Status SaveFeatures(const std::string& path, const torch::Tensor& features) {
  auto f = features.to(torch::kCPU).to(torch::kFloat32).contiguous();
  if (IsPt(path)) {
    try {
      torch::save(f, path);
    } catch (const c10::Error& e) {
      return IoError("cannot write " + path + ": " + e.what_without_backtrace());
    }
    return Status::Ok();
  }
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(f.data_ptr<float>()), static_cast<std::streamsize>(f.numel() * 4));
  if (!out) return IoError("cannot write " + path);
  std::ofstream meta(JsonPath(path));
  meta << nlohmann::json{{"shape", f.sizes().vec()}, {"dtype", "float32"}}.dump() << "\n";
  if (!meta) return IoError("cannot write " + JsonPath(path));
  return Status::Ok();
}

Result<torch::Tensor> LoadFeatures(const std::string& path) {
  if (!fs::exists(path)) return NotFound("feature file " + path + " not found");
  if (IsPt(path)) {
    torch::Tensor t;
    try {
      torch::load(t, path);
    } catch (const c10::Error& e) {
      return DataLoss("cannot read tensor from " + path + ": " + e.what_without_backtrace());
    }
    return t.to(torch::kFloat32);
  }
  std::ifstream meta_in(JsonPath(path));
  if (!meta_in) return NotFound("raw feature file " + path + " needs " + JsonPath(path) + " giving its shape");
  nlohmann::json meta = nlohmann::json::parse(meta_in, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.contains("shape") || !meta["shape"].is_array() ||
      meta.value("dtype", "") != "float32") {
    return DataLoss(JsonPath(path) + " must be {\"shape\": [...], \"dtype\": \"float32\"}");
  }
  std::vector<int64_t> shape;
  uint64_t n = 1;
  for (const auto& d : meta["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > (int64_t{1} << 31)) {
      return DataLoss(JsonPath(path) + ": bad dimension " + d.dump());
    }
    shape.push_back(d.get<int64_t>());
    n *= static_cast<uint64_t>(shape.back());
    if (n > (uint64_t{1} << 34)) return DataLoss(JsonPath(path) + ": shape too large");
  }
  const auto size = fs::file_size(path);
  if (size != n * 4) {
    return DataLoss(path + " has " + std::to_string(size) + " bytes; the shape in " + JsonPath(path) + " needs " +
                    std::to_string(n * 4));
  }
  auto t = torch::empty(shape, torch::kFloat32);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), static_cast<std::streamsize>(size));
  if (!in) return IoError("cannot read " + path);
  return t;
}

}  // namespace splitinfer::eval
