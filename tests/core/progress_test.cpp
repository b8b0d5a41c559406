#include "core/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace splitinfer {
namespace {

TEST(ProgressTest, FormatsDurations) {
  EXPECT_EQ(ProgressBar::FormatDuration(0), "00:00");
  EXPECT_EQ(ProgressBar::FormatDuration(125), "02:05");
  EXPECT_EQ(ProgressBar::FormatDuration(3723), "1:02:03");
  EXPECT_EQ(ProgressBar::FormatDuration(-1), "--:--");
}

TEST(ProgressTest, PlainLinesWhenNotATerminal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar(f, "epoch 1/2", 10, /*plain_interval_s=*/1e9);
    bar.update(5, 640, "loss 0.5");  // suppressed: interval not reached
    bar.finish("loss 0.4");
  }
  std::rewind(f);
  char buf[512] = {};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  std::string out(buf, n);
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;  // no carriage-return animation in logs
  EXPECT_NE(out.find("epoch 1/2 10/10 loss 0.4"), std::string::npos) << out;
  EXPECT_EQ(out.find("loss 0.5"), std::string::npos) << out;
}

}  // namespace
}  // namespace splitinfer
