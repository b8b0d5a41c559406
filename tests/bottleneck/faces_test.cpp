// The two faces of a pipeline (bottleneck/faces.h) on the shipped pipeline
// (models/fmnist_best.yaml): the node face's frames decode on the server face to the scores the
// pipeline computes directly; another head implementation gives the same frames; the server
// face refuses damaged frames and frames over its limits with the parser's codes.
#include "bottleneck/faces.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>


namespace splitinfer::bottleneck {
namespace {
namespace fs = std::filesystem;

Pipeline Shipped() {
  auto p = Pipeline::Load(std::string(SPLITINFER_SOURCE_DIR) + "/models/fmnist_best.yaml", torch::kCPU);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return std::move(p).value();
}

TEST(FacesTest, NodeFramesDecodeOnTheServerToThePipelinesScores) {
  Pipeline p = Shipped();
  torch::NoGradGuard g;
  torch::manual_seed(3);
  const auto x = torch::randn({3, 1, 28, 28});
  NodeFace node(p);
  ServerFace server(p);
  auto f = node.Features(x);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::vector<torch::Tensor> decoded;
  for (int64_t i = 0; i < 3; ++i) {
    auto e = node.Encode((*f)[i]);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    auto d = server.Decode(e->frame.data(), e->frame.size());
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    // The reference: the pipeline's own steps, quantized the way the codec does it.
    EXPECT_TRUE(torch::equal(*d, codec::Reconstruct(p.codec(), p.NodeFeatures(x)[i].contiguous()).value()));
    decoded.push_back(*d);
  }
  auto scores = server.Scores(torch::stack(decoded));
  ASSERT_TRUE(scores.ok());
  EXPECT_EQ(scores->sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_TRUE(torch::allclose(*scores, p.ServerLogits(torch::stack(decoded))));
}

TEST(FacesTest, AnotherHeadImplementationGivesTheSameFrames) {
  Pipeline p = Shipped();
  torch::NoGradGuard g;
  const auto x = torch::randn({2, 1, 28, 28});
  NodeFace torch_head(p);
  NodeFace other(p);
  // The same head blocks loaded a second time, run image by image, as the low-bit head is; the
  // face then runs the pipeline's autoencoder on them.
  auto head_model = models::OpenModel(p.spec().Resolve(p.spec().model), torch::kCPU);
  ASSERT_TRUE(head_model.ok()) << head_model.status().ToString();
  int calls = 0;
  other.SetHead([&](const torch::Tensor& chw) -> Result<torch::Tensor> {
    ++calls;
    return head_model->net->head(chw.unsqueeze(0), p.split())[0];
  });
  auto a = torch_head.Features(x);
  auto b = other.Features(x);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(calls, 2);  // once per image, as the node's low-bit head runs
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(torch_head.Encode((*a)[i])->frame, other.Encode((*b)[i])->frame);

  other.SetHead([](const torch::Tensor&) -> Result<torch::Tensor> { return Internal("head failed"); });
  EXPECT_EQ(other.Features(x).status().code(), ErrorCode::kInternal);
}

TEST(FacesTest, ServerFaceRefusesDamagedAndOversizedFrames) {
  Pipeline p = Shipped();
  torch::NoGradGuard g;
  NodeFace node(p);
  auto f = node.Features(torch::randn({1, 1, 28, 28}));
  ASSERT_TRUE(f.ok());
  auto e = node.Encode((*f)[0]);
  ASSERT_TRUE(e.ok());
  std::vector<uint8_t> damaged = e->frame;
  damaged[damaged.size() / 2] ^= 0x5a;
  const Status bad = ServerFace(p).Decode(damaged.data(), damaged.size()).status();
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), ErrorCode::kFrameCrcMismatch) << bad.ToString();
  codec::FrameLimits tight;
  tight.max_frame_bytes = e->frame.size() - 1;
  const Status big = ServerFace(p, tight).Decode(e->frame.data(), e->frame.size()).status();
  EXPECT_FALSE(big.ok()) << "a frame over the server's limit must be refused unread";
}

}  // namespace
}  // namespace splitinfer::bottleneck
