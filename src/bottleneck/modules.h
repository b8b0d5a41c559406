// bottleneck/modules: the trainable parts added around the cut.
//
//   node:   head -> [Autoencoder::encode | SharedAutoencoder::encode(point)] -> quantize -> wire
//   server: wire -> dequantize -> [Compensator] -> [Autoencoder::decode | SharedAutoencoder::decode(point)] -> tail
//
// Autoencoder: one per split point; fewer channels (and optionally half the resolution) on the
// wire. Compensator (QCNet): a light residual network on the server that turns the dequantized
// 1-2-bit map back into the float map the tail was trained on; the node does nothing extra.
// SharedAutoencoder: one core shared by several split points through small 1x1 adapters, with a
// learned clip per (point, bit width) so the node can pick the bit width at run time.
//
// Latents are post-ReLU (>= 0), so they use the codec's zero-based range; a decoder ends in a
// ReLU when the features it reconstructs are post-ReLU (every resnet_fmnist split point).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "bottleneck/fake_quant.h"
#include "core/status.h"

namespace splitinfer::bottleneck {

struct AutoencoderOptions {
  int64_t channels = 64;        // feature channels at the split
  int64_t latent_channels = 8;  // channels on the wire
  bool downsample = false;      // stride-2 encoder: a quarter of the positions on the wire
  bool relu_output = true;      // the reconstructed features are post-ReLU
};
nlohmann::json ToJson(const AutoencoderOptions& o);

class AutoencoderImpl : public torch::nn::Module {
 public:
  explicit AutoencoderImpl(const AutoencoderOptions& options);
  torch::Tensor encode(const torch::Tensor& f);  // node: [B,C,H,W] -> latent [B,L,H',W'] (>= 0)
  // server: latent -> [B,C,H,W]; `hw` is the split's spatial size (needed after downsampling).
  torch::Tensor decode(const torch::Tensor& z, int64_t h, int64_t w);
  const AutoencoderOptions& options() const { return options_; }
  LearnedClip clip{nullptr};  // the latent's quantization range, learned during training
  torch::nn::Sequential encoder{nullptr}, decoder_in{nullptr}, decoder_out{nullptr};

 private:
  AutoencoderOptions options_;
};
TORCH_MODULE(Autoencoder);

struct CompensatorOptions {
  int64_t channels = 64;
  int64_t hidden = 64;
  bool relu_output = true;
};
nlohmann::json ToJson(const CompensatorOptions& o);

class CompensatorImpl : public torch::nn::Module {
 public:
  explicit CompensatorImpl(const CompensatorOptions& options);
  // x + body(x): the last convolution starts at zero, so an untrained compensator is the identity.
  torch::Tensor forward(const torch::Tensor& dequantized);
  const CompensatorOptions& options() const { return options_; }
  torch::nn::Sequential body{nullptr};

 private:
  CompensatorOptions options_;
};
TORCH_MODULE(Compensator);

struct SharedPoint {
  std::string name;  // split point name
  int64_t channels = 0;
};
struct SharedAutoencoderOptions {
  std::vector<SharedPoint> points;
  int64_t width = 96;          // the common width the adapters map to
  int64_t latent_channels = 8;
  std::vector<int> bit_widths{1, 2, 4, 8};  // what the node may choose at run time
};
nlohmann::json ToJson(const SharedAutoencoderOptions& o);

class SharedAutoencoderImpl : public torch::nn::Module {
 public:
  explicit SharedAutoencoderImpl(const SharedAutoencoderOptions& options);
  torch::Tensor encode(const torch::Tensor& f, size_t point);
  torch::Tensor decode(const torch::Tensor& z, size_t point);
  // Fake-quantizes a latent at point/bits with that pair's learned clip.
  torch::Tensor quantize(const torch::Tensor& z, size_t point, int bits);
  double clip_hi(size_t point, int bits) const;
  void set_clip_hi(size_t point, int bits, double hi);
  // Index of a point by name, NOT_FOUND naming the points this autoencoder serves.
  Result<size_t> point_index(const std::string& name) const;
  // INVALID_ARGUMENT naming the bit widths this autoencoder was trained for.
  Result<size_t> bits_index(int bits) const;
  const SharedAutoencoderOptions& options() const { return options_; }
  int64_t shared_parameter_count() const;  // the core alone, without adapters

  torch::nn::ModuleList in_adapters{nullptr}, out_adapters{nullptr};
  torch::nn::Sequential core_encoder{nullptr}, core_decoder{nullptr};

 private:
  SharedAutoencoderOptions options_;
  torch::Tensor clips_;  // [points, bit widths]
};
TORCH_MODULE(SharedAutoencoder);

int64_t ParameterCount(const torch::nn::Module& m);

// Artifacts: one .pt per trained module holding its weights and, under "splitinfer_artifact",
// a JSON string {"kind": "autoencoder"|"compensator"|"shared_autoencoder", "options": {...},
// plus whatever the trainer adds (split, bits, accuracy)}. A .json copy sits beside it.
Status SaveArtifact(const std::string& path, torch::nn::Module& module, const nlohmann::json& meta);
Result<nlohmann::json> ReadArtifactMeta(const std::string& path);
Result<Autoencoder> LoadAutoencoder(const std::string& path);
Result<Compensator> LoadCompensator(const std::string& path);
Result<SharedAutoencoder> LoadSharedAutoencoder(const std::string& path);

}  // namespace splitinfer::bottleneck
