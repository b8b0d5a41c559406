#include "bottleneck/faces.h"

#include <string>
#include <vector>

#include <torch/torch.h>

namespace splitinfer::bottleneck {

Result<codec::EncodedFeature> CodecFace::Encode(const torch::Tensor& map) const {
  return codec::EncodeFeature(*codec_, map);
}

Result<torch::Tensor> CodecFace::Decode(const uint8_t* frame, size_t size) const {
  return codec::DecodeFeature(*codec_, frame, size, limits_);
}

Result<torch::Tensor> NodeFace::Features(const torch::Tensor& images) {
  try {
    if (!head_) return p_->NodeFeatures(images.to(p_->device())).to(torch::kCPU).contiguous();
    std::vector<torch::Tensor> heads;
    heads.reserve(static_cast<size_t>(images.size(0)));
    for (int64_t i = 0; i < images.size(0); ++i) {
      SI_ASSIGN_OR_RETURN(auto h, head_(images[i]));
      heads.push_back(h);
    }
    return FeaturesFromHead(torch::stack(heads));
  } catch (const c10::Error& e) {
    return Internal(std::string("node forward failed: ") + e.what_without_backtrace());
  }
}

Result<torch::Tensor> NodeFace::FeaturesFromHead(const torch::Tensor& head_output) {
  try {
    return p_->NodeFeaturesFromHead(head_output).to(torch::kCPU).contiguous();
  } catch (const c10::Error& e) {
    return Internal(std::string("node encoder failed: ") + e.what_without_backtrace());
  }
}

Result<codec::EncodedFeature> NodeFace::Encode(const torch::Tensor& map, const codec::FeatureCodec* other) const {
  return CodecFace(other ? *other : p_->codec()).Encode(map);
}

Result<torch::Tensor> ServerFace::Decode(const uint8_t* frame, size_t size) const {
  return CodecFace(p_->codec(), limits_).Decode(frame, size);
}

Result<torch::Tensor> ServerFace::Decode(const uint8_t* frame, size_t size,
                                         std::optional<codec::Session>* session) const {
  if (codec::IsSessionFrame(frame, size)) {
    if (session == nullptr || !session->has_value()) {
      return FailedPrecondition(
          "SESSION_NOT_OPEN: a session frame (first byte 0xF6) outside a session: session frames travel on "
          "ModelStreamInfer after a full frame (first byte 0xF5) opened the session, also after a reconnect");
    }
    SI_ASSIGN_OR_RETURN(codec::FrameView view, codec::ParseSessionFrame(**session, frame, size, limits_));
    return codec::DecodeFrame(p_->codec(), view);
  }
  SI_ASSIGN_OR_RETURN(codec::FrameView view, codec::ParseFrame(frame, size, limits_));
  SI_ASSIGN_OR_RETURN(auto decoded, codec::DecodeFrame(p_->codec(), view));
  // On a stream, a full frame that decodes (re)opens the session: its header, checked against
  // the pipeline above, holds for the session frames that follow.
  if (session != nullptr) {
    SI_ASSIGN_OR_RETURN(*session, codec::OpenSession(view.header));
  }
  return decoded;
}

Result<torch::Tensor> ServerFace::Scores(const torch::Tensor& decoded) {
  try {
    return p_->ServerLogits(decoded).to(torch::kCPU);
  } catch (const c10::Error& e) {
    return Internal(std::string("server forward failed: ") + e.what_without_backtrace());
  }
}

}  // namespace splitinfer::bottleneck
