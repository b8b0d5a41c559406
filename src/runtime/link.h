// runtime/link: an emulated slow link on the node's sending path, in process, so that 1-10 MB/s
// links with a given round-trip time can be measured on one machine (and in CI) without root.
//
//   bytes --token bucket (rate, burst)--> serialisation delay --+ one-way delay (rtt/2)--> peer
//
// The node calls Transmit(bytes) before each request (and ReceiveDelay after each reply): it
// sleeps until the last byte would have arrived at the far end. A token bucket as tc's tbf:
// tokens accrue at `rate` bytes per second up to `burst`; a message waits until enough tokens
// have accrued for all of its bytes. No LibTorch.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "core/status.h"

namespace splitinfer::runtime {

struct LinkOptions {
  double rate_bytes_per_s = 0;  // 0 = unlimited
  double rtt_s = 0;             // added round-trip delay; half is added in each direction
  double burst_bytes = 1500;    // bucket depth: one Ethernet MTU, as a tight tbf
  // The reply's bytes are charged too when set (a symmetric link); replies are small.
  bool shape_replies = true;
};

// "1MB/s", "500kB/s", "10Mbit/s", "2.5MiB/s", "0" / "none" (unlimited). MB = 10^6 bytes.
Result<double> ParseRate(const std::string& text);
// "10ms", "0.5s", "250us", "0".
Result<double> ParseDuration(const std::string& text);
std::string FormatRate(double bytes_per_s);

class LinkEmulator {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LinkEmulator(LinkOptions options = {});

  // The time the last of `bytes` arrives at the peer if sent now (advances the bucket).
  Clock::time_point Schedule(uint64_t bytes, Clock::time_point now);
  // Schedule + sleep until then; returns the seconds slept.
  double Transmit(uint64_t bytes);
  // The reply's one-way delay (and serialisation, when shape_replies): sleeps, returns seconds.
  double Receive(uint64_t bytes);

  const LinkOptions& options() const { return options_; }
  bool enabled() const { return options_.rate_bytes_per_s > 0 || options_.rtt_s > 0; }

 private:
  LinkOptions options_;
  std::mutex mu_;
  double tokens_;
  Clock::time_point last_;  // when tokens_ was last brought up to date
  Clock::time_point free_at_;  // the sending side is busy until then (messages queue behind it)
  Clock::time_point reply_free_at_;
};

}  // namespace splitinfer::runtime
