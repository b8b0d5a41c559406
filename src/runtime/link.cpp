#include "runtime/link.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <thread>

namespace splitinfer::runtime {

namespace {

// Splits "12.5MB/s" into 12.5 and "MB/s"; false when there is no leading number.
bool SplitNumber(const std::string& text, double& value, std::string& unit) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return false;
  try {
    size_t used = 0;
    value = std::stod(text.substr(0, i), &used);
    if (used != i) return false;
  } catch (...) {
    return false;
  }
  unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  return std::isfinite(value);
}

}  // namespace

Result<double> ParseRate(const std::string& text) {
  if (text == "0" || text == "none" || text == "unlimited") return 0.0;
  double v = 0;
  std::string unit;
  const std::string help = "'; write e.g. 1MB/s, 500kB/s, 2.5MiB/s or 10Mbit/s (MB = 10^6 bytes)";
  if (!SplitNumber(text, v, unit)) return InvalidArgument("link rate '" + text + help);
  struct U {
    const char* name;
    double bytes;
  };
  static const U kUnits[] = {{"B/s", 1},          {"kB/s", 1e3},        {"KB/s", 1e3},         {"MB/s", 1e6},
                             {"GB/s", 1e9},       {"KiB/s", 1024.0},    {"MiB/s", 1048576.0},  {"bit/s", 0.125},
                             {"kbit/s", 125.0},   {"Mbit/s", 125000.0}, {"Gbit/s", 125000000.0}};
  for (const auto& u : kUnits) {
    if (unit == u.name) {
      if (v <= 0) return InvalidArgument("link rate '" + text + "' must be positive (or 'none' for no limit)");
      return v * u.bytes;
    }
  }
  return InvalidArgument("unknown unit in link rate '" + text + help);
}

Result<double> ParseDuration(const std::string& text) {
  if (text == "0") return 0.0;
  double v = 0;
  std::string unit;
  const std::string help = "'; write e.g. 10ms, 0.5s or 250us";
  if (!SplitNumber(text, v, unit)) return InvalidArgument("duration '" + text + help);
  if (unit == "s") return v;
  if (unit == "ms") return v * 1e-3;
  if (unit == "us") return v * 1e-6;
  return InvalidArgument("unknown unit in duration '" + text + help);
}

std::string FormatRate(double r) {
  if (r <= 0) return "unlimited";
  char buf[64];
  if (r >= 1e6) std::snprintf(buf, sizeof buf, "%g MB/s", r / 1e6);
  else if (r >= 1e3) std::snprintf(buf, sizeof buf, "%g kB/s", r / 1e3);
  else std::snprintf(buf, sizeof buf, "%g B/s", r);
  return buf;
}

LinkEmulator::LinkEmulator(LinkOptions options)
    : options_(options), tokens_(options.burst_bytes), last_(Clock::now()), free_at_(last_), reply_free_at_(last_) {}

LinkEmulator::Clock::time_point LinkEmulator::Schedule(uint64_t bytes, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto one_way = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.rtt_s / 2));
  if (options_.rate_bytes_per_s <= 0) return now + one_way;
  const double rate = options_.rate_bytes_per_s;
  // A message starts when the previous one has left (FIFO), then needs `bytes` tokens.
  const auto start = std::max(now, free_at_);
  tokens_ = std::min(options_.burst_bytes,
                     tokens_ + rate * std::chrono::duration<double>(start - last_).count());
  last_ = start;
  double wait_s = 0;
  if (tokens_ >= static_cast<double>(bytes)) {
    tokens_ -= static_cast<double>(bytes);
  } else {
    wait_s = (static_cast<double>(bytes) - tokens_) / rate;
    tokens_ = 0;
    last_ = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait_s));
  }
  free_at_ = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait_s));
  return free_at_ + one_way;
}

double LinkEmulator::Transmit(uint64_t bytes) {
  const auto now = Clock::now();
  const auto arrive = Schedule(bytes, now);
  std::this_thread::sleep_until(arrive);
  return std::chrono::duration<double>(Clock::now() - now).count();
}

double LinkEmulator::Receive(uint64_t bytes) {
  const auto now = Clock::now();
  double s = options_.rtt_s / 2;
  if (options_.shape_replies && options_.rate_bytes_per_s > 0) {
    // The reply direction has its own (idle, small-message) queue: serialisation only.
    std::lock_guard<std::mutex> lock(mu_);
    const auto start = std::max(now, reply_free_at_);
    const double tx = static_cast<double>(bytes) / options_.rate_bytes_per_s;
    reply_free_at_ = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(tx));
    s += std::chrono::duration<double>(reply_free_at_ - now).count();
  }
  if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
  return std::chrono::duration<double>(Clock::now() - now).count();
}

}  // namespace splitinfer::runtime
