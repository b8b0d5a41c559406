// libFuzzer target: the COCO annotation reader (src/data/coco.h) that every detection dataset
// goes through. Hostile text must come back as INVALID_ARGUMENT naming the file, never as a
// crash, a hang or an uncaught exception; what it accepts must hold together: every annotation
// of a listed image and category, its box finite, of non-negative size and inside its image
// (within the reader's slack), the per-image index pointing at annotations of that image.
#include <cmath>
#include <cstdint>
#include <string>

#include "data/coco.h"
#include "fuzz_fail.h"

namespace {

using namespace splitinfer;

[[noreturn]] void Fail(const char* what, const Status& s) { splitinfer_fuzz::Fail("coco_fuzz", what, s); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto r = data::ParseCocoAnnotations(text, "fuzz.json");
  if (!r.ok()) {
    if (r.status().code() != ErrorCode::kInvalidArgument) Fail("not INVALID_ARGUMENT", r.status());
    if (r.status().message().rfind("fuzz.json", 0) != 0) Fail("an error that does not name the file", r.status());
    return 0;
  }
  const auto& c = *r;
  if (c.categories.empty()) Fail("accepted a file without categories", Status::Ok());
  size_t indexed = 0;
  for (const auto& [image, list] : c.by_image) {
    for (size_t i : list) {
      if (i >= c.annotations.size() || c.annotations[i].image_id != image) Fail("a broken per-image index", Status::Ok());
      ++indexed;
    }
  }
  if (indexed != c.annotations.size()) Fail("annotations missing from the per-image index", Status::Ok());
  for (const auto& a : c.annotations) {
    if (!c.category_index.count(a.category_id)) Fail("an annotation of an unknown category", Status::Ok());
    const data::CocoImage* im = nullptr;
    for (const auto& x : c.images) {
      if (x.id == a.image_id) im = &x;
    }
    if (!im) Fail("an annotation of an unknown image", Status::Ok());
    if (!(a.w >= 0) || !(a.h >= 0) || !std::isfinite(a.x) || !std::isfinite(a.y) || !std::isfinite(a.area)) {
      Fail("a box with a negative or non-finite value", Status::Ok());
    }
    if (a.x + a.w > static_cast<double>(im->width) + 1.0 || a.y + a.h > static_cast<double>(im->height) + 1.0) {
      Fail("a box outside its image", Status::Ok());
    }
  }
  return 0;
}
