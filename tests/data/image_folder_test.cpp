// Tests for data/image_folder.h: tiny image folders and TinyImageNet trees are written to a
// temporary directory with OpenCV, loaded back and checked (labels, class order, shapes, RGB
// order, error codes). Without OpenCV only the UNIMPLEMENTED contract is checked.
#include "data/image_folder.h"

#include <gtest/gtest.h>

#include <string>

#ifdef SPLITINFER_WITH_OPENCV
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>
#include <vector>

#include <unistd.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

namespace splitinfer::data {
namespace {

#ifndef SPLITINFER_WITH_OPENCV

TEST(ImageFolderTest, LoadersAreUnimplementedWithoutOpenCV) {
  ImageFolderOptions options;
  auto folder = LoadImageFolder("/nonexistent", options);
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.status().code(), ErrorCode::kUnimplemented);
  EXPECT_NE(folder.status().message().find("OpenCV"), std::string::npos);

  auto tiny = LoadTinyImageNet("/nonexistent", Split::kTrain, options);
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.status().code(), ErrorCode::kUnimplemented);
}

TEST(ImageFolderTest, DecodingTests) { GTEST_SKIP() << "built without OpenCV (SPLITINFER_WITH_OPENCV)"; }

#else  // SPLITINFER_WITH_OPENCV

namespace fs = std::filesystem;

// JPEG is lossy (and subsamples chroma), so solid colours come back only approximately;
// PNG is lossless and resizing a constant image keeps it constant.
constexpr int kPngTolerance = 1;
constexpr int kJpegTolerance = 8;

struct Rgb {
  int r, g, b;
};
constexpr Rgb kRed{220, 20, 40};
constexpr Rgb kGreen{30, 200, 60};
constexpr Rgb kBlue{10, 50, 230};

// A fresh directory under the system temp dir, removed by TearDown.
class ImageFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = fs::temp_directory_path() /
            ("splitinfer_image_folder_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Writes a solid-colour image; the extension picks the codec (OpenCV wants BGR).
  static void WriteSolid(const fs::path& path, int height, int width, Rgb c) {
    fs::create_directories(path.parent_path());
    const cv::Mat img(height, width, CV_8UC3, cv::Scalar(c.b, c.g, c.r));
    ASSERT_TRUE(cv::imwrite(path.string(), img)) << path;
  }
  static void WriteBytes(const fs::path& path, const std::string& bytes) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << bytes;
  }

  // Every pixel of a [3, H, W] uint8 image within tol of c.
  static void ExpectSolid(const torch::Tensor& img, Rgb c, int tol) {
    ASSERT_EQ(img.dim(), 3);
    ASSERT_EQ(img.size(0), 3);
    const int want[3] = {c.r, c.g, c.b};
    for (int ch = 0; ch < 3; ++ch) {
      const torch::Tensor plane = img[ch].to(torch::kInt32);
      const int lo = plane.min().item<int>(), hi = plane.max().item<int>();
      EXPECT_LE(std::abs(lo - want[ch]), tol) << "channel " << ch << " min " << lo << " want " << want[ch];
      EXPECT_LE(std::abs(hi - want[ch]), tol) << "channel " << ch << " max " << hi << " want " << want[ch];
    }
  }

  // ant: 2 red PNGs, bee: 3 green JPEGs, cat: 1 blue PNG; sizes differ and both shrink and
  // enlarge to the 16 x 24 target. Folders are created out of order to test sorting.
  void MakeThreeClassFolder() {
    WriteSolid(root_ / "cat" / "c0.PNG", 8, 8, kBlue);
    WriteSolid(root_ / "ant" / "a1.png", 40, 30, kRed);
    WriteSolid(root_ / "ant" / "a0.png", 10, 12, kRed);
    WriteSolid(root_ / "bee" / "b2.jpg", 32, 48, kGreen);
    WriteSolid(root_ / "bee" / "b0.JPeG", 16, 24, kGreen);
    WriteSolid(root_ / "bee" / "sub" / "b1.jpeg", 20, 20, kGreen);  // nested: still class bee
    WriteBytes(root_ / "bee" / "notes.txt", "not an image");
    WriteBytes(root_ / "bee" / "._b0.jpg", "macOS AppleDouble junk");  // hidden: skipped
    fs::create_directories(root_ / ".ipynb_checkpoints");               // hidden: not a class
  }

  static ImageFolderOptions Options(int64_t h = 16, int64_t w = 24, bool gray = false) {
    ImageFolderOptions o;
    o.height = h;
    o.width = w;
    o.grayscale = gray;
    return o;
  }

  fs::path root_;
};

TEST_F(ImageFolderTest, ListsClassesSortedWithLabels) {
  MakeThreeClassFolder();
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  const Dataset& d = **ds;
  EXPECT_EQ(d.size(), 6);
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"ant", "bee", "cat"}));
  EXPECT_EQ(d.num_classes(), 3);
  EXPECT_EQ(d.image_shape(), (std::vector<int64_t>{3, 16, 24}));
  EXPECT_EQ(d.name(), "imagefolder:" + root_.string());
  const std::vector<int64_t> want_labels{0, 0, 1, 1, 1, 2};
  for (int64_t i = 0; i < d.size(); ++i) EXPECT_EQ(d.label(i), want_labels[i]) << "index " << i;
}

TEST_F(ImageFolderTest, ImagesAreResizedRgbUint8) {
  MakeThreeClassFolder();
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  const Dataset& d = **ds;
  const Rgb want[6] = {kRed, kRed, kGreen, kGreen, kGreen, kBlue};
  const int tol[6] = {kPngTolerance, kPngTolerance, kJpegTolerance, kJpegTolerance, kJpegTolerance, kPngTolerance};
  for (int64_t i = 0; i < d.size(); ++i) {
    SCOPED_TRACE("index " + std::to_string(i));
    auto img = d.image(i);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    EXPECT_EQ(img->scalar_type(), torch::kUInt8);
    EXPECT_EQ(img->sizes().vec(), (std::vector<int64_t>{3, 16, 24}));
    EXPECT_TRUE(img->is_contiguous());
    ExpectSolid(*img, want[i], tol[i]);
  }
}

// Folder images of different sizes stack because image() resizes them all.
TEST_F(ImageFolderTest, BatchStacksResizedImages) {
  MakeThreeClassFolder();
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  auto b = (*ds)->batch({5, 0, 3});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->first.sizes().vec(), (std::vector<int64_t>{3, 3, 16, 24}));
  EXPECT_EQ(b->first.scalar_type(), torch::kUInt8);
  EXPECT_EQ(b->second.sizes().vec(), (std::vector<int64_t>{3}));
  EXPECT_EQ(b->second[0].item<int64_t>(), 2);
  EXPECT_EQ(b->second[1].item<int64_t>(), 0);
  EXPECT_EQ(b->second[2].item<int64_t>(), 1);
  ExpectSolid(b->first[0], kBlue, kPngTolerance);
}

// A left/right split image must keep its orientation: catches H/W swaps and transposes that a
// solid colour cannot.
TEST_F(ImageFolderTest, KeepsOrientation) {
  cv::Mat img(20, 40, CV_8UC3, cv::Scalar(kRed.b, kRed.g, kRed.r));
  img(cv::Rect(20, 0, 20, 20)).setTo(cv::Scalar(kBlue.b, kBlue.g, kBlue.r));
  fs::create_directories(root_ / "only");
  ASSERT_TRUE(cv::imwrite((root_ / "only" / "split.png").string(), img));
  auto ds = LoadImageFolder(root_.string(), Options(/*h=*/10, /*w=*/20));
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  auto t = (*ds)->image(0);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->sizes().vec(), (std::vector<int64_t>{3, 10, 20}));
  ExpectSolid(t->narrow(/*dim=*/2, /*start=*/0, /*length=*/9), kRed, kPngTolerance);
  ExpectSolid(t->narrow(/*dim=*/2, /*start=*/11, /*length=*/9), kBlue, kPngTolerance);
}

// Centre crop, as torchvision's Resize(16) + CenterCrop(16): a 20 x 40 image of three vertical
// bands (red 10 | green 20 | blue 10 columns) becomes 16 x 32, whose centre 16 columns are all
// green; a stretch keeps all three bands.
TEST_F(ImageFolderTest, CenterCropCutsTheMiddleAndStretchKeepsAll) {
  cv::Mat img(20, 40, CV_8UC3, cv::Scalar(kGreen.b, kGreen.g, kGreen.r));
  img(cv::Rect(0, 0, 10, 20)).setTo(cv::Scalar(kRed.b, kRed.g, kRed.r));
  img(cv::Rect(30, 0, 10, 20)).setTo(cv::Scalar(kBlue.b, kBlue.g, kBlue.r));
  fs::create_directories(root_ / "only");
  ASSERT_TRUE(cv::imwrite((root_ / "only" / "bands.png").string(), img));

  ImageFolderOptions crop = Options(16, 16);
  crop.resize_size = 16;
  auto cropped = LoadImageFolder(root_.string(), crop);
  ASSERT_TRUE(cropped.ok()) << cropped.status().ToString();
  auto c = (*cropped)->image(0);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->sizes().vec(), (std::vector<int64_t>{3, 16, 16}));
  ExpectSolid(*c, kGreen, kPngTolerance);

  ImageFolderOptions stretch = Options(16, 16);
  stretch.resize = ResizePolicy::kStretch;
  auto stretched = LoadImageFolder(root_.string(), stretch);
  ASSERT_TRUE(stretched.ok()) << stretched.status().ToString();
  auto s = (*stretched)->image(0);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ExpectSolid(s->narrow(/*dim=*/2, /*start=*/0, /*length=*/3), kRed, kPngTolerance);
  ExpectSolid(s->narrow(/*dim=*/2, /*start=*/13, /*length=*/3), kBlue, kPngTolerance);
}

// The default shorter side is torchvision's ratio (256 for a 224 crop): a 40 x 40 image read at
// 28 x 28 is scaled to 32 x 32 and its 2-pixel border cut off, so a 2-pixel red frame vanishes.
TEST_F(ImageFolderTest, DefaultResizeSizeIsTorchvisionsRatio) {
  EXPECT_EQ(DefaultResizeSize(224, 224), 256);
  EXPECT_EQ(DefaultResizeSize(28, 28), 32);
  cv::Mat img(40, 40, CV_8UC3, cv::Scalar(kRed.b, kRed.g, kRed.r));
  img(cv::Rect(2, 2, 36, 36)).setTo(cv::Scalar(kBlue.b, kBlue.g, kBlue.r));
  fs::create_directories(root_ / "only");
  ASSERT_TRUE(cv::imwrite((root_ / "only" / "framed.png").string(), img));
  auto ds = LoadImageFolder(root_.string(), Options(28, 28));
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  auto t = (*ds)->image(0);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ExpectSolid(*t, kBlue, kPngTolerance);
}

TEST_F(ImageFolderTest, ResizeSizeBelowTheCropIsOutOfRange) {
  WriteSolid(root_ / "a" / "x.png", 4, 4, kRed);
  ImageFolderOptions o = Options(16, 24);
  o.resize_size = 20;  // the crop is 24 wide
  auto ds = LoadImageFolder(root_.string(), o);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kOutOfRange) << ds.status().ToString();
  EXPECT_NE(ds.status().message().find("at least the crop's larger side, 24"), std::string::npos)
      << ds.status().ToString();
}

TEST(ResizePolicyTest, NamesRoundTripAndUnknownIsInvalid) {
  for (ResizePolicy p : {ResizePolicy::kCenterCrop, ResizePolicy::kStretch}) {
    auto back = ResizePolicyFromName(ResizePolicyName(p));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, p);
  }
  auto bad = ResizePolicyFromName("crop");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("valid: center_crop"), std::string::npos);
}

TEST_F(ImageFolderTest, GrayscaleGivesOneChannel) {
  WriteSolid(root_ / "a" / "x.png", 12, 12, kRed);
  auto ds = LoadImageFolder(root_.string(), Options(8, 6, /*gray=*/true));
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ((*ds)->image_shape(), (std::vector<int64_t>{1, 8, 6}));
  auto img = (*ds)->image(0);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->sizes().vec(), (std::vector<int64_t>{1, 8, 6}));
  // ITU-R BT.601 luma, as cv::COLOR_BGR2GRAY.
  const double luma = 0.299 * kRed.r + 0.587 * kRed.g + 0.114 * kRed.b;
  const torch::Tensor v = img->to(torch::kInt32);
  EXPECT_NEAR(v.min().item<int>(), luma, 1.5);
  EXPECT_NEAR(v.max().item<int>(), luma, 1.5);
}

TEST_F(ImageFolderTest, MissingRootIsNotFound) {
  auto ds = LoadImageFolder((root_ / "absent").string(), Options());
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kNotFound) << ds.status().ToString();
}

TEST_F(ImageFolderTest, EmptyRootIsInvalidArgument) {
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kInvalidArgument) << ds.status().ToString();
}

TEST_F(ImageFolderTest, ClassWithoutImagesIsInvalidArgument) {
  WriteSolid(root_ / "a" / "x.png", 4, 4, kRed);
  WriteBytes(root_ / "b" / "readme.txt", "no images here");
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kInvalidArgument) << ds.status().ToString();
  EXPECT_NE(ds.status().message().find((root_ / "b").string()), std::string::npos) << ds.status().message();
}

TEST_F(ImageFolderTest, RootThatIsAFileIsInvalidArgument) {
  WriteBytes(root_ / "file.png", "x");
  auto ds = LoadImageFolder((root_ / "file.png").string(), Options());
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kInvalidArgument) << ds.status().ToString();
}

TEST_F(ImageFolderTest, BadSizeIsOutOfRange) {
  WriteSolid(root_ / "a" / "x.png", 4, 4, kRed);
  for (auto [h, w] : {std::pair<int64_t, int64_t>{0, 8}, {8, -1}, {100000, 8}}) {
    auto ds = LoadImageFolder(root_.string(), Options(h, w));
    ASSERT_FALSE(ds.ok()) << h << "x" << w;
    EXPECT_EQ(ds.status().code(), ErrorCode::kOutOfRange) << ds.status().ToString();
  }
}

TEST_F(ImageFolderTest, CorruptImageIsDataLossNamingTheFile) {
  const uint32_t seed = 20240611;
  SCOPED_TRACE("random bytes seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::string junk(1000, '\0');
  for (char& ch : junk) ch = static_cast<char>(rng() & 0xFF);
  WriteBytes(root_ / "a" / "x.png", junk);
  WriteSolid(root_ / "a" / "y.png", 4, 4, kRed);
  WriteBytes(root_ / "a" / "z.png", "");  // empty file
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();  // listing does not decode
  ASSERT_EQ((*ds)->size(), 3);

  auto bad = (*ds)->image(0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(bad.status().message().find((root_ / "a" / "x.png").string()), std::string::npos)
      << bad.status().message();
  EXPECT_TRUE((*ds)->image(1).ok());  // one bad file does not poison the others
  auto empty = (*ds)->image(2);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), ErrorCode::kDataLoss);
}

TEST_F(ImageFolderTest, TruncatedPngIsDataLoss) {
  std::vector<uchar> png;
  const cv::Mat img(32, 32, CV_8UC3, cv::Scalar(1, 2, 3));
  ASSERT_TRUE(cv::imencode(".png", img, png));
  WriteBytes(root_ / "a" / "t.png", std::string(png.begin(), png.begin() + png.size() / 2));
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  auto t = (*ds)->image(0);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kDataLoss);
}

TEST_F(ImageFolderTest, IndexOutsideDatasetIsOutOfRange) {
  WriteSolid(root_ / "a" / "x.png", 4, 4, kRed);
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ((*ds)->image(1).status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ((*ds)->image(-1).status().code(), ErrorCode::kOutOfRange);
}

TEST_F(ImageFolderTest, FileRemovedAfterListingIsNotFound) {
  WriteSolid(root_ / "a" / "x.png", 4, 4, kRed);
  auto ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  fs::remove(root_ / "a" / "x.png");
  EXPECT_EQ((*ds)->image(0).status().code(), ErrorCode::kNotFound);
}

// --- TinyImageNet ------------------------------------------------------------------------------

// wnids listed out of order; the loader sorts them: n01 (red), n02 (green), n03 (blue).
class TinyImageNetTest : public ImageFolderTest {
 protected:
  void MakeTree(bool with_wnids_file = true) {
    if (with_wnids_file) WriteBytes(root_ / "wnids.txt", "n03\nn01\nn02\n");
    const std::pair<std::string, Rgb> classes[] = {{"n01", kRed}, {"n02", kGreen}, {"n03", kBlue}};
    for (const auto& [wnid, colour] : classes) {
      const fs::path dir = root_ / "train" / wnid;
      WriteBytes(dir / (wnid + "_boxes.txt"), wnid + "_0.JPEG\t0\t0\t10\t10\n");  // ignored
      for (int k = 0; k < 2; ++k) {
        WriteSolid(dir / "images" / (wnid + "_" + std::to_string(k) + ".JPEG"), 64, 64, colour);
      }
    }
    WriteSolid(root_ / "val" / "images" / "val_0.JPEG", 64, 64, kBlue);
    WriteSolid(root_ / "val" / "images" / "val_1.JPEG", 64, 64, kRed);
    WriteSolid(root_ / "val" / "images" / "val_2.JPEG", 64, 64, kGreen);
    WriteBytes(root_ / "val" / "val_annotations.txt",
               "val_0.JPEG\tn03\t0\t32\t44\t62\n"
               "val_1.JPEG\tn01\t52\t37\t63\t63\r\n"  // CRLF tolerated
               "val_2.JPEG\tn02\t0\t0\t63\t63\n");
  }
  void WriteAnnotations(const std::string& text) { WriteBytes(root_ / "val" / "val_annotations.txt", text); }
};

TEST_F(TinyImageNetTest, TrainSplit) {
  MakeTree();
  auto ds = LoadTinyImageNet(root_.string(), Split::kTrain, Options(32, 32));
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  const Dataset& d = **ds;
  EXPECT_EQ(d.size(), 6);
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"n01", "n02", "n03"}));
  EXPECT_EQ(d.name(), "tinyimagenet:" + root_.string());
  EXPECT_EQ(d.image_shape(), (std::vector<int64_t>{3, 32, 32}));
  const Rgb colours[] = {kRed, kGreen, kBlue};
  for (int64_t i = 0; i < d.size(); ++i) {
    SCOPED_TRACE("index " + std::to_string(i));
    EXPECT_EQ(d.label(i), i / 2);
    auto img = d.image(i);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    EXPECT_EQ(img->sizes().vec(), (std::vector<int64_t>{3, 32, 32}));
    ExpectSolid(*img, colours[d.label(i)], kJpegTolerance);
  }
}

TEST_F(TinyImageNetTest, ValSplitUsesAnnotations) {
  MakeTree();
  auto ds = LoadTinyImageNet(root_.string(), Split::kTest, Options(64, 64));
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  const Dataset& d = **ds;
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"n01", "n02", "n03"}));
  // Sorted by file: val_0 (n03), val_1 (n01), val_2 (n02).
  EXPECT_EQ(d.label(0), 2);
  EXPECT_EQ(d.label(1), 0);
  EXPECT_EQ(d.label(2), 1);
  const Rgb colours[] = {kBlue, kRed, kGreen};
  for (int64_t i = 0; i < d.size(); ++i) {
    auto img = d.image(i);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    ExpectSolid(*img, colours[i], kJpegTolerance);
  }
}

TEST_F(TinyImageNetTest, ClassesFromTrainFoldersWithoutWnidsFile) {
  MakeTree(/*with_wnids_file=*/false);
  for (Split split : {Split::kTrain, Split::kTest}) {
    auto ds = LoadTinyImageNet(root_.string(), split, Options(16, 16));
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    EXPECT_EQ((*ds)->class_names(), (std::vector<std::string>{"n01", "n02", "n03"}));
  }
}

TEST_F(TinyImageNetTest, UnknownWnidIsDataLossWithLineNumber) {
  MakeTree();
  WriteAnnotations("val_0.JPEG\tn03\t0\t0\t1\t1\nval_1.JPEG\tn99\t0\t0\t1\t1\n");
  auto ds = LoadTinyImageNet(root_.string(), Split::kTest, Options(16, 16));
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(ds.status().message().find("val_annotations.txt:2"), std::string::npos) << ds.status().message();
  EXPECT_NE(ds.status().message().find("n99"), std::string::npos) << ds.status().message();
}

TEST_F(TinyImageNetTest, LineWithoutTabsIsDataLossWithLineNumber) {
  MakeTree();
  WriteAnnotations("val_0.JPEG\tn03\n\nval_1.JPEG n01 0 0 1 1\n");
  auto ds = LoadTinyImageNet(root_.string(), Split::kTest, Options(16, 16));
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(ds.status().message().find("val_annotations.txt:3"), std::string::npos) << ds.status().message();
}

TEST_F(TinyImageNetTest, PathEscapeInAnnotationsIsDataLoss) {
  MakeTree();
  WriteAnnotations("../../wnids.txt\tn01\n");
  auto ds = LoadTinyImageNet(root_.string(), Split::kTest, Options(16, 16));
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kDataLoss) << ds.status().ToString();
}

TEST_F(TinyImageNetTest, AnnotatedImageMissingIsNotFound) {
  MakeTree();
  WriteAnnotations("val_0.JPEG\tn03\nval_7.JPEG\tn01\n");
  auto ds = LoadTinyImageNet(root_.string(), Split::kTest, Options(16, 16));
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(ds.status().message().find("val_annotations.txt:2"), std::string::npos) << ds.status().message();
}

TEST_F(TinyImageNetTest, MissingPiecesAreNotFound) {
  auto absent = LoadTinyImageNet((root_ / "absent").string(), Split::kTrain, Options());
  EXPECT_EQ(absent.status().code(), ErrorCode::kNotFound);
  // Exists but is not a TinyImageNet tree.
  auto empty = LoadTinyImageNet(root_.string(), Split::kTrain, Options());
  EXPECT_EQ(empty.status().code(), ErrorCode::kNotFound);
  MakeTree();
  fs::remove(root_ / "val" / "val_annotations.txt");
  auto no_ann = LoadTinyImageNet(root_.string(), Split::kTest, Options());
  EXPECT_EQ(no_ann.status().code(), ErrorCode::kNotFound);
  // wnids.txt names a class with no train folder.
  WriteBytes(root_ / "wnids.txt", "n01\nn02\nn03\nn04\n");
  auto no_class = LoadTinyImageNet(root_.string(), Split::kTrain, Options());
  EXPECT_EQ(no_class.status().code(), ErrorCode::kNotFound);
}

TEST_F(TinyImageNetTest, DuplicateWnidIsDataLoss) {
  MakeTree();
  WriteBytes(root_ / "wnids.txt", "n01\nn02\nn01\n");
  auto ds = LoadTinyImageNet(root_.string(), Split::kTrain, Options());
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(ds.status().message().find("wnids.txt:3"), std::string::npos) << ds.status().message();
}

#endif  // SPLITINFER_WITH_OPENCV

}  // namespace
}  // namespace splitinfer::data
