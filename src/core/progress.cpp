#include "core/progress.h"

#include <unistd.h>

#include <algorithm>

namespace splitinfer {

ProgressBar::ProgressBar(std::FILE* out, std::string label, int64_t total, double plain_interval_s)
    : out_(out),
      label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      interval_(plain_interval_s),
      tty_(IsTerminal(out)),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

bool ProgressBar::IsTerminal(std::FILE* f) { return f != nullptr && isatty(fileno(f)) == 1; }

std::string ProgressBar::FormatDuration(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "--:--";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  }
  return buf;
}

std::string ProgressBar::line(int64_t done, const std::string& info, double elapsed) const {
  const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
  const double rate = elapsed > 0 ? static_cast<double>(items_) / elapsed : 0.0;
  const double eta = frac > 0 ? elapsed * (1.0 - frac) / frac : -1.0;
  char head[128];
  std::string bar;
  if (tty_) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(frac * kWidth);
    bar = "[" + std::string(filled, '=') + (filled < kWidth ? ">" : "") +
          std::string(std::max(0, kWidth - filled - 1), ' ') + "] ";
  }
  std::snprintf(head, sizeof head, "%lld/%lld ", static_cast<long long>(done), static_cast<long long>(total_));
  char tail[96];
  std::snprintf(tail, sizeof tail, " %.0f img/s elapsed %s ETA %s", rate, FormatDuration(elapsed).c_str(),
                FormatDuration(eta).c_str());
  return label_ + " " + bar + head + info + tail;
}

void ProgressBar::update(int64_t done, int64_t items, const std::string& info) {
  items_ = items;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (tty_) {
    if (since < 0.1 && done < total_) return;  // redraw at most 10 times a second
    std::fprintf(out_, "\r\033[K%s", line(done, info, elapsed).c_str());
  } else {
    if (since < interval_) return;
    std::fprintf(out_, "%s\n", line(done, info, elapsed).c_str());
  }
  std::fflush(out_);
  last_print_ = now;
}

void ProgressBar::finish(const std::string& info) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(out_, "%s%s\n", tty_ ? "\r\033[K" : "", line(total_, info, elapsed).c_str());
  std::fflush(out_);
}

}  // namespace splitinfer
