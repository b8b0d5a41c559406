#include "detect/yolo.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include <torch/torch.h>

#include "core/box.h"

namespace splitinfer::detect {
namespace {

constexpr int64_t kAnchorsPerScale = 3;
constexpr double kMaxLogSize = 8.0;  // exp(8) x the largest anchor: far beyond any input

int64_t Ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

float Iou(const Box& a, const Box& b) { return BoxIou(a.x, a.y, a.w, a.h, b.x, b.y, b.w, b.h); }

}  // namespace

int64_t YoloLayout::cells() const {
  return Ceil(input_h, 32) * Ceil(input_w, 32) + Ceil(input_h, 16) * Ceil(input_w, 16);
}

Status YoloLayout::Check(const torch::Tensor& y) const {
  const int64_t channels = kAnchorsPerScale * (5 + num_classes);
  if (anchors.size() != 2 * kAnchorsPerScale) {
    return InvalidArgument("YOLOv3-tiny has 6 anchors (3 per head), not " + std::to_string(anchors.size()));
  }
  if (y.dim() != 3 || y.size(1) != channels || y.size(2) != cells()) {
    return InvalidArgument("a YOLOv3-tiny output for " + std::to_string(num_classes) + " classes at " +
                           std::to_string(input_h) + "x" + std::to_string(input_w) + " is [N, " +
                           std::to_string(channels) + ", " + std::to_string(cells()) + "], not " +
                           std::to_string(y.dim()) + "-d " + c10::str(y.sizes()));
  }
  return Status::Ok();
}

Result<torch::Tensor> DecodeYolo(const torch::Tensor& output, const YoloLayout& L) {
  SI_RETURN_IF_ERROR(L.Check(output));
  const int64_t n = output.size(0), per = 5 + L.num_classes;
  std::vector<torch::Tensor> scales;
  int64_t offset = 0;
  // Stride 32 (anchors 3..5) first, then stride 16 (anchors 0..2), as the network packs them.
  for (int64_t stride : {32, 16}) {
    const int64_t gh = Ceil(L.input_h, stride), gw = Ceil(L.input_w, stride);
    const int64_t first = stride == 32 ? kAnchorsPerScale : 0;
    auto p = output.narrow(2, offset, gh * gw).reshape({n, kAnchorsPerScale, per, gh, gw}).permute({0, 1, 3, 4, 2});
    offset += gh * gw;
    const auto opts = output.options();
    const auto gy = torch::arange(gh, opts).view({1, 1, gh, 1, 1}).expand({n, kAnchorsPerScale, gh, gw, 1});
    const auto gx = torch::arange(gw, opts).view({1, 1, 1, gw, 1}).expand({n, kAnchorsPerScale, gh, gw, 1});
    auto anchor = torch::empty({kAnchorsPerScale, 2}, opts);
    for (int64_t a = 0; a < kAnchorsPerScale; ++a) {
      anchor[a][0] = L.anchors[first + a][0];
      anchor[a][1] = L.anchors[first + a][1];
    }
    anchor = anchor.view({1, kAnchorsPerScale, 1, 1, 2});
    const double s = static_cast<double>(stride);
    const auto cx = (torch::sigmoid(p.narrow(4, 0, 1)) + gx) * s;
    const auto cy = (torch::sigmoid(p.narrow(4, 1, 1)) + gy) * s;
    const auto wh = torch::exp(p.narrow(4, 2, 2).clamp_max(kMaxLogSize)) * anchor;
    const auto rest = torch::sigmoid(p.narrow(4, 4, per - 4));
    scales.push_back(torch::cat({cx, cy, wh, rest}, 4).reshape({n, -1, per}));
  }
  return torch::cat(scales, 1);
}

std::vector<size_t> Nms(const std::vector<Box>& boxes, float iou_threshold) {
  std::vector<size_t> order(boxes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return boxes[a].score > boxes[b].score; });
  std::vector<size_t> keep;
  std::vector<bool> gone(boxes.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    if (gone[order[i]]) continue;
    keep.push_back(order[i]);
    for (size_t j = i + 1; j < order.size(); ++j) {
      if (!gone[order[j]] && Iou(boxes[order[i]], boxes[order[j]]) > iou_threshold) gone[order[j]] = true;
    }
  }
  return keep;
}

Result<std::vector<std::vector<Box>>> PostProcess(const torch::Tensor& output, const YoloLayout& L,
                                                  const PostProcessOptions& o) {
  SI_ASSIGN_OR_RETURN(torch::Tensor d, DecodeYolo(output.detach(), L));
  d = d.to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t n = d.size(0), rows = d.size(1), per = d.size(2);
  const float W = static_cast<float>(L.input_w), H = static_cast<float>(L.input_h);
  std::vector<std::vector<Box>> out(static_cast<size_t>(n));
  const float* base = d.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    std::vector<std::vector<Box>> by_class(static_cast<size_t>(L.num_classes));
    for (int64_t r = 0; r < rows; ++r) {
      const float* v = base + (i * rows + r) * per;
      for (int64_t c = 0; c < L.num_classes; ++c) {
        const float score = v[4] * v[5 + c];
        if (!(score > o.score_threshold)) continue;  // also drops NaN
        // Corners, clipped to the input: a box is never outside the image or non-finite.
        const float x0 = std::clamp(v[0] - v[2] / 2, 0.0f, W), y0 = std::clamp(v[1] - v[3] / 2, 0.0f, H);
        const float x1 = std::clamp(v[0] + v[2] / 2, 0.0f, W), y1 = std::clamp(v[1] + v[3] / 2, 0.0f, H);
        if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1) || x1 <= x0 ||
            y1 <= y0) {
          continue;
        }
        by_class[static_cast<size_t>(c)].push_back({x0, y0, x1 - x0, y1 - y0, score, c});
      }
    }
    size_t candidates = 0;
    for (const auto& boxes : by_class) candidates += boxes.size();
    if (o.max_candidates > 0 && candidates > static_cast<size_t>(o.max_candidates)) {
      // Only the best max_candidates go on (ties: the earlier class and cell first).
      std::vector<Box> all;
      all.reserve(candidates);
      for (auto& boxes : by_class) all.insert(all.end(), boxes.begin(), boxes.end());
      std::stable_sort(all.begin(), all.end(), [](const Box& a, const Box& b) { return a.score > b.score; });
      all.resize(static_cast<size_t>(o.max_candidates));
      for (auto& boxes : by_class) boxes.clear();
      for (const Box& b : all) by_class[static_cast<size_t>(b.label)].push_back(b);
    }
    auto& kept = out[static_cast<size_t>(i)];
    for (auto& boxes : by_class) {
      for (size_t k : Nms(boxes, o.iou_threshold)) kept.push_back(boxes[k]);
    }
    std::stable_sort(kept.begin(), kept.end(), [](const Box& a, const Box& b) { return a.score > b.score; });
    if (static_cast<int64_t>(kept.size()) > o.max_detections) kept.resize(static_cast<size_t>(o.max_detections));
  }
  return out;
}

void InitYoloHeadBias(torch::Tensor bias, const YoloLayout& layout, int64_t cells) {
  torch::NoGradGuard no_grad;
  const int64_t per_anchor = 5 + layout.num_classes;
  const auto b = bias.view({-1, per_anchor});
  b.select(1, 4).fill_(std::log(8.0 / static_cast<double>(std::max<int64_t>(cells, 1))));
  b.narrow(1, 5, layout.num_classes).fill_(std::log(0.6 / (static_cast<double>(layout.num_classes) - 0.99)));
}

Result<YoloLayout> LayoutFor(const models::CheckpointMeta& meta) {
  if (!models::IsDetector(meta)) {
    return InvalidArgument(meta.model + " is not a detector (task " + meta.task + "); it has no boxes to decode");
  }
  if (meta.input_shape.size() != 3 || meta.anchors.size() != 6) {
    return InvalidArgument(meta.model + ": a detector needs a [C, S, S] input shape and 6 anchors");
  }
  YoloLayout layout;
  layout.num_classes = meta.options.num_classes;
  layout.input_h = meta.input_shape[1];
  layout.input_w = meta.input_shape[2];
  layout.anchors = meta.anchors;
  return layout;
}

}  // namespace splitinfer::detect
