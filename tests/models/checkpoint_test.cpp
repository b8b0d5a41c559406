#include "models/checkpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/device.h"
#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {
namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("si_ckpt_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  CheckpointMeta Meta(int64_t width) {
    CheckpointMeta m;
    m.model = "resnet_fmnist";
    m.options = {10, 1, width, 1};
    m.input_shape = {1, 28, 28};
    m.norm_mean = {0.286};
    m.norm_std = {0.353};
    m.class_names = std::vector<std::string>(10, "c");
    m.dataset = "fmnist";
    m.top1 = 91.5;
    m.train_config = {{"epochs", 3}};
    return m;
  }
  std::string Path(const std::string& name) { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(CheckpointTest, RoundTripRestoresWeightsBuffersAndMeta) {
  torch::manual_seed(11);
  auto model = CreateModel("resnet_fmnist", {10, 1, 8, 1}).value();
  // Make the BN running stats non-default so buffers are checked too.
  model->train();
  {
    torch::NoGradGuard g;
    model->forward(torch::randn({8, 1, 28, 28}));
  }
  model->eval();
  ASSERT_TRUE(SaveCheckpoint(Path("a.pt"), model, Meta(8)).ok());
  EXPECT_TRUE(fs::exists(Path("a.json")));
  auto loaded = LoadCheckpoint(Path("a.pt"), torch::kCPU);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->meta.top1, 91.5);
  EXPECT_EQ(loaded->meta.options.width, 8);
  EXPECT_EQ(loaded->meta.train_config["epochs"], 3);
  auto x = torch::randn({2, 1, 28, 28});
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(loaded->model->forward(x), model->forward(x)));
}

TEST_F(CheckpointTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadCheckpoint(Path("nope.pt"), torch::kCPU).status().code(), ErrorCode::kNotFound);
}

TEST_F(CheckpointTest, GarbageIsDataLoss) {
  std::ofstream(Path("junk.pt")) << "this is not a checkpoint";
  auto r = LoadCheckpoint(Path("junk.pt"), torch::kCPU);
  EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss) << r.status().ToString();
}

TEST_F(CheckpointTest, PlainTorchArchiveWithoutMetaIsDataLoss) {
  auto model = CreateModel("resnet_fmnist", {10, 1, 8, 1}).value();
  torch::save(model, Path("plain.pt"));
  auto r = LoadCheckpoint(Path("plain.pt"), torch::kCPU);
  ASSERT_EQ(r.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(r.status().message().find("no splitinfer metadata"), std::string::npos);
}

TEST_F(CheckpointTest, WeightsOfAnotherWidthAreAMismatch) {
  // Metadata says width 16, weights are width 8: e.g. a hand-edited or mixed-up file.
  auto model = CreateModel("resnet_fmnist", {10, 1, 8, 1}).value();
  ASSERT_TRUE(SaveCheckpoint(Path("w.pt"), model, Meta(16)).ok());
  auto r = LoadCheckpoint(Path("w.pt"), torch::kCPU);
  ASSERT_EQ(r.status().code(), ErrorCode::kMismatch);
  EXPECT_NE(r.status().message().find("has shape"), std::string::npos) << r.status().message();
}

TEST_F(CheckpointTest, WeightsOfAnotherDepthAreAMismatch) {
  auto model = CreateModel("resnet_fmnist", {10, 1, 8, 1}).value();
  auto meta = Meta(8);
  meta.options.depth = 2;
  ASSERT_TRUE(SaveCheckpoint(Path("d.pt"), model, meta).ok());
  auto r = LoadCheckpoint(Path("d.pt"), torch::kCPU);
  ASSERT_EQ(r.status().code(), ErrorCode::kMismatch);
  EXPECT_NE(r.status().message().find("stage1.1"), std::string::npos) << r.status().message();
}

// A detector's metadata: task, anchors and AP survive the round trip; a file from before tasks
// reads as a classifier; broken detector metadata is refused naming what is wrong.
TEST_F(CheckpointTest, DetectorMetaRoundTripsAndIsChecked) {
  auto model = CreateModel("yolov3_tiny", {3, 1, 2, 0}).value();
  CheckpointMeta m;
  m.task = kTaskDetect;
  m.model = "yolov3_tiny";
  m.options = {3, 1, 2, 0};
  m.input_shape = {1, 64, 64};
  m.norm_mean = {0};
  m.norm_std = {1};
  m.class_names = {"a", "b", "c"};
  m.anchors = {{4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}};
  m.ap = 0.25;
  m.ap50 = 0.5;
  ASSERT_TRUE(SaveCheckpoint(Path("det.pt"), model, m).ok());
  auto loaded = LoadCheckpoint(Path("det.pt"), torch::kCPU);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(IsDetector(loaded->meta));
  EXPECT_EQ(loaded->meta.anchors, m.anchors);
  EXPECT_EQ(loaded->meta.ap, 0.25);
  EXPECT_EQ(loaded->meta.ap50, 0.5);
  const Status refused = RequireClassifier(loaded->meta, "bench head");
  EXPECT_EQ(refused.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("yolov3_tiny is a detector (task detect), but bench head takes classifiers"),
            std::string::npos) << refused.message();
  EXPECT_TRUE(RequireClassifier(Meta(8), "bench head").ok());

  nlohmann::json j = MetaToJson(m);
  j.erase("task");
  j.erase("detection");
  auto old = MetaFromJson(j, "old.json");  // metadata from before tasks: a classifier
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_FALSE(IsDetector(*old));

  j = MetaToJson(m);
  j["detection"]["anchors"] = {{4, 5}, {6, 7}};
  auto few = MetaFromJson(j, "few.json");
  EXPECT_EQ(few.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(few.status().message().find("detection.anchors must be 6"), std::string::npos);
  j = MetaToJson(m);
  j["task"] = "segment";
  EXPECT_NE(MetaFromJson(j, "t.json").status().message().find("task 'segment' is neither classify nor detect"),
            std::string::npos);
  j = MetaToJson(m);
  j["input_shape"] = {1, 64, 96};
  EXPECT_NE(MetaFromJson(j, "r.json").status().message().find("a detector's input is square"), std::string::npos);
  auto scripted = MetaFromJson(MetaToJson(m, kTorchScriptFormat), "s.json");
  EXPECT_EQ(scripted.status().code(), ErrorCode::kUnimplemented);
}

TEST(ZooDetectorTest, YoloV3TinyIsListedWithTheCfgsDefaults) {
  const auto names = ModelNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "yolov3_tiny"), names.end());
  const ZooDefaults d = DefaultsFor("yolov3_tiny");
  EXPECT_EQ(d.task, kTaskDetect);
  EXPECT_EQ(d.input_shape, (std::vector<int64_t>{3, 416, 416}));
  EXPECT_EQ(d.options.num_classes, 80);
  ASSERT_EQ(d.anchors.size(), 6u);
  EXPECT_EQ(d.anchors[5], (std::array<double, 2>{344, 319}));
  EXPECT_EQ(DefaultsFor("resnet50").task, kTaskClassify);
  EXPECT_TRUE(CreateModel("yolov3_tiny", {80, 3, 8, 0}).ok());  // width scales
  EXPECT_EQ(CreateModel("yolov3_tiny", {80, 3, 0, 2}).status().code(), ErrorCode::kInvalidArgument);
}

TEST(DeviceTest, ParsesCpuAndRejectsNonsense) {
  ASSERT_TRUE(ParseDevice("cpu").ok());
  EXPECT_EQ(ParseDevice("tpu").status().code(), ErrorCode::kInvalidArgument);
}

TEST(DeviceTest, CudaOnACpuBuildIsAFailedPrecondition) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA";
  auto r = ParseDevice("cuda");
  ASSERT_EQ(r.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("--device cpu"), std::string::npos);
}

}  // namespace
}  // namespace splitinfer::models
