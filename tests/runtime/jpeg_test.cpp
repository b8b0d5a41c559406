#include "runtime/jpeg.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace splitinfer::runtime {
namespace {

std::string_view View(const std::vector<uint8_t>& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// A smooth image (JPEG's lossy coding keeps it close), grey or RGB, C x H x W.
std::vector<uint8_t> Smooth(int channels, int h, int w) {
  std::vector<uint8_t> px(static_cast<size_t>(channels) * h * w);
  for (int c = 0; c < channels; ++c) {
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        px[(static_cast<size_t>(c) * h + y) * w + x] = static_cast<uint8_t>(128 + 90 * std::sin(0.1 * x + 0.07 * y + c));
      }
    }
  }
  return px;
}

TEST(JpegTest, RoundTripIsCloseAndQualityBuysBytes) {
  for (int channels : {1, 3}) {
    const auto px = Smooth(channels, 40, 56);
    auto q90 = EncodeJpeg(px.data(), channels, 40, 56, 90);
    auto q50 = EncodeJpeg(px.data(), channels, 40, 56, 50);
    ASSERT_TRUE(q90.ok()) << q90.status().ToString();
    ASSERT_TRUE(q50.ok()) << q50.status().ToString();
    EXPECT_LT(q50->size(), q90->size());
    auto info = PeekJpeg(View(*q90));
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->width, 56);
    EXPECT_EQ(info->height, 40);
    EXPECT_EQ(info->channels, channels);
    auto back = DecodeJpeg(View(*q90), channels, 40, 56);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ASSERT_EQ(back->size(), px.size());
    double err = 0;
    for (size_t i = 0; i < px.size(); ++i) err += std::abs(static_cast<double>((*back)[i]) - px[i]);
    EXPECT_LT(err / static_cast<double>(px.size()), 3.0) << channels << " channel(s)";
    // A colour JPEG decodes to grey for a grey model, and the reverse, as the PNG path does.
    EXPECT_TRUE(DecodeJpeg(View(*q90), 4 - channels, 40, 56).ok());
  }
}

TEST(JpegTest, BadInputsAreNamedErrors) {
  const auto px = Smooth(3, 16, 16);
  auto jpeg = EncodeJpeg(px.data(), 3, 16, 16, 90).value();
  auto s = DecodeJpeg(View(jpeg), 3, 32, 32).status();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("JPEG is 16x16 pixels; the model takes 32x32"), std::string::npos) << s.message();
  s = PeekJpeg("\x89PNG\r\n\x1a\n....").status();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not a JPEG file"), std::string::npos) << s.message();
  // Cut in the middle of the scan: an error, not a half-grey image.
  const std::vector<uint8_t> cut(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(jpeg.size() * 2 / 3));
  s = DecodeJpeg(View(cut), 3, 16, 16).status();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("corrupt JPEG"), std::string::npos) << s.message();
  // The header alone, damaged: a dimension of zero.
  std::vector<uint8_t> bad = jpeg;
  for (size_t i = 0; i + 8 < bad.size(); ++i) {
    if (bad[i] == 0xFF && bad[i + 1] == 0xC0) {  // SOF0: length(2) precision(1) height(2) width(2)
      bad[i + 5] = 0;
      bad[i + 6] = 0;
      break;
    }
  }
  EXPECT_EQ(PeekJpeg(View(bad)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(px.data(), 3, 16, 16, 0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(px.data(), 2, 16, 16, 90).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer::runtime
