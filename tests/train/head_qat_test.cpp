// Head fine-tuning (train/head_qat) on the shipped Fashion-MNIST model with a few hundred real
// training images: an interrupted run resumed from its state file ends bit for bit where an
// uninterrupted one does (weights, AdamW moments and batches all carried), and a state file
// written under other settings is refused rather than silently continued.
#include "train/head_qat.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "models/checkpoint.h"
#include "models/lowbit/convert.h"

namespace splitinfer::train {
namespace {
namespace fs = std::filesystem;

const std::string kCheckpoint = std::string(SPLITINFER_SOURCE_DIR) + "/models/resnet_fmnist.pt";

class HeadQatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);  // bit-for-bit repeatable
    dir_ = fs::temp_directory_path() / ("si_headqat_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto loaded = models::LoadCheckpoint(kCheckpoint, torch::kCPU);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    auto split = loaded->model->find_split("stage1");
    ASSERT_TRUE(split.ok()) << split.status().ToString();
    auto g = models::lowbit::ExtractHead(*loaded->model, loaded->meta.model, *split, loaded->meta.input_shape);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    graph_ = *g;
  }
  void TearDown() override { fs::remove_all(dir_); }

  HeadFinetuneOptions Options(const std::string& name) const {
    HeadFinetuneOptions o;
    o.checkpoint = kCheckpoint;
    o.quant.wbits = 2;
    o.quant.abits = 4;
    o.quant.group_size = 8;
    o.quant.first_wbits = 8;
    o.epochs = 2;
    o.batch_size = 64;
    o.lr = 1e-3;
    o.calibration_images = 32;
    o.limit_train = 192;
    o.state_path = (dir_ / (name + ".state.pt")).string();
    o.progress = false;
    return o;
  }

  fs::path dir_;
  kernels::HeadGraph graph_;
};

TEST_F(HeadQatTest, ResumedRunEqualsUninterruptedRun) {
  kernels::HeadGraph straight = graph_;
  auto done = FinetuneHead(straight, Options("straight"));
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(*done, 2);

  auto o = Options("resumed");
  o.stop_after_epochs = 1;
  kernels::HeadGraph resumed = graph_;
  auto first = FinetuneHead(resumed, o);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, 1);
  ASSERT_TRUE(fs::exists(o.state_path));
  for (size_t i = 0; i < graph_.ops.size(); ++i) {  // a stopped run leaves the graph alone
    EXPECT_EQ(resumed.ops[i].weight, graph_.ops[i].weight) << "op " << i;
  }
  o.stop_after_epochs = 0;
  auto second = FinetuneHead(resumed, o);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, 2);

  bool changed = false;
  for (size_t i = 0; i < graph_.ops.size(); ++i) {
    if (graph_.ops[i].kind != kernels::HeadOpKind::kConv) continue;
    EXPECT_EQ(resumed.ops[i].weight, straight.ops[i].weight) << "op " << i;
    EXPECT_EQ(resumed.ops[i].bias, straight.ops[i].bias) << "op " << i;
    changed = changed || straight.ops[i].weight != graph_.ops[i].weight;
  }
  EXPECT_TRUE(changed) << "fine-tuning left every weight as it was";
}

TEST_F(HeadQatTest, StateFromOtherSettingsIsRefused) {
  auto o = Options("x");
  o.stop_after_epochs = 1;
  kernels::HeadGraph g = graph_;
  ASSERT_TRUE(FinetuneHead(g, o).ok());
  o.quant.wbits = 4;  // same tensors, other quantization: continuing would train the wrong thing
  o.stop_after_epochs = 0;
  auto r = FinetuneHead(g, o);
  ASSERT_EQ(r.status().code(), ErrorCode::kMismatch) << r.status().ToString();
  EXPECT_NE(r.status().message().find("other settings (wbits); delete it to start over"), std::string::npos)
      << r.status().message();

  std::ofstream(o.state_path, std::ios::trunc) << "not a state";
  r = FinetuneHead(g, o);
  ASSERT_EQ(r.status().code(), ErrorCode::kDataLoss) << r.status().ToString();
  EXPECT_NE(r.status().message().find("cannot resume from"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace splitinfer::train
