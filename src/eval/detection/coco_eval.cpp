#include "eval/detection/coco_eval.h"

#include "core/box.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace splitinfer::eval {
namespace {

constexpr int kIouThresholds = 10;   // .50:.05:.95
constexpr int kRecallPoints = 101;   // 0:.01:1
constexpr int kAreas = 4;            // all, small, medium, large
constexpr std::array<int, 3> kMaxDets = {1, 10, 100};
constexpr std::array<std::pair<double, double>, kAreas> kAreaRanges = {
    {{0.0, 1e10}, {0.0, 32.0 * 32.0}, {32.0 * 32.0, 96.0 * 96.0}, {96.0 * 96.0, 1e10}}};

// numpy.linspace as COCOeval builds its thresholds: start + i x step, the last one exactly stop
// (the values decide ties such as an IoU of exactly 0.75).
double Linspace(double start, double stop, int n, int i) {
  if (i == n - 1) return stop;
  return static_cast<double>(i) * ((stop - start) / static_cast<double>(n - 1)) + start;
}

bool OutOfRange(double area, int a) { return area < kAreaRanges[a].first || area > kAreaRanges[a].second; }

// COCOeval.evaluateImg for one image, category and area range, at 100 detections.
struct ImageEval {
  std::vector<double> scores;                    // detections, in score order
  std::vector<std::array<bool, kIouThresholds>> matched, ignored;  // per detection
  int64_t non_ignored_gt = 0;
};

ImageEval EvaluateImage(const std::vector<const GroundTruthBox*>& gts_in, const std::vector<const DetectionBox*>& dts,
                        const std::vector<std::vector<double>>& ious_in, int area, const std::vector<double>& thresholds) {
  ImageEval e;
  // Ground truths not ignored first, in their order, then the ignored ones (a stable sort).
  std::vector<size_t> order(gts_in.size());
  std::iota(order.begin(), order.end(), 0);
  auto ignore_of = [&](size_t g) { return gts_in[g]->iscrowd || OutOfRange(gts_in[g]->area, area); };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return !ignore_of(a) && ignore_of(b); });
  const size_t G = order.size(), D = dts.size();
  std::vector<bool> gt_ignore(G), crowd(G);
  for (size_t g = 0; g < G; ++g) {
    gt_ignore[g] = ignore_of(order[g]);
    crowd[g] = gts_in[order[g]]->iscrowd;
    if (!gt_ignore[g]) ++e.non_ignored_gt;
  }
  e.scores.resize(D);
  e.matched.assign(D, {});
  e.ignored.assign(D, {});
  for (size_t d = 0; d < D; ++d) e.scores[d] = dts[d]->score;
  for (int t = 0; t < kIouThresholds; ++t) {
    std::vector<bool> gt_taken(G, false);
    for (size_t d = 0; d < D; ++d) {
      double best = std::min(thresholds[t], 1 - 1e-10);
      int m = -1;
      for (size_t g = 0; g < G; ++g) {
        if (gt_taken[g] && !crowd[g]) continue;  // taken, and only crowds take several
        // Once matched to a real ground truth, ignored ones (sorted last) cannot replace it.
        if (m > -1 && !gt_ignore[m] && gt_ignore[g]) break;
        const double iou = ious_in[d][order[g]];
        if (iou < best) continue;
        best = iou;
        m = static_cast<int>(g);
      }
      if (m == -1) continue;
      e.ignored[d][t] = gt_ignore[m];
      e.matched[d][t] = true;
      gt_taken[m] = true;
    }
  }
  // An unmatched detection outside the area range is not held against the range.
  for (size_t d = 0; d < D; ++d) {
    const double a = dts[d]->box.w * dts[d]->box.h;
    for (int t = 0; t < kIouThresholds; ++t) {
      if (!e.matched[d][t] && OutOfRange(a, area)) e.ignored[d][t] = true;
    }
  }
  return e;
}

Status CheckBox(const BoxXYWH& b, const std::string& what) {
  for (double v : {b.x, b.y, b.w, b.h}) {
    if (!std::isfinite(v)) return InvalidArgument(what + ": a box value is not finite");
  }
  if (b.w < 0 || b.h < 0) {
    return InvalidArgument(what + ": box [x, y, w, h] with a negative size (" + std::to_string(b.w) + " x " +
                           std::to_string(b.h) + "): COCO boxes are [x, y, width, height]");
  }
  return Status::Ok();
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  int64_t n = 0;
  for (double x : v) {
    if (x > -1) {
      sum += x;
      ++n;
    }
  }
  return n ? sum / static_cast<double>(n) : -1.0;
}

}  // namespace

double BoxIou(const BoxXYWH& d, const BoxXYWH& g, bool crowd) {
  return splitinfer::BoxIou(d.x, d.y, d.w, d.h, g.x, g.y, g.w, g.h, crowd);
}

nlohmann::json CocoMetrics::ToJson() const {
  return {{"AP", ap},         {"AP50", ap50},       {"AP75", ap75},   {"AP_small", ap_small},
          {"AP_medium", ap_medium}, {"AP_large", ap_large}, {"AR1", ar1}, {"AR10", ar10},
          {"AR100", ar100},   {"AR_small", ar_small}, {"AR_medium", ar_medium}, {"AR_large", ar_large},
          {"images", images}, {"categories", categories}, {"ground_truths", ground_truths},
          {"detections", detections}};
}

Result<CocoMetrics> EvaluateCoco(const std::vector<int64_t>& image_ids_in, const std::vector<int64_t>& category_ids_in,
                                 const std::vector<GroundTruthBox>& gts, const std::vector<DetectionBox>& dts) {
  // COCOeval evaluates the images and categories in ascending id order.
  const std::set<int64_t> image_set(image_ids_in.begin(), image_ids_in.end());
  const std::set<int64_t> category_set(category_ids_in.begin(), category_ids_in.end());
  using Key = std::pair<int64_t, int64_t>;  // (image, category)
  std::map<Key, std::vector<const GroundTruthBox*>> gt_of;
  std::map<Key, std::vector<const DetectionBox*>> dt_of;
  for (size_t i = 0; i < gts.size(); ++i) {
    const auto& g = gts[i];
    const std::string what = "ground truth " + std::to_string(i) + " (image " + std::to_string(g.image_id) + ")";
    if (!image_set.count(g.image_id)) return InvalidArgument(what + ": its image is not among the dataset's images");
    SI_RETURN_IF_ERROR(CheckBox(g.box, what));
    if (!std::isfinite(g.area) || g.area < 0) return InvalidArgument(what + ": area must be finite and >= 0");
    if (category_set.count(g.category_id)) gt_of[{g.image_id, g.category_id}].push_back(&g);
  }
  for (size_t i = 0; i < dts.size(); ++i) {
    const auto& d = dts[i];
    const std::string what = "detection " + std::to_string(i) + " (image " + std::to_string(d.image_id) + ")";
    if (!image_set.count(d.image_id)) {
      return InvalidArgument(what + ": its image is not among the dataset's images (detections of another split?)");
    }
    SI_RETURN_IF_ERROR(CheckBox(d.box, what));
    if (!std::isfinite(d.score)) return InvalidArgument(what + ": score is not finite");
    if (category_set.count(d.category_id)) dt_of[{d.image_id, d.category_id}].push_back(&d);
  }
  std::vector<double> thresholds(kIouThresholds), recall_points(kRecallPoints);
  for (int t = 0; t < kIouThresholds; ++t) thresholds[t] = Linspace(0.5, 0.95, kIouThresholds, t);
  for (int r = 0; r < kRecallPoints; ++r) recall_points[r] = Linspace(0.0, 1.0, kRecallPoints, r);

  const std::vector<int64_t> images(image_set.begin(), image_set.end());
  const std::vector<int64_t> categories(category_set.begin(), category_set.end());
  const size_t K = categories.size();
  constexpr int M = static_cast<int>(kMaxDets.size());
  // precision[t][r][k][a][m] and recall[t][k][a][m], -1 where a category has nothing to count.
  auto pidx = [&](int t, int r, size_t k, int a, int m) {
    return (((static_cast<size_t>(t) * kRecallPoints + r) * K + k) * kAreas + a) * M + m;
  };
  auto ridx = [&](int t, size_t k, int a, int m) { return ((static_cast<size_t>(t) * K + k) * kAreas + a) * M + m; };
  std::vector<double> precision(static_cast<size_t>(kIouThresholds) * kRecallPoints * K * kAreas * M, -1.0);
  std::vector<double> recall(static_cast<size_t>(kIouThresholds) * K * kAreas * M, -1.0);

  for (size_t k = 0; k < K; ++k) {
    // Per image: detections in score order (stable), at most 100, and their IoUs.
    struct PerImage {
      std::vector<const GroundTruthBox*> gt;
      std::vector<const DetectionBox*> dt;
      std::vector<std::vector<double>> ious;
    };
    std::vector<PerImage> per_image;
    for (int64_t img : images) {
      PerImage p;
      auto gi = gt_of.find({img, categories[k]});
      auto di = dt_of.find({img, categories[k]});
      if (gi != gt_of.end()) p.gt = gi->second;
      if (di != dt_of.end()) p.dt = di->second;
      if (p.gt.empty() && p.dt.empty()) continue;  // COCOeval: no evaluation for this image
      std::stable_sort(p.dt.begin(), p.dt.end(),
                       [](const DetectionBox* a, const DetectionBox* b) { return a->score > b->score; });
      if (p.dt.size() > static_cast<size_t>(kMaxDets.back())) p.dt.resize(kMaxDets.back());
      p.ious.assign(p.dt.size(), std::vector<double>(p.gt.size()));
      for (size_t d = 0; d < p.dt.size(); ++d) {
        for (size_t g = 0; g < p.gt.size(); ++g) p.ious[d][g] = BoxIou(p.dt[d]->box, p.gt[g]->box, p.gt[g]->iscrowd);
      }
      per_image.push_back(std::move(p));
    }
    for (int a = 0; a < kAreas; ++a) {
      std::vector<ImageEval> evals;
      evals.reserve(per_image.size());
      int64_t npig = 0;
      for (const auto& p : per_image) {
        evals.push_back(EvaluateImage(p.gt, p.dt, p.ious, a, thresholds));
        npig += evals.back().non_ignored_gt;
      }
      if (npig == 0) continue;
      for (int m = 0; m < M; ++m) {
        // All images' first maxDets detections, in score order (stable over images in id order).
        struct Ref {
          double score;
          const ImageEval* e;
          size_t d;
        };
        std::vector<Ref> all;
        for (const auto& e : evals) {
          const size_t n = std::min(e.scores.size(), static_cast<size_t>(kMaxDets[m]));
          for (size_t d = 0; d < n; ++d) all.push_back({e.scores[d], &e, d});
        }
        std::stable_sort(all.begin(), all.end(), [](const Ref& x, const Ref& y) { return x.score > y.score; });
        const size_t nd = all.size();
        for (int t = 0; t < kIouThresholds; ++t) {
          std::vector<double> rc, pr;
          rc.reserve(nd);
          pr.reserve(nd);
          double tp = 0, fp = 0;
          for (const auto& r : all) {
            if (!r.e->ignored[r.d][t]) (r.e->matched[r.d][t] ? tp : fp) += 1;
            rc.push_back(tp / static_cast<double>(npig));
            pr.push_back(tp / (fp + tp + std::numeric_limits<double>::epsilon()));
          }
          recall[ridx(t, k, a, m)] = nd ? rc.back() : 0.0;
          for (size_t i = nd; i-- > 1;) {
            if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
          }
          for (int r = 0; r < kRecallPoints; ++r) {
            const size_t pi = static_cast<size_t>(std::lower_bound(rc.begin(), rc.end(), recall_points[r]) - rc.begin());
            precision[pidx(t, r, k, a, m)] = pi < nd ? pr[pi] : 0.0;
          }
        }
      }
    }
  }
  // COCOeval.summarize: means over what exists (> -1), -1 when nothing does.
  auto ap = [&](int t_only, int a, int m) {
    std::vector<double> v;
    for (int t = 0; t < kIouThresholds; ++t) {
      if (t_only >= 0 && t != t_only) continue;
      for (int r = 0; r < kRecallPoints; ++r) {
        for (size_t k = 0; k < K; ++k) v.push_back(precision[pidx(t, r, k, a, m)]);
      }
    }
    return Mean(v);
  };
  auto ar = [&](int a, int m) {
    std::vector<double> v;
    for (int t = 0; t < kIouThresholds; ++t) {
      for (size_t k = 0; k < K; ++k) v.push_back(recall[ridx(t, k, a, m)]);
    }
    return Mean(v);
  };
  CocoMetrics out;
  const int last = M - 1;
  out.ap = ap(-1, 0, last);
  out.ap50 = ap(0, 0, last);
  out.ap75 = ap(5, 0, last);
  out.ap_small = ap(-1, 1, last);
  out.ap_medium = ap(-1, 2, last);
  out.ap_large = ap(-1, 3, last);
  out.ar1 = ar(0, 0);
  out.ar10 = ar(0, 1);
  out.ar100 = ar(0, last);
  out.ar_small = ar(1, last);
  out.ar_medium = ar(2, last);
  out.ar_large = ar(3, last);
  out.images = static_cast<int64_t>(images.size());
  out.categories = static_cast<int64_t>(K);
  out.ground_truths = static_cast<int64_t>(gts.size());
  out.detections = static_cast<int64_t>(dts.size());
  return out;
}

Result<CocoScorer> CocoScorer::Create(const data::CocoAnnotations& coco, int64_t n, int64_t num_classes,
                                      const std::string& origin) {
  if (static_cast<int64_t>(coco.categories.size()) != num_classes) {
    return Mismatch(origin + " has " + std::to_string(coco.categories.size()) + " categories; the detector " +
                    std::to_string(num_classes) + " classes");
  }
  const auto total = static_cast<int64_t>(coco.images.size());
  if (n <= 0 || n > total) n = total;
  CocoScorer s;
  s.coco_ = &coco;
  for (const auto& c : coco.categories) s.category_ids_.push_back(c.id);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = coco.images[static_cast<size_t>(i)].id;
    s.image_ids_.push_back(id);
    const auto it = coco.by_image.find(id);
    if (it == coco.by_image.end()) continue;
    for (size_t a : it->second) {
      const auto& an = coco.annotations[a];
      s.truths_.push_back({an.image_id, an.category_id, {an.x, an.y, an.w, an.h}, an.area, an.iscrowd});
    }
  }
  return s;
}

Status CocoScorer::Add(int64_t index, double scale, double pad_x, double pad_y, const std::vector<InputBox>& boxes) {
  if (index < 0 || index >= images()) {
    return InvalidArgument("image " + std::to_string(index) + " is outside the " + std::to_string(images()) +
                           " images being scored");
  }
  if (!(scale > 0) || !std::isfinite(scale)) return InvalidArgument("a letterbox scale must be > 0");
  const auto& im = coco_->images[static_cast<size_t>(index)];
  const auto w = static_cast<double>(im.width), h = static_cast<double>(im.height);
  for (const auto& d : boxes) {
    if (d.label < 0 || d.label >= static_cast<int64_t>(category_ids_.size())) {
      return InvalidArgument("a detection of image " + std::to_string(index) + " has class " +
                             std::to_string(d.label) + "; there are " + std::to_string(category_ids_.size()));
    }
    // Back from the letterboxed input to the image's own pixels, clipped to it.
    const double x0 = std::clamp((d.x0 - pad_x) / scale, 0.0, w), y0 = std::clamp((d.y0 - pad_y) / scale, 0.0, h);
    const double x1 = std::clamp((d.x1 - pad_x) / scale, 0.0, w), y1 = std::clamp((d.y1 - pad_y) / scale, 0.0, h);
    if (!(x1 > x0) || !(y1 > y0)) continue;  // also drops NaN corners
    detections_.push_back({im.id, category_ids_[static_cast<size_t>(d.label)], {x0, y0, x1 - x0, y1 - y0}, d.score});
  }
  return Status::Ok();
}

Result<CocoMetrics> CocoScorer::Score(bool class_agnostic) const {
  if (!class_agnostic) return EvaluateCoco(image_ids_, category_ids_, truths_, detections_);
  auto truths = truths_;
  auto detections = detections_;
  for (auto& t : truths) t.category_id = 0;
  for (auto& d : detections) d.category_id = 0;
  return EvaluateCoco(image_ids_, {0}, truths, detections);
}

}  // namespace splitinfer::eval
