// data/coco: COCO-format detection annotations (an `instances_*.json`), read and checked. No
// LibTorch: the parser is tested on its own and fuzzed (tests/fuzz), like every loader a file
// reaches.
//
// The file holds `images` ({id, file_name, width, height}), `categories` ({id, name}) and
// `annotations` ({id, image_id, category_id, bbox: [x, y, w, h], area, iscrowd}); other keys
// (info, licenses, segmentation, ...) are ignored. Checked before anything is used, each error
// naming the file, the entry and what to do: a missing or mistyped key, a duplicated image,
// category or annotation id, an annotation of an unknown image or category, a box with a
// negative or non-finite size, a box outside its image (by more than a pixel: COCO's own files
// round box corners), an image without a positive size.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace splitinfer::data {

struct CocoImage {
  int64_t id = 0;
  std::string file_name;
  int64_t width = 0, height = 0;
};

struct CocoCategory {
  int64_t id = 0;
  std::string name;
};

struct CocoAnnotation {
  int64_t id = 0, image_id = 0, category_id = 0;
  double x = 0, y = 0, w = 0, h = 0;  // pixels: top-left corner and size
  double area = 0;                    // as given; w x h when the file has none
  bool iscrowd = false;
};

struct CocoAnnotations {
  std::vector<CocoImage> images;            // in file order
  std::vector<CocoCategory> categories;     // in file order
  std::vector<CocoAnnotation> annotations;  // in file order
  std::map<int64_t, std::vector<size_t>> by_image;  // image id -> indices into annotations
  // Index of a category id in `categories` (the class index a model predicts).
  std::map<int64_t, int64_t> category_index;
};

inline constexpr size_t kMaxCocoJsonBytes = size_t{2} << 30;  // 2 GiB: COCO's train2017 is 450 MB

// Parses and checks the text of an annotation file; `origin` names it in errors.
Result<CocoAnnotations> ParseCocoAnnotations(const std::string& text, const std::string& origin);
// Reads `path` (at most kMaxCocoJsonBytes) and parses it.
Result<CocoAnnotations> LoadCocoAnnotations(const std::string& path);

}  // namespace splitinfer::data
