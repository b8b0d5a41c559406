// Results of the rate-accuracy study: one row per (grid cell, lossless coder), a resumable
// JSON-lines log, CSV/JSON exports and the human report (report.md + gnuplot SVGs).
//
// The study appends a row as soon as a cell finishes, so a run killed after hours resumes from
// the log instead of starting over; that is why ReadRows forgives a truncated last line (the
// write the kill interrupted) but nothing else. Every plot ships with its .gp script and .dat
// data so anyone can re-plot or restyle without re-running the study. No LibTorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace splitinfer::eval {

struct ResultRow {
  std::string run;          // grid cell's run name, e.g. "tcl_b2"; unique together with coder
  std::string method;       // float | ptq | tail | tcl | qat | ae | qcnet | shared_ae | per_point_ae | input_png | input_webp
  std::string split;        // split point name; "" for input-image baselines
  int bits = 0;             // 0 = float / not quantized
  std::string granularity;  // tensor | channel | region | "" (n/a)
  std::string coder;        // none | lzma | zstd | cabac | png | webp
  // The task's metric, which every table, plot and the planner rank by: "top1" (classifiers:
  // top-1 accuracy) or "ap50" (detectors: COCO AP at IoU 0.5). Both in percent (AP50 x 100, so
  // that "points" mean the same for both). In the files the keys are the metric's names:
  // top1 / float_top1, or metric "ap50" with ap50 / float_ap50 (rows without "metric" are top-1).
  std::string metric = "top1";
  double score = 0;         // percent on the full test set
  double float_score = 0;   // the float model's (percent), for the "drop" column; 0 = unknown
  // The metric on the study's held-out training images (data.holdout), for choosing settings
  // without the test set; key holdout_<metric> in the files; -1 = not measured (no key).
  double holdout_score = -1;
  double ap = -1;           // detectors: COCO AP@[.50:.95] in percent; -1 = not a detector
  double bytes_per_image = 0;  // mean frame bytes on the wire, header included
  double header_bytes = 0;     // mean header + side-info bytes per frame
  double order0_bytes = 0;     // order-0 entropy estimate of the coded symbols per image (bytes)
  int64_t images = 0;
  int64_t node_params = 0;     // parameters the method adds on the node (encoder)
  int64_t server_params = 0;   // parameters the method adds on the server (decoder / compensator)
  double train_seconds = 0;
  std::string pipeline;        // path of the pipeline YAML for trained cells ("" if none)
};

// The setting a row's run repeats with other seeds: the run name without the "_seed<N>" tag
// that a study's `seed: [...]` list adds ("tcl_b2_seed3_recal" -> "tcl_b2_recal"). A distinct
// word, so that run names of their own such as "ae_s3" (a split called s3) are left alone.
std::string SettingOf(const std::string& run);

// One JSON object whose keys are the field names above.
nlohmann::json ToJson(const ResultRow& r);
// DATA_LOSS naming `origin` and the missing or mistyped key. run, method, split, bits,
// granularity, coder, the metric's two keys (top1 and float_top1 unless "metric" names another),
// bytes_per_image and images are required; the cost and
// provenance keys (header_bytes, order0_bytes, node_params, server_params, train_seconds,
// pipeline) default to 0 / "" so that logs written before a key existed still load.
Result<ResultRow> RowFromJson(const nlohmann::json& j, const std::string& origin);

// Appends one JSON line (the study's resumable log), creating the file if needed. If the file
// ends in a partial line (a run killed mid-write) that line is cut off first, with a warning on
// stderr, so the new row does not fuse with it. INVALID_ARGUMENT for a non-finite number;
// IO error naming the path on failure.
Status AppendRow(const std::string& jsonl_path, const ResultRow& row);
// Reads a results.jsonl in file order (duplicates are not merged). A missing file is an empty
// vector; blank lines are ignored; a corrupt line is DATA_LOSS naming the file and line number,
// except a last line that has no newline and is not valid JSON (a run killed mid-write), which
// is skipped with a warning on stderr.
Result<std::vector<ResultRow>> ReadRows(const std::string& jsonl_path);

// A header line with the field names, then one line per row (RFC 4180: fields holding a comma,
// quote or line break are quoted, quotes doubled; numbers in shortest round-trip form).
Status WriteCsv(const std::string& path, const std::vector<ResultRow>& rows);
// A JSON array of ToJson(row), pretty-printed.
Status WriteJson(const std::string& path, const std::vector<ResultRow>& rows);

struct ReportOptions {
  std::string title = "Rate-accuracy study";
  std::string command;      // the exact command that produced it, printed at the top of report.md
  std::string machine;      // e.g. "2-core x86-64 CPU, no GPU" (printed)
  // Whether the base model saw the held-out images (study/experiment.h: HeldOutNote); empty:
  // "may have".
  std::string holdout_note;
  bool plots = true;
};

// Writes OUT/report.md and, with plots on and gnuplot on PATH,
// OUT/plots/{accuracy_vs_bytes,accuracy_vs_bits,bytes_per_coder}.{svg,gp,dat}.
// report.md: title, command, machine; "best accuracy at <= 32/64/128/256 bytes per image and
// overall" (rows without a measured size, bytes_per_image <= 0, count only for "overall"); the
// full table sorted by method (study order: float, ptq, tail, tcl, ..., then unknown methods
// alphabetically), split (in order of first appearance: the model's depth order in the study), bits,
// granularity, coder, run; the plots as relative markdown images.
// Plots:
//  - accuracy_vs_bytes: top-1 vs bytes per image (log x), one series per method with, per run,
//    only its smallest-bytes coder; the input baselines stand out; the float model's top-1 (the
//    best "float" row, else the first non-zero float score) as a dashed horizontal line;
//  - accuracy_vs_bits: best top-1 per method and bits (1..8);
//  - bytes_per_coder: mean bytes per image per coder and bits (log y) over the ptq rows of the
//    first split (in row order) that has ptq rows, granularity "tensor" if it has any.
// A plot with no data is skipped with a line in report.md. Without gnuplot the .gp/.dat files
// are still written (so the plots can be made elsewhere) and report.md says the plots were
// skipped; with plots off nothing under plots/ is written. A gnuplot that exits non-zero is
// INTERNAL naming the script and quoting its output; an unwritable file is IO naming the path.
Status WriteReport(const std::string& out_dir, const std::vector<ResultRow>& rows, const ReportOptions& options);

// `s` as a gnuplot single-quoted string (a quote inside doubled): for any text a script takes
// from data (titles, machine names, paths), so that nothing in it is read as gnuplot commands.
std::string GnuplotQuote(const std::string& s);

// Runs gnuplot on `script` from the script's own folder (no shell between: `gnuplot -e "cd
// 'DIR'" NAME.gp`), so scripts name their data and output by file name alone and a folder of
// plots can be moved or committed and re-plotted there with `gnuplot NAME.gp`. Checks that it
// wrote `svg`; INTERNAL with gnuplot's output when it fails.
Status RunGnuplot(const std::string& gnuplot, const std::string& script, const std::string& svg);

}  // namespace splitinfer::eval
