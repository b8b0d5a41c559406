#include "train/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/checkpoint.h"
#include "models/model_ref.h"
#include "eval/evaluate.h"
#include "data/datasets.h"

#ifndef SPLITINFER_TEST_DATA_DIR
#define SPLITINFER_TEST_DATA_DIR "tests/data"
#endif

namespace splitinfer::train {
namespace {
namespace fs = std::filesystem;

// A tiny run on real Fashion-MNIST: 1,024 training and 500 test images, width 8.
TrainConfig Tiny() {
  TrainConfig c;
  c.model.options = {10, 1, /*width=*/8, /*depth=*/1};
  c.data.limit_train = 1024;
  c.data.limit_test = 500;
  c.epochs = 2;
  c.batch_size = 64;
  c.optimizer.lr = 0.1;
  c.threads = 1;  // one thread: bit-for-bit repeatable
  c.seed = 5;
  return c;
}

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("si_train_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  TrainOptions Options(const std::string& sub) {
    TrainOptions o;
    o.out_dir = (dir_ / sub).string();
    o.progress = false;
    return o;
  }
  static std::vector<nlohmann::json> Log(const std::string& dir) {
    std::ifstream in(fs::path(dir) / "log.jsonl");
    std::vector<nlohmann::json> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
    return lines;
  }
  fs::path dir_;
};

TEST_F(TrainerTest, LearnsAndWritesALoadableCheckpoint) {
  auto r = Train(Tiny(), Options("a"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->finished);
  auto log = Log(Options("a").out_dir);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_LT(log[1]["train_loss"].get<double>(), log[0]["train_loss"].get<double>());
  EXPECT_GT(r->top1, 40.0);  // chance is 10 %; two short epochs reach well above
  auto loaded = models::LoadCheckpoint(r->checkpoint, torch::kCPU);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->meta.top1, r->top1);
  EXPECT_EQ(loaded->meta.input_shape, (std::vector<int64_t>{1, 28, 28}));
}

TEST_F(TrainerTest, ResumedRunEqualsUninterruptedRun) {
  auto straight = Train(Tiny(), Options("straight"));
  ASSERT_TRUE(straight.ok()) << straight.status().ToString();

  auto opts = Options("resumed");
  opts.stop_after_epochs = 1;
  auto first = Train(Tiny(), opts);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->finished);
  EXPECT_EQ(first->epochs_done, 1);
  opts.stop_after_epochs = 0;
  auto second = Train(Tiny(), opts);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_TRUE(second->finished);

  auto a = models::LoadCheckpoint(straight->checkpoint, torch::kCPU).value();
  auto b = models::LoadCheckpoint(second->checkpoint, torch::kCPU).value();
  auto pa = a.model->named_parameters();
  auto pb = b.model->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  EXPECT_EQ(straight->top1, second->top1);
}

TEST_F(TrainerTest, ResumeWithAnotherConfigIsRefused) {
  auto opts = Options("x");
  opts.stop_after_epochs = 1;
  ASSERT_TRUE(Train(Tiny(), opts).ok());
  auto other = Tiny();
  other.optimizer.lr = 0.05;
  auto r = Train(other, opts);
  ASSERT_EQ(r.status().code(), ErrorCode::kMismatch);
  EXPECT_NE(r.status().message().find("--restart"), std::string::npos);
  EXPECT_NE(r.status().message().find("(optimizer)"), std::string::npos) << r.status().message();  // what changed
  // Another thread count is another machine, not another run: it resumes.
  auto more_threads = Tiny();
  more_threads.threads = Tiny().threads + 1;
  auto resumed = Train(more_threads, opts);
  EXPECT_TRUE(resumed.ok()) << resumed.status().ToString();
}

TEST_F(TrainerTest, ClassCountMismatchIsInvalidArgument) {
  auto c = Tiny();
  c.model.options.num_classes = 7;
  auto r = Train(c, Options("y"));
  ASSERT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("10 classes"), std::string::npos);
}

// A user's TorchScript model (tools/export_torchscript.py --tiny: 1,426 parameters) fine-tuned
// like a zoo model: its metadata gives normalisation and classes, the state resumes, and the
// result is TorchScript again, with the metadata, that reopens to the accuracy training reported.
TEST_F(TrainerTest, FineTunesATorchScriptModelAndWritesTorchScript) {
  TrainConfig c = Tiny();
  c.model.name = std::string(SPLITINFER_TEST_DATA_DIR) + "/fixtures/tiny_chain_meta.pt";
  c.optimizer.name = "adamw";
  c.optimizer.lr = 0.003;
  c.data.limit_train = 2048;
  TrainOptions o = Options("ts");
  o.stop_after_epochs = 1;
  auto first = Train(c, o);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->finished);
  o.stop_after_epochs = 0;
  auto r = Train(c, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(Log(o.out_dir).size(), 2u);  // the second run resumed at epoch 2
  // Random initial weights score ~10 %; two short epochs lift the tiny chain well above chance.
  EXPECT_GT(r->top1, 25.0);

  ASSERT_EQ(models::DetectModelKind(r->checkpoint).value(), models::ModelKind::kTorchScript);
  auto reopened = models::OpenModel(r->checkpoint, torch::kCPU);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(reopened->meta.model, "tiny_chain");
  EXPECT_EQ(reopened->meta.dataset, "fmnist");
  EXPECT_EQ(reopened->meta.class_names[9], "Ankle boot");  // the dataset's names replace 0..9
  EXPECT_EQ(reopened->meta.top1, r->top1);
  auto test = data::OpenDataset("fmnist", "", data::Split::kTest);
  ASSERT_TRUE(test.ok());
  eval::EvalOptions eo;
  eo.limit = 500;
  auto ev = eval::Evaluate(*reopened->net, **test, {reopened->meta.norm_mean, reopened->meta.norm_std},
                           std::nullopt, eo);
  ASSERT_TRUE(ev.ok()) << ev.status().ToString();
  EXPECT_DOUBLE_EQ(ev->top1, r->top1);
}

TEST_F(TrainerTest, ModelFileWithInitCheckpointIsInvalidArgument) {
  TrainConfig c = Tiny();
  c.model.name = std::string(SPLITINFER_TEST_DATA_DIR) + "/fixtures/tiny_chain_meta.pt";
  c.init_checkpoint = "x.pt";
  auto r = Train(c, Options("both"));
  ASSERT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("drop init_checkpoint"), std::string::npos);
}

}  // namespace
}  // namespace splitinfer::train
