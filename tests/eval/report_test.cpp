#include "eval/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "core/system.h"

namespace splitinfer::eval {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards (the pid keeps parallel ctest processes apart).
class ScopedDir {
 public:
  ScopedDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::path(testing::TempDir()) / ("splitinfer_report_" + std::string(info->test_suite_name()) + "_" +
                                            info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScopedDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void Spit(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

// Sets PATH for one scope: the gnuplot lookup reads it.
class ScopedPath {
 public:
  explicit ScopedPath(const std::string& path) : old_(std::getenv("PATH") ? std::getenv("PATH") : "") {
    ::setenv("PATH", path.c_str(), 1);
  }
  ~ScopedPath() { ::setenv("PATH", old_.c_str(), 1); }

 private:
  std::string old_;
};

bool HaveGnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

ResultRow Row(std::string run, std::string method, std::string split, int bits, std::string granularity,
              std::string coder, double top1, double bytes) {
  ResultRow r;
  r.run = std::move(run);
  r.method = std::move(method);
  r.split = std::move(split);
  r.bits = bits;
  r.granularity = std::move(granularity);
  r.coder = std::move(coder);
  r.score = top1;
  r.float_score = 91.25;
  r.bytes_per_image = bytes;
  r.header_bytes = 12;
  r.order0_bytes = bytes * 0.8;
  r.images = 10000;
  return r;
}

ResultRow FullRow() {
  ResultRow r;
  r.run = "tcl_b2";
  r.method = "tcl";
  r.split = "layer1";
  r.bits = 2;
  r.granularity = "channel";
  r.coder = "lzma";
  r.score = 90.125;
  r.float_score = 91.25;
  r.bytes_per_image = 41.5;
  r.header_bytes = 14.25;
  r.order0_bytes = 30.0625;
  r.images = 10000;
  r.node_params = 1234;
  r.server_params = 56789;
  r.train_seconds = 321.5;
  r.pipeline = "runs/tcl_b2/pipeline.yaml";
  return r;
}

void ExpectSameRow(const ResultRow& a, const ResultRow& b) {
  EXPECT_EQ(a.run, b.run);
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.split, b.split);
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.granularity, b.granularity);
  EXPECT_EQ(a.coder, b.coder);
  EXPECT_EQ(a.score, b.score);
  EXPECT_EQ(a.float_score, b.float_score);
  EXPECT_EQ(a.bytes_per_image, b.bytes_per_image);
  EXPECT_EQ(a.header_bytes, b.header_bytes);
  EXPECT_EQ(a.order0_bytes, b.order0_bytes);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.node_params, b.node_params);
  EXPECT_EQ(a.server_params, b.server_params);
  EXPECT_EQ(a.train_seconds, b.train_seconds);
  EXPECT_EQ(a.pipeline, b.pipeline);
  EXPECT_EQ(a.holdout_score, b.holdout_score);
}

// A small study: float reference, PTQ over bits and coders at two splits, TCL, a shared
// autoencoder (an underscore: must not become a subscript) and the input baselines.
std::vector<ResultRow> SyntheticRows() {
  std::vector<ResultRow> rows;
  rows.push_back(Row("float", "float", "", 0, "", "none", 91.25, 0));
  const double ptq_top1[] = {0, 70.5, 86.0, 0, 90.5, 0, 0, 0, 91.0};
  for (const char* split : {"stem", "layer1"}) {
    for (int bits : {1, 2, 4, 8}) {
      for (const char* coder : {"none", "lzma", "zstd"}) {
        const double raw = 8 * 14 * 14 * bits / 8.0 + 12;
        const double bytes = std::string(coder) == "none" ? raw : std::string(coder) == "lzma" ? raw * 0.5 : raw * 0.6;
        rows.push_back(Row(std::string("ptq_") + split + "_b" + std::to_string(bits), "ptq", split, bits, "tensor",
                           coder, ptq_top1[bits], bytes));
      }
    }
  }
  rows.push_back(Row("ptq_stem_b2_ch", "ptq", "stem", 2, "channel", "lzma", 87.0, 120));
  rows.push_back(Row("tcl_b1", "tcl", "layer1", 1, "tensor", "lzma", 88.5, 30));
  rows.push_back(Row("tcl_b1", "tcl", "layer1", 1, "tensor", "zstd", 88.5, 31));
  rows.push_back(Row("shared_ae_b2", "shared_ae", "layer1", 2, "tensor", "lzma", 89.75, 60));
  rows.push_back(Row("input_png", "input_png", "", 0, "", "png", 91.25, 350));
  rows.push_back(Row("input_webp", "input_webp", "", 0, "", "webp", 91.25, 290));
  return rows;
}

TEST(ResultRowJsonTest, RoundTripsEveryField) {
  const ResultRow r = FullRow();
  auto back = RowFromJson(nlohmann::json::parse(ToJson(r).dump()), "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameRow(*back, r);
}

TEST(ResultRowJsonTest, MissingOrMistypedKeysAreDataLossNamingTheKey) {
  nlohmann::json j = ToJson(FullRow());
  j.erase("top1");
  auto missing = RowFromJson(j, "results.jsonl line 7");
  EXPECT_EQ(missing.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(missing.status().message().find("\"top1\""), std::string::npos) << missing.status().message();
  EXPECT_NE(missing.status().message().find("results.jsonl line 7"), std::string::npos);

  j = ToJson(FullRow());
  j["bits"] = "two";
  auto mistyped = RowFromJson(j, "x");
  EXPECT_EQ(mistyped.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(mistyped.status().message().find("\"bits\""), std::string::npos) << mistyped.status().message();

  j = ToJson(FullRow());
  j["top1"] = 140.0;
  EXPECT_EQ(RowFromJson(j, "x").status().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(RowFromJson(nlohmann::json::array(), "x").status().code(), ErrorCode::kDataLoss);
}

TEST(ResultRowJsonTest, CostAndProvenanceKeysAreOptional) {
  nlohmann::json j = ToJson(FullRow());
  for (const char* key :
       {"header_bytes", "order0_bytes", "node_params", "server_params", "train_seconds", "pipeline"}) {
    j.erase(key);
  }
  auto r = RowFromJson(j, "old log");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->node_params, 0);
  EXPECT_EQ(r->pipeline, "");
  EXPECT_EQ(r->score, 90.125);
}

TEST(ResultsLogTest, AppendThenReadGivesTheRowsInOrder) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  const std::string log = (dir / "results.jsonl").string();
  auto none = ReadRows(log);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());  // a study that has not started yet

  std::vector<ResultRow> rows = {FullRow(), Row("ptq_b1", "ptq", "stem", 1, "tensor", "zstd", 70.5, 60),
                                 Row("input_png", "input_png", "", 0, "", "png", 91.25, 350)};
  for (const auto& r : rows) ASSERT_TRUE(AppendRow(log, r).ok());
  auto back = ReadRows(log);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) ExpectSameRow((*back)[i], rows[i]);
}

TEST(ResultsLogTest, AppendRejectsNonFiniteNumbers) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  ResultRow r = FullRow();
  r.bytes_per_image = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(AppendRow((dir / "r.jsonl").string(), r).code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir / "r.jsonl"));
}

TEST(ResultsLogTest, CorruptMiddleLineIsDataLossNamingTheLine) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  const fs::path log = dir / "results.jsonl";
  const std::string good = ToJson(FullRow()).dump();
  Spit(log, good + "\n{\"run\": \"x\", \"meth\n" + good + "\n");
  auto r = ReadRows(log.string());
  EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(log.string()), std::string::npos) << r.status().message();

  // Valid JSON that is not a valid row is corrupt too, even on the last line.
  nlohmann::json bad = ToJson(FullRow());
  bad.erase("coder");
  Spit(log, good + "\n\n" + bad.dump() + "\n");
  r = ReadRows(log.string());
  EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(r.status().message().find("line 3"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("\"coder\""), std::string::npos) << r.status().message();
}

TEST(ResultsLogTest, TruncatedLastLineIsSkippedAndRepairedByTheNextAppend) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  const fs::path log = dir / "results.jsonl";
  const std::string good = ToJson(FullRow()).dump();
  Spit(log, good + "\n" + good + "\n" + good.substr(0, good.size() / 2));  // killed mid-write
  auto r = ReadRows(log.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 2u);

  // The resumed study appends: the fragment must not fuse with the new row.
  ASSERT_TRUE(AppendRow(log.string(), Row("next", "ptq", "stem", 4, "tensor", "lzma", 90.5, 60)).ok());
  r = ReadRows(log.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[2].run, "next");

  // A complete last row that only lacks its newline (hand-edited) is kept, by both.
  Spit(log, good);
  r = ReadRows(log.string());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 1u);
  ASSERT_TRUE(AppendRow(log.string(), FullRow()).ok());
  r = ReadRows(log.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 2u);
}

TEST(ExportTest, CsvQuotesFieldsWithCommasAndQuotes) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  ResultRow r = Row("a,b", "ptq", "stem", 2, "tensor", "lzma", 90.5, 41.25);
  r.pipeline = "say \"hi\"";
  r.order0_bytes = 0.1;
  ASSERT_TRUE(WriteCsv((dir / "r.csv").string(), {r}).ok());
  EXPECT_EQ(Slurp(dir / "r.csv"),
            "run,method,split,bits,granularity,coder,top1,float_top1,bytes_per_image,header_bytes,order0_bytes,"
            "images,node_params,server_params,train_seconds,pipeline\n"
            "\"a,b\",ptq,stem,2,tensor,lzma,90.5,91.25,41.25,12.0,0.1,10000,0,0,0.0,\"say \"\"hi\"\"\"\n");
}

// A study with a held-out split scores every row there too: holdout_top1 in the log and the
// JSON, a last CSV column (empty for rows without it); rows without the key read as unmeasured.
TEST(ExportTest, HeldOutScoresRoundTripAndGetTheirColumn) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  ResultRow r = Row("tcl_b2_seed1", "tcl", "stem", 2, "tensor", "cabac", 92.5, 500);
  r.holdout_score = 93.75;
  const ResultRow plain = Row("input_png", "input_png", "", 0, "", "png", 91.25, 350);
  const std::string log = (dir / "results.jsonl").string();
  ASSERT_TRUE(AppendRow(log, r).ok());
  ASSERT_TRUE(AppendRow(log, plain).ok());
  auto back = ReadRows(log);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 2u);
  ExpectSameRow((*back)[0], r);
  EXPECT_EQ((*back)[1].holdout_score, -1);
  EXPECT_EQ(ToJson(r)["holdout_top1"], 93.75);
  EXPECT_FALSE(ToJson(plain).contains("holdout_top1"));
  ASSERT_TRUE(WriteCsv((dir / "r.csv").string(), {r, plain}).ok());
  const std::string csv = Slurp(dir / "r.csv");
  EXPECT_NE(csv.find(",pipeline,holdout_top1\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",93.75\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("input_png,input_png,,0,,png,91.25,91.25,350.0,12.0,280.0,10000,0,0,0.0,,\n"), std::string::npos) << csv;
  r.holdout_score = 101;
  auto bad = AppendRow(log, r);
  EXPECT_EQ(bad.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("holdout_top1"), std::string::npos);
}

// A detector's rows carry its metric: AP50 in the keys and columns named after it, AP@[.50:.95]
// beside it; rows from before metrics read as top-1; one table holds one metric.
TEST(ExportTest, DetectorRowsAreNamedByTheirMetric) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  ResultRow r = Row("ptq_stage1_b2_tensor", "ptq", "stage1", 2, "tensor", "cabac", 61.5, 310.25);
  r.metric = "ap50";
  r.float_score = 63.0;
  r.ap = 33.5;
  const nlohmann::json j = ToJson(r);
  EXPECT_EQ(j.at("metric"), "ap50");
  EXPECT_EQ(j.at("ap50"), 61.5);
  EXPECT_EQ(j.at("float_ap50"), 63.0);
  EXPECT_FALSE(j.contains("top1"));
  auto back = RowFromJson(j, "d.json");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->metric, "ap50");
  EXPECT_EQ(back->score, 61.5);
  EXPECT_EQ(back->ap, 33.5);
  nlohmann::json no_ap = j;
  no_ap.erase("ap");
  EXPECT_NE(RowFromJson(no_ap, "d.json").status().message().find("\"ap\""), std::string::npos);
  nlohmann::json other = j;
  other["metric"] = "miou";
  EXPECT_NE(RowFromJson(other, "d.json").status().message().find("must be top1 or ap50"), std::string::npos);
  EXPECT_EQ(RowFromJson(ToJson(FullRow()), "c.json")->metric, "top1");
  ASSERT_TRUE(WriteCsv((dir / "d.csv").string(), {r}).ok());
  const std::string csv = Slurp(dir / "d.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "run,method,split,bits,granularity,coder,ap50,float_ap50,bytes_per_image,header_bytes,order0_bytes,"
            "images,node_params,server_params,train_seconds,pipeline,ap");
  EXPECT_EQ(WriteCsv((dir / "m.csv").string(), {r, FullRow()}).code(), ErrorCode::kInvalidArgument);
  ReportOptions o;
  o.plots = false;
  ASSERT_TRUE(WriteReport(dir.string(), {r}, o).ok());
  EXPECT_NE(Slurp(dir / "report.md").find("| AP50 % |"), std::string::npos);
}

TEST(ExportTest, JsonIsAnArrayOfRows) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  const auto rows = SyntheticRows();
  ASSERT_TRUE(WriteJson((dir / "r.json").string(), rows).ok());
  const auto j = nlohmann::json::parse(Slurp(dir / "r.json"));
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), rows.size());
  ExpectSameRow(RowFromJson(j[3], "r.json").value(), rows[3]);
}

TEST(ExportTest, UnwritablePathIsIoErrorNamingIt) {
  const Status s = WriteCsv("/nonexistent-dir/r.csv", {FullRow()});
  EXPECT_EQ(s.code(), ErrorCode::kIo);
  EXPECT_NE(s.message().find("/nonexistent-dir/r.csv"), std::string::npos);
}

TEST(WriteReportTest, TablesAndPlots) {
  const ScopedDir tmp;
  const fs::path dir = tmp.path() / "report";  // created by WriteReport
  ReportOptions o;
  o.command = "splitinfer study --grid configs/study.yaml";
  o.machine = "2-core x86-64 CPU, no GPU";
  const Status s = WriteReport(dir.string(), SyntheticRows(), o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const std::string md = Slurp(dir / "report.md");
  EXPECT_EQ(md.rfind("# Rate-accuracy study\n", 0), 0u);
  EXPECT_NE(md.find(o.command), std::string::npos);
  EXPECT_NE(md.find(o.machine), std::string::npos);
  // Summary: best top-1 within each budget; tcl_b1 (30 B, 88.5 %) wins <= 32 B over every ptq
  // row, and the input baselines are within no budget below 256 B.
  EXPECT_NE(md.find("| <= 32 B | tcl | layer1 | 1 | lzma | 88.50 | 2.75 | 30.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| <= 64 B | shared_ae | layer1 | 2 | lzma | 89.75 | 1.50 | 60.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| overall | float | - | - | none | 91.25 | 0.00 | 0.0 |"), std::string::npos) << md;
  // Each method's most accurate row against the cheapest lossless input image (WebP, 290 B).
  EXPECT_NE(md.find("The cheapest lossless input image is input_webp: 290.0 bytes at 91.25 %"), std::string::npos) << md;
  EXPECT_NE(md.find("| ptq | stem | 8 | lzma | 91.00 | 0.25 | 790.0 | does not beat it: more bytes |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| tcl | layer1 | 1 | lzma | 88.50 | 2.75 | 30.0 | does not beat it at equal accuracy: 9.7x fewer "
                    "bytes but 2.75 pp less accurate |"),
            std::string::npos) << md;
  // Full table: every row, in study order (float first, then ptq, ..., the input baselines last).
  for (const auto& r : SyntheticRows()) EXPECT_NE(md.find("| " + r.run + " |"), std::string::npos) << r.run;
  EXPECT_LT(md.find("| float | float |"), md.find("| ptq_stem_b1 | ptq |"));
  EXPECT_LT(md.find("| ptq_stem_b8 | ptq |"), md.find("| ptq_layer1_b1 | ptq |"));  // split order kept
  EXPECT_LT(md.find("| ptq_layer1_b8 | ptq |"), md.find("| tcl_b1 | tcl |"));
  EXPECT_LT(md.find("| tcl_b1 | tcl |"), md.find("| input_png | input_png |"));
  EXPECT_NE(md.find("| ptq_stem_b2 | ptq | stem | 2 | tensor | lzma | 86.00 | 5.25 | 202.0 | 12.0 | 161.6 | 0 | 0 |"),
            std::string::npos)
      << md;

  if (!HaveGnuplot()) GTEST_SKIP() << "gnuplot not on PATH: plots not checked";
  for (const char* name : {"accuracy_vs_bytes", "accuracy_vs_bits", "bytes_per_coder"}) {
    const std::string svg = Slurp(dir / "plots" / (std::string(name) + ".svg"));
    ASSERT_FALSE(svg.empty()) << name;
    EXPECT_TRUE(svg.rfind("<?xml", 0) == 0 || svg.rfind("<svg", 0) == 0) << name;
    EXPECT_TRUE(fs::file_size(dir / "plots" / (std::string(name) + ".gp")) > 0) << name;
    EXPECT_TRUE(fs::file_size(dir / "plots" / (std::string(name) + ".dat")) > 0) << name;
    EXPECT_NE(md.find(std::string("(plots/") + name + ".svg)"), std::string::npos) << name;
  }
  // Pareto: per run only its smallest coder (lzma, 0.5x) is plotted, never "none".
  const std::string dat = Slurp(dir / "plots" / "accuracy_vs_bytes.dat");
  EXPECT_NE(dat.find("ptq_stem_b2 lzma"), std::string::npos) << dat;
  EXPECT_EQ(dat.find("ptq_stem_b2 none"), std::string::npos) << dat;
  // The scripts name their files without a folder, so a moved (or committed) folder re-plots.
  EXPECT_EQ(Slurp(dir / "plots" / "accuracy_vs_bits.gp").find(dir.string()), std::string::npos);
  const fs::path moved = dir / "moved plots";
  fs::rename(dir / "plots", moved);
  fs::remove(moved / "accuracy_vs_bits.svg");
  const auto gnuplot = FindOnPath("gnuplot");
  ASSERT_TRUE(gnuplot.has_value());
  auto replot = RunGnuplot(*gnuplot, (moved / "accuracy_vs_bits.gp").string(), (moved / "accuracy_vs_bits.svg").string());
  EXPECT_TRUE(replot.ok()) << replot.ToString();
}

TEST(SettingOfTest, DropsOnlyTheSeedTag) {
  EXPECT_EQ(SettingOf("tcl_b2_seed3_recal"), "tcl_b2_recal");
  EXPECT_EQ(SettingOf("tcl_b2_seed3"), "tcl_b2");
  EXPECT_EQ(SettingOf("qcnet_b1_stem"), "qcnet_b1_stem");      // "_stem" is not a seed
  EXPECT_EQ(SettingOf("ae_s3"), "ae_s3");                      // a run of the scenes study: split s3
  EXPECT_EQ(SettingOf("ae_s3_seed2"), "ae_s3");
  EXPECT_EQ(SettingOf("shared_ae_stage1_b2"), "shared_ae_stage1_b2");
}

// Three seeds of one setting, two of another, one PTQ row, each with held-out scores: the
// report chooses per method and bit width on the held-out mean and reports the test mean.
TEST(WriteReportTest, SeedsAreAveragedAndSettingsChosenOnHeldOutImages) {
  const ScopedDir tmp;
  std::vector<ResultRow> rows;
  auto add = [&](const std::string& run, const std::string& coder, double test, double held, double bytes) {
    ResultRow r = Row(run, "tcl", "stem", 2, "tensor", coder, test, bytes);
    r.holdout_score = held;
    rows.push_back(r);
  };
  add("tcl_l50_b2_seed1", "zstd", 90.0, 91.0, 100);
  add("tcl_l50_b2_seed1", "cabac", 90.0, 91.0, 80);  // the cheaper coder stands for the setting
  add("tcl_l50_b2_seed2", "cabac", 91.0, 92.0, 82);
  add("tcl_l50_b2_seed3", "cabac", 92.0, 93.0, 84);
  add("tcl_l500_b2_seed1", "cabac", 95.0, 90.0, 80);  // best on the test set, worse held out
  add("tcl_l500_b2_seed2", "cabac", 95.0, 90.5, 80);
  ResultRow ptq = Row("ptq_stem_b2_tensor", "ptq", "stem", 2, "tensor", "cabac", 89.0, 90);
  ptq.holdout_score = 89.5;
  rows.push_back(ptq);
  ReportOptions o;
  o.plots = false;
  ASSERT_TRUE(WriteReport(tmp.path().string(), rows, o).ok());
  const std::string md = Slurp(tmp.path() / "report.md");
  EXPECT_NE(md.find("| tcl | 2 | tcl_l50_b2 | stem | tensor | cabac | 3 | 92.00 ± 1.00 | 91.00 ± 1.00 | 0.25 | 82.0 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| ptq | 2 | ptq_stem_b2_tensor | stem | tensor | cabac | 1 | 89.50 | 89.00 | 2.25 | 90.0 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| tcl_l500_b2 | tcl | stem | 2 | cabac | 2 | 95.00 ± 0.00 | 95.00 | 95.00 | 90.25 ± 0.25 | 80.0 |"),
            std::string::npos) << md;
  EXPECT_EQ(md.find("| ptq_stem_b2_tensor | ptq | stem | 2 | cabac | 1 |"), std::string::npos) << md;  // one seed: not repeated
  // Without held-out scores or seeds, neither section appears.
  const ScopedDir plain;
  ASSERT_TRUE(WriteReport(plain.path().string(), SyntheticRows(), o).ok());
  const std::string md2 = Slurp(plain.path() / "report.md");
  EXPECT_EQ(md2.find("held-out training images"), std::string::npos);
  EXPECT_EQ(md2.find("Repeated with several seeds"), std::string::npos);
}

TEST(WriteReportTest, PlotsOffWritesNoSvg) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  ReportOptions o;
  o.plots = false;
  ASSERT_TRUE(WriteReport(dir.string(), SyntheticRows(), o).ok());
  EXPECT_FALSE(fs::exists(dir / "plots"));
  EXPECT_NE(Slurp(dir / "report.md").find("Plots skipped"), std::string::npos);
}

TEST(WriteReportTest, WithoutGnuplotTheScriptsAreWrittenButNoSvg) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  const fs::path empty_bin = dir / "bin";
  fs::create_directories(empty_bin);
  {
    ScopedPath path(empty_bin.string());
    ASSERT_TRUE(WriteReport((dir / "out").string(), SyntheticRows(), {}).ok());
  }
  const std::string md = Slurp(dir / "out" / "report.md");
  EXPECT_NE(md.find("Plots skipped: gnuplot is not on PATH"), std::string::npos) << md;
  EXPECT_EQ(md.find(".svg)"), std::string::npos) << md;
  EXPECT_TRUE(fs::exists(dir / "out" / "plots" / "accuracy_vs_bytes.gp"));
  EXPECT_FALSE(fs::exists(dir / "out" / "plots" / "accuracy_vs_bytes.svg"));
}

TEST(WriteReportTest, FailingGnuplotIsInternalNamingTheScript) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  const fs::path bin = dir / "bin";
  fs::create_directories(bin);
  Spit(bin / "gnuplot", "#!/bin/sh\necho 'line 3: undefined variable' >&2\nexit 3\n");
  fs::permissions(bin / "gnuplot", fs::perms::owner_all);
  Status s;
  {
    ScopedPath path(bin.string());
    s = WriteReport((dir / "out").string(), SyntheticRows(), {});
  }
  EXPECT_EQ(s.code(), ErrorCode::kInternal);
  EXPECT_NE(s.message().find("accuracy_vs_bytes.gp"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("undefined variable"), std::string::npos) << s.message();
}

// The budgets follow the study's sizes: from the cheapest row up to the cheapest input image
// (a detector's scenes are kilobytes, Fashion-MNIST's frames tens of bytes).
TEST(WriteReportTest, BudgetsSpanTheStudysSizes) {
  const ScopedDir tmp;
  std::vector<ResultRow> rows = {Row("float", "float", "", 0, "", "none", 67.9, 0),
                                 Row("ptq_a", "ptq", "stage4", 2, "tensor", "cabac", 64.2, 648),
                                 Row("ptq_b", "ptq", "stage4", 4, "tensor", "cabac", 67.4, 1171),
                                 Row("input_png", "input_png", "", 0, "", "png", 67.9, 11376)};
  ASSERT_TRUE(WriteReport(tmp.path().string(), rows, {}).ok());
  const std::string md = Slurp(tmp.path() / "report.md");
  EXPECT_EQ(md.find("| <= 512 B |"), std::string::npos) << md;  // nothing is that small
  EXPECT_NE(md.find("| <= 1024 B | ptq | stage4 | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| <= 2048 B | ptq | stage4 | 4 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| <= 16384 B |"), std::string::npos) << md;  // past the input image
  EXPECT_EQ(md.find("| <= 32768 B |"), std::string::npos) << md;
}

TEST(WriteReportTest, EmptyStudyStillWritesAReport) {
  const ScopedDir tmp;
  const fs::path& dir = tmp.path();
  ASSERT_TRUE(WriteReport(dir.string(), {}, {}).ok());
  const std::string md = Slurp(dir / "report.md");
  EXPECT_NE(md.find("| <= 32 B | (nothing within budget)"), std::string::npos) << md;
  EXPECT_NE(md.find("No accuracy_vs_bytes plot"), std::string::npos) << md;
}

}  // namespace
}  // namespace splitinfer::eval
