// libFuzzer target: the one YAML reader (src/config/yaml_reader.h) that every configuration file
// goes through (training, methods, study, pipeline, server, profile, device factors, links).
// Hostile text must come back as INVALID_ARGUMENT naming the file, never as a crash, a hang or
// an uncaught exception (yaml-cpp throws; the reader must catch all of it). The parsed document
// is then read with MapReader the way the loaders do: scalars of every type, lists, maps of
// numbers, a nested mapping, range checks, and finish() on what is left over.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/yaml_reader.h"
#include "fuzz_fail.h"

namespace {

using namespace splitinfer;
using config::MapReader;

[[noreturn]] void Fail(const char* what, const Status& s) { splitinfer_fuzz::Fail("yaml_fuzz", what, s); }

void ExpectNamed(const Status& s) {
  if (s.ok()) return;
  if (s.code() != ErrorCode::kInvalidArgument) Fail("not INVALID_ARGUMENT", s);
  if (s.message().rfind("fuzz.yaml", 0) != 0) Fail("an error that does not name the file", s);
}

void Read(MapReader& r, int depth) {
  std::string s;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  std::vector<std::string> list;
  std::vector<int64_t> shape;
  std::map<std::string, double> factors;
  ExpectNamed(r.get("name", &s));
  ExpectNamed(r.get("bits", &i));
  ExpectNamed(r.get_in<int64_t>("max_batch", &i, 1, 4096));
  ExpectNamed(r.get_in("lr", &d, 0.0, 10.0));
  ExpectNamed(r.get("amp", &b));
  ExpectNamed(r.get("pipelines", &list));
  ExpectNamed(r.get("input_shape", &shape));
  ExpectNamed(r.get("factors", &factors));
  if (depth < 4) {
    Result<MapReader> child = r.child("data");
    ExpectNamed(child.status());
    if (child.ok()) Read(*child, depth + 1);
  }
  ExpectNamed(r.finish());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 16)) return 0;  // configuration files are small; the reader's cost is linear
  const std::string text(reinterpret_cast<const char*>(data), size);
  Result<YAML::Node> root = config::ParseYaml(text, "fuzz.yaml");
  ExpectNamed(root.status());
  if (!root.ok()) return 0;
  MapReader r(*root, "", "fuzz.yaml");
  const Status is_map = r.check_is_map();
  ExpectNamed(is_map);
  if (is_map.ok()) Read(r, 0);
  return 0;
}
