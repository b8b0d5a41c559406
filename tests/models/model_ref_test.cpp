// Model references (models/model_ref.h): a zoo name, a checkpoint and a TorchScript chain are
// told apart by content, whatever the file is called; a chain's metadata comes from its archive,
// FILE.json beside it or flags; every bad input is a specific error naming the fix.
#include "models/model_ref.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "data/datasets.h"
#include "models/checkpoint.h"
#include "models/torchscript_chain.h"
#include "models/zoo/zoo.h"

#ifndef SPLITINFER_TEST_DATA_DIR
#define SPLITINFER_TEST_DATA_DIR "tests/data"
#endif

namespace splitinfer::models {
namespace {
namespace fs = std::filesystem;

const std::string kFixture = std::string(SPLITINFER_TEST_DATA_DIR) + "/fixtures/tiny_chain.pt";

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The fixture's metadata as tools/export_torchscript.py --tiny writes it.
nlohmann::json TinyMeta() {
  return {{"format", kTorchScriptFormat},
          {"format_version", 1},
          {"model", "tiny"},
          {"input_shape", {1, 28, 28}},
          {"normalization", {{"mean", {0.286}}, {"std", {0.353}}}},
          {"class_names", {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}}};
}

class ModelRefTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("si_model_ref_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // The fixture re-saved with `meta` as its embedded splitinfer.json.
  std::string WithEmbeddedMeta(const std::string& name, const nlohmann::json& meta) const {
    torch::jit::Module m = torch::jit::load(kFixture);
    m.save(Path(name), {{kTorchScriptMetaFile, meta.dump()}});
    return Path(name);
  }
  std::string CopyOfFixture(const std::string& name) const {
    fs::copy_file(kFixture, Path(name), fs::copy_options::overwrite_existing);
    return Path(name);
  }
  fs::path dir_;
};

TEST_F(ModelRefTest, ZooNameOpensWithItsDefaults) {
  ASSERT_EQ(DetectModelKind("resnet_fmnist").value(), ModelKind::kZoo);
  auto m = OpenModel("resnet_fmnist", torch::kCPU);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->kind, ModelKind::kZoo);
  ASSERT_TRUE(m->native);
  EXPECT_EQ(m->net.get(), static_cast<SplitModel*>(m->native.get()));
  EXPECT_EQ(m->meta.input_shape, (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(m->meta.class_names.size(), 10u);
  EXPECT_EQ(m->meta.dataset, "");  // random weights: trained on nothing
}

TEST(ZooDefaultsTest, NormalisationAgreesWithTheDatasetsOwn) {
  for (const auto& name : ModelNames()) {
    SCOPED_TRACE(name);
    const ZooDefaults zoo = DefaultsFor(name);
    if (zoo.task == kTaskDetect) {  // darknet's input: pixels / 255
      EXPECT_EQ(zoo.norm_mean, std::vector<double>(3, 0.0));
      EXPECT_EQ(zoo.norm_std, std::vector<double>(3, 1.0));
      continue;
    }
    const data::Normalization norm = data::DefaultNormalization(name == "resnet_fmnist" ? "fmnist" : "imagefolder");
    EXPECT_EQ(zoo.norm_mean, norm.mean);
    EXPECT_EQ(zoo.norm_std, norm.std);
  }
}

TEST_F(ModelRefTest, CheckpointIsRecognisedByContentWhateverItsName) {
  torch::manual_seed(3);
  auto net = CreateModel("resnet_fmnist", {10, 1, 8, 1}).value();
  CheckpointMeta meta;
  meta.model = "resnet_fmnist";
  meta.options = {10, 1, 8, 1};
  meta.input_shape = {1, 28, 28};
  meta.norm_mean = {0.286};
  meta.norm_std = {0.353};
  meta.class_names = std::vector<std::string>(10, "c");
  const std::string path = Path("weights.bin");  // no .pt suffix
  ASSERT_TRUE(SaveCheckpoint(path, net, meta).ok());
  ASSERT_EQ(DetectModelKind(path).value(), ModelKind::kCheckpoint);
  auto m = OpenModel(path, torch::kCPU);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->kind, ModelKind::kCheckpoint);
  ASSERT_TRUE(m->native);
  EXPECT_EQ(m->meta.options.width, 8);
  torch::NoGradGuard no_grad;
  net->eval();
  const auto x = torch::randn({2, 1, 28, 28});
  EXPECT_TRUE(torch::equal(m->net->forward_all(x), net->forward(x)));
}

TEST_F(ModelRefTest, ChainWithEmbeddedMetadataOpens) {
  auto meta = TinyMeta();
  meta["split_points"] = {"block"};
  const std::string path = WithEmbeddedMeta("tiny.model", meta);
  ASSERT_EQ(DetectModelKind(path).value(), ModelKind::kTorchScript);
  auto m = OpenModel(path, torch::kCPU);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->kind, ModelKind::kTorchScript);
  EXPECT_FALSE(m->native);
  EXPECT_EQ(m->net->model_name(), "tiny");
  EXPECT_EQ(m->meta.class_names[2], "c");
  EXPECT_TRUE(Contains(m->meta_source, "embedded"));
  // The metadata's split points restrict the chain's.
  ASSERT_EQ(m->net->split_points().size(), 1u);
  EXPECT_EQ(m->net->split_points()[0].name, "block");
  EXPECT_EQ(m->net->split_points()[0].block, 1);
  EXPECT_EQ(m->net->block_op(0), "conv");
  EXPECT_EQ(m->net->block_op(2), "matmul");
}

TEST_F(ModelRefTest, ChainWithoutMetadataNamesTheThreeWaysToGiveIt) {
  const std::string path = CopyOfFixture("bare.pt");
  ASSERT_EQ(DetectModelKind(path).value(), ModelKind::kTorchScript);
  auto m = OpenModel(path, torch::kCPU);
  ASSERT_EQ(m.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(m.status().message(), "tools/export_torchscript.py")) << m.status().message();
  EXPECT_TRUE(Contains(m.status().message(), "bare.json"));
  EXPECT_TRUE(Contains(m.status().message(), "--input-shape"));
}

TEST_F(ModelRefTest, SidecarJsonDescribesABareChain) {
  const std::string path = CopyOfFixture("side.pt");
  std::ofstream(Path("side.json")) << TinyMeta().dump();
  auto m = OpenModel(path, torch::kCPU);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->meta_source, Path("side.json"));
  EXPECT_EQ(m->net->split_points().size(), 2u);
}

TEST_F(ModelRefTest, FlagsDescribeABareChainAndOverrideAFile) {
  const std::string path = CopyOfFixture("flags.pt");
  ModelMetaFlags flags;
  flags.input_shape = {1, 28, 28};
  flags.mean = {0.5};
  flags.std = {0.25};
  flags.class_names = ParseClassNames("10").value();
  auto m = OpenModel(path, torch::kCPU, flags);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->meta.norm_std, std::vector<double>{0.25});
  EXPECT_EQ(m->meta_source, "command-line flags");

  const std::string embedded = WithEmbeddedMeta("over.pt", TinyMeta());
  ModelMetaFlags rename;
  rename.class_names = ParseClassNames("k0,k1,k2,k3,k4,k5,k6,k7,k8,k9").value();
  auto r = OpenModel(embedded, torch::kCPU, rename);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->meta.class_names[0], "k0");
  EXPECT_EQ(r->meta.norm_mean, std::vector<double>{0.286});
}

TEST_F(ModelRefTest, ClassCountThatDoesNotMatchTheOutputIsMismatch) {
  const std::string path = CopyOfFixture("seven.pt");
  ModelMetaFlags flags;
  flags.input_shape = {1, 28, 28};
  flags.mean = {0.5};
  flags.std = {0.25};
  flags.class_names = ParseClassNames("7").value();
  auto m = OpenModel(path, torch::kCPU, flags);
  ASSERT_EQ(m.status().code(), ErrorCode::kMismatch);
  EXPECT_TRUE(Contains(m.status().message(), "names 7 classes")) << m.status().message();
}

TEST_F(ModelRefTest, InputShapeTheChainCannotRunIsMismatch) {
  auto meta = TinyMeta();
  meta["input_shape"] = {3, 28, 28};
  meta["normalization"] = {{"mean", {0.5, 0.5, 0.5}}, {"std", {0.5, 0.5, 0.5}}};
  auto m = OpenModel(WithEmbeddedMeta("rgb.pt", meta), torch::kCPU);
  ASSERT_EQ(m.status().code(), ErrorCode::kMismatch);
  EXPECT_TRUE(Contains(m.status().message(), "cannot run an input of shape [3,28,28]")) << m.status().message();
}

TEST_F(ModelRefTest, UnknownSplitPointInMetadataIsInvalidArgument) {
  auto meta = TinyMeta();
  meta["split_points"] = {"fc"};  // the last block: nothing left for the server
  auto m = OpenModel(WithEmbeddedMeta("split.pt", meta), torch::kCPU);
  ASSERT_EQ(m.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(m.status().message(), "'fc' is not a block that can be cut after (features, block)"))
      << m.status().message();
}

// The resize policy travels in the metadata ("preprocess"): absent means the ImageNet recipe
// (centre crop at side/0.875), a file may say stretch or a size, and --resize overrides a file.
TEST_F(ModelRefTest, PreprocessIsReadFromTheFileAndFlagsOverrideIt) {
  auto plain = OpenModel(WithEmbeddedMeta("plain.pt", TinyMeta()), torch::kCPU);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->meta.resize, "center_crop");
  EXPECT_EQ(plain->meta.resize_size, 0);

  auto meta = TinyMeta();
  meta["preprocess"] = {{"resize", "center_crop"}, {"resize_size", 32}};
  const std::string sized = WithEmbeddedMeta("sized.pt", meta);
  auto m = OpenModel(sized, torch::kCPU);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->meta.resize_size, 32);

  ModelMetaFlags stretch;
  stretch.resize = "stretch";
  auto s = OpenModel(sized, torch::kCPU, stretch);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->meta.resize, "stretch");

  meta["preprocess"] = {{"resize", "squash"}};
  auto bad = OpenModel(WithEmbeddedMeta("squash.pt", meta), torch::kCPU);
  ASSERT_EQ(bad.status().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(Contains(bad.status().message(), "preprocess.resize 'squash'")) << bad.status().message();

  meta["preprocess"] = {{"resize", "center_crop"}, {"resize_size", 20}};  // below the 28-pixel input
  bad = OpenModel(WithEmbeddedMeta("small.pt", meta), torch::kCPU);
  ASSERT_EQ(bad.status().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(Contains(bad.status().message(), "preprocess.resize_size 20")) << bad.status().message();
}

TEST_F(ModelRefTest, BadMetadataIsDataLoss) {
  auto meta = TinyMeta();
  meta["normalization"]["std"] = {0.0};
  auto m = OpenModel(WithEmbeddedMeta("zero_std.pt", meta), torch::kCPU);
  ASSERT_EQ(m.status().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(Contains(m.status().message(), "std must be > 0"));

  auto wrong = TinyMeta();
  wrong["format"] = kCheckpointFormat;
  m = OpenModel(WithEmbeddedMeta("wrong_format.pt", wrong), torch::kCPU);
  ASSERT_EQ(m.status().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(Contains(m.status().message(), "describes a checkpoint")) << m.status().message();
}

TEST_F(ModelRefTest, MissingGarbageAndFlagsOnZooAreSpecificErrors) {
  auto missing = OpenModel(Path("nope.pt"), torch::kCPU);
  ASSERT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(missing.status().message(), "resnet50")) << missing.status().message();

  std::ofstream(Path("junk.pt")) << "not a zip archive at all";
  auto junk = OpenModel(Path("junk.pt"), torch::kCPU);
  ASSERT_EQ(junk.status().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(Contains(junk.status().message(), "not a PyTorch archive")) << junk.status().message();

  ModelMetaFlags flags;
  flags.input_shape = {3, 32, 32};
  auto zoo = OpenModel("resnet_fmnist", torch::kCPU, flags);
  ASSERT_EQ(zoo.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(zoo.status().message(), "is a zoo"));
}

TEST(ModelFlagsTest, ParsersAcceptTheDocumentedFormsAndNameTheFlag) {
  EXPECT_EQ(ParseInputShape("3x224x224").value(), (std::vector<int64_t>{3, 224, 224}));
  EXPECT_EQ(ParseInputShape("1,28,28").value(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(ParseInputShape("3x224").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(ParseInputShape("3xAx4").status().message(), "--input-shape"));
  EXPECT_EQ(ParseNumberList("--mean", "0.485, 0.456,0.406").value(), (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_TRUE(Contains(ParseNumberList("--std", "0.2,,0.3").status().message(), "--std"));
  EXPECT_EQ(ParseClassNames("3").value(), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(ParseClassNames("cat, dog").value(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(ParseClassNames("0").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseClassNames("cat,,dog").status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(ModelRefTest, ClassNamesFromAFileOneNamePerLine) {
  std::ofstream(Path("classes.txt")) << "ankle boot\n\nbag\n";
  EXPECT_EQ(ParseClassNames(Path("classes.txt")).value(), (std::vector<std::string>{"ankle boot", "bag"}));
  std::ofstream(Path("empty.txt")) << "\n";
  EXPECT_EQ(ParseClassNames(Path("empty.txt")).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer::models
