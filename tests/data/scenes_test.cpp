// The scene generator (data/scenes.h): its parameter file, and a small dataset read back through
// the COCO reader: counts, boxes, sources by split, overlap, and byte-for-byte determinism.
#include "data/scenes.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>

#include "data/coco.h"
#include "data/fashion_mnist.h"

namespace splitinfer::data {
namespace {

namespace fs = std::filesystem;

fs::path Temp(const std::string& name) {
  return fs::temp_directory_path() / ("si_scenes_" + name + "_" + std::to_string(::getpid()));
}

std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(ScenesTest, ParameterFileIsChecked) {
  const fs::path dir = Temp("params");
  fs::create_directories(dir);
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "s.yaml") << text;
    return LoadSceneParams((dir / "s.yaml").string());
  };
  auto good = write("canvas: 96\nmax_objects: 3\ntrain_scenes: 10\n");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->canvas, 96);
  EXPECT_EQ(good->max_objects, 3);
  EXPECT_EQ(good->test_scenes, 2000);  // the default where the file is silent
  auto unknown = write("canvass: 96\n");
  EXPECT_NE(unknown.status().message().find("canvass"), std::string::npos) << unknown.status().message();
  auto range = write("max_iou: 1.5\n");
  EXPECT_NE(range.status().message().find("max_iou"), std::string::npos) << range.status().message();
  auto order = write("min_objects: 5\nmax_objects: 2\n");
  EXPECT_NE(order.status().message().find("must not exceed"), std::string::npos) << order.status().message();
  auto small = write("canvas: 40\n");  // a 2.5x item is 70 pixels wide
  EXPECT_NE(small.status().message().find("smaller than the largest item"), std::string::npos);
  // The committed parameters load.
  EXPECT_TRUE(LoadSceneParams(std::string(SPLITINFER_SOURCE_DIR) + "/configs/data/scenes.yaml").ok());
  fs::remove_all(dir);
}

#ifndef SPLITINFER_WITH_OPENCV
TEST(ScenesTest, MakesADataset) { GTEST_SKIP() << "built without OpenCV (SPLITINFER_WITH_OPENCV)"; }
#else
TEST(ScenesTest, MakesADatasetReadableAsCocoAndTheSameEveryTime) {
  SceneParams p;
  p.train_scenes = 30;
  p.test_scenes = 20;
  p.max_iou = 0.2;
  const fs::path a = Temp("a"), b = Temp("b");
  fs::remove_all(a);
  fs::remove_all(b);
  auto ra = MakeScenes(p, a.string(), kFashionMnistDefaultDir, false);
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  EXPECT_EQ(ra->train_scenes, 30);
  EXPECT_EQ(ra->test_scenes, 20);
  for (const char* split : {"train", "test"}) {
    auto coco = LoadCocoAnnotations((a / "annotations" / (std::string("instances_") + split + ".json")).string());
    ASSERT_TRUE(coco.ok()) << coco.status().ToString();  // ids, boxes inside the canvas, categories
    EXPECT_EQ(coco->images.size(), std::string(split) == "train" ? 30u : 20u);
    ASSERT_EQ(coco->categories.size(), 10u);
    EXPECT_EQ(coco->categories[0].name, "T-shirt/top");
    for (const auto& im : coco->images) {
      EXPECT_EQ(im.width, 128);
      EXPECT_TRUE(fs::exists(a / split / im.file_name)) << im.file_name;
      const auto it = coco->by_image.find(im.id);
      const size_t n = it == coco->by_image.end() ? 0 : it->second.size();
      EXPECT_GE(n, 1u);
      EXPECT_LE(n, 6u);
      if (it == coco->by_image.end()) continue;
      // No two boxes of a scene overlap by more than max_iou.
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = i + 1; j < n; ++j) {
          const auto& x = coco->annotations[it->second[i]];
          const auto& y = coco->annotations[it->second[j]];
          const double iw = std::min(x.x + x.w, y.x + y.w) - std::max(x.x, y.x);
          const double ih = std::min(x.y + x.h, y.y + y.h) - std::max(x.y, y.y);
          const double inter = iw > 0 && ih > 0 ? iw * ih : 0;
          EXPECT_LE(inter / (x.w * x.h + y.w * y.h - inter), 0.2 + 1e-12);
        }
      }
    }
    for (const auto& ann : coco->annotations) {
      EXPECT_GT(ann.area, 0);
      EXPECT_LE(ann.area, ann.w * ann.h);  // item pixels inside their own box
      EXPECT_GE(ann.w, 28 * 0.7 * 0.2);   // no degenerate boxes
    }
  }
  // Items come only from their own split (the "source" each annotation records).
  for (const char* split : {"train", "test"}) {
    const std::string text = Slurp(a / "annotations" / (std::string("instances_") + split + ".json"));
    const std::string other = std::string(split) == "train" ? "\"split\":\"test\"" : "\"split\":\"train\"";
    EXPECT_EQ(text.find(other), std::string::npos) << split;
  }
  // The same parameters give the same files; another seed does not.
  auto rb = MakeScenes(p, b.string(), kFashionMnistDefaultDir, false);
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(Slurp(a / "annotations" / "instances_test.json"), Slurp(b / "annotations" / "instances_test.json"));
  EXPECT_EQ(Slurp(a / "test" / "000007.png"), Slurp(b / "test" / "000007.png"));
  EXPECT_EQ(Slurp(a / "train" / "000030.png"), Slurp(b / "train" / "000030.png"));
  fs::remove_all(b);
  p.seed = 2;
  ASSERT_TRUE(MakeScenes(p, b.string(), kFashionMnistDefaultDir, false).ok());
  EXPECT_NE(Slurp(a / "test" / "000007.png"), Slurp(b / "test" / "000007.png"));
  // A folder that already holds something is refused, not mixed into.
  auto again = MakeScenes(p, b.string(), kFashionMnistDefaultDir, false);
  EXPECT_EQ(again.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("not empty"), std::string::npos);
  fs::remove_all(a);
  fs::remove_all(b);
}
#endif

}  // namespace
}  // namespace splitinfer::data
