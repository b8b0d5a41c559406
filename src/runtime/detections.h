// runtime/detections: a detector's boxes (detect/yolo.h, top-left corner and size) as the wire
// carries them (wire.h, corners). The server answers with them and the node-only mode makes the
// same answer locally, so both convert here.
#pragma once

#include <cstdint>
#include <vector>

#include "detect/yolo.h"
#include "runtime/wire.h"

namespace splitinfer::runtime {

inline std::vector<WireBox> ToWireBoxes(const std::vector<detect::Box>& boxes) {
  std::vector<WireBox> out;
  out.reserve(boxes.size());
  for (const auto& b : boxes) out.push_back({b.x, b.y, b.x + b.w, b.y + b.h, b.score, static_cast<int32_t>(b.label)});
  return out;
}

}  // namespace splitinfer::runtime
