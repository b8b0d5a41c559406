#include "plan/profile.h"

#include "config/yaml_reader.h"

#include <fstream>
#include <iterator>

#include <yaml-cpp/yaml.h>

namespace splitinfer::plan {

double Profile::BlocksMs(int64_t begin, int64_t end, int64_t batch) const {
  double ms = 0;
  for (int64_t i = begin; i < end && i < static_cast<int64_t>(blocks.size()); ++i) {
    const auto& m = blocks[i].ms;
    auto it = m.find(batch);
    if (it == m.end()) it = m.begin();  // the caller asked for a batch that was not measured
    if (it != m.end()) ms += it->second;
  }
  return ms;
}

double Profile::SlowdownAfter(double gap_ms) const {
  if (idle_slowdown.empty()) return 1.0;
  auto hi = idle_slowdown.lower_bound(gap_ms);
  if (hi == idle_slowdown.end()) return std::prev(hi)->second;
  if (hi == idle_slowdown.begin() || hi->first == gap_ms) return hi->second;
  auto lo = std::prev(hi);
  const double t = (gap_ms - lo->first) / (hi->first - lo->first);
  return lo->second + t * (hi->second - lo->second);
}

Result<ScaleFactors> LoadScaleFactors(const std::string& path) {
  SI_ASSIGN_OR_RETURN(YAML::Node root, config::LoadYamlFile(path, "device factors file " + path + " not found"));
  ScaleFactors f;
  config::MapReader top(root, "", path);
  SI_RETURN_IF_ERROR(top.check_is_map("name, source and factors"));
  std::map<std::string, double> factors;
  SI_RETURN_IF_ERROR(top.get("name", &f.name));
  SI_RETURN_IF_ERROR(top.get("source", &f.source));
  SI_RETURN_IF_ERROR(top.get("factors", &factors));
  SI_RETURN_IF_ERROR(top.finish());
  if (f.name.empty() || f.source.empty() || factors.empty()) {
    return InvalidArgument(path + ": a factors file has name, source and factors: {conv: X, matmul: X, other: X, "
                           "codec: X, png: X}");
  }
  for (const auto& [op, v] : factors) {
    if (!(v > 0)) return InvalidArgument(path + ": factor " + op + " must be > 0");
    f.factors[op] = v;
  }
  if (!f.factors.count("default")) f.factors["default"] = 1.0;
  return f;
}

Profile DeriveProfile(const Profile& m, const ScaleFactors& f) {
  auto factor = [&](const std::string& op) {
    auto it = f.factors.find(op);
    return it != f.factors.end() ? it->second : f.factors.at("default");
  };
  Profile p = m;
  p.machine = f.name + " (derived)";
  p.derived_from = m.machine + " x factors of " + f.name + ": " + f.source;
  for (auto& b : p.blocks) {
    for (auto& [batch, ms] : b.ms) ms *= factor(b.op);
  }
  for (auto& c : p.codecs) {
    c.encode_ms *= factor("codec");
    c.decode_ms *= factor("codec");
  }
  for (auto& pp : p.pipelines) {
    pp.node_ms *= factor("conv");
    pp.server_ms *= factor("conv");
    pp.encode_ms *= factor("codec");
    pp.decode_ms *= factor("codec");
  }
  p.png_encode_ms *= factor("png");
  p.png_decode_ms *= factor("png");
  p.jpeg_encode_ms *= factor("png");  // an image codec as PNG is: no device factor of its own
  p.jpeg_decode_ms *= factor("png");
  p.answer_ms *= factor("other");  // scalar CPU code: decoding, sorting, NMS
  auto rpc = f.factors.find("rpc");
  for (auto& [name, t] : p.transports) {
    if (rpc != f.factors.end()) t.call_ms *= rpc->second;
    t.server_request_ms *= factor("default");
  }
  return p;
}

Status SaveProfile(const std::string& path, const Profile& p) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "machine" << YAML::Value << p.machine;
  if (!p.derived_from.empty()) out << YAML::Key << "derived_from" << YAML::Value << p.derived_from;
  out << YAML::Key << "device" << YAML::Value << p.device;
  out << YAML::Key << "threads" << YAML::Value << p.threads;
  if (!p.compute.empty()) out << YAML::Key << "compute" << YAML::Value << p.compute;
  out << YAML::Key << "model" << YAML::Value << p.model;
  out << YAML::Key << "source" << YAML::Value << p.source;
  out << YAML::Key << "input_shape" << YAML::Value << YAML::Flow << p.input_shape;
  out << YAML::Key << "inputs" << YAML::Value << p.inputs;
  out << YAML::Key << "classes" << YAML::Value << p.classes;
  out << YAML::Key << "task" << YAML::Value << p.task;
  out << YAML::Key << "blocks" << YAML::Value << YAML::BeginSeq;
  for (const auto& b : p.blocks) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << b.name << YAML::Key << "op"
        << YAML::Value << b.op << YAML::Key << "ms" << YAML::Value << YAML::BeginMap;
    for (const auto& [batch, ms] : b.ms) out << YAML::Key << batch << YAML::Value << ms;
    out << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "splits" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : p.splits) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << s.name << YAML::Key << "block"
        << YAML::Value << s.block << YAML::Key << "shape" << YAML::Value << YAML::Flow << s.shape << YAML::Key
        << "float_bytes" << YAML::Value << s.float_bytes << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "codecs" << YAML::Value << YAML::BeginSeq;
  for (const auto& c : p.codecs) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "split" << YAML::Value << c.split << YAML::Key << "bits"
        << YAML::Value << c.bits << YAML::Key << "granularity" << YAML::Value << c.granularity << YAML::Key << "coder"
        << YAML::Value << c.coder << YAML::Key << "encode_ms" << YAML::Value << c.encode_ms << YAML::Key
        << "decode_ms" << YAML::Value << c.decode_ms << YAML::Key << "frame_bytes" << YAML::Value << c.frame_bytes;
    if (c.session_frame_bytes > 0) out << YAML::Key << "session_frame_bytes" << YAML::Value << c.session_frame_bytes;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "pipelines" << YAML::Value << YAML::BeginSeq;
  for (const auto& pp : p.pipelines) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << pp.name << YAML::Key << "file"
        << YAML::Value << pp.file << YAML::Key << "split" << YAML::Value << pp.split << YAML::Key << "bits"
        << YAML::Value << pp.bits << YAML::Key << "coder" << YAML::Value << pp.coder << YAML::Key << "node_ms"
        << YAML::Value << pp.node_ms << YAML::Key << "server_ms" << YAML::Value << pp.server_ms << YAML::Key
        << "encode_ms" << YAML::Value << pp.encode_ms << YAML::Key << "decode_ms" << YAML::Value << pp.decode_ms
        << YAML::Key << "frame_bytes" << YAML::Value << pp.frame_bytes;
    if (pp.session_frame_bytes > 0) out << YAML::Key << "session_frame_bytes" << YAML::Value << pp.session_frame_bytes;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "png" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "encode_ms" << YAML::Value
      << p.png_encode_ms << YAML::Key << "decode_ms" << YAML::Value << p.png_decode_ms << YAML::Key << "bytes"
      << YAML::Value << p.png_bytes << YAML::EndMap;
  if (p.jpeg_bytes > 0) {
    out << YAML::Key << "jpeg" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "quality" << YAML::Value
        << p.jpeg_quality << YAML::Key << "encode_ms" << YAML::Value << p.jpeg_encode_ms << YAML::Key << "decode_ms"
        << YAML::Value << p.jpeg_decode_ms << YAML::Key << "bytes" << YAML::Value << p.jpeg_bytes << YAML::EndMap;
  }
  out << YAML::Key << "requests" << YAML::Value << YAML::BeginMap << YAML::Key << "measured_with" << YAML::Value
      << p.calls_measured_with;
  for (const auto& [name, t] : p.transports) {
    out << YAML::Key << name << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "call_ms" << YAML::Value
        << t.call_ms << YAML::Key << "server_request_ms" << YAML::Value << t.server_request_ms;
    if (t.BytesMeasured()) {
      out << YAML::Key << "request_overhead_bytes" << YAML::Value << t.request_overhead_bytes << YAML::Key
          << "reply_overhead_bytes" << YAML::Value << t.reply_overhead_bytes;
    }
    out << YAML::Key << "reply_bytes_per_class" << YAML::Value << t.reply_bytes_per_class << YAML::EndMap;
  }
  out << YAML::EndMap;
  out << YAML::Key << "stream_factor" << YAML::Value << p.stream_factor;
  out << YAML::Key << "answer_ms" << YAML::Value << p.answer_ms;
  out << YAML::Key << "idle_slowdown" << YAML::Value << YAML::Flow << YAML::BeginMap;
  for (const auto& [gap, f] : p.idle_slowdown) out << YAML::Key << gap << YAML::Value << f;
  out << YAML::EndMap;
  out << YAML::EndMap;
  std::ofstream f(path);
  f << "# splitinfer profile (src/plan/profile.h): times in milliseconds, bytes per image\n" << out.c_str() << "\n";
  if (!f) return IoError("cannot write " + path);
  return Status::Ok();
}

Result<Profile> LoadProfile(const std::string& path) {
  SI_ASSIGN_OR_RETURN(YAML::Node root,
                      config::LoadYamlFile(path, "profile " + path + " not found (make one with `splitinfer profile`)"));
  Profile p;
  try {
    for (const char* key : {"machine", "model", "blocks", "splits", "codecs", "png", "input_shape"}) {
      if (!root[key]) return InvalidArgument(path + ": not a profile (no '" + std::string(key) + "')");
    }
    // Scalars through the one reader (wrong types and unknown top-level keys named with the
    // file); the lists below are walked by hand because their entries are records.
    config::MapReader top(root, "", path);
    SI_RETURN_IF_ERROR(top.get("machine", &p.machine));
    SI_RETURN_IF_ERROR(top.get("derived_from", &p.derived_from));
    SI_RETURN_IF_ERROR(top.get("device", &p.device));
    SI_RETURN_IF_ERROR(top.get("threads", &p.threads));
    SI_RETURN_IF_ERROR(top.get("compute", &p.compute));
    SI_RETURN_IF_ERROR(top.get("model", &p.model));
    SI_RETURN_IF_ERROR(top.get("source", &p.source));
    SI_RETURN_IF_ERROR(top.get("inputs", &p.inputs));
    SI_RETURN_IF_ERROR(top.get("classes", &p.classes));
    SI_RETURN_IF_ERROR(top.get("task", &p.task));  // profiles from before tasks: classifiers
    if (p.task != "classify" && p.task != "detect") {
      return InvalidArgument(path + ": task '" + p.task + "' is not classify or detect");
    }
    SI_RETURN_IF_ERROR(top.get("input_shape", &p.input_shape));
    SI_RETURN_IF_ERROR(top.get("stream_factor", &p.stream_factor));
    SI_RETURN_IF_ERROR(top.get("answer_ms", &p.answer_ms));
    top.allow({"blocks", "splits", "codecs", "pipelines", "png", "jpeg", "requests", "idle_slowdown"});
    SI_RETURN_IF_ERROR(top.finish());
    SI_ASSIGN_OR_RETURN(config::MapReader req, top.child("requests"));
    SI_RETURN_IF_ERROR(req.get("measured_with", &p.calls_measured_with));
    for (const char* name : kTransports) {
      if (!req.has(name)) continue;
      SI_ASSIGN_OR_RETURN(config::MapReader tr, req.child(name));
      TransportProfile t;
      constexpr double kMax = 1e9;
      SI_RETURN_IF_ERROR(tr.get_in("call_ms", &t.call_ms, 0.0, kMax));
      SI_RETURN_IF_ERROR(tr.get_in("server_request_ms", &t.server_request_ms, 0.0, kMax));
      SI_RETURN_IF_ERROR(tr.get_in("request_overhead_bytes", &t.request_overhead_bytes, 0.0, kMax));
      SI_RETURN_IF_ERROR(tr.get_in("reply_overhead_bytes", &t.reply_overhead_bytes, 0.0, kMax));
      SI_RETURN_IF_ERROR(tr.get_in("reply_bytes_per_class", &t.reply_bytes_per_class, 0.0, kMax));
      SI_RETURN_IF_ERROR(tr.finish());
      p.transports[name] = t;
    }
    // Profiles made before the per-transport measurements (2026-12-07): one call time for the
    // unary frame and PNG requests, no byte counts.
    double legacy_call = -1, legacy_server = 0, legacy_png = 0;
    SI_RETURN_IF_ERROR(req.get("call_ms", &legacy_call));
    SI_RETURN_IF_ERROR(req.get("server_request_ms", &legacy_server));
    SI_RETURN_IF_ERROR(req.get("server_request_png_ms", &legacy_png));
    SI_RETURN_IF_ERROR(req.finish());
    if (legacy_call >= 0 && p.transports.empty()) {
      p.transports["unary"] = {legacy_call, legacy_server, -1, -1, 4};
      p.transports["png"] = {legacy_call, legacy_png, -1, -1, 4};
    }
    // A hand-written profile (a board measured by other means) may leave the requests out: no
    // per-request cost, bytes assumed.
    if (!top.has("requests")) {
      p.transports["unary"] = p.transports["png"] = {0, 0, -1, -1, 4};
      p.calls_measured_with = "not in the profile: no per-request cost";
    }
    if (!p.transports.count("unary") || !p.transports.count("png")) {
      return InvalidArgument(path + ": requests has no unary or png entry (remake the profile with `splitinfer "
                             "profile`)");
    }
    for (const auto& b : root["blocks"]) {
      BlockProfile bp;
      bp.name = b["name"].as<std::string>();
      bp.op = b["op"] ? b["op"].as<std::string>() : "other";
      for (const auto& kv : b["ms"]) bp.ms[kv.first.as<int64_t>()] = kv.second.as<double>();
      if (bp.ms.empty()) return InvalidArgument(path + ": block " + bp.name + " has no times");
      p.blocks.push_back(bp);
    }
    for (const auto& s : root["splits"]) {
      SplitProfile sp;
      sp.name = s["name"].as<std::string>();
      sp.block = s["block"].as<int64_t>();
      sp.shape = s["shape"].as<std::vector<int64_t>>();
      sp.float_bytes = s["float_bytes"].as<int64_t>();
      if (sp.block < 0 || sp.block >= static_cast<int64_t>(p.blocks.size())) {
        return InvalidArgument(path + ": split " + sp.name + " names block " + std::to_string(sp.block) +
                               " of " + std::to_string(p.blocks.size()));
      }
      p.splits.push_back(sp);
    }
    for (const auto& c : root["codecs"]) {
      p.codecs.push_back({c["split"].as<std::string>(), c["bits"].as<int>(), c["granularity"].as<std::string>(),
                          c["coder"].as<std::string>(), c["encode_ms"].as<double>(), c["decode_ms"].as<double>(),
                          c["frame_bytes"].as<double>(),
                          c["session_frame_bytes"] ? c["session_frame_bytes"].as<double>() : 0.0});
    }
    if (root["pipelines"]) {
      for (const auto& x : root["pipelines"]) {
        PipelineProfile pp;
        pp.name = x["name"].as<std::string>();
        pp.file = x["file"].as<std::string>();
        pp.split = x["split"].as<std::string>();
        pp.bits = x["bits"].as<int>();
        pp.coder = x["coder"].as<std::string>();
        pp.node_ms = x["node_ms"].as<double>();
        pp.server_ms = x["server_ms"].as<double>();
        pp.encode_ms = x["encode_ms"].as<double>();
        pp.decode_ms = x["decode_ms"].as<double>();
        pp.frame_bytes = x["frame_bytes"].as<double>();
        if (x["session_frame_bytes"]) pp.session_frame_bytes = x["session_frame_bytes"].as<double>();
        p.pipelines.push_back(pp);
      }
    }
    p.png_encode_ms = root["png"]["encode_ms"].as<double>();
    p.png_decode_ms = root["png"]["decode_ms"].as<double>();
    p.png_bytes = root["png"]["bytes"].as<double>();
    if (const YAML::Node j = root["jpeg"]) {
      p.jpeg_quality = j["quality"].as<int>();
      p.jpeg_encode_ms = j["encode_ms"].as<double>();
      p.jpeg_decode_ms = j["decode_ms"].as<double>();
      p.jpeg_bytes = j["bytes"].as<double>();
      if (p.jpeg_quality < 1 || p.jpeg_quality > 100 || !(p.jpeg_bytes > 0)) {
        return InvalidArgument(path + ": jpeg needs quality 1..100 and bytes > 0");
      }
    }
    if (!(p.stream_factor > 0)) return InvalidArgument(path + ": stream_factor must be > 0");
    if (root["idle_slowdown"]) {
      for (const auto& kv : root["idle_slowdown"]) {
        const double gap = kv.first.as<double>(), f = kv.second.as<double>();
        if (!(gap >= 0) || !(f > 0)) {
          return InvalidArgument(path + ": idle_slowdown maps an idle gap in ms (>= 0) to a factor (> 0)");
        }
        p.idle_slowdown[gap] = f;
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ": " + e.what());
  }
  return p;
}

}  // namespace splitinfer::plan
