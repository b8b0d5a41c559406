// The two faces of a pipeline, one per side of the link, built from one Pipeline (one spec, its
// models resolved once):
//
//   NodeFace    normalised images -> head (LibTorch, or another implementation of the same blocks,
//               e.g. the low-bit head) -> encoder -> codec -> frames
//   ServerFace  frames -> codec^-1 -> compensator / decoder -> tail -> the task's result (class
//               scores today)
//
//   CodecFace   one map <-> one frame under one codec, with no model: the step both faces share,
//               and the whole path for the codec's own tools (`splitinfer codec encode/decode/
//               bench`, the codec benchmarks), which take maps from a file or a generator
//
// Every command that turns images into frames or frames into answers goes through these (node,
// server, load, eval --pipeline, eval-head --pipeline, profile), and every frame is written and
// read through CodecFace, so the frame path exists once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

#include <torch/types.h>

#include "bottleneck/pipeline.h"
#include "codec/feature_codec.h"
#include "codec/frame/session.h"
#include "core/status.h"

namespace splitinfer::bottleneck {

class CodecFace {
 public:
  explicit CodecFace(const codec::FeatureCodec& codec, codec::FrameLimits limits = {})
      : codec_(&codec), limits_(limits) {}

  // One map (the quantizer's dims) -> one frame and its symbols.
  Result<codec::EncodedFeature> Encode(const torch::Tensor& map) const;
  // One frame -> the dequantized map (CPU); the frame parser's codes for a damaged frame,
  // MISMATCH for a frame of another codec.
  Result<torch::Tensor> Decode(const uint8_t* frame, size_t size) const;

 private:
  const codec::FeatureCodec* codec_;
  codec::FrameLimits limits_;
};

class NodeFace {
 public:
  explicit NodeFace(Pipeline& pipeline) : p_(&pipeline) {}

  // Runs `head` instead of the LibTorch head: one normalised image [C, H, W] to the head's
  // output for it (the node's low-bit head computes the same blocks).
  using Head = std::function<Result<torch::Tensor>(const torch::Tensor&)>;
  void SetHead(Head head) { head_ = std::move(head); }

  // Normalised images [B, C, H, W] -> the maps the codec quantizes [B, ...], on the CPU.
  // INTERNAL naming the stage for a LibTorch failure.
  Result<torch::Tensor> Features(const torch::Tensor& images);
  // The same from head outputs computed elsewhere [B, ...]: only the encoder runs.
  Result<torch::Tensor> FeaturesFromHead(const torch::Tensor& head_output);

  // One map -> one frame, with the pipeline's codec (or `other`, to compare coders on the same
  // maps: the study and eval --pipeline report every coder).
  Result<codec::EncodedFeature> Encode(const torch::Tensor& map, const codec::FeatureCodec* other = nullptr) const;

  Pipeline& pipeline() { return *p_; }

 private:
  Pipeline* p_;
  Head head_;
};

class ServerFace {
 public:
  explicit ServerFace(Pipeline& pipeline, codec::FrameLimits limits = {}) : p_(&pipeline), limits_(limits) {}

  // One frame -> the dequantized map (CPU). The frame parser's codes for a damaged frame,
  // MISMATCH for a frame of another pipeline.
  Result<torch::Tensor> Decode(const uint8_t* frame, size_t size) const;
  // The same, with session frames (codec/frame/session.h): a session frame decodes under
  // `*session`, or is FAILED_PRECONDITION ("SESSION_NOT_OPEN") when none is open or `session`
  // is nullptr (a unary call); on a stream (`session` given) a full frame that decodes opens it.
  Result<torch::Tensor> Decode(const uint8_t* frame, size_t size, std::optional<codec::Session>* session) const;
  // Dequantized maps [B, ...] -> class scores [B, classes] on the CPU; INTERNAL for a LibTorch
  // failure.
  Result<torch::Tensor> Scores(const torch::Tensor& decoded);

  Pipeline& pipeline() { return *p_; }

 private:
  Pipeline* p_;
  codec::FrameLimits limits_;
};

}  // namespace splitinfer::bottleneck
