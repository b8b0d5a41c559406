// COCO's box metric against answers computed by hand from the COCO evaluation's definition
// (src/eval/detection/coco_eval.h walks through it): one box, duplicates, crowds, empty images,
// no detections, area ranges, detection caps, ties, and the refused inputs.
#include "eval/detection/coco_eval.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace splitinfer::eval {
namespace {

GroundTruthBox Gt(int64_t image, double x, double y, double w, double h, bool crowd = false, int64_t cat = 1) {
  return {image, cat, {x, y, w, h}, w * h, crowd};
}
DetectionBox Dt(int64_t image, double x, double y, double w, double h, double score, int64_t cat = 1) {
  return {image, cat, {x, y, w, h}, score};
}
CocoMetrics Eval(const std::vector<int64_t>& images, const std::vector<GroundTruthBox>& gts,
                 const std::vector<DetectionBox>& dts, const std::vector<int64_t>& cats = {1}) {
  auto m = EvaluateCoco(images, cats, gts, dts);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? *m : CocoMetrics{};
}

TEST(CocoEvalTest, BoxIouAndCrowdIou) {
  EXPECT_DOUBLE_EQ(BoxIou({0, 0, 10, 10}, {0, 0, 10, 10}, false), 1.0);
  EXPECT_DOUBLE_EQ(BoxIou({0, 0, 10, 10}, {5, 0, 10, 10}, false), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(BoxIou({0, 0, 10, 10}, {10, 0, 10, 10}, false), 0.0);  // touching edges
  // Against a crowd: the intersection over the detection's own area.
  EXPECT_DOUBLE_EQ(BoxIou({0, 0, 10, 10}, {0, 0, 100, 100}, true), 1.0);
  EXPECT_DOUBLE_EQ(BoxIou({0, 0, 0, 10}, {0, 0, 10, 10}, false), 0.0);  // no area
}

TEST(CocoEvalTest, OneExactBoxIsPerfect) {
  const auto m = Eval({1}, {Gt(1, 0, 0, 10, 10)}, {Dt(1, 0, 0, 10, 10, 0.9)});
  EXPECT_DOUBLE_EQ(m.ap, 1.0);
  EXPECT_DOUBLE_EQ(m.ap50, 1.0);
  EXPECT_DOUBLE_EQ(m.ap75, 1.0);
  EXPECT_DOUBLE_EQ(m.ap_small, 1.0);  // area 100 < 32^2
  EXPECT_DOUBLE_EQ(m.ap_medium, -1.0);  // no object of that size: nothing to average
  EXPECT_DOUBLE_EQ(m.ap_large, -1.0);
  EXPECT_DOUBLE_EQ(m.ar1, 1.0);
  EXPECT_DOUBLE_EQ(m.ar100, 1.0);
}

// A looser box scored above the exact one: at IoU thresholds .50-.60 the loose box (IoU 0.625)
// is the match and the exact one a duplicate (precision [1, .5] -> 1 at every recall); at
// .65-.95 the loose one is a false positive first (precision [0, .5] -> .5 made monotone).
// AP = (3 x 1 + 7 x 0.5) / 10.
TEST(CocoEvalTest, DuplicatesAndALooseBoxScoredFirst) {
  const auto m = Eval({1}, {Gt(1, 0, 0, 10, 10)}, {Dt(1, 0, 0, 10, 6.25, 0.9), Dt(1, 0, 0, 10, 10, 0.8)});
  EXPECT_DOUBLE_EQ(m.ap50, 1.0);
  EXPECT_DOUBLE_EQ(m.ap75, 0.5);
  EXPECT_DOUBLE_EQ(m.ap, 0.65);
  // A duplicate scored below the match costs nothing.
  const auto d = Eval({1}, {Gt(1, 0, 0, 10, 10)}, {Dt(1, 0, 0, 10, 10, 0.9), Dt(1, 0, 0, 10, 10, 0.8)});
  EXPECT_DOUBLE_EQ(d.ap, 1.0);
  EXPECT_DOUBLE_EQ(d.ar1, 1.0);
}

// Detections inside a crowd region are ignored (neither true nor false positives), however many.
// Without the crowd flag the region is a real object nobody found and the two boxes are false
// positives: precision [1, .5, 1/3] at recall [.5, .5, .5] -> 1 for the 51 recall points up to
// .5, 0 beyond: AP = 51 / 101.
TEST(CocoEvalTest, CrowdRegionsAbsorbDetections) {
  const std::vector<DetectionBox> dts = {Dt(1, 0, 0, 10, 10, 0.9), Dt(1, 20, 20, 10, 10, 0.8),
                                         Dt(1, 30, 30, 10, 10, 0.7)};
  const auto crowd = Eval({1}, {Gt(1, 0, 0, 10, 10), Gt(1, 20, 20, 30, 30, true)}, dts);
  EXPECT_DOUBLE_EQ(crowd.ap, 1.0);
  EXPECT_DOUBLE_EQ(crowd.ar100, 1.0);
  const auto real = Eval({1}, {Gt(1, 0, 0, 10, 10), Gt(1, 20, 20, 30, 30, false)}, dts);
  EXPECT_DOUBLE_EQ(real.ap, 51.0 / 101.0);
  EXPECT_DOUBLE_EQ(real.ar100, 0.5);
}

// An image without objects still counts its detections as false positives; an image with
// neither changes nothing. Here the false positive scores first: precision [0, .5] -> .5.
TEST(CocoEvalTest, EmptyImages) {
  const std::vector<GroundTruthBox> gts = {Gt(1, 0, 0, 10, 10)};
  const std::vector<DetectionBox> dts = {Dt(1, 0, 0, 10, 10, 0.5), Dt(2, 0, 0, 10, 10, 0.9)};
  const auto m = Eval({1, 2}, gts, dts);
  EXPECT_DOUBLE_EQ(m.ap, 0.5);
  const auto with_blank = Eval({1, 2, 3}, gts, dts);
  EXPECT_DOUBLE_EQ(with_blank.ap, m.ap);
  EXPECT_EQ(with_blank.images, 3);
}

TEST(CocoEvalTest, NoDetectionsAndNoObjects) {
  const auto none = Eval({1}, {Gt(1, 0, 0, 10, 10)}, {});
  EXPECT_DOUBLE_EQ(none.ap, 0.0);
  EXPECT_DOUBLE_EQ(none.ar100, 0.0);
  const auto nothing = Eval({1}, {}, {Dt(1, 0, 0, 10, 10, 0.9)});
  EXPECT_DOUBLE_EQ(nothing.ap, -1.0);  // no category has an object: nothing to average
  EXPECT_DOUBLE_EQ(nothing.ar100, -1.0);
}

// Area ranges: a medium object (50 x 40 = 2000) found exactly, and a small false positive
// scored first. Over all areas the false positive counts (AP .5); in the medium range it is
// outside the range and unmatched, so ignored (AP 1); no small objects exist (AP small -1).
TEST(CocoEvalTest, AreaRangesIgnoreWhatIsOutside) {
  const auto m = Eval({1}, {Gt(1, 0, 0, 50, 40)}, {Dt(1, 0, 0, 50, 40, 0.9), Dt(1, 100, 100, 5, 5, 0.95)});
  EXPECT_DOUBLE_EQ(m.ap, 0.5);
  EXPECT_DOUBLE_EQ(m.ap_medium, 1.0);
  EXPECT_DOUBLE_EQ(m.ap_small, -1.0);
  EXPECT_DOUBLE_EQ(m.ap_large, -1.0);
  EXPECT_DOUBLE_EQ(m.ar_medium, 1.0);
}

// maxDets: two objects in one image, both found; with one detection allowed per image, recall
// is one half.
TEST(CocoEvalTest, DetectionCapsPerImage) {
  const auto m = Eval({1}, {Gt(1, 0, 0, 10, 10), Gt(1, 50, 50, 10, 10)},
                      {Dt(1, 0, 0, 10, 10, 0.9), Dt(1, 50, 50, 10, 10, 0.8)});
  EXPECT_DOUBLE_EQ(m.ar1, 0.5);
  EXPECT_DOUBLE_EQ(m.ar10, 1.0);
  EXPECT_DOUBLE_EQ(m.ap, 1.0);
}

// Equal scores keep the input order (COCO sorts stably): a false positive listed before the
// true one at the same score costs precision, listed after it does not.
TEST(CocoEvalTest, TiesKeepTheInputOrder) {
  const std::vector<GroundTruthBox> gts = {Gt(1, 0, 0, 10, 10)};
  EXPECT_DOUBLE_EQ(Eval({1}, gts, {Dt(1, 50, 50, 10, 10, 0.5), Dt(1, 0, 0, 10, 10, 0.5)}).ap, 0.5);
  EXPECT_DOUBLE_EQ(Eval({1}, gts, {Dt(1, 0, 0, 10, 10, 0.5), Dt(1, 50, 50, 10, 10, 0.5)}).ap, 1.0);
}

// Categories are evaluated apart and averaged; detections of a category the dataset does not
// have are left out.
TEST(CocoEvalTest, CategoriesAreAveraged) {
  const auto m = Eval({1}, {Gt(1, 0, 0, 10, 10, false, 1), Gt(1, 50, 50, 10, 10, false, 2)},
                      {Dt(1, 0, 0, 10, 10, 0.9, 1), Dt(1, 50, 50, 10, 10, 0.9, 1), Dt(1, 50, 50, 10, 10, 0.8, 7)},
                      {1, 2});
  // Category 1: a match, then a false positive (precision 1 at every recall) -> 1; category 2:
  // never detected -> 0; category 7 is not the dataset's.
  EXPECT_DOUBLE_EQ(m.ap, 0.5);
  EXPECT_EQ(m.categories, 2);
}

TEST(CocoEvalTest, BadInputIsNamed) {
  auto unknown = EvaluateCoco({1}, {1}, {}, {Dt(9, 0, 0, 1, 1, 0.5)});
  EXPECT_EQ(unknown.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("detection 0 (image 9)"), std::string::npos) << unknown.status().message();
  auto negative = EvaluateCoco({1}, {1}, {Gt(1, 0, 0, -5, 10)}, {});
  EXPECT_EQ(negative.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(negative.status().message().find("negative size"), std::string::npos) << negative.status().message();
  auto nan_score = EvaluateCoco({1}, {1}, {}, {Dt(1, 0, 0, 1, 1, std::numeric_limits<double>::quiet_NaN())});
  EXPECT_NE(nan_score.status().message().find("score is not finite"), std::string::npos);
  auto inf_box = EvaluateCoco({1}, {1}, {}, {Dt(1, 0, 0, std::numeric_limits<double>::infinity(), 1, 0.5)});
  EXPECT_EQ(inf_box.status().code(), ErrorCode::kInvalidArgument);
}

TEST(CocoEvalTest, ClassAgnosticScoringIgnoresTheNames) {
  data::CocoAnnotations coco;
  coco.images = {{1, "a.png", 64, 64}};
  coco.categories = {{7, "shirt"}, {9, "bag"}};
  coco.annotations = {{1, 1, 9, 10, 10, 20, 20, 400, false}};
  coco.by_image = {{1, {0}}};
  auto scorer = CocoScorer::Create(coco, 0, 2, "x.json");
  ASSERT_TRUE(scorer.ok());
  // The right box under the wrong name: a miss by class, a hit without classes.
  ASSERT_TRUE(scorer->Add(0, 1, 0, 0, {{10, 10, 30, 30, 0.9, 0}}).ok());
  EXPECT_NEAR(scorer->Score()->ap50, 0.0, 1e-12);
  EXPECT_NEAR(scorer->Score(true)->ap50, 1.0, 1e-12);
  EXPECT_EQ(scorer->detections()[0].category_id, 7);  // the detections keep their category
}

TEST(CocoEvalTest, ScorerMapsLetterboxedBoxesBackAndScoresThem) {
  // Two 100x50 images letterboxed to 64: scale 0.64, padded 16 pixels above and below.
  data::CocoAnnotations coco;
  coco.images = {{1, "a.png", 100, 50}, {2, "b.png", 100, 50}, {3, "c.png", 100, 50}};
  coco.categories = {{7, "shirt"}, {9, "bag"}};
  coco.annotations = {{1, 1, 9, 10, 10, 20, 20, 400, false}, {2, 2, 7, 50, 0, 50, 50, 2500, false}};
  coco.by_image = {{1, {0}}, {2, {1}}};
  coco.category_index = {{7, 0}, {9, 1}};
  EXPECT_EQ(CocoScorer::Create(coco, 0, 3, "x.json").status().code(), ErrorCode::kMismatch);
  auto scorer = CocoScorer::Create(coco, 2, 2, "x.json");  // the first two images only
  ASSERT_TRUE(scorer.ok()) << scorer.status().ToString();
  EXPECT_EQ(scorer->images(), 2);
  const double s = 0.64, pad_y = 16;
  auto in = [&](double x, double y, double w, double h, double score, int64_t label) {
    return CocoScorer::InputBox{x * s, y * s + pad_y, (x + w) * s, (y + h) * s + pad_y, score, label};
  };
  ASSERT_TRUE(scorer->Add(0, s, 0, pad_y, {in(10, 10, 20, 20, 0.9, 1)}).ok());
  // The second image's box reaches past the image's right edge and into the padding: clipped.
  ASSERT_TRUE(scorer->Add(1, s, 0, pad_y, {in(50, -10, 60, 60, 0.8, 0), in(0, -20, 10, 10, 0.7, 0)}).ok());
  ASSERT_EQ(scorer->detections().size(), 2u);  // the box wholly in the padding has no area left
  const auto& d = scorer->detections()[1];
  EXPECT_EQ(d.image_id, 2);
  EXPECT_EQ(d.category_id, 7);
  EXPECT_NEAR(d.box.x, 50, 1e-9);
  EXPECT_NEAR(d.box.y, 0, 1e-9);
  EXPECT_NEAR(d.box.w, 50, 1e-9);
  EXPECT_NEAR(d.box.h, 50, 1e-9);
  auto m = scorer->Score();
  ASSERT_TRUE(m.ok());
  EXPECT_NEAR(m->ap, 1.0, 1e-12);
  EXPECT_EQ(m->images, 2);
  auto out_of_range = scorer->Add(2, s, 0, pad_y, {});
  EXPECT_NE(out_of_range.message().find("image 2 is outside the 2 images"), std::string::npos) << out_of_range.message();
  auto bad_class = scorer->Add(0, s, 0, pad_y, {in(1, 1, 2, 2, 0.5, 2)});
  EXPECT_NE(bad_class.message().find("has class 2; there are 2"), std::string::npos) << bad_class.message();
}

}  // namespace
}  // namespace splitinfer::eval
