#include "runtime/link.h"

#include <gtest/gtest.h>

namespace splitinfer::runtime {
namespace {

double Seconds(LinkEmulator::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

TEST(LinkTest, ParsesRatesAndDurations) {
  EXPECT_DOUBLE_EQ(ParseRate("1MB/s").value(), 1e6);
  EXPECT_DOUBLE_EQ(ParseRate("500kB/s").value(), 5e5);
  EXPECT_DOUBLE_EQ(ParseRate("10Mbit/s").value(), 1.25e6);
  EXPECT_DOUBLE_EQ(ParseRate("2MiB/s").value(), 2097152.0);
  EXPECT_DOUBLE_EQ(ParseRate("none").value(), 0.0);
  EXPECT_NE(ParseRate("1 MB").status().message().find("unknown unit"), std::string::npos);
  EXPECT_EQ(ParseRate("fast").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_DOUBLE_EQ(ParseDuration("10ms").value(), 0.01);
  EXPECT_DOUBLE_EQ(ParseDuration("0.5s").value(), 0.5);
  EXPECT_DOUBLE_EQ(ParseDuration("250us").value(), 250e-6);
  EXPECT_EQ(ParseDuration("10 minutes").status().code(), ErrorCode::kInvalidArgument);
}

TEST(LinkTest, TokenBucketSerialisesAndAddsHalfTheRtt) {
  LinkOptions o;
  o.rate_bytes_per_s = 1e6;
  o.rtt_s = 0.010;
  o.burst_bytes = 1000;
  LinkEmulator link(o);
  const auto t0 = LinkEmulator::Clock::now() + std::chrono::seconds(1);  // the bucket is full by then
  // 1000 bytes fit the full bucket: only the one-way delay.
  EXPECT_NEAR(Seconds(link.Schedule(1000, t0) - t0), 0.005, 1e-6);
  // Bucket empty: 5000 bytes at 1 MB/s take 5 ms, plus 5 ms one way.
  EXPECT_NEAR(Seconds(link.Schedule(5000, t0) - t0), 0.010, 1e-6);
  // Sent at once after that: queues behind the previous message (leaves at 5 ms + 2 ms).
  EXPECT_NEAR(Seconds(link.Schedule(2000, t0) - t0), 0.012, 1e-6);
  // After a long idle time the bucket refills only up to its depth.
  const auto later = t0 + std::chrono::seconds(10);
  EXPECT_NEAR(Seconds(link.Schedule(3000, later) - later), 0.002 + 0.005, 1e-6);
}

TEST(LinkTest, UnlimitedRateOnlyDelays) {
  LinkOptions o;
  o.rtt_s = 0.004;
  LinkEmulator link(o);
  const auto t0 = LinkEmulator::Clock::now();
  EXPECT_NEAR(Seconds(link.Schedule(1 << 20, t0) - t0), 0.002, 1e-6);
  EXPECT_FALSE(LinkEmulator(LinkOptions{}).enabled());
}

}  // namespace
}  // namespace splitinfer::runtime
