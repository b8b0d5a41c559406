// bottleneck/pipeline: one trained split pipeline, described by one YAML file.
//
//   node:   image -> head(model, split) -> [encoder] ---------------> codec (quantizer, coder) -> frame
//   server: frame -> codec^-1 -> [compensator] -> [decoder] -> tail(server_model, split) -> logits
//
// The file names every artifact by a path relative to itself, so a pipeline directory can be
// copied as a whole (models/fmnist_best.yaml). `eval --pipeline`, `serve` and `node` load the
// same file; the node only needs the model's head, the encoder, the quantizer (and the cabac
// model).
//
//   name: fmnist_best
//   model: resnet_fmnist.pt        # node side (and server side unless server_model is given): a
//                                  # checkpoint or TorchScript file (models/model_ref.h)
//   server_model: tail.pt          # optional: a fine-tuned model whose tail the server runs
//   split: stage3
//   bottleneck: ae.pt              # optional: autoencoder or shared_autoencoder artifact
//   compensator: comp.pt           # optional: QCNet compensator artifact
//   quantizer: quant.json          # calibrated codec::QuantParams (a shared autoencoder may omit it)
//   bits: 2                        # optional; must match the quantizer (the shared AE's choice)
//   coder: cabac                   # none | lzma | zstd | cabac | cabac-trained
//   cabac_model: ctx.sicm          # cabac-trained only: its context model (`codec train-cabac`)
//   coder_level: -1                # optional: lzma preset / zstd level
//   pipeline_id: 7                 # optional: the frame's pipeline id (default: 7 bits of CRC32C(name/split))
//   reference_model: base.pt       # optional: the float model this pipeline is compared with
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <torch/types.h>

#include "bottleneck/modules.h"
#include "codec/feature_codec.h"
#include "codec/lossless/cabac.h"
#include "core/status.h"
#include "data/dataset.h"
#include "models/checkpoint.h"
#include "models/model_ref.h"

namespace splitinfer::bottleneck {

struct PipelineSpec {
  std::string name;
  std::string model, server_model, split, bottleneck, compensator, quantizer;  // paths as written
  std::string reference_model;  // the float model accuracy is compared with (default: model)
  int bits = 0;  // 0 = take it from the quantizer
  std::string coder = "cabac";
  std::string cabac_model;  // coder cabac-trained: the context model (`splitinfer codec train-cabac`)
  int coder_level = -1;
  int64_t pipeline_id = -1;  // -1 = derived
  std::string base_dir;      // directory the relative paths are relative to

  std::string Resolve(const std::string& relative) const;  // "" stays ""
  // The same pipeline described from another folder: every artifact path rewritten relative to
  // `dir` (base_dir becomes dir), so a copy of the YAML saved there loads the same files.
  PipelineSpec RebasedTo(const std::string& dir) const;
};

// Unknown keys and missing required ones (model, split, quantizer) are INVALID_ARGUMENT naming them.
Result<PipelineSpec> ParsePipelineSpec(const std::string& yaml_text, const std::string& origin,
                                       const std::string& base_dir);
Result<PipelineSpec> LoadPipelineSpec(const std::string& path);
// Writes the YAML; artifact paths are written as given (make them relative to `path`'s folder).
Status SavePipelineSpec(const std::string& path, const PipelineSpec& spec);

class Pipeline {
 public:
  static Result<Pipeline> Load(const std::string& path, const torch::Device& device);
  static Result<Pipeline> FromSpec(const PipelineSpec& spec, const torch::Device& device);

  // Node: normalised images [B, C, H, W] -> the features that are quantized, [B, quant dims].
  torch::Tensor NodeFeatures(const torch::Tensor& images);
  // The same from the head's output (computed elsewhere, e.g. by a low-bit head): the encoder.
  torch::Tensor NodeFeaturesFromHead(const torch::Tensor& head_output);
  // Server: dequantized features [B, quant dims] -> logits [B, classes].
  torch::Tensor ServerLogits(const torch::Tensor& dequantized);

  const PipelineSpec& spec() const { return spec_; }
  const codec::FeatureCodec& codec() const { return codec_; }
  // The cabac-trained context model's checksum (its serialised trailer), "" without one: the
  // handshake compares it, since frames coded with another model decode to other symbols.
  std::string cabac_model_id() const;
  const models::SplitPoint& split() const { return split_; }
  const data::Normalization& normalization() const { return norm_; }
  const torch::Device& device() const { return device_; }
  const models::CheckpointMeta& model_meta() const { return node_.meta; }
  int64_t node_extra_params() const;    // encoder parameters
  int64_t server_extra_params() const;  // decoder + compensator parameters
  void set_eval_all();                  // every module in eval mode (Load leaves them so)

 private:
  PipelineSpec spec_;
  codec::FeatureCodec codec_;
  std::shared_ptr<const codec::CabacModel> cabac_model_;  // codec_.coder_options points into it
  uint32_t cabac_model_checksum_ = 0;
  models::OpenedModel node_, server_;  // any model reference (models/model_ref.h)
  models::SplitPoint split_;
  data::Normalization norm_;
  Autoencoder ae_{nullptr};
  SharedAutoencoder shared_{nullptr};
  size_t shared_point_ = 0;
  Compensator comp_{nullptr};
  std::vector<int64_t> split_shape_;  // per-image feature shape at the split (before an encoder)
  torch::Device device_ = torch::kCPU;
};

// The frame's pipeline id derived from a name and split when the YAML gives none: 0..127, so
// that it costs one byte in the frame header.
uint32_t DerivePipelineId(const std::string& name, const std::string& split);

}  // namespace splitinfer::bottleneck
