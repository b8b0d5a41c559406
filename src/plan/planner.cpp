#include "plan/planner.h"

#include "config/yaml_reader.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace splitinfer::plan {

namespace fs = std::filesystem;

std::string MetricOf(const Profile& profile) { return profile.task == "detect" ? "ap50" : "top1"; }

Result<std::vector<MeasuredAccuracy>> LoadResults(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("results file " + path + " not found (made by `splitinfer experiment`)");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<nlohmann::json> rows;
  try {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && text[first] == '[') {
      for (const auto& r : nlohmann::json::parse(text)) rows.push_back(r);
    } else {
      std::stringstream lines(text);
      for (std::string line; std::getline(lines, line);) {
        if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(path + ": not a results file (" + e.what() + ")");
  }
  std::vector<MeasuredAccuracy> out;
  try {
    for (const auto& r : rows) {
      MeasuredAccuracy m;
      m.metric = r.value("metric", std::string("top1"));
      if (m.metric != "top1" && m.metric != "ap50") {
        return InvalidArgument(path + ": a row is measured in '" + m.metric + "'; the planner reads top1 or ap50");
      }
      if (!out.empty() && out.front().metric != m.metric) {
        return InvalidArgument(path + " mixes rows measured in " + out.front().metric + " and " + m.metric +
                               "; a results file is one study's");
      }
      m.run = r.at("run").get<std::string>();
      m.method = r.at("method").get<std::string>();
      m.split = r.value("split", "");
      m.granularity = r.value("granularity", "");
      m.coder = r.value("coder", "");
      m.pipeline = r.value("pipeline", "");
      m.bits = r.value("bits", 0);
      m.score = r.at(m.metric).get<double>();
      m.bytes_per_image = r.value("bytes_per_image", 0.0);
      out.push_back(m);
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(path + ": a row lacks a field (" + e.what() + ")");
  }
  return out;
}

nlohmann::json Choice::ToJson() const {
  nlohmann::json j = {{"kind", kind},         {"name", name},           {metric, score},
                      {"frame_bytes", frame_bytes}, {"request_bytes", request_bytes},
                      {"reply_bytes", reply_bytes},
                      {"node_ms", node_ms},   {"encode_ms", encode_ms}, {"transmit_ms", transmit_ms},
                      {"rtt_ms", rtt_ms},     {"call_ms", call_ms},     {"decode_ms", decode_ms},
                      {"server_ms", server_ms}, {"node_slowdown", node_slowdown},
                      {"server_slowdown", server_slowdown}, {"total_ms", total_ms}};
  if (!split.empty()) j["split"] = split;
  if (bits) j["bits"] = bits;
  if (!granularity.empty()) j["granularity"] = granularity;
  if (!coder.empty()) j["coder"] = coder;
  if (!pipeline_file.empty()) j["pipeline"] = pipeline_file;
  if (!transport.empty()) {
    j["transport"] = transport;
    j["overheads_measured"] = overheads_measured;
  }
  return j;
}

nlohmann::json RatePlan::ToJson() const {
  return {{"rate_bytes_per_s", rate},
          {"rtt_ms", rtt_s * 1e3},
          {"best", best.ToJson()},
          {"server_only", server_only.ToJson()},
          {"node_only", node_only.ToJson()},
          {"best_split", has_split ? best_split.ToJson() : nlohmann::json()},
          {"speedup_vs_server_only", speedup_vs_server_only},
          {"speedup_vs_node_only", speedup_vs_node_only},
          {"candidates", candidates},
          {"excluded_accuracy", excluded_accuracy},
          {"excluded_unmeasured", excluded_unmeasured}};
}

namespace {

const CodecProfile* FindCodec(const Profile& p, const std::string& split, int bits, const std::string& gran,
                              const std::string& coder) {
  for (const auto& c : p.codecs) {
    if (c.split == split && c.bits == bits && c.granularity == gran && c.coder == coder) return &c;
  }
  return nullptr;
}

const PipelineProfile* FindPipeline(const Profile& p, const std::string& name) {
  for (const auto& x : p.pipelines) {
    if (x.name == name) return &x;
  }
  return nullptr;
}

std::string Canonical(const std::string& path) {
  std::error_code ec;
  auto c = fs::weakly_canonical(path, ec);
  return ec ? path : c.string();
}

bool BitsAllowed(const PlanOptions& o, int bits) {
  return o.bits.empty() || std::find(o.bits.begin(), o.bits.end(), bits) != o.bits.end();
}

// Finishes a choice: transmission at `rate`, the RTT, the call, the idle slowdown, the sum.
//
// The profiles time compute back to back; in a split deployment the node computes after
// waiting for the previous reply (link + server) and the server after waiting for the next
// frame (node + link), and each starts cold. The gaps depend on the slowed-down times, so the
// slowdowns are found by a few fixed-point rounds (they settle in two or three).
void Finish(Choice& c, double rate, const PlanOptions& o, const Profile& node, const Profile& server) {
  if (c.kind == "node-only") {
    c.request_bytes = c.reply_bytes = 0;
  } else {
    c.transport = c.kind == "server-only" ? "png" : o.transport;
    // Plan() checked that both profiles have the transport; EvaluateAll's callers may not have.
    const TransportProfile none;
    auto at = [&c, &none](const Profile& p) -> const TransportProfile& {
      auto it = p.transports.find(c.transport);
      return it != p.transports.end() ? it->second : none;
    };
    const TransportProfile& nt = at(node);
    c.overheads_measured = nt.BytesMeasured();
    const double request_overhead = c.overheads_measured ? nt.request_overhead_bytes
                                    : c.transport == "png" ? o.assumed_png_request_overhead_bytes
                                                           : o.assumed_request_overhead_bytes;
    const double reply_overhead = c.overheads_measured ? nt.reply_overhead_bytes : o.assumed_reply_overhead_bytes;
    const double per_class = c.overheads_measured ? nt.reply_bytes_per_class : 4.0;
    c.reply_bytes = reply_overhead + per_class * static_cast<double>(node.classes);
    // A detector answers boxes, not one score per output channel: its measured reply is all
    // overhead (reply_bytes_per_class 0); unmeasured, the reply of 100 boxes is assumed.
    if (node.task == "detect" && !c.overheads_measured) c.reply_bytes = o.assumed_detector_reply_bytes;
    c.request_bytes = c.frame_bytes + request_overhead;
    c.transmit_ms = rate > 0 ? (c.request_bytes + c.reply_bytes) / rate * 1e3 : 0;
    c.rtt_ms = o.rtt_s * 1e3;
    c.call_ms = nt.call_ms;
    // The server's own per-request work (parsing, batcher hand-off, softmax, reply) goes with
    // its decode.
    c.decode_ms += at(server).server_request_ms;
    if (o.idle_slowdown) {
      const double node_hot = c.node_ms, enc_hot = c.encode_ms, dec_hot = c.decode_ms, server_hot = c.server_ms;
      for (int round = 0; round < 4; ++round) {
        const double link = c.transmit_ms + c.rtt_ms + c.call_ms;
        c.node_slowdown = node.SlowdownAfter(link + c.decode_ms + c.server_ms);
        c.server_slowdown = server.SlowdownAfter(c.node_ms + c.encode_ms + link);
        c.node_ms = node_hot * c.node_slowdown;
        c.encode_ms = enc_hot * c.node_slowdown;
        c.decode_ms = dec_hot * c.server_slowdown;
        c.server_ms = server_hot * c.server_slowdown;
      }
    }
  }
  c.total_ms = c.node_ms + c.encode_ms + c.transmit_ms + c.rtt_ms + c.call_ms + c.decode_ms + c.server_ms;
}

// Bytes a frame sheds inside a session: the full header and CRC, less the session frame's 4.
// The same for every frame of a setting, so it also applies to frame sizes measured on the whole
// test set (results.json), which are of full frames. The session's first, full frame is left out
// (one per session, not per image).
double SessionSaving(const PlanOptions& o, double frame_bytes, double session_frame_bytes) {
  return o.transport == "stream" && session_frame_bytes > 0 ? frame_bytes - session_frame_bytes : 0.0;
}

}  // namespace

std::vector<Choice> EvaluateAll(const Profile& node, const Profile& server, double rate, const PlanOptions& o,
                                const std::vector<MeasuredAccuracy>& results) {
  const int64_t n = static_cast<int64_t>(node.blocks.size());
  std::vector<Choice> all;
  double float_score = -1;
  for (const auto& r : results) {
    if (r.method == "float") float_score = r.score;
  }
  const std::string metric = MetricOf(node);
  // Plain PTQ of the profiled model at every measured codec cell.
  for (const auto& s : node.splits) {
    for (const auto& c : node.codecs) {
      if (c.split != s.name || !BitsAllowed(o, c.bits)) continue;
      Choice ch;
      ch.kind = "split";
      ch.split = s.name;
      ch.bits = c.bits;
      ch.granularity = c.granularity;
      ch.coder = c.coder;
      ch.name = s.name + " b" + std::to_string(c.bits) + " " + c.granularity + " " + c.coder;
      ch.frame_bytes = c.frame_bytes;
      for (const auto& r : results) {
        if (r.method == "ptq" && r.split == s.name && r.bits == c.bits && r.granularity == c.granularity &&
            r.coder == c.coder) {
          ch.score = r.score;
          ch.frame_bytes = r.bytes_per_image;  // measured on the whole test set: better than the profile's few maps
        }
      }
      ch.frame_bytes -= SessionSaving(o, c.frame_bytes, c.session_frame_bytes);
      ch.node_ms = node.BlocksMs(0, s.block + 1, 1) * node.stream_factor;
      ch.encode_ms = c.encode_ms;
      const CodecProfile* sc = FindCodec(server, s.name, c.bits, c.granularity, c.coder);
      ch.decode_ms = sc ? sc->decode_ms : c.decode_ms;
      ch.server_ms = server.BlocksMs(s.block + 1, n, o.server_batch) * (o.server_batch == 1 ? server.stream_factor : 1.0) +
                     server.answer_ms;
      Finish(ch, rate, o, node, server);
      all.push_back(ch);
    }
  }
  // Trained pipelines, as measured whole.
  for (const auto& pp : node.pipelines) {
    if (!BitsAllowed(o, pp.bits)) continue;
    Choice ch;
    ch.kind = "pipeline";
    ch.name = pp.name;
    ch.split = pp.split;
    ch.bits = pp.bits;
    ch.coder = pp.coder;
    ch.pipeline_file = pp.file;
    ch.frame_bytes = pp.frame_bytes;
    for (const auto& r : results) {
      if (r.coder == pp.coder && !r.pipeline.empty() && Canonical(r.pipeline) == Canonical(pp.file)) {
        ch.score = r.score;
        ch.frame_bytes = r.bytes_per_image;
      }
    }
    ch.frame_bytes -= SessionSaving(o, pp.frame_bytes, pp.session_frame_bytes);
    const PipelineProfile* sp = FindPipeline(server, pp.name);
    ch.node_ms = pp.node_ms;
    ch.encode_ms = pp.encode_ms;
    ch.decode_ms = sp ? sp->decode_ms : pp.decode_ms;
    ch.server_ms = (sp ? sp->server_ms : pp.server_ms) + server.answer_ms;
    Finish(ch, rate, o, node, server);
    all.push_back(ch);
  }
  Choice so;
  so.kind = so.name = "server-only";
  const bool jpeg = o.image_format == "jpeg";
  if (jpeg) so.name = "server-only jpeg q" + std::to_string(node.jpeg_quality);
  so.frame_bytes = jpeg ? node.jpeg_bytes : node.png_bytes;
  so.score = float_score;  // JPEG's loss is not measured here
  so.encode_ms = jpeg ? node.jpeg_encode_ms : node.png_encode_ms;
  so.decode_ms = jpeg ? server.jpeg_decode_ms : server.png_decode_ms;
  so.server_ms = server.BlocksMs(0, n, o.server_batch) * (o.server_batch == 1 ? server.stream_factor : 1.0) +
                 server.answer_ms;
  Finish(so, rate, o, node, server);
  all.push_back(so);
  Choice no;
  no.kind = no.name = "node-only";
  no.score = float_score;
  no.node_ms = node.BlocksMs(0, n, 1) * node.stream_factor + node.answer_ms;
  Finish(no, rate, o, node, server);
  all.push_back(no);
  for (auto& c : all) c.metric = metric;
  std::stable_sort(all.begin(), all.end(), [](const Choice& a, const Choice& b) { return a.total_ms < b.total_ms; });
  return all;
}

Result<std::vector<Link>> LoadLinks(const std::string& path) {
  SI_ASSIGN_OR_RETURN(YAML::Node root, config::LoadYamlFile(path, "links file " + path + " not found"));
  std::vector<Link> links;
  config::MapReader top(root, "", path);
  SI_RETURN_IF_ERROR(top.check_is_map("links: [{name: N, rate_mb_s: R, rtt_ms: T}, ...]"));
  const YAML::Node list = top["links"];
  SI_RETURN_IF_ERROR(top.finish());
  if (!list || !list.IsSequence() || list.size() == 0) {
    return InvalidArgument(path + ": a links file lists `links: [{name: N, rate_mb_s: R, rtt_ms: T}, ...]`");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    config::MapReader l(list[i], "links[" + std::to_string(i) + "]", path);
    SI_RETURN_IF_ERROR(l.check_is_map("name, rate_mb_s, rtt_ms"));
    Link k;
    double rate_mb_s = 0, rtt_ms = -1;
    SI_RETURN_IF_ERROR(l.get("name", &k.name));
    SI_RETURN_IF_ERROR(l.get("rate_mb_s", &rate_mb_s));
    SI_RETURN_IF_ERROR(l.get("rtt_ms", &rtt_ms));
    SI_RETURN_IF_ERROR(l.finish());
    if (!l.has("rate_mb_s") || !l.has("rtt_ms")) {
      return InvalidArgument(path + ": link '" + k.name + "' needs rate_mb_s and rtt_ms");
    }
    k.rate_bytes_per_s = rate_mb_s * 1e6;
    k.rtt_s = rtt_ms * 1e-3;
    if (!(k.rate_bytes_per_s > 0) || !(k.rtt_s >= 0)) {
      return InvalidArgument(path + ": link '" + k.name + "' needs rate_mb_s > 0 and rtt_ms >= 0");
    }
    links.push_back(k);
  }
  return links;
}

Result<std::vector<RatePlan>> Plan(const Profile& node, const Profile& server, const PlanOptions& o,
                                   const std::vector<MeasuredAccuracy>& results) {
  if (node.model != server.model || node.blocks.size() != server.blocks.size()) {
    return Mismatch("the node profile is of " + node.model + " (" + std::to_string(node.blocks.size()) +
                    " blocks), the server profile of " + server.model + " (" + std::to_string(server.blocks.size()) +
                    "); profile the same model on both");
  }
  // A profile made by a build without libpng has no server-only baseline (png bytes 0).
  for (const Profile* p : {&node, &server}) {
    if (!(p->png_bytes > 0)) {
      return FailedPrecondition("the profile of " + p->model + " on " + p->machine +
                                " has no PNG measurement (made by a build without libpng), so the server-only "
                                "baseline cannot be planned: profile it with a build that has libpng");
    }
  }
  if (o.image_format != "png" && o.image_format != "jpeg") {
    return InvalidArgument("--image-format " + o.image_format + ": server-only sends png or jpeg");
  }
  if (o.image_format == "jpeg") {
    for (const Profile* p : {&node, &server}) {
      if (!(p->jpeg_bytes > 0)) {
        return FailedPrecondition("the profile of " + p->model + " on " + p->machine +
                                  " has no JPEG measurement (made before 2026-12-07 or by a build without "
                                  "libturbojpeg): remake it, or plan server-only as png");
      }
    }
  }
  if (o.transport != "unary" && o.transport != "stream") {
    return InvalidArgument("--transport " + o.transport + ": the planner models unary or stream");
  }
  for (const Profile* p : {&node, &server}) {
    if (!p->transports.count(o.transport) || !p->transports.count("png")) {
      return FailedPrecondition("the profile of " + p->model + " on " + p->machine + " has no measurements of " +
                                o.transport + " calls (" + p->calls_measured_with +
                                "): remake it with `splitinfer profile --pipeline FILE`, which serves the pipeline "
                                "over every transport, or plan --transport unary");
    }
  }
  if (o.transport == "stream") {
    for (const auto& c : node.codecs) {
      if (!(c.session_frame_bytes > 0)) {
        return FailedPrecondition("the node profile of " + node.model + " has no session frame sizes (made before "
                                  "sessions): remake it with `splitinfer profile`, or plan --transport unary");
      }
    }
  }
  if (!results.empty() && results.front().metric != MetricOf(node)) {
    return FailedPrecondition("the results are measured in " + results.front().metric + ", but " + node.model +
                              " is scored by " + MetricOf(node) + " (a " + (node.task == "detect" ? "detector" : "classifier") +
                              "): give the study of the profiled model");
  }
  if (o.rates.empty()) return InvalidArgument("give at least one link rate (--rates 1,2,5,10 in MB/s)");
  for (double r : o.rates) {
    if (!(r > 0)) return InvalidArgument("link rates must be positive");
  }
  if (!o.rtts_s.empty() && o.rtts_s.size() != o.rates.size()) {
    return InvalidArgument("give one RTT per link rate (" + std::to_string(o.rates.size()) + " rates, " +
                           std::to_string(o.rtts_s.size()) + " RTTs)");
  }
  std::vector<RatePlan> plans;
  for (size_t li = 0; li < o.rates.size(); ++li) {
    const double rate = o.rates[li];
    PlanOptions lo = o;
    if (!o.rtts_s.empty()) lo.rtt_s = o.rtts_s[li];
    RatePlan rp;
    rp.rate = rate;
    rp.rtt_s = lo.rtt_s;
    bool have_best = false;
    for (const auto& c : EvaluateAll(node, server, rate, lo, results)) {
      if (c.kind == "server-only") rp.server_only = c;
      if (c.kind == "node-only") rp.node_only = c;
      ++rp.candidates;
      if (o.min_accuracy >= 0) {
        if (c.score < 0) {
          ++rp.excluded_unmeasured;
          continue;
        }
        if (c.score < o.min_accuracy) {
          ++rp.excluded_accuracy;
          continue;
        }
      }
      if (!have_best) {
        rp.best = c;  // the list is sorted fastest first
        have_best = true;
      }
      if (!rp.has_split && (c.kind == "split" || c.kind == "pipeline")) {
        rp.best_split = c;
        rp.has_split = true;
      }
    }
    if (!have_best) {
      return FailedPrecondition("no configuration reaches " + std::to_string(o.min_accuracy) + " % " +
                                (MetricOf(node) == "ap50" ? "AP50" : "top-1") + " (of " + std::to_string(rp.candidates) + " candidates, " +
                                std::to_string(rp.excluded_unmeasured) + " have no measured accuracy: pass --results)");
    }
    rp.speedup_vs_server_only = rp.server_only.total_ms / rp.best.total_ms;
    rp.speedup_vs_node_only = rp.node_only.total_ms / rp.best.total_ms;
    plans.push_back(rp);
  }
  return plans;
}

}  // namespace splitinfer::plan
