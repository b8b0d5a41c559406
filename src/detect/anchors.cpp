#include "detect/anchors.h"

#include "core/random.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace splitinfer::detect {
namespace {

constexpr int kRestarts = 10;

double Median(std::vector<double> v) {
  const size_t n = v.size();
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n / 2), v.end());
  const double hi = v[n / 2];
  if (n % 2) return hi;
  return (hi + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n / 2))) / 2;
}

}  // namespace

double SizeIou(const Size2& a, const Size2& b) {
  const double inter = std::min(a[0], b[0]) * std::min(a[1], b[1]);
  return inter / (a[0] * a[1] + b[0] * b[1] - inter);
}

namespace {

AnchorFit FitOnce(const std::vector<Size2>& sizes, int k, SplitMix64& rng, int max_iterations);

}  // namespace

Result<AnchorFit> FitAnchors(const std::vector<Size2>& sizes, int k, uint64_t seed, int max_iterations) {
  if (k < 1) return InvalidArgument("anchors: k must be >= 1");
  if (sizes.size() < static_cast<size_t>(k)) {
    return InvalidArgument("anchors: " + std::to_string(sizes.size()) + " boxes cannot make " + std::to_string(k) +
                           " anchors (the training split has too few objects)");
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (!(sizes[i][0] > 0) || !(sizes[i][1] > 0) || !std::isfinite(sizes[i][0]) || !std::isfinite(sizes[i][1])) {
      return InvalidArgument("anchors: box " + std::to_string(i) + " has no positive finite size");
    }
  }
  // Lloyd's iterations find a local optimum: the best of a few seedings (one random stream).
  SplitMix64 rng(seed);
  AnchorFit best;
  for (int restart = 0; restart < kRestarts; ++restart) {
    AnchorFit fit = FitOnce(sizes, k, rng, max_iterations);
    if (restart == 0 || fit.mean_best_iou > best.mean_best_iou) best = fit;
  }
  return best;
}

namespace {

AnchorFit FitOnce(const std::vector<Size2>& sizes, int k, SplitMix64& rng, int max_iterations) {
  // k-means++: each next seed drawn with probability proportional to (1 - IoU to the nearest)^2.
  std::vector<Size2> c = {sizes[rng.Next() % sizes.size()]};
  std::vector<double> d(sizes.size());
  while (c.size() < static_cast<size_t>(k)) {
    double total = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      double best = 1.0;
      for (const auto& x : c) best = std::min(best, 1.0 - SizeIou(sizes[i], x));
      d[i] = best * best;
      total += d[i];
    }
    if (!(total > 0)) {  // every box equals a centroid already: duplicate one (degenerate data)
      c.push_back(c.back());
      continue;
    }
    double r = rng.Uniform() * total;
    size_t pick = sizes.size() - 1;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if ((r -= d[i]) <= 0) {
        pick = i;
        break;
      }
    }
    c.push_back(sizes[pick]);
  }
  AnchorFit fit;
  std::vector<int> assign(sizes.size(), -1);
  for (fit.iterations = 1; fit.iterations <= max_iterations; ++fit.iterations) {
    bool changed = false;
    for (size_t i = 0; i < sizes.size(); ++i) {
      int best = 0;
      for (int j = 1; j < k; ++j) {
        if (SizeIou(sizes[i], c[j]) > SizeIou(sizes[i], c[best])) best = j;
      }
      if (assign[i] != best) changed = true;
      assign[i] = best;
    }
    if (!changed) break;
    for (int j = 0; j < k; ++j) {
      std::vector<double> w, h;
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (assign[i] == j) {
          w.push_back(sizes[i][0]);
          h.push_back(sizes[i][1]);
        }
      }
      if (!w.empty()) c[j] = {Median(w), Median(h)};  // an empty cluster keeps its centroid
    }
  }
  fit.iterations = std::min(fit.iterations, max_iterations);
  std::sort(c.begin(), c.end(), [](const Size2& a, const Size2& b) { return a[0] * a[1] < b[0] * b[1]; });
  double sum = 0;
  for (const auto& s : sizes) {
    double best = 0;
    for (const auto& x : c) best = std::max(best, SizeIou(s, x));
    sum += best;
  }
  fit.anchors = c;
  fit.mean_best_iou = sum / static_cast<double>(sizes.size());
  return fit;
}

}  // namespace

}  // namespace splitinfer::detect
