// eval/detection/coco_eval: COCO's box detection metric, as the COCO evaluation defines it
// (pycocotools' COCOeval with iouType "bbox"). No LibTorch, so it can be tested and fuzzed alone.
//
//   AP      mean precision over IoU thresholds .50:.05:.95, 101 recall points and categories,
//           at most 100 detections per image, all areas
//   AP50, AP75        the same at one IoU threshold
//   AP small/medium/large   objects of area < 32^2, 32^2..96^2, > 96^2 (pixels)
//   AR1, AR10, AR100  mean recall with at most 1, 10, 100 detections per image; AR by area at 100
//
// What the COCO evaluation does, and this follows step by step:
// per image and category, detections sorted by score (stable: ties keep their input order),
// at most maxDets; ground truths that are crowds (iscrowd) or whose area is outside the area
// range are "ignored": matching one neither counts as a true positive nor as a false one, and a
// crowd can absorb any number of detections (its IoU is the intersection over the detection's
// area). Greedy matching: each detection, in score order, takes the unmatched non-ignored
// ground truth of highest IoU >= t, else an ignored one. An unmatched detection whose area is
// outside the range is ignored too. Over all images, per category: detections in score order
// give the precision/recall curve; precision is made monotone from the right and read at the
// first recall >= each of the 101 thresholds (0 beyond the curve). A category with no
// non-ignored ground truth in a range has no precision there and is left out of that mean; a
// metric with nothing to average is -1, as COCO prints it.
//
// One deliberate difference: COCOeval records a match as the ground truth's id and tests it
// for != 0, so a ground truth with id 0 is counted as unmatched. Here a match is a flag, so ids
// may be anything (COCO files number annotations from 1, where the two agree).
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "data/coco.h"

namespace splitinfer::eval {

struct BoxXYWH {  // pixels, top-left corner and size, as COCO files hold them
  double x = 0, y = 0, w = 0, h = 0;
};

struct GroundTruthBox {
  int64_t image_id = 0, category_id = 0;
  BoxXYWH box;
  double area = 0;       // the annotation's area (COCO: of the segmentation; w x h for boxes only)
  bool iscrowd = false;
};

struct DetectionBox {
  int64_t image_id = 0, category_id = 0;
  BoxXYWH box;
  double score = 0;
};

struct CocoMetrics {
  double ap = -1, ap50 = -1, ap75 = -1, ap_small = -1, ap_medium = -1, ap_large = -1;
  double ar1 = -1, ar10 = -1, ar100 = -1, ar_small = -1, ar_medium = -1, ar_large = -1;
  int64_t images = 0, categories = 0, ground_truths = 0, detections = 0;
  nlohmann::json ToJson() const;
};

// IoU of two boxes; with `crowd`, the intersection over the first box's area (COCO's rule for
// a detection against a crowd region). 0 when a box has no area.
double BoxIou(const BoxXYWH& detection, const BoxXYWH& ground_truth, bool crowd);

// The metrics over `image_ids` and `category_ids` (the dataset's; detections of other
// categories are left out, as COCOeval does). INVALID_ARGUMENT, naming the entry, for a
// detection or ground truth of an image not in `image_ids`, a box with a negative or
// non-finite size, a non-finite score or area.
Result<CocoMetrics> EvaluateCoco(const std::vector<int64_t>& image_ids, const std::vector<int64_t>& category_ids,
                                 const std::vector<GroundTruthBox>& ground_truths,
                                 const std::vector<DetectionBox>& detections);

// A detector's answers for the first images of a COCO annotation set, scored as above: `eval`
// (the model in one process) and `node` (boxes from a server's replies) both collect through it,
// so that the two score the same detections the same way. A box arrives in the letterboxed
// input's pixels with the transform that made that input (x' = x * scale + pad) and a class
// index; it is mapped back to the image's own pixels and clipped to it, as a COCO evaluator sees
// it (a box left with no area is dropped).
class CocoScorer {
 public:
  struct InputBox {
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // corners in the letterboxed input's pixels
    double score = 0;
    int64_t label = 0;  // class index: the position of the category in the file
  };
  // The first `n` images of `coco` (all when n <= 0 or larger). MISMATCH when the detector's
  // class count is not the file's category count.
  static Result<CocoScorer> Create(const data::CocoAnnotations& coco, int64_t n, int64_t num_classes,
                                   const std::string& origin);
  // Image `index` (< images()) and the letterbox it went through. INVALID_ARGUMENT for an index
  // out of range or a class index outside the categories.
  Status Add(int64_t index, double scale, double pad_x, double pad_y, const std::vector<InputBox>& boxes);
  // With `class_agnostic`, every box and ground truth counts as one category (COCOeval's
  // useCats = 0): how well the detector finds objects, whatever it calls them.
  Result<CocoMetrics> Score(bool class_agnostic = false) const;
  int64_t images() const { return static_cast<int64_t>(image_ids_.size()); }
  const std::vector<DetectionBox>& detections() const { return detections_; }

 private:
  const data::CocoAnnotations* coco_ = nullptr;
  std::vector<int64_t> image_ids_, category_ids_;
  std::vector<GroundTruthBox> truths_;
  std::vector<DetectionBox> detections_;
};

}  // namespace splitinfer::eval
