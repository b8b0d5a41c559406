#include "data/fashion_mnist.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

namespace splitinfer::data {
namespace {

std::string Idx(std::vector<uint8_t> header, size_t payload) {
  std::string s(header.begin(), header.end());
  s.append(payload, '\x07');
  return s;
}

TEST(ParseIdxTest, ReadsImagesAndLabels) {
  auto images = ParseIdx(Idx({0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4}, 2 * 3 * 4), 3, "t");
  ASSERT_TRUE(images.ok()) << images.status().ToString();
  EXPECT_EQ(images->sizes(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(images->sum().item<int64_t>(), 7 * 24);
  auto labels = ParseIdx(Idx({0, 0, 8, 1, 0, 0, 0, 5}, 5), 1, "t");
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->size(0), 5);
}

TEST(ParseIdxTest, RejectsTruncatedHeader) {
  auto r = ParseIdx(std::string("\0\0\x08", 3), 3, "t");
  EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss);
}

TEST(ParseIdxTest, RejectsWrongMagic) {
  auto r = ParseIdx(Idx({0, 0, 8, 1, 0, 0, 0, 5}, 32), 3, "t");  // a label file where images are expected
  EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(r.status().message().find("bad IDX magic"), std::string::npos);
}

TEST(ParseIdxTest, RejectsHugeDimensionBeforeAllocating) {
  // 4e9 x 4e9 images: must fail on the limit check, not try to allocate.
  auto r = ParseIdx(Idx({0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}, 0), 3, "t");
  EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(r.status().message().find("outside"), std::string::npos);
}

TEST(ParseIdxTest, RejectsPayloadLengthMismatch) {
  auto r = ParseIdx(Idx({0, 0, 8, 1, 0, 0, 0, 5}, 4), 1, "t");
  EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss);
}

TEST(FashionMnistTest, MissingDirectoryNamesThePackage) {
  auto r = LoadFashionMnist(Split::kTest, "/nonexistent/fashion-mnist");
  ASSERT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find("apt-get install dataset-fashion-mnist"), std::string::npos);
}

TEST(FashionMnistTest, CorruptGzipIsDataLoss) {
  auto dir = std::filesystem::temp_directory_path() / "si_fmnist_corrupt";
  std::filesystem::create_directories(dir);
  for (const char* f : {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    std::FILE* fp = std::fopen((dir / f).c_str(), "wb");
    std::fputs("\x1f\x8b\x08\x00garbage-not-deflate", fp);
    std::fclose(fp);
  }
  auto r = LoadFashionMnist(Split::kTest, dir.string());
  EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss) << r.status().ToString();
  std::filesystem::remove_all(dir);
}

// The real data from the Debian package (installed by scripts/install-deps.sh).
TEST(FashionMnistTest, LoadsTheRealTestSet) {
  auto r = LoadFashionMnist(Split::kTest);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 10000);
  EXPECT_EQ(r->image_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(r->num_classes(), 10);
  // Fashion-MNIST's test set is balanced: 1,000 images per class.
  auto counts = torch::bincount(r->labels());
  EXPECT_TRUE(torch::equal(counts, torch::full({10}, 1000, torch::kInt64)));
  // The shipped normalization is the training set's statistics; the test set is close to it.
  const auto norm = FashionMnistNormalization();
  auto x = r->images().to(torch::kFloat32) / 255.0;
  EXPECT_NEAR(x.mean().item<double>(), norm.mean[0], 0.01);
  EXPECT_NEAR(x.std().item<double>(), norm.std[0], 0.01);
}

TEST(FashionMnistTest, BatchSelectsImagesAndLabels) {
  auto r = LoadFashionMnist(Split::kTest);
  ASSERT_TRUE(r.ok());
  auto b = r->batch({3, 1, 4});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first.sizes(), (std::vector<int64_t>{3, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(b->first[1], r->images()[1]));
  EXPECT_EQ(b->second[2].item<int64_t>(), r->label(4));
  EXPECT_EQ(r->batch({10000}).status().code(), ErrorCode::kOutOfRange);
}

}  // namespace
}  // namespace splitinfer::data
