// The one YAML reader: every YAML file splitinfer reads (training, methods, study, pipeline,
// server, profile, device factors, links) is parsed here, so that a malformed file reads the
// same everywhere, and mappings are checked key by key with MapReader, which names an unknown key
// or a value of the wrong type together with the file and the valid keys.
#pragma once

#include <set>
#include <sstream>
#include <string>

#include <yaml-cpp/yaml.h>

#include "core/status.h"

namespace splitinfer::config {

// YAML text -> document. INVALID_ARGUMENT "ORIGIN: not valid YAML (...)"; an empty document is
// an empty mapping.
Result<YAML::Node> ParseYaml(const std::string& text, const std::string& origin);

// The same from a file. NOT_FOUND with `not_found` (say what the file is and how to make one).
Result<YAML::Node> LoadYamlFile(const std::string& path, const std::string& not_found);

// Reads one YAML mapping, remembering which keys were asked for, so that finish() reports the
// ones left over: "ORIGIN: unknown key 'PATH.KEY'; valid keys under 'PATH': a, b, c".
class MapReader {
 public:
  MapReader(YAML::Node node, std::string path, std::string origin);

  // INVALID_ARGUMENT unless the node is a mapping (what: a word on what it should hold).
  Status check_is_map(const std::string& what = "") const;

  // Reads `key` into *out when present (absent: *out keeps its default).
  template <typename T>
  Status get(const std::string& key, T* out) {
    known_.insert(key);
    YAML::Node v = node_[key];
    if (!v) return Status::Ok();
    try {
      *out = v.as<T>();
    } catch (const YAML::Exception&) {
      return WrongType(key, v);
    }
    return Status::Ok();
  }

  // get(), then INVALID_ARGUMENT "ORIGIN: PATH.KEY = V is outside LO..HI" when the key is given
  // and its value is not within [lo, hi] (NaN never is). Every number a file sets is checked so.
  template <typename T>
  Status get_in(const std::string& key, T* out, T lo, T hi) {
    SI_RETURN_IF_ERROR(get(key, out));
    if (has(key) && !(*out >= lo && *out <= hi)) return OutOfRangeError(key, Text(*out), Text(lo), Text(hi));
    return Status::Ok();
  }

  // Marks keys as valid without reading them (read elsewhere, or by a caller that walks them).
  void allow(const std::set<std::string>& keys) { known_.insert(keys.begin(), keys.end()); }
  bool has(const std::string& key) const { return static_cast<bool>(node_[key]); }
  YAML::Node node() const { return node_; }
  YAML::Node operator[](const std::string& key) {
    known_.insert(key);
    return node_[key];
  }

  // A nested mapping; an absent one reads as an empty map (all defaults).
  Result<MapReader> child(const std::string& key);

  Status finish() const;

  std::string qualified(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& origin() const { return origin_; }

 private:
  Status WrongType(const std::string& key, const YAML::Node& v) const;
  Status OutOfRangeError(const std::string& key, const std::string& v, const std::string& lo,
                         const std::string& hi) const;
  template <typename T>
  static std::string Text(T v) {
    std::ostringstream o;
    o << v;
    return o.str();
  }

  YAML::Node node_;
  std::string path_, origin_;
  std::set<std::string> known_;
};

}  // namespace splitinfer::config
