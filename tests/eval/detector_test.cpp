// A detector measured end to end (eval/detection/detector.h): a "network" whose output encodes
// the ground truth exactly must score AP 1.0, and its boxes must come back in the original
// image's pixels (the letterbox undone: scale and padding), in COCO's results format.
#include "eval/detection/detector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#ifdef SPLITINFER_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#endif

namespace splitinfer::eval {
namespace {
namespace fs = std::filesystem;

models::CheckpointMeta DetectorMeta() {
  models::CheckpointMeta m;
  m.task = models::kTaskDetect;
  m.model = "yolov3_tiny";
  m.options = {2, 1, 2, 0};
  m.input_shape = {1, 64, 64};
  m.norm_mean = {0};
  m.norm_std = {1};
  m.class_names = {"a", "b"};
  m.anchors = {{8, 8}, {12, 12}, {16, 16}, {24, 24}, {32, 32}, {48, 48}};
  return m;
}

TEST(DetectorEvalTest, LayoutComesFromTheMetadata) {
  auto layout = detect::LayoutFor(DetectorMeta());
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->num_classes, 2);
  EXPECT_EQ(layout->input_h, 64);
  EXPECT_EQ(layout->anchors[5], (std::array<double, 2>{48, 48}));
  models::CheckpointMeta classifier = DetectorMeta();
  classifier.task = models::kTaskClassify;
  EXPECT_EQ(detect::LayoutFor(classifier).status().code(), ErrorCode::kInvalidArgument);
}

#ifndef SPLITINFER_WITH_OPENCV
TEST(DetectorEvalTest, PerfectOutputScoresOne) { GTEST_SKIP() << "built without OpenCV"; }
#else

struct Truth {
  int64_t image_id, category;
  double x, y, w, h;  // original pixels
};

// Two 100x50 images (letterboxed to 64: scale 0.64, 16 rows of padding above) with 3 boxes.
fs::path TwoImages(const std::vector<Truth>& truths) {
  const fs::path dir = fs::temp_directory_path() / ("si_deteval_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "annotations");
  fs::create_directories(dir / "test");
  nlohmann::json images = nlohmann::json::array(), anns = nlohmann::json::array();
  for (int id : {3, 7}) {
    cv::imwrite((dir / "test" / (std::to_string(id) + ".png")).string(), cv::Mat(50, 100, CV_8UC1, cv::Scalar(90)));
    images.push_back({{"id", id}, {"file_name", std::to_string(id) + ".png"}, {"width", 100}, {"height", 50}});
  }
  int next = 1;
  for (const auto& t : truths) {
    anns.push_back({{"id", next++}, {"image_id", t.image_id}, {"category_id", t.category},
                    {"bbox", {t.x, t.y, t.w, t.h}}, {"area", t.w * t.h}, {"iscrowd", 0}});
  }
  std::ofstream(dir / "annotations" / "instances_test.json")
      << nlohmann::json{{"images", images},
                        {"categories", {{{"id", 1}, {"name", "a"}}, {{"id", 5}, {"name", "b"}}}},
                        {"annotations", anns}}
             .dump();
  return dir;
}

double Logit(double p) { return std::log(p / (1 - p)); }

TEST(DetectorEvalTest, PerfectOutputScoresOneInTheOriginalPixels) {
  const std::vector<Truth> truths = {{3, 1, 10, 5, 20, 12}, {3, 5, 60, 20, 30, 25}, {7, 5, 41, 2, 15, 30}};
  const fs::path dir = TwoImages(truths);
  auto ds = data::CocoDetectionDataset::Open(dir.string(), data::Split::kTest, 64, 1);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  const models::CheckpointMeta meta = DetectorMeta();
  const detect::YoloLayout layout = detect::LayoutFor(meta).value();
  // The inverse of YOLOv3's decoding, for each truth at the stride-16 head (cells after the 2x2
  // stride-32 grid), anchor 0: centre = (sigmoid(t) + cell) x 16, size = anchor x exp(t).
  const int64_t per = 5 + 2, stride32_cells = 4;
  int64_t seen = 0;  // images answered so far: batches arrive in dataset order
  auto forward = [&](const torch::Tensor& x) -> Result<torch::Tensor> {
    auto out = torch::full({x.size(0), 3 * per, layout.cells()}, -12.0);
    for (int64_t b = 0; b < x.size(0); ++b) {
      const int64_t id = seen++ % 2 == 0 ? 3 : 7;
      for (const auto& t : truths) {
        if (t.image_id != id) continue;
        const double cx = (t.x + t.w / 2) * 0.64, cy = (t.y + t.h / 2) * 0.64 + 16;
        const int64_t gx = static_cast<int64_t>(cx / 16), gy = static_cast<int64_t>(cy / 16);
        const int64_t cell = stride32_cells + gy * 4 + gx;
        out[b][0][cell] = Logit(cx / 16 - gx);
        out[b][1][cell] = Logit(cy / 16 - gy);
        out[b][2][cell] = std::log(t.w * 0.64 / 8);
        out[b][3][cell] = std::log(t.h * 0.64 / 8);
        out[b][4][cell] = 12.0;
        out[b][5 + (t.category == 1 ? 0 : 1)][cell] = 12.0;
      }
    }
    return out;
  };
  DetectorEvalOptions o;
  o.batch_size = 1;  // two batches: the image index must carry across them
  auto r = EvaluateDetector(forward, **ds, meta, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->images, 2);
  EXPECT_NEAR(r->metrics.ap, 1.0, 1e-9);
  EXPECT_NEAR(r->metrics.ap50, 1.0, 1e-9);
  // Each truth is found at its own pixels with its own category id (1 or 5, not the index).
  for (const auto& t : truths) {
    bool found = false;
    for (const auto& d : r->detections) {
      if (d.image_id == t.image_id && d.category_id == t.category && d.score > 0.99 && std::abs(d.box.x - t.x) < 1e-3 &&
          std::abs(d.box.y - t.y) < 1e-3 && std::abs(d.box.w - t.w) < 1e-3 && std::abs(d.box.h - t.h) < 1e-3) {
        found = true;
      }
    }
    EXPECT_TRUE(found) << "truth at " << t.x << "," << t.y;
  }
  const nlohmann::json results = DetectionsToCocoResults(r->detections);
  ASSERT_TRUE(results.is_array());
  ASSERT_FALSE(results.empty());
  EXPECT_EQ(results[0]["bbox"].size(), 4u);
  EXPECT_TRUE(results[0].contains("image_id") && results[0].contains("category_id") && results[0].contains("score"));

  // A limit measures the first images only; a detector of another class count is refused.
  o.limit = 1;
  auto first = EvaluateDetector(forward, **ds, meta, o);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->metrics.ground_truths, 2);
  models::CheckpointMeta three = meta;
  three.options.num_classes = 3;
  three.class_names = {"a", "b", "c"};
  EXPECT_EQ(EvaluateDetector(forward, **ds, three, o).status().code(), ErrorCode::kMismatch);
  fs::remove_all(dir);
}
#endif

}  // namespace
}  // namespace splitinfer::eval
