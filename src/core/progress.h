// Progress reporting for long loops (training, evaluation, experiments).
//
// On a terminal: one line redrawn in place with a bar, counters and ETA. Elsewhere (CI logs,
// `nohup ... > log`): a plain line at most every `plain_interval_s` seconds and at the end,
// because carriage-return animations turn log files into megabytes of noise.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace splitinfer {

class ProgressBar {
 public:
  // `out` is usually stderr; `label` prefixes every line ("epoch 3/30").
  ProgressBar(std::FILE* out, std::string label, int64_t total, double plain_interval_s = 30.0);
  // `info` is appended: "loss 0.312 acc 89.1%". `items` counts units for the throughput
  // figure (images), which may differ from steps.
  void update(int64_t done, int64_t items, const std::string& info);
  void finish(const std::string& info);

  static bool IsTerminal(std::FILE* f);
  static std::string FormatDuration(double seconds);  // "1:02:03" or "02:03"

 private:
  std::string line(int64_t done, const std::string& info, double elapsed) const;

  std::FILE* out_;
  std::string label_;
  int64_t total_;
  double interval_;
  bool tty_;
  int64_t items_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace splitinfer
