// The COCO detection dataset (data/detection.h): letterboxing with its boxes, augmentation that
// moves boxes with the pixels, the layout's errors, and the YOLO batch.
#include "data/detection.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <torch/torch.h>

#include "data/fashion_mnist.h"
#include "data/scenes.h"

#ifdef SPLITINFER_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#endif

namespace splitinfer::data {
namespace {

namespace fs = std::filesystem;

fs::path Temp(const std::string& name) {
  return fs::temp_directory_path() / ("si_det_" + name + "_" + std::to_string(::getpid()));
}

TEST(CocoDetectionTest, LayoutErrorsNameWhatWasLookedFor) {
  const fs::path dir = Temp("empty");
  fs::create_directories(dir);
  auto none = CocoDetectionDataset::Open(dir.string(), Split::kTest, 128, 1);
  EXPECT_EQ(none.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(none.status().message().find("instances_test.json or"), std::string::npos) << none.status().message();
  EXPECT_NE(none.status().message().find("make-scenes"), std::string::npos);
  fs::create_directories(dir / "annotations");
  std::ofstream(dir / "annotations" / "instances_val2017.json")
      << R"({"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}], "categories": [{"id": 1, "name": "x"}], "annotations": []})";
  auto no_images = CocoDetectionDataset::Open(dir.string(), Split::kTest, 128, 1);  // COCO's own names
  EXPECT_EQ(no_images.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(no_images.status().message().find("val2017 is not"), std::string::npos) << no_images.status().message();
  EXPECT_EQ(CocoDetectionDataset::Open(dir.string(), Split::kTest, 8, 1).status().code(), ErrorCode::kInvalidArgument);
  fs::remove_all(dir);
}

#ifndef SPLITINFER_WITH_OPENCV
TEST(CocoDetectionTest, Samples) { GTEST_SKIP() << "built without OpenCV (SPLITINFER_WITH_OPENCV)"; }
#else

// One 100x50 image with one box, [10, 5, 20, 10], of class "b" (the second category).
fs::path WideImageDataset(const std::string& name) {
  const fs::path dir = Temp(name);
  fs::remove_all(dir);
  fs::create_directories(dir / "annotations");
  fs::create_directories(dir / "test");
  cv::Mat img(50, 100, CV_8UC1, cv::Scalar(200));
  img(cv::Rect(70, 0, 30, 50)).setTo(cv::Scalar(50));  // not mirror-symmetric
  cv::imwrite((dir / "test" / "w.png").string(), img);
  std::ofstream(dir / "annotations" / "instances_test.json") << R"({
    "images": [{"id": 9, "file_name": "w.png", "width": 100, "height": 50}],
    "categories": [{"id": 1, "name": "a"}, {"id": 4, "name": "b"}],
    "annotations": [{"id": 1, "image_id": 9, "category_id": 4, "bbox": [10, 5, 20, 10]}]})";
  return dir;
}

TEST(CocoDetectionTest, LetterboxMapsBoxesAndPads) {
  const fs::path dir = WideImageDataset("wide");
  auto ds = CocoDetectionDataset::Open(dir.string(), Split::kTest, 64, 1);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ((*ds)->class_names(), (std::vector<std::string>{"a", "b"}));
  auto s = (*ds)->sample(0);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->image.sizes(), (torch::IntArrayRef{1, 64, 64}));
  EXPECT_EQ(s->image_id, 9);
  // Scale 0.64: the image is 64x32 at rows 16..47, grey (114) above and below.
  EXPECT_DOUBLE_EQ(s->scale, 0.64);
  EXPECT_DOUBLE_EQ(s->pad_y, 16);
  EXPECT_EQ(s->image[0][0][0].item<int>(), 114);
  EXPECT_EQ(s->image[0][30][30].item<int>(), 200);
  ASSERT_EQ(s->boxes.size(0), 1);
  EXPECT_NEAR(s->boxes[0][0].item<float>(), 6.4f, 1e-4);
  EXPECT_NEAR(s->boxes[0][1].item<float>(), 19.2f, 1e-4);
  EXPECT_NEAR(s->boxes[0][2].item<float>(), 12.8f, 1e-4);
  EXPECT_NEAR(s->boxes[0][3].item<float>(), 6.4f, 1e-4);
  EXPECT_EQ(s->labels[0].item<int64_t>(), 1);  // category 4 is the second class
  fs::remove_all(dir);
}

TEST(CocoDetectionTest, AugmentationMovesBoxesWithThePixels) {
  const fs::path dir = WideImageDataset("aug");
  auto ds = CocoDetectionDataset::Open(dir.string(), Split::kTest, 64, 1);
  ASSERT_TRUE(ds.ok());
  // Zoom x2 about the centre: x' = 2x - 32. The box [6.4, 19.2, 12.8, 6.4] becomes
  // [-19.2, 6.4, 25.6, 12.8], a quarter of it left inside: [0, 6.4, 6.4, 12.8].
  DetectionAugment zoom;
  zoom.min_scale = zoom.max_scale = 2;
  auto z = (*ds)->sample(0, &zoom, 1);
  ASSERT_TRUE(z.ok());
  ASSERT_EQ(z->boxes.size(0), 1);
  EXPECT_NEAR(z->boxes[0][0].item<float>(), 0.0f, 1e-4);
  EXPECT_NEAR(z->boxes[0][1].item<float>(), 6.4f, 1e-4);
  EXPECT_NEAR(z->boxes[0][2].item<float>(), 6.4f, 1e-4);
  EXPECT_NEAR(z->boxes[0][3].item<float>(), 12.8f, 1e-4);
  zoom.min_visible = 0.3;  // a quarter visible is too little now: dropped
  EXPECT_EQ((*ds)->sample(0, &zoom, 1)->boxes.size(0), 0);
  // Flips: over seeds, each sample is either as is or mirrored, pixels and box alike.
  DetectionAugment flip;
  flip.hflip = true;
  const auto plain = (*ds)->sample(0);
  int mirrored = 0;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    auto f = (*ds)->sample(0, &flip, seed);
    ASSERT_TRUE(f.ok());
    if (torch::equal(f->image, plain->image)) {
      EXPECT_TRUE(torch::allclose(f->boxes, plain->boxes));
    } else {
      ++mirrored;
      EXPECT_TRUE(torch::equal(f->image, plain->image.flip({2})));
      EXPECT_NEAR(f->boxes[0][0].item<float>(), 64.0f - 6.4f - 12.8f, 1e-4);
    }
  }
  EXPECT_GT(mirrored, 0);
  EXPECT_LT(mirrored, 16);
  fs::remove_all(dir);
}

TEST(CocoDetectionTest, ScenesReadBackAndBatch) {
  SceneParams p;
  p.train_scenes = 3;
  p.test_scenes = 3;
  const fs::path dir = Temp("scenes");
  fs::remove_all(dir);
  ASSERT_TRUE(MakeScenes(p, dir.string(), kFashionMnistDefaultDir, false).ok());
  auto ds = CocoDetectionDataset::Open(dir.string(), Split::kTrain, 128, 1);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ((*ds)->size(), 3);
  std::vector<DetectionSample> samples;
  int64_t boxes = 0;
  for (int64_t i = 0; i < 3; ++i) {
    auto s = (*ds)->sample(i);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    // The canvas is already 128: boxes are the annotations' own.
    const auto& idx = (*ds)->annotations().by_image.at(s->image_id);
    ASSERT_EQ(s->boxes.size(0), static_cast<int64_t>(idx.size()));
    EXPECT_FLOAT_EQ(s->boxes[0][0].item<float>(), static_cast<float>((*ds)->annotations().annotations[idx[0]].x));
    boxes += s->boxes.size(0);
    samples.push_back(*s);
  }
  auto [images, targets] = CollateDetection(samples);
  EXPECT_EQ(images.sizes(), (torch::IntArrayRef{3, 1, 128, 128}));
  EXPECT_EQ(targets.size(0), boxes);
  EXPECT_EQ(targets.size(1), 6);
  EXPECT_EQ(targets[targets.size(0) - 1][0].item<float>(), 2.0f);  // the last box is of image 2
  // A missing image and an image of another size are named.
  fs::remove(dir / "train" / "000002.png");
  auto missing = (*ds)->sample(1);
  EXPECT_EQ(missing.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(missing.status().message().find("000002.png"), std::string::npos) << missing.status().message();
  cv::imwrite((dir / "train" / "000003.png").string(), cv::Mat(10, 10, CV_8UC1, cv::Scalar(0)));
  auto resized = (*ds)->sample(2);
  EXPECT_NE(resized.status().message().find("is 10x10 but"), std::string::npos) << resized.status().message();
  std::ofstream(dir / "train" / "000001.png") << "not a png";
  EXPECT_NE((*ds)->sample(0).status().message().find("not an image OpenCV can decode"), std::string::npos);
  fs::remove_all(dir);
}
// scenes:CONFIG makes the scenes once into the cache (SPLITINFER_CACHE) and reuses them; a
// cached folder of other parameters is not used; a classification dataset is no detection one.
TEST(CocoDetectionTest, ScenesReferenceMakesThemOnceIntoTheCache) {
  const fs::path root = Temp("cache");
  fs::remove_all(root);
  fs::create_directories(root);
  ::setenv("SPLITINFER_CACHE", (root / "c").c_str(), 1);
  std::ofstream(root / "s.yaml") << "canvas: 64\nmax_scale: 1.5\ntrain_scenes: 2\ntest_scenes: 2\nseed: 3\n";
  const DatasetRef ref = ParseDatasetRef("scenes:" + (root / "s.yaml").string());
  EXPECT_EQ(ref.kind, kScenes);
  auto ds = OpenDetectionDataset(ref, Split::kTest, 64, 1, false);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ((*ds)->size(), 2);
  auto dir = EnsureScenes((root / "s.yaml").string(), false);
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(fs::path(*dir).parent_path(), root / "c");
  std::ofstream(fs::path(*dir) / "marker") << "x";  // a second use must not remake the folder
  ASSERT_TRUE(EnsureScenes((root / "s.yaml").string(), false).ok());
  EXPECT_TRUE(fs::exists(fs::path(*dir) / "marker"));
  std::ofstream(fs::path(*dir) / "scenes.json") << R"({"parameters": {"canvas": 1}})";
  auto other = EnsureScenes((root / "s.yaml").string(), false);
  EXPECT_EQ(other.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("holds scenes of other parameters"), std::string::npos);
  auto classification = OpenDetectionDataset(ParseDatasetRef("fmnist"), Split::kTest, 64, 1, false);
  EXPECT_EQ(classification.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(classification.status().message().find("'fmnist' is no detection dataset"), std::string::npos);
  ::unsetenv("SPLITINFER_CACHE");
  fs::remove_all(root);
}
#endif

}  // namespace
}  // namespace splitinfer::data
