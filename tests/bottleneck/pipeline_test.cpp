#include "bottleneck/pipeline.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "codec/lossless/cabac.h"
#include "codec/quantize/quantize.h"

namespace splitinfer::bottleneck {
namespace {
namespace fs = std::filesystem;

TEST(PipelineSpecTest, ParsesAndResolvesRelativePaths) {
  auto s = ParsePipelineSpec("name: p\nmodel: m.pt\nsplit: stem\nquantizer: q.json\ncoder: zstd\nbits: 2\n", "p.yaml",
                             "/srv/pipes");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->Resolve(s->model), "/srv/pipes/m.pt");
  EXPECT_EQ(s->Resolve("/abs/x.pt"), "/abs/x.pt");
  EXPECT_EQ(s->Resolve(""), "");
  EXPECT_EQ(s->coder, "zstd");
  EXPECT_EQ(s->bits, 2);
}

TEST(PipelineSpecTest, ErrorsNameTheKey) {
  auto typo = ParsePipelineSpec("model: m.pt\nsplit: stem\nquantiser: q.json\n", "p.yaml", "");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(typo.status().message().find("'quantiser'"), std::string::npos);
  EXPECT_NE(ParsePipelineSpec("split: stem\nquantizer: q\n", "p", "").status().message().find("'model'"),
            std::string::npos);
  EXPECT_NE(ParsePipelineSpec("model: m\nsplit: stem\n", "p", "").status().message().find("quantizer"),
            std::string::npos);
  EXPECT_NE(ParsePipelineSpec("model: m\nsplit: s\nquantizer: q\ncoder: rar\n", "p", "").status().message().find("zstd"),
            std::string::npos);
  EXPECT_EQ(ParsePipelineSpec("model: m\nsplit: s\nquantizer: q\nbits: 9\n", "p", "").status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParsePipelineSpec("[1, 2]", "p", "").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(LoadPipelineSpec("/nonexistent/p.yaml").status().code(), ErrorCode::kNotFound);
}

TEST(PipelineSpecTest, SaveLoadRoundTrip) {
  auto dir = fs::temp_directory_path() / ("si_pipe_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  PipelineSpec s;
  s.name = "x";
  s.model = "../m.pt";
  s.server_model = "server.pt";
  s.split = "stage2";
  s.compensator = "c.pt";
  s.quantizer = "q.json";
  s.coder = "cabac-trained";
  s.cabac_model = "ctx.sicm";
  s.coder_level = 9;
  s.pipeline_id = 5;
  ASSERT_TRUE(SavePipelineSpec((dir / "p.yaml").string(), s).ok());
  auto back = LoadPipelineSpec((dir / "p.yaml").string());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->model, "../m.pt");
  EXPECT_EQ(back->server_model, "server.pt");
  EXPECT_EQ(back->compensator, "c.pt");
  EXPECT_EQ(back->coder_level, 9);
  EXPECT_EQ(back->cabac_model, "ctx.sicm");
  EXPECT_EQ(back->pipeline_id, 5);
  EXPECT_EQ(back->base_dir, dir.string());
  fs::remove_all(dir);
}

TEST(PipelineSpecTest, RebasedToAnotherFolderNamesTheSameFiles) {
  PipelineSpec s;
  s.base_dir = "/a/b";
  s.model = "../m.pt";
  s.quantizer = "q.json";
  s.cabac_model = "/x/ctx.sicm";
  const PipelineSpec r = s.RebasedTo("/a/c");
  EXPECT_EQ(r.model, "../m.pt");
  EXPECT_EQ(r.quantizer, "../b/q.json");
  EXPECT_EQ(r.cabac_model, "../../x/ctx.sicm");
  EXPECT_EQ(r.bottleneck, "");  // absent stays absent
  EXPECT_EQ(r.base_dir, "/a/c");
  for (const auto& [a, b] :
       {std::pair{&s.model, &r.model}, {&s.quantizer, &r.quantizer}, {&s.cabac_model, &r.cabac_model}})
    EXPECT_EQ(s.Resolve(*a), r.Resolve(*b));
}

TEST(PipelineTest, DerivedIdsFitOneVarintByte) {
  for (const char* n : {"a", "fmnist_best", "qcnet_stem_b1"}) EXPECT_LT(DerivePipelineId(n, "stem"), 128u);
  EXPECT_NE(DerivePipelineId("a", "stem"), DerivePipelineId("a", "stage1"));
}

// The shipped model with a quantizer calibrated here: the pipeline loads, and a quantizer of
// the wrong shape or bit width is refused with MISMATCH before anything runs.
TEST(PipelineTest, LoadsTheShippedModelAndChecksTheQuantizer) {
  const std::string model = std::string(SPLITINFER_SOURCE_DIR) + "/models/resnet_fmnist.pt";
  auto dir = fs::temp_directory_path() / ("si_pipe_load_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  codec::QuantSpec spec;
  spec.bits = 1;
  auto q = codec::Calibrate(spec, torch::rand({4, 64, 14, 14})).value();
  std::ofstream(dir / "q.json") << codec::ToJson(q).dump();
  auto wrong = codec::Calibrate(spec, torch::rand({4, 64, 7, 7})).value();
  std::ofstream(dir / "wrong.json") << codec::ToJson(wrong).dump();
  PipelineSpec s;
  s.name = "t";
  s.model = model;
  s.split = "stem";
  s.quantizer = "q.json";
  s.base_dir = dir.string();
  auto p = Pipeline::FromSpec(s, torch::kCPU);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  torch::NoGradGuard g;
  auto f = p->NodeFeatures(torch::zeros({2, 1, 28, 28}));
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{2, 64, 14, 14}));
  EXPECT_EQ(p->ServerLogits(f).sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_LT(p->codec().pipeline_id, 128u);

  s.quantizer = "wrong.json";
  EXPECT_EQ(Pipeline::FromSpec(s, torch::kCPU).status().code(), ErrorCode::kMismatch);
  s.quantizer = "q.json";
  s.bits = 2;
  EXPECT_EQ(Pipeline::FromSpec(s, torch::kCPU).status().code(), ErrorCode::kMismatch);
  s.bits = 0;
  s.split = "layer9";
  EXPECT_EQ(Pipeline::FromSpec(s, torch::kCPU).status().code(), ErrorCode::kNotFound);
  s.split = "stem";
  s.compensator = "missing.pt";
  EXPECT_EQ(Pipeline::FromSpec(s, torch::kCPU).status().code(), ErrorCode::kNotFound);
  s.compensator = "";

  // cabac-trained: the context model is a file the spec names, checked when the pipeline loads.
  auto expect = [&](ErrorCode code, const std::string& text) {
    const Status st = Pipeline::FromSpec(s, torch::kCPU).status();
    EXPECT_EQ(st.code(), code) << st.ToString();
    EXPECT_NE(st.message().find(text), std::string::npos) << st.ToString();
  };
  s.coder = "cabac-trained";
  expect(ErrorCode::kInvalidArgument, "needs `cabac_model: FILE`");
  s.cabac_model = "none.sicm";
  expect(ErrorCode::kNotFound, "cabac model");
  std::ofstream(dir / "junk.sicm") << "not a model";
  s.cabac_model = "junk.sicm";
  expect(ErrorCode::kDataLoss, "cabac model: ");
  std::vector<uint8_t> map(64 * 7 * 7, 1);  // a model for other (64x7x7) maps
  const uint8_t* maps[] = {map.data()};
  auto other = codec::TrainCabacModel({maps[0]}, codec::SymbolGeometry{64, 7, 7, 1}).value().Serialize();
  std::ofstream(dir / "other.sicm", std::ios::binary)
      .write(reinterpret_cast<const char*>(other.data()), static_cast<std::streamsize>(other.size()));
  s.cabac_model = "other.sicm";
  expect(ErrorCode::kMismatch, "train it again");
  std::vector<uint8_t> mine(64 * 14 * 14, 1);
  auto good = codec::TrainCabacModel({mine.data()}, codec::SymbolGeometry{64, 14, 14, 1}).value().Serialize();
  std::ofstream(dir / "good.sicm", std::ios::binary)
      .write(reinterpret_cast<const char*>(good.data()), static_cast<std::streamsize>(good.size()));
  s.cabac_model = "good.sicm";
  auto trained = Pipeline::FromSpec(s, torch::kCPU);
  ASSERT_TRUE(trained.ok()) << trained.status().ToString();
  EXPECT_EQ(trained->cabac_model_id().size(), 8u);
  EXPECT_EQ(p->cabac_model_id(), "");
  s.coder = "cabac";
  expect(ErrorCode::kInvalidArgument, "cabac_model is only for coder cabac-trained");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace splitinfer::bottleneck
