#include "runtime/png.h"

#include <gtest/gtest.h>

#include <random>

#include "runtime/wire.h"
#include "test_seed.h"

namespace splitinfer::runtime {
namespace {

TEST(PngTest, RoundTripGreyAndRgb) {
  std::mt19937 rng(splitinfer::testing::TestSeed());
  for (int channels : {1, 3}) {
    std::vector<uint8_t> px(static_cast<size_t>(channels) * 28 * 20);
    for (auto& v : px) v = static_cast<uint8_t>(rng());
    auto png = EncodePng(px.data(), channels, 28, 20);
    ASSERT_TRUE(png.ok()) << png.status().ToString();
    auto info = PeekPng(std::string_view(reinterpret_cast<const char*>(png->data()), png->size()));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->width, 20u);
    EXPECT_EQ(info->height, 28u);
    auto back = DecodePng(std::string_view(reinterpret_cast<const char*>(png->data()), png->size()), channels, 28, 20);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, px);
  }
}

TEST(PngTest, WrongSizeAndCorruptAreErrors) {
  std::vector<uint8_t> px(28 * 28, 7);
  auto png = EncodePng(px.data(), 1, 28, 28).value();
  std::string_view view(reinterpret_cast<const char*>(png.data()), png.size());
  auto s = DecodePng(view, 1, 32, 32).status();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("PNG is 28x28 pixels; the model takes 32x32"), std::string::npos) << s.message();
  std::string cut(view.substr(0, view.size() / 2));
  EXPECT_EQ(DecodePng(cut, 1, 28, 28).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodePng("not a png", 1, 28, 28).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer::runtime
