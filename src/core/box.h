// core/box: the overlap of two axis-aligned boxes, each given as its top-left corner and size
// (COCO's x, y, w, h). One definition for COCO's metric, NMS and the scene generator, so that
// "IoU" means the same everywhere. Templated on the number type: NMS works in float (its boxes
// are), the metric and the generator in double.
#pragma once

#include <algorithm>

namespace splitinfer {

// Intersection over union; with `over_first`, intersection over the first box's area (COCO's
// rule for a detection against a crowd region). 0 when the boxes do not overlap or the
// denominator is not positive.
template <typename T>
T BoxIou(T ax, T ay, T aw, T ah, T bx, T by, T bw, T bh, bool over_first = false) {
  const T iw = std::min(ax + aw, bx + bw) - std::max(ax, bx);
  const T ih = std::min(ay + ah, by + bh) - std::max(ay, by);
  if (iw <= 0 || ih <= 0) return T(0);
  const T inter = iw * ih;
  const T denominator = over_first ? aw * ah : aw * ah + bw * bh - inter;
  return denominator > 0 ? inter / denominator : T(0);
}

}  // namespace splitinfer
