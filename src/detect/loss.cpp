#include "detect/loss.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <torch/torch.h>

namespace splitinfer::detect {
namespace {

constexpr int64_t kA = 3;               // anchors per head
constexpr double kMaxLogSize = 8.0;     // as detect/yolo.cpp: exp never overflows

// GIoU of boxes given as centre x, centre y, w, h ([P, 4] each).
torch::Tensor Giou(const torch::Tensor& p, const torch::Tensor& t) {
  const auto p0 = p.narrow(1, 0, 2) - p.narrow(1, 2, 2) / 2, p1 = p.narrow(1, 0, 2) + p.narrow(1, 2, 2) / 2;
  const auto t0 = t.narrow(1, 0, 2) - t.narrow(1, 2, 2) / 2, t1 = t.narrow(1, 0, 2) + t.narrow(1, 2, 2) / 2;
  const auto inter_wh = (torch::min(p1, t1) - torch::max(p0, t0)).clamp_min(0);
  const auto inter = inter_wh.select(1, 0) * inter_wh.select(1, 1);
  const auto area_p = p.select(1, 2) * p.select(1, 3), area_t = t.select(1, 2) * t.select(1, 3);
  const auto uni = area_p + area_t - inter + 1e-9;
  const auto hull_wh = torch::max(p1, t1) - torch::min(p0, t0);
  const auto hull = hull_wh.select(1, 0) * hull_wh.select(1, 1) + 1e-9;
  return inter / uni - (hull - uni) / hull;
}

}  // namespace

Result<YoloLoss> ComputeYoloLoss(const torch::Tensor& output, const torch::Tensor& targets, const YoloLayout& L,
                                 const YoloLossGains& g) {
  SI_RETURN_IF_ERROR(L.Check(output));
  const int64_t n = output.size(0), per = 5 + L.num_classes;
  if (targets.dim() != 2 || targets.size(1) != 6) {
    return InvalidArgument("targets must be [M, 6] = (batch index, class, x, y, w, h), not " + c10::str(targets.sizes()));
  }
  const auto t = targets.to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t m = t.size(0);
  const auto ta = t.accessor<double, 2>();
  for (int64_t i = 0; i < m; ++i) {
    const bool ok = ta[i][0] >= 0 && ta[i][0] < n && ta[i][0] == std::floor(ta[i][0]) && ta[i][1] >= 0 &&
                    ta[i][1] < L.num_classes && ta[i][1] == std::floor(ta[i][1]) && ta[i][4] > 0 && ta[i][5] > 0 &&
                    std::isfinite(ta[i][2]) && std::isfinite(ta[i][3]) && std::isfinite(ta[i][4]) &&
                    std::isfinite(ta[i][5]);
    if (!ok) {
      return InvalidArgument("target " + std::to_string(i) + " (batch " + std::to_string(ta[i][0]) + ", class " +
                             std::to_string(ta[i][1]) + ") is out of range: batch index < " + std::to_string(n) +
                             ", class < " + std::to_string(L.num_classes) + ", a box of positive size");
    }
  }
  // Which anchors each target takes: within the ratio, or the best one when none is.
  std::vector<std::vector<int64_t>> takes(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    double best_ratio = 1e300;
    int64_t best = 0;
    for (int64_t a = 0; a < 2 * kA; ++a) {
      const double rw = ta[i][4] / L.anchors[a][0], rh = ta[i][5] / L.anchors[a][1];
      const double r = std::max({rw, 1 / rw, rh, 1 / rh});
      if (r < g.anchor_ratio) takes[i].push_back(a);
      if (r < best_ratio) best_ratio = r, best = a;
    }
    if (takes[i].empty()) takes[i].push_back(best);
  }
  const auto opts = output.options();
  auto zero = torch::zeros({}, opts);
  auto lbox = zero, lobj = zero, lcls = zero;
  int64_t positives = 0;
  int64_t offset = 0;
  for (int64_t stride : {32, 16}) {
    const int64_t gh = (L.input_h + stride - 1) / stride, gw = (L.input_w + stride - 1) / stride;
    const int64_t first = stride == 32 ? kA : 0;
    const auto p = output.narrow(2, offset, gh * gw).reshape({n, kA, per, gh, gw}).permute({0, 1, 3, 4, 2});
    offset += gh * gw;
    // Positives of this head: (image, anchor, gy, gx), the target box in grid units, its class.
    std::vector<int64_t> bi, ai, gyi, gxi, cls;
    std::vector<double> box;  // offset x, offset y, w, h (grid units), the anchor's w, h (grid units)
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t a : takes[i]) {
        if (a < first || a >= first + kA) continue;
        const double cx = (ta[i][2] + ta[i][4] / 2) / stride, cy = (ta[i][3] + ta[i][5] / 2) / stride;
        const int64_t gx = std::clamp<int64_t>(static_cast<int64_t>(std::floor(cx)), 0, gw - 1);
        const int64_t gy = std::clamp<int64_t>(static_cast<int64_t>(std::floor(cy)), 0, gh - 1);
        bi.push_back(static_cast<int64_t>(ta[i][0]));
        ai.push_back(a - first);
        gyi.push_back(gy);
        gxi.push_back(gx);
        cls.push_back(static_cast<int64_t>(ta[i][1]));
        box.insert(box.end(), {cx - gx, cy - gy, ta[i][4] / stride, ta[i][5] / stride, L.anchors[a][0] / stride,
                               L.anchors[a][1] / stride});
      }
    }
    auto obj_target = torch::zeros({n, kA, gh, gw}, opts);
    const int64_t P = static_cast<int64_t>(bi.size());
    if (P > 0) {
      auto idx = [&](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong).to(opts.device()); };
      const auto b = idx(bi), a = idx(ai), y = idx(gyi), x = idx(gxi);
      const auto ps = p.index({b, a, y, x});  // [P, per]
      const auto tb = torch::tensor(box, torch::kDouble).view({P, 6}).to(opts);
      const auto pxy = torch::sigmoid(ps.narrow(1, 0, 2));
      const auto pwh = torch::exp(ps.narrow(1, 2, 2).clamp_max(kMaxLogSize)) * tb.narrow(1, 4, 2);
      const auto giou = Giou(torch::cat({pxy, pwh}, 1), tb.narrow(1, 0, 4));
      lbox = lbox + (1.0 - giou).mean();
      obj_target.index_put_({b, a, y, x}, giou.detach().clamp_min(0).to(opts.dtype()));
      auto onehot = torch::zeros({P, L.num_classes}, opts);
      onehot.index_put_({torch::arange(P, torch::kLong).to(opts.device()), idx(cls)}, 1.0);
      lcls = lcls + torch::binary_cross_entropy_with_logits(ps.narrow(1, 5, L.num_classes), onehot);
      positives += P;
    }
    const double balance = stride == 16 ? g.balance16 : g.balance32;
    lobj = lobj + balance * torch::binary_cross_entropy_with_logits(p.select(4, 4), obj_target);
  }
  YoloLoss out;
  out.total = (g.box * lbox + g.objectness * lobj + g.cls * lcls) * static_cast<double>(n);
  out.box = lbox.item<double>();
  out.objectness = lobj.item<double>();
  out.cls = lcls.item<double>();
  out.positives = positives;
  return out;
}

}  // namespace splitinfer::detect
