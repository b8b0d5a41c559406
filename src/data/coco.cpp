#include "data/coco.h"

#include <cmath>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "core/system.h"

namespace splitinfer::data {
namespace {

using Json = nlohmann::json;

// How far a box may reach past its image before the file is refused (COCO rounds corners).
constexpr double kBoxSlackPx = 1.0;

std::string Where(const std::string& origin, const char* list, size_t i) {
  return origin + ": " + list + "[" + std::to_string(i) + "]";
}

Result<int64_t> IntKey(const Json& o, const char* key, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end()) return InvalidArgument(where + " has no '" + key + "'");
  if (!it->is_number_integer()) return InvalidArgument(where + ": '" + key + "' must be an integer, not " + it->dump());
  return it->get<int64_t>();
}

Result<std::string> StringKey(const Json& o, const char* key, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end()) return InvalidArgument(where + " has no '" + key + "'");
  if (!it->is_string()) return InvalidArgument(where + ": '" + key + "' must be a string");
  return it->get<std::string>();
}

Result<const Json*> ListKey(const Json& root, const char* key, const std::string& origin) {
  auto it = root.find(key);
  if (it == root.end()) {
    return InvalidArgument(origin + " has no '" + key +
                           "': a COCO annotation file holds images, categories and annotations lists");
  }
  if (!it->is_array()) return InvalidArgument(origin + ": '" + key + "' must be a list");
  return &*it;
}

std::string BoxText(const CocoAnnotation& a) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "[%g, %g, %g, %g]", a.x, a.y, a.w, a.h);
  return buf;
}

}  // namespace

Result<CocoAnnotations> ParseCocoAnnotations(const std::string& text, const std::string& origin) {
  const Json root = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return InvalidArgument(origin + " is not valid JSON (a COCO instances_*.json file?)");
  if (!root.is_object()) return InvalidArgument(origin + ": the top level must be an object {images, categories, annotations}");
  SI_ASSIGN_OR_RETURN(const Json* images, ListKey(root, "images", origin));
  SI_ASSIGN_OR_RETURN(const Json* categories, ListKey(root, "categories", origin));
  SI_ASSIGN_OR_RETURN(const Json* annotations, ListKey(root, "annotations", origin));
  CocoAnnotations out;
  std::map<int64_t, size_t> image_index;
  out.images.reserve(images->size());
  for (size_t i = 0; i < images->size(); ++i) {
    const Json& o = (*images)[i];
    const std::string where = Where(origin, "images", i);
    if (!o.is_object()) return InvalidArgument(where + " is not an object");
    CocoImage im;
    SI_ASSIGN_OR_RETURN(im.id, IntKey(o, "id", where));
    SI_ASSIGN_OR_RETURN(im.file_name, StringKey(o, "file_name", where));
    SI_ASSIGN_OR_RETURN(im.width, IntKey(o, "width", where));
    SI_ASSIGN_OR_RETURN(im.height, IntKey(o, "height", where));
    if (im.width <= 0 || im.height <= 0) {
      return InvalidArgument(where + " (" + im.file_name + "): width and height must be positive");
    }
    if (im.file_name.empty() || im.file_name.find("..") != std::string::npos || im.file_name[0] == '/') {
      return InvalidArgument(where + ": file_name '" + im.file_name +
                             "' must name a file inside the image folder (no '..', not absolute)");
    }
    if (!image_index.emplace(im.id, out.images.size()).second) {
      return InvalidArgument(where + ": image id " + std::to_string(im.id) + " appears twice");
    }
    out.images.push_back(std::move(im));
  }
  for (size_t i = 0; i < categories->size(); ++i) {
    const Json& o = (*categories)[i];
    const std::string where = Where(origin, "categories", i);
    if (!o.is_object()) return InvalidArgument(where + " is not an object");
    CocoCategory c;
    SI_ASSIGN_OR_RETURN(c.id, IntKey(o, "id", where));
    SI_ASSIGN_OR_RETURN(c.name, StringKey(o, "name", where));
    if (!out.category_index.emplace(c.id, static_cast<int64_t>(out.categories.size())).second) {
      return InvalidArgument(where + ": category id " + std::to_string(c.id) + " appears twice");
    }
    out.categories.push_back(std::move(c));
  }
  if (out.categories.empty()) return InvalidArgument(origin + ": 'categories' is empty: a detector needs classes");
  std::set<int64_t> annotation_ids;
  out.annotations.reserve(annotations->size());
  for (size_t i = 0; i < annotations->size(); ++i) {
    const Json& o = (*annotations)[i];
    const std::string where = Where(origin, "annotations", i);
    if (!o.is_object()) return InvalidArgument(where + " is not an object");
    CocoAnnotation a;
    SI_ASSIGN_OR_RETURN(a.id, IntKey(o, "id", where));
    SI_ASSIGN_OR_RETURN(a.image_id, IntKey(o, "image_id", where));
    SI_ASSIGN_OR_RETURN(a.category_id, IntKey(o, "category_id", where));
    const std::string named = where + " (id " + std::to_string(a.id) + ")";
    if (!annotation_ids.insert(a.id).second) return InvalidArgument(named + ": annotation id appears twice");
    auto img = image_index.find(a.image_id);
    if (img == image_index.end()) {
      return InvalidArgument(named + ": image_id " + std::to_string(a.image_id) + " is not in 'images'");
    }
    if (!out.category_index.count(a.category_id)) {
      return InvalidArgument(named + ": category_id " + std::to_string(a.category_id) + " is not in 'categories'");
    }
    auto bb = o.find("bbox");
    if (bb == o.end() || !bb->is_array() || bb->size() != 4) {
      return InvalidArgument(named + ": 'bbox' must be a list of 4 numbers [x, y, width, height]");
    }
    for (const auto& v : *bb) {
      if (!v.is_number()) return InvalidArgument(named + ": 'bbox' must be a list of 4 numbers [x, y, width, height]");
    }
    a.x = (*bb)[0].get<double>();
    a.y = (*bb)[1].get<double>();
    a.w = (*bb)[2].get<double>();
    a.h = (*bb)[3].get<double>();
    if (!std::isfinite(a.x) || !std::isfinite(a.y) || !std::isfinite(a.w) || !std::isfinite(a.h) || a.w < 0 ||
        a.h < 0) {
      return InvalidArgument(named + ": bbox " + BoxText(a) +
                             " has a negative or non-finite size; COCO boxes are [x, y, width, height] in pixels");
    }
    const CocoImage& im = out.images[img->second];
    if (a.x < -kBoxSlackPx || a.y < -kBoxSlackPx || a.x + a.w > static_cast<double>(im.width) + kBoxSlackPx ||
        a.y + a.h > static_cast<double>(im.height) + kBoxSlackPx) {
      return InvalidArgument(named + ": bbox " + BoxText(a) + " reaches outside its image " + im.file_name + " (" +
                             std::to_string(im.width) + "x" + std::to_string(im.height) +
                             "); boxes are [x, y, width, height] in the image's pixels");
    }
    a.area = a.w * a.h;
    if (auto ar = o.find("area"); ar != o.end()) {
      if (!ar->is_number() || !std::isfinite(ar->get<double>()) || ar->get<double>() < 0) {
        return InvalidArgument(named + ": 'area' must be a number >= 0");
      }
      a.area = ar->get<double>();
    }
    if (auto c = o.find("iscrowd"); c != o.end()) {
      if (c->is_boolean()) {
        a.iscrowd = c->get<bool>();
      } else if (c->is_number_integer() && (c->get<int64_t>() == 0 || c->get<int64_t>() == 1)) {
        a.iscrowd = c->get<int64_t>() == 1;
      } else {
        return InvalidArgument(named + ": 'iscrowd' must be 0 or 1");
      }
    }
    out.by_image[a.image_id].push_back(out.annotations.size());
    out.annotations.push_back(a);
  }
  return out;
}

Result<CocoAnnotations> LoadCocoAnnotations(const std::string& path) {
  SI_ASSIGN_OR_RETURN(auto bytes, ReadBinaryFile(path, "COCO annotation file", kMaxCocoJsonBytes));
  return ParseCocoAnnotations(std::string(bytes.begin(), bytes.end()), path);
}

}  // namespace splitinfer::data
