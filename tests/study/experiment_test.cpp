#include "study/experiment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "core/system.h"
#include "eval/report.h"
#include "train/trainer.h"

namespace splitinfer::study {
namespace {
namespace fs = std::filesystem;

TEST(StudyConfigTest, ListsExpandIntoNamedRuns) {
  auto c = ParseStudyConfig(R"(
model: m.pt
coders: [lzma, cabac]
ptq: {splits: [stem, stage1], bits: [1, 2], granularity: [tensor, region]}
runs:
  - {name: tcl, method: tcl, split: stem, bits: [1, 2, 3], epochs: 3}
  - {name: ae, method: ae, split: stage3, bits: 2, latent_channels: 8}
)",
                            "study.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->runs.size(), 8u + 3u + 1u);
  EXPECT_EQ(c->runs[0].name, "ptq_stem_b1_tensor");
  EXPECT_EQ(c->runs[7].name, "ptq_stage1_b2_region");
  EXPECT_EQ(c->runs[7].method.quant.granularity, codec::Granularity::kRegion);
  EXPECT_EQ(c->runs[8].name, "tcl_b1");
  EXPECT_EQ(c->runs[10].method.bits, 3);
  EXPECT_EQ(c->runs[10].method.epochs, 3);
  EXPECT_EQ(c->runs[11].name, "ae");
  EXPECT_EQ(c->runs[11].method.latent_channels, 8);
}

// A list of seeds repeats a run (issue 20: targets are decided on the mean of three seeds); the
// held-out split is a data key.
TEST(StudyConfigTest, SeedListsRepeatARunAndHoldoutIsRead) {
  auto c = ParseStudyConfig(R"(
model: m.pt
data: {dataset: fmnist, holdout: 5000}
runs:
  - {name: tcl, method: tcl, split: stem, bits: [1, 2], seed: [1, 2, 3]}
)",
                            "study.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data.holdout, 5000);
  ASSERT_EQ(c->runs.size(), 6u);
  EXPECT_EQ(c->runs[0].name, "tcl_b1_seed1");
  EXPECT_EQ(c->runs[0].method.seed, 1u);
  EXPECT_EQ(c->runs[5].name, "tcl_b2_seed3");
  EXPECT_EQ(c->runs[5].method.seed, 3u);
  EXPECT_EQ(c->runs[5].method.bits, 2);
  auto negative = ParseStudyConfig("model: m\ndata: {holdout: -1}\n", "s.yaml");
  EXPECT_EQ(negative.status().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(negative.status().message().find("data.holdout"), std::string::npos);
}

TEST(StudyConfigTest, ErrorsNameWhatIsWrong) {
  auto typo = ParseStudyConfig("model: m.pt\ncoder: [lzma]\n", "s.yaml");
  EXPECT_EQ(typo.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(typo.status().message().find("'coder'"), std::string::npos);
  EXPECT_NE(ParseStudyConfig("coders: [lzma]\n", "s").status().message().find("'model'"), std::string::npos);
  EXPECT_NE(ParseStudyConfig("model: m\ncoders: [rar]\n", "s").status().message().find("zstd"), std::string::npos);
  auto run_typo = ParseStudyConfig("model: m\nruns:\n  - {name: x, method: ae, latent: 4}\n", "s");
  EXPECT_NE(run_typo.status().message().find("run x"), std::string::npos);
  EXPECT_NE(run_typo.status().message().find("'latent'"), std::string::npos);
  auto dup = ParseStudyConfig("model: m\nruns:\n  - {name: x, method: ptq}\n  - {name: x, method: ptq}\n", "s");
  EXPECT_NE(dup.status().message().find("two runs"), std::string::npos);
  EXPECT_NE(ParseStudyConfig("model: m\nptq: {split: [stem]}\n", "s").status().message().find("ptq.split"),
            std::string::npos);
  EXPECT_EQ(LoadStudyConfig("/nonexistent.yaml").status().code(), ErrorCode::kNotFound);
}

TEST(StudyConfigTest, ShippedStudyConfigParses) {
  auto c = LoadStudyConfig(std::string(SPLITINFER_SOURCE_DIR) + "/configs/fmnist_study.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_GT(c->runs.size(), 20u);
  auto methods = LoadStudyConfig(std::string(SPLITINFER_SOURCE_DIR) + "/configs/fmnist_methods_study.yaml");
  ASSERT_TRUE(methods.ok()) << methods.status().ToString();
  EXPECT_EQ(methods->data.holdout, 5000);
  const auto named = [&](const std::string& name) {
    return std::any_of(methods->runs.begin(), methods->runs.end(), [&](const StudyRun& r) { return r.name == name; });
  };
  EXPECT_TRUE(named("qcnet_b1_channel_seed1"));
  EXPECT_TRUE(named("per_point_ae_w96_seed1"));
}

// A one-epoch resnet_fmnist of `width` on the first limit_train training images (holdout:
// that many training images kept out of it, as data.holdout), one thread, in `dir`.
Result<train::TrainResult> TrainTinyBase(const fs::path& dir, int width, int64_t limit_train, int64_t limit_test,
                                         int64_t holdout = 0) {
  train::TrainConfig tc;
  tc.model.options = {10, 1, width, /*depth=*/1};
  tc.data.limit_train = limit_train;
  tc.data.limit_test = limit_test;
  tc.data.holdout = holdout;
  tc.epochs = 1;
  tc.batch_size = 64;
  tc.threads = 1;
  train::TrainOptions to;
  to.out_dir = dir.string();
  to.progress = false;
  return train::Train(tc, to);
}

// The whole study on a tiny model: rows for every cell and coder, the report, and a rerun that
// resumes instead of repeating work.
TEST(StudyTest, RunsWritesTheReportAndResumes) {
  const fs::path dir = fs::temp_directory_path() / ("si_study_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto base = TrainTinyBase(dir / "base", /*width=*/8, /*limit_train=*/1024, /*limit_test=*/200);
  ASSERT_TRUE(base.ok()) << base.status().ToString();

  auto config = ParseStudyConfig("model: " + base->checkpoint + R"(
data: {limit_train: 256, limit_test: 200, holdout: 300}
coders: [none, cabac]
ptq: {splits: [stem], bits: [2], granularity: [tensor]}
runs:
  - {name: tail, method: tail, split: stage2, bits: 1, epochs: 1, batch_size: 64, calibration_images: 128}
)",
                                 "tiny study");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  StudyOptions o;
  o.out_dir = (dir / "study").string();
  o.command = "splitinfer experiment --config tiny";
  o.progress = false;
  o.threads = 1;
  ASSERT_TRUE(RunStudy(*config, o).ok());
  auto rows = eval::ReadRows((dir / "study" / "results.jsonl").string());
  ASSERT_TRUE(rows.ok());
  // float + PNG + WebP (OpenCV's lossless image coders, where built) + 2 cells x 2 coders.
#if SPLITINFER_WITH_OPENCV
  const size_t expected_rows = 7;
#else
  const size_t expected_rows = 5;
#endif
  ASSERT_EQ(rows->size(), expected_rows);
  for (const auto& r : *rows) {
    EXPECT_EQ(r.images, 200) << r.run;
    if (r.method == "ptq" || r.method == "tail") {
      EXPECT_GT(r.bytes_per_image, r.header_bytes);
      EXPECT_FALSE(r.pipeline.empty());
    }
    // Scored on the 300 held-out training images too, except the input-image baselines (the
    // float model's score stands for them).
    if (r.method.rfind("input_", 0) == 0) {
      EXPECT_EQ(r.holdout_score, -1) << r.run;
    } else {
      EXPECT_GE(r.holdout_score, 0) << r.run;
      EXPECT_LE(r.holdout_score, 100) << r.run;
    }
  }
  // The two coders of a pipeline send the same symbols: one held-out score per pipeline.
  EXPECT_EQ((*rows)[rows->size() - 1].holdout_score, (*rows)[rows->size() - 2].holdout_score);
  for (const char* f : {"results.csv", "results.json", "report.md"}) {
    EXPECT_TRUE(fs::exists(dir / "study" / f)) << f;
  }
  // The plot needs gnuplot (gnuplot-nox on Debian; optional elsewhere).
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    EXPECT_TRUE(fs::exists(dir / "study" / "plots" / "accuracy_vs_bytes.svg"));
  }
  ASSERT_TRUE(RunStudy(*config, o).ok());
  EXPECT_EQ(eval::ReadRows((dir / "study" / "results.jsonl").string())->size(), expected_rows);  // resumed, nothing repeated

  // Going on elsewhere: with results.jsonl and finished_runs.jsonl alone (the trained runs
  // deleted, a line cut off by a kill at the end), no finished run is trained again and the
  // report names the machine that made them.
  std::ifstream finished_in(dir / "study" / "finished_runs.jsonl");
  std::string finished_text((std::istreambuf_iterator<char>(finished_in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(std::count(finished_text.begin(), finished_text.end(), '\n'), 2) << finished_text;
  EXPECT_NE(finished_text.find("\"run\":\"tail\""), std::string::npos) << finished_text;
  fs::remove_all(dir / "study" / "runs");
  std::ofstream(dir / "study" / "finished_runs.jsonl", std::ios::app) << "{\"run\": \"ta";
  ASSERT_TRUE(RunStudy(*config, o).ok());
  EXPECT_FALSE(fs::exists(dir / "study" / "runs" / "tail"));
  EXPECT_EQ(eval::ReadRows((dir / "study" / "results.jsonl").string())->size(), expected_rows);
  std::ifstream report_in(dir / "study" / "report.md");
  std::string report((std::istreambuf_iterator<char>(report_in)), std::istreambuf_iterator<char>());
  EXPECT_NE(report.find(MachineDescription()), std::string::npos);
  // The base trained on all its images: the held-out choice says so.
  EXPECT_NE(report.find("its checkpoint's train_config holds no data.holdout of 300"), std::string::npos) << report;
  fs::remove_all(dir);
}

// Whether the base held the study's images out is read from its checkpoint: the same count of
// the same dataset (the draw depends on nothing else), another count, no holdout, no checkpoint.
TEST(StudyTest, HeldOutNoteSaysWhetherTheBaseHeldTheImagesOut) {
  const fs::path dir = fs::temp_directory_path() / ("si_study_note_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto base = TrainTinyBase(dir / "base", /*width=*/4, /*limit_train=*/256, /*limit_test=*/100, /*holdout=*/100);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  auto note = [&](const std::string& model, const std::string& data) {
    auto c = ParseStudyConfig("model: " + model + "\ndata: " + data + "\ncoders: [none]\n", "note");
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? HeldOutNote(*c) : std::string("?");
  };
  EXPECT_NE(note(base->checkpoint, "{holdout: 100}").find("trained with the same 100 images held out"),
            std::string::npos);
  EXPECT_NE(note(base->checkpoint, "{holdout: 50}").find("holds no data.holdout of 50"), std::string::npos);
  EXPECT_EQ(note(base->checkpoint, "{limit_test: 100}"), "");
  EXPECT_NE(note("resnet18", "{holdout: 100}").find("not recorded"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace splitinfer::study
