#include "config/yaml_reader.h"

#include <fstream>
#include <sstream>

namespace splitinfer::config {

Result<YAML::Node> ParseYaml(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(origin + ": not valid YAML (" + e.what() + ")");
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  return root;
}

Result<YAML::Node> LoadYamlFile(const std::string& path, const std::string& not_found) {
  std::ifstream in(path);
  if (!in) return NotFound(not_found);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseYaml(ss.str(), path);
}

MapReader::MapReader(YAML::Node node, std::string path, std::string origin)
    : node_(std::move(node)), path_(std::move(path)), origin_(std::move(origin)) {}

Status MapReader::check_is_map(const std::string& what) const {
  if (node_.IsMap()) return Status::Ok();
  return InvalidArgument(origin_ + ": " + (path_.empty() ? "the document" : "'" + path_ + "'") + " must be a mapping" +
                         (what.empty() ? "" : " (" + what + ")"));
}

Result<MapReader> MapReader::child(const std::string& key) {
  known_.insert(key);
  YAML::Node v = node_[key];
  MapReader r(v ? v : YAML::Node(YAML::NodeType::Map), qualified(key), origin_);
  SI_RETURN_IF_ERROR(r.check_is_map());
  return r;
}

Status MapReader::OutOfRangeError(const std::string& key, const std::string& v, const std::string& lo,
                                  const std::string& hi) const {
  return InvalidArgument(origin_ + ": " + qualified(key) + " = " + v + " is outside " + lo + ".." + hi);
}

Status MapReader::finish() const {
  for (const auto& kv : node_) {
    // A key can be any YAML node ("? [a, b]: c"); only a plain scalar names a setting.
    if (!kv.first.IsScalar()) {
      return InvalidArgument(origin_ + ": a key " + (path_.empty() ? "at the top level" : "under '" + path_ + "'") +
                             " that is not a plain word");
    }
    const auto key = kv.first.Scalar();
    if (!known_.count(key)) {
      std::string valid;
      for (const auto& k : known_) valid += (valid.empty() ? "" : ", ") + k;
      return InvalidArgument(origin_ + ": unknown key '" + qualified(key) + "'; valid keys " +
                             (path_.empty() ? "at the top level" : "under '" + path_ + "'") + ": " + valid);
    }
  }
  return Status::Ok();
}

Status MapReader::WrongType(const std::string& key, const YAML::Node& v) const {
  std::stringstream ss;
  ss << v;
  return InvalidArgument(origin_ + ": " + qualified(key) + " has a value of the wrong type ('" + ss.str() + "')");
}

}  // namespace splitinfer::config
