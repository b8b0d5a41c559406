// Every compression-aware method on a tiny model and real Fashion-MNIST: the loss goes down,
// the pipeline it writes loads and runs on real frames, and each method's contract holds (QCNet
// leaves the node untouched, the shared autoencoder switches bit width at run time, ...).
#include "train/methods.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bottleneck/fake_quant.h"
#include "bottleneck/pipeline.h"
#include "data/transforms.h"
#include "eval/pipeline_eval.h"
#include "models/checkpoint.h"
#include "train/loop.h"
#include "train/trainer.h"

namespace splitinfer::train {
namespace {
namespace fs = std::filesystem;

class MethodsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("si_methods_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    TrainConfig c;
    c.model.options = {10, 1, /*width=*/8, /*depth=*/1};
    c.data.limit_train = 2048;
    c.data.limit_test = 300;
    c.epochs = 2;
    c.batch_size = 64;
    c.optimizer.lr = 0.1;
    c.threads = 1;
    TrainOptions o;
    o.out_dir = (*dir_ / "base").string();
    o.progress = false;
    auto r = Train(c, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    base_ = new std::string(r->checkpoint);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete base_;
  }

  static MethodInputs Inputs(const std::string& name, int64_t train_images = 512) {
    MethodInputs in;
    in.base_checkpoint = *base_;
    in.data.limit_train = train_images;
    in.data.limit_test = 300;
    in.out_dir = (*dir_ / name).string();
    in.progress = false;
    return in;
  }
  static MethodConfig Config(const std::string& yaml, int epochs = 2) {
    // PTQ trains nothing, so it takes no training keys (ParseMethodConfig refuses them).
    const bool trains = yaml.rfind("method: ptq", 0) != 0;
    const std::string training = "\nepochs: " + std::to_string(epochs) + "\nbatch_size: 64\nlr: 0.003";
    auto c = ParseMethodConfig(yaml + (trains ? training : "") +
                                   "\ncalibration_images: 256",
                               "test");
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return *c;
  }
  // Losses of one stage, per epoch, from the method's log.
  static std::vector<double> Losses(const std::string& dir, const std::string& stage) {
    std::ifstream in(fs::path(dir) / "log.jsonl");
    std::vector<double> out;
    for (std::string l; std::getline(in, l);) {
      auto j = nlohmann::json::parse(l);
      if (j["stage"] == stage) out.push_back(j["loss"].get<double>());
    }
    return out;
  }
  // Runs the pipeline on real frames over the first `images` test images.
  static eval::PipelineEvalResult Evaluate(const std::string& pipeline_path, int64_t images = 300) {
    auto p = bottleneck::Pipeline::Load(pipeline_path, torch::kCPU);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    DataConfig d;
    d.limit_test = images;
    auto test = OpenSplit(d, data::Split::kTest).value();
    eval::PipelineEvalOptions o;
    o.batch_size = 100;
    o.extra_coders = {"none"};
    auto r = eval::EvaluatePipeline(*p, *test, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return *r;
  }
  static void ExpectDecreasing(const std::vector<double>& losses) {
    ASSERT_EQ(losses.size(), 2u);
    EXPECT_LT(losses[1], losses[0]);
  }

  static fs::path* dir_;
  static std::string* base_;
};
fs::path* MethodsTest::dir_ = nullptr;
std::string* MethodsTest::base_ = nullptr;

TEST_F(MethodsTest, PtqCalibratesAndSendsFrames) {
  auto out = RunMethod(Config("method: ptq\nsplit: stem\nbits: 2\ngranularity: region"), Inputs("ptq"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->pipelines.size(), 1u);
  auto r = Evaluate(out->pipelines[0]);
  EXPECT_EQ(r.wire_shape, (std::vector<int64_t>{8, 14, 14}));
  EXPECT_GT(r.top1, 30.0);  // 2-bit features of a 2-epoch model: well above chance (10 %)
  ASSERT_EQ(r.coders.size(), 2u);
  EXPECT_LT(r.coders[0].bytes_per_image, r.coders[1].bytes_per_image);  // cabac beats no coding
  EXPECT_EQ(r.coders[1].bytes_per_image - r.coders[1].header_bytes, 8 * 14 * 14 * 2 / 8);  // packed 2-bit payload
}

TEST_F(MethodsTest, TailFineTuneLearnsOnDequantizedFeatures) {
  auto out = RunMethod(Config("method: tail\nsplit: stem\nbits: 1\ngranularity: channel"), Inputs("tail"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectDecreasing(Losses(Inputs("tail").out_dir, "finetune"));
  auto spec = bottleneck::LoadPipelineSpec(out->pipelines[0]).value();
  EXPECT_EQ(spec.server_model, "server.pt");
  EXPECT_GT(Evaluate(out->pipelines[0]).top1, 20.0);
}

TEST_F(MethodsTest, QcnetKeepsTheNodeExactlyAsItWas) {
  std::ifstream before_file(*base_, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(before_file)), {});
  auto out = RunMethod(Config("method: qcnet\nsplit: stem\nbits: 1\nwarmup_epochs: 2\nkd_weight: 1.0"), Inputs("qcnet"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectDecreasing(Losses(Inputs("qcnet").out_dir, "reconstruct"));
  ExpectDecreasing(Losses(Inputs("qcnet").out_dir, "finetune"));
  // The node runs the shipped checkpoint itself, byte for byte, and nothing else.
  auto spec = bottleneck::LoadPipelineSpec(out->pipelines[0]).value();
  EXPECT_EQ(fs::canonical(spec.Resolve(spec.model)), fs::canonical(*base_));
  std::ifstream after_file(*base_, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(after_file)), {}), before);
  EXPECT_TRUE(spec.bottleneck.empty());
  EXPECT_EQ(spec.compensator, "compensator.pt");
  auto p = bottleneck::Pipeline::Load(out->pipelines[0], torch::kCPU).value();
  EXPECT_EQ(p.node_extra_params(), 0);
  EXPECT_GT(p.server_extra_params(), 0);
  auto base = models::LoadCheckpoint(*base_, torch::kCPU).value();
  torch::NoGradGuard g;
  auto x = torch::randn({3, 1, 28, 28});
  EXPECT_TRUE(torch::equal(p.NodeFeatures(x), base.model->head(x, base.model->find_split("stem").value())));
  EXPECT_GT(Evaluate(out->pipelines[0]).top1, 20.0);
}

// QCNet with feature distillation: the server's blocks are pulled toward the float model's
// features after every tail block. Every run that distils the logits logs that distance per
// epoch, so the same run without the term is the control: the term must make it fall and end
// below the control's.
TEST_F(MethodsTest, QcnetFeatureDistillationPullsTheTailTowardTheFloatFeatures) {
  const std::string common = "method: qcnet\nsplit: stem\nbits: 1\nwarmup_epochs: 1\nkd_weight: 1.0";
  auto feature_distance = [](const std::string& dir) {
    std::ifstream in(fs::path(dir) / "log.jsonl");
    std::vector<double> feature;
    for (std::string l; std::getline(in, l);) {
      auto j = nlohmann::json::parse(l);
      if (j["stage"] == "finetune") feature.push_back(j.at("feature_kd").get<double>());
    }
    return feature;
  };
  auto out = RunMethod(Config(common + "\nfeature_kd_weight: 10"), Inputs("qcnet_fkd"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  auto control = RunMethod(Config(common), Inputs("qcnet_fkd_control"));
  ASSERT_TRUE(control.ok()) << control.status().ToString();
  auto with = feature_distance(Inputs("qcnet_fkd").out_dir);
  auto without = feature_distance(Inputs("qcnet_fkd_control").out_dir);
  ASSERT_EQ(with.size(), 2u);
  ASSERT_EQ(without.size(), 2u);
  std::printf("relative MSE to the float features: with the term %.4f -> %.4f, without %.4f -> %.4f\n", with[0],
              with[1], without[0], without[1]);
  EXPECT_LT(with[1], with[0]);
  EXPECT_LT(with[1], 0.8 * without[1]);
  EXPECT_GT(Evaluate(out->pipelines[0]).top1, 20.0);
  // Only tail and qcnet take it; it is part of the run's identity only when set.
  EXPECT_NE(ParseMethodConfig("method: tcl\nfeature_kd_weight: 1", "r").status().message().find("feature_kd_weight"),
            std::string::npos);
  EXPECT_FALSE(ToJson(Config("method: qcnet\nsplit: stem\nbits: 1")).contains("feature_kd_weight"));
  EXPECT_EQ(ParseMethodConfig("method: qcnet\nfeature_kd_weight: -1", "r").status().code(), ErrorCode::kInvalidArgument);
}

// learn_quantizer: the node's per-channel ranges move with the task loss, the pipeline carries
// the learned ones, and what the server decodes from real frames is the fake quantizer's output
// over them bit for bit (so what was trained is what runs).
TEST_F(MethodsTest, QcnetLearnsTheNodesQuantizerWhenAsked) {
  auto out = RunMethod(Config("method: qcnet\nsplit: stem\nbits: 1\ngranularity: channel\nwarmup_epochs: 1\n"
                              "kd_weight: 1.0\nlearn_quantizer: true\nlr: 0.01"),
                       Inputs("qcnet_learnq"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  auto spec = bottleneck::LoadPipelineSpec(out->pipelines[0]).value();
  std::ifstream qf(spec.Resolve(spec.quantizer));
  auto learned = codec::QuantParamsFromJson(nlohmann::json::parse(qf), "quant.json").value();
  // The calibration it started from, as PTQ makes it.
  auto ptq = RunMethod(Config("method: ptq\nsplit: stem\nbits: 1\ngranularity: channel"), Inputs("ptq_b1_channel"));
  ASSERT_TRUE(ptq.ok()) << ptq.status().ToString();
  auto ptq_spec = bottleneck::LoadPipelineSpec(ptq->pipelines[0]).value();
  std::ifstream pf(ptq_spec.Resolve(ptq_spec.quantizer));
  auto calibrated = codec::QuantParamsFromJson(nlohmann::json::parse(pf), "quant.json").value();
  ASSERT_EQ(learned.hi.size(), 8u);
  ASSERT_EQ(calibrated.hi.size(), 8u);
  double moved = 0;
  for (size_t i = 0; i < 8; ++i) moved = std::max(moved, std::fabs(double(learned.hi[i]) - calibrated.hi[i]));
  EXPECT_GT(moved, 1e-3) << "no range moved";
  EXPECT_EQ(learned.lo, calibrated.lo);  // zero-based ranges: only the upper ends learn
  // Real frames decode to FakeQuantize over the learned ranges.
  auto p = bottleneck::Pipeline::Load(out->pipelines[0], torch::kCPU).value();
  torch::NoGradGuard g;
  auto x = torch::randn({2, 1, 28, 28});
  auto f = p.NodeFeatures(x);
  auto r = bottleneck::ToRangeTensors(learned, 3, torch::kCPU).value();
  auto expected = bottleneck::FakeQuantize(f, r.lo, r.hi, 1);
  auto simulated = codec::SimulateBatch(learned, f).value();
  EXPECT_EQ((simulated - expected).abs().max().item<float>(), 0.0f);
  EXPECT_GT(Evaluate(out->pipelines[0]).top1, 20.0);
  EXPECT_EQ(ToJson(Config("method: qcnet\nsplit: stem\nbits: 1\nlearn_quantizer: true")).at("learn_quantizer"), true);
  auto centroid = ParseMethodConfig("method: qcnet\nlearn_quantizer: true\nreconstruction: centroid", "r");
  ASSERT_FALSE(centroid.ok());
  EXPECT_NE(centroid.status().message().find("centroid"), std::string::npos);
  EXPECT_NE(ParseMethodConfig("method: tcl\nlearn_quantizer: true", "r").status().message().find("learn_quantizer"),
            std::string::npos);
}

TEST_F(MethodsTest, TclPullsFeaturesOntoTheLevels) {
  auto out = RunMethod(Config("method: tcl\nsplit: stem\nbits: 2\ntcl_lambda: 5\ntcl_schedule: exponential"),
                       Inputs("tcl"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectDecreasing(Losses(Inputs("tcl").out_dir, "tcl"));
  auto spec = bottleneck::LoadPipelineSpec(out->pipelines[0]).value();
  EXPECT_EQ(spec.model, "model.pt");  // the node's head was fine-tuned
  EXPECT_GT(Evaluate(out->pipelines[0]).top1, 20.0);
  // The same model, quantized with recalibrated ranges instead of the clustering levels.
  ASSERT_EQ(out->pipelines.size(), 2u);
  auto recal = bottleneck::LoadPipelineSpec(out->pipelines[1]).value();
  EXPECT_EQ(recal.name, spec.name + "_recal");
  EXPECT_EQ(recal.model, "model.pt");
  EXPECT_NE(recal.quantizer, spec.quantizer);
  EXPECT_GT(Evaluate(out->pipelines[1]).top1, 20.0);
}

// Issue 16, item 5: each method against its baseline on the tiny model, over 2,000 test images
// (a binomial standard error of about 1 pp at these accuracies), with margins that a method
// doing nothing cannot meet: a tail fine-tune that learned nothing scores exactly PTQ, and a
// compensator that passes its input through scores exactly the tail-only pipeline.
constexpr int64_t kBaselineImages = 2000;
constexpr int64_t kTrainImages = 2048;  // the base model's training images
constexpr int kEpochs = 4;

TEST_F(MethodsTest, AtOneBitQcnetBeatsTailOnlyWhichBeatsPlainPtq) {
  auto ptq = RunMethod(Config("method: ptq\nsplit: stem\nbits: 1\ngranularity: channel"), Inputs("ptq_b1"));
  auto tail = RunMethod(Config("method: tail\nsplit: stem\nbits: 1\ngranularity: channel", kEpochs),
                        Inputs("tail_long", kTrainImages));
  auto qcnet = RunMethod(Config("method: qcnet\nsplit: stem\nbits: 1\ngranularity: channel\nwarmup_epochs: " +
                                    std::to_string(kEpochs) + "\nkd_weight: 0",
                                kEpochs),
                         Inputs("qcnet_long", kTrainImages));
  ASSERT_TRUE(ptq.ok()) << ptq.status().ToString();
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  ASSERT_TRUE(qcnet.ok()) << qcnet.status().ToString();
  const double p = Evaluate(ptq->pipelines[0], kBaselineImages).top1;
  const double t = Evaluate(tail->pipelines[0], kBaselineImages).top1;
  const double q = Evaluate(qcnet->pipelines[0], kBaselineImages).top1;
  std::printf("1 bit after the stem, top-1 on %lld images: PTQ %.2f %%, tail-only %.2f %%, QCNet %.2f %%\n",
              static_cast<long long>(kBaselineImages), p, t, q);
  // Measured (training is deterministic on one thread, but not across CPUs: oneDNN and the
  // BLAS take other code paths): AMD EPYC 2026-12-05/06, PTQ 64.45, tail-only 74.70, QCNet 75.55
  // with LibTorch 1.13 and 65.45, 74.45, 75.75 with LibTorch 2.6; Intel Xeon 2026-12-06 with
  // LibTorch 2.6, 64.75, 74.90, 75.25. The compensator's gain is small, as in the full study
  // (docs/results.md: +0.47 pp at 1 bit per channel), and on the Xeon it was 0.35 pp, under the
  // 0.5 pp margin this test first had. A compensator that passes its input through scores exactly
  // the tail-only pipeline, so "strictly better" still fails it.
  EXPECT_GT(t, p + 5.0) << "fine-tuning the tail on dequantized features must repair the 1-bit damage";
  EXPECT_GT(q, t) << "the compensator must add to what the tail fine-tune alone repairs";
}

// TCL's regulariser moves the split's activations onto the quantizer's levels: the mean squared
// distance to the nearest level (in steps, over test images) falls well below the base model's.
// The same fine-tune with tcl_lambda 0 is the control: without the pull it must not.
TEST_F(MethodsTest, TclMovesTheActivationsOntoTheLevelsAndTheControlDoesNot) {
  auto distance = [](const std::string& pipeline, const std::string& checkpoint) {
    auto p = bottleneck::Pipeline::Load(pipeline, torch::kCPU).value();
    const auto& quant = p.codec().quant;
    EXPECT_EQ(quant.lo.size(), 1u);  // per tensor: one range
    auto model = models::LoadCheckpoint(checkpoint, torch::kCPU).value();
    DataConfig d;
    d.limit_test = 500;
    auto test = OpenSplit(d, data::Split::kTest).value();
    torch::NoGradGuard g;
    std::vector<int64_t> indices(500);
    std::iota(indices.begin(), indices.end(), 0);
    auto batch = test->batch(indices).value();
    auto x = data::ToFloatNormalized(batch.first, p.normalization());
    auto f = model.model->head(x, model.model->find_split("stem").value());
    return bottleneck::ClusteringLoss(f, quant.lo[0], quant.hi[0], quant.spec.bits).item<double>();
  };
  const std::string cfg = "method: tcl\nsplit: stem\nbits: 2\ngranularity: tensor\ntcl_schedule: constant\ntcl_lambda: ";
  auto tcl = RunMethod(Config(cfg + "20", kEpochs), Inputs("tcl_tensor", kTrainImages));
  auto control = RunMethod(Config(cfg + "0", kEpochs), Inputs("tcl_control", kTrainImages));
  ASSERT_TRUE(tcl.ok() && control.ok());
  const std::string tuned = (fs::path(Inputs("tcl_tensor").out_dir) / "model.pt").string();
  const std::string untuned = (fs::path(Inputs("tcl_control").out_dir) / "model.pt").string();
  const double before = distance(tcl->pipelines[0], *base_);
  const double after = distance(tcl->pipelines[0], tuned);
  const double control_before = distance(control->pipelines[0], *base_);
  const double control_after = distance(control->pipelines[0], untuned);
  std::printf("mean squared distance to the 2-bit levels (steps^2): TCL %.4f -> %.4f, control %.4f -> %.4f\n", before,
              after, control_before, control_after);
  // Measured: TCL 0.0403 -> 0.0181, control 0.0403 -> 0.0373.
  EXPECT_LT(after, 0.6 * before);
  EXPECT_GT(control_after, 0.85 * control_before);
  // Each run reports the same measure itself, on its calibration (training) images.
  auto reported = [](const std::string& run) {
    std::ifstream f(fs::path(Inputs(run).out_dir) / "level_distance.json");
    return nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  };
  const auto t = reported("tcl_tensor"), k = reported("tcl_control");
  ASSERT_TRUE(t.is_object() && k.is_object());
  EXPECT_DOUBLE_EQ(t["before"].get<double>(), k["before"].get<double>());  // one base model, one calibration
  EXPECT_LT(t["after"].get<double>(), 0.6 * t["before"].get<double>());
  EXPECT_GT(k["after"].get<double>(), 0.85 * k["before"].get<double>());
}

// QAT against plain PTQ with the same quantizer (1 bit, one range for the tensor, after the stem).
TEST_F(MethodsTest, QatBeatsPtqAtOneBit) {
  auto ptq = RunMethod(Config("method: ptq\nsplit: stem\nbits: 1\ngranularity: tensor\nclip: mse"), Inputs("ptq_b1_tensor"));
  auto qat = RunMethod(Config("method: qat\nsplit: stem\nbits: 1", kEpochs), Inputs("qat_b1", kTrainImages));
  ASSERT_TRUE(ptq.ok() && qat.ok());
  const double p = Evaluate(ptq->pipelines[0], kBaselineImages).top1;
  const double q = Evaluate(qat->pipelines[0], kBaselineImages).top1;
  std::printf("1 bit per tensor after the stem, top-1 on %lld images: PTQ %.2f %%, QAT %.2f %%\n",
              static_cast<long long>(kBaselineImages), p, q);
  // Measured: PTQ 62.10, QAT 74.85. QAT starts from PTQ's very clip (min-MSE, per tensor), so
  // QAT that learned nothing would score PTQ.
  EXPECT_GT(q, p + 8.0);
}

TEST_F(MethodsTest, QatLearnsAClipAndExportsIt) {
  auto out = RunMethod(Config("method: qat\nsplit: stage2\nbits: 2"), Inputs("qat"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectDecreasing(Losses(Inputs("qat").out_dir, "qat"));
  auto p = bottleneck::Pipeline::Load(out->pipelines[0], torch::kCPU).value();
  EXPECT_EQ(p.codec().quant.spec.bits, 2);
  EXPECT_GT(p.codec().quant.hi[0], 0.0f);
  EXPECT_GT(Evaluate(out->pipelines[0]).top1, 20.0);
}

TEST_F(MethodsTest, AutoencoderSendsItsQuantizedLatent) {
  auto out = RunMethod(Config("method: ae\nsplit: stage2\nbits: 2\nlatent_channels: 4\n"
                              "warmup_epochs: 2"),
                       Inputs("ae"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectDecreasing(Losses(Inputs("ae").out_dir, "reconstruct"));
  ExpectDecreasing(Losses(Inputs("ae").out_dir, "finetune"));
  auto r = Evaluate(out->pipelines[0]);
  EXPECT_EQ(r.wire_shape, (std::vector<int64_t>{4, 7, 7}));  // 16 channels -> 4 on the wire
  EXPECT_EQ(r.coders[1].bytes_per_image - r.coders[1].header_bytes, 4 * 7 * 7 * 2 / 8);
  EXPECT_GT(r.top1, 20.0);
  auto spec = bottleneck::LoadPipelineSpec(out->pipelines[0]).value();
  EXPECT_EQ(spec.server_model, "server.pt");  // the tail was fine-tuned with the decoder
}

TEST_F(MethodsTest, SharedAutoencoderSwitchesBitWidthAtRunTime) {
  auto out = RunMethod(Config("method: shared_ae\npoints: [stem, stage2, stage3]\nbit_widths: [1, 2, 4]\n"
                              "shared_width: 16\nlatent_channels: 4"),
                       Inputs("shared"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectDecreasing(Losses(Inputs("shared").out_dir, "train"));
  ASSERT_EQ(out->pipelines.size(), 9u);  // 3 points x 3 bit widths, one artifact
  std::set<std::string> artifacts;
  for (const auto& path : out->pipelines) {
    auto spec = bottleneck::LoadPipelineSpec(path).value();
    artifacts.insert(spec.bottleneck);
    EXPECT_TRUE(spec.quantizer.empty());  // the clip per (point, bits) is in the artifact
  }
  EXPECT_EQ(artifacts.size(), 1u);
  // The same node switches 1 -> 4 bits: four times the payload, same latent shape.
  auto b1 = Evaluate(out->pipelines[6]);
  auto b4 = Evaluate(out->pipelines[8]);
  EXPECT_EQ(b1.wire_shape, (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(b1.wire_shape, b4.wire_shape);
  EXPECT_EQ(b1.coders[1].bytes_per_image - b1.coders[1].header_bytes, 4 * 4 * 4 / 8);
  EXPECT_EQ(b4.coders[1].bytes_per_image - b4.coders[1].header_bytes, 4 * 4 * 4 * 4 / 8);
  auto p = bottleneck::Pipeline::Load(out->pipelines[8], torch::kCPU).value();
  EXPECT_EQ(p.codec().quant.spec.bits, 4);
}

TEST_F(MethodsTest, FinishedMethodIsNotRetrainedAndChangedSettingsAreRefused) {
  auto in = Inputs("resume");
  auto c = Config("method: tail\nsplit: stage3\nbits: 2");
  ASSERT_TRUE(RunMethod(c, in).ok());
  const auto lines = Losses(in.out_dir, "finetune").size();
  fs::remove(fs::path(in.out_dir) / "done.json");  // as if killed after the last epoch
  auto again = RunMethod(c, in);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(Losses(in.out_dir, "finetune").size(), lines);  // no epoch ran again
  c.bits = 3;
  c.quant.bits = 3;
  auto changed = RunMethod(c, in);
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.status().code(), ErrorCode::kMismatch);
  EXPECT_NE(changed.status().message().find("delete"), std::string::npos);
}

TEST(MethodConfigTest, UnknownKeysAndBadValuesAreNamed) {
  auto typo = ParseMethodConfig("method: tcl\ntcl_lamda: 2", "run x");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(typo.status().message().find("tcl_lamda"), std::string::npos);
  EXPECT_NE(typo.status().message().find("tcl_lambda"), std::string::npos);
  EXPECT_NE(ParseMethodConfig("method: magic", "r").status().message().find("qcnet"), std::string::npos);
  EXPECT_EQ(ParseMethodConfig("method: ptq\nbits: 9", "r").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(ParseMethodConfig("method: shared_ae", "r").status().message().find("points"), std::string::npos);
  EXPECT_NE(ParseMethodConfig("method: tcl\ntcl_schedule: cubic", "r").status().message().find("exponential"),
            std::string::npos);
}

// A valid key that the method does not read is refused, naming the method and its keys.
TEST(MethodConfigTest, KeysOfAnotherMethodAreRefused) {
  auto r = ParseMethodConfig("method: ptq\nsplit: stem\nbits: 2\ntcl_lambda: 50", "run p");
  ASSERT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("run p: key 'tcl_lambda' does nothing for method ptq"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("calibration_images"), std::string::npos);
  EXPECT_EQ(ParseMethodConfig("method: ptq\nepochs: 3", "r").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseMethodConfig("method: tail\nlatent_channels: 4", "r").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(ParseMethodConfig("method: tcl\nsplit: stem\nbits: 2\ntcl_lambda: 50\nepochs: 1", "r").ok());
}

// per_point_ae's fair baseline for shared_ae: point_width gives each point's autoencoder the
// shared one's width (adapters and core); it is that method's key only, and it changes the run's
// identity only when set, so runs made before it existed still resume.
TEST(MethodConfigTest, PointWidthIsPerPointAeOnly) {
  auto fair = ParseMethodConfig("method: per_point_ae\npoints: [stage1, stage2]\npoint_width: 96", "r");
  ASSERT_TRUE(fair.ok()) << fair.status().ToString();
  EXPECT_EQ(fair->point_width, 96);
  EXPECT_EQ(ToJson(*fair)["point_width"], 96);
  auto plain = ParseMethodConfig("method: per_point_ae\npoints: [stage1]", "r");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(ToJson(*plain).contains("point_width"));
  auto shared = ParseMethodConfig("method: shared_ae\npoints: [stage1]\npoint_width: 96", "run s");
  EXPECT_NE(shared.status().message().find("key 'point_width' does nothing for method shared_ae"), std::string::npos)
      << shared.status().message();
  auto per_point_shared = ParseMethodConfig("method: per_point_ae\npoints: [stage1]\nshared_width: 96", "run p");
  EXPECT_NE(per_point_shared.status().message().find("point_width"), std::string::npos)
      << per_point_shared.status().message();
  EXPECT_NE(ParseMethodConfig("method: per_point_ae\npoints: [stage1]\npoint_width: -1", "r").status().message().find(
                ">= 0"),
            std::string::npos);
}

}  // namespace
}  // namespace splitinfer::train
