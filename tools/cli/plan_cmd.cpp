#include "tools/cli/plan_cmd.h"
#include "tools/cli/model_args.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/system.h"
#include "eval/report.h"
#include "plan/planner.h"
#include "plan/profile.h"
#include "plan/validate.h"
#include "runtime/link.h"

namespace splitinfer::cli {

namespace {

template <typename T>
Result<std::vector<T>> ParseList(const std::string& text, const char* what) {
  std::vector<T> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    std::stringstream is(item);
    T v;
    if (!(is >> v) || !is.eof()) {
      return InvalidArgument(std::string(what) + " takes values separated by commas, not '" + text + "'");
    }
    out.push_back(v);
  }
  if (out.empty()) return InvalidArgument(std::string(what) + " is empty");
  return out;
}

struct ProfileArgs {
  plan::ProfileOptions o;
  ModelArgs model;
  std::string out, batches = "1,8,32", bits = "1,2,4,8", coders = "none,lzma,zstd,cabac", derive, from;
  std::string idle_gaps = "0,1,2,5,10,20,50,100,200,500";
};

Status RunProfile(ProfileArgs a) {
  if (!a.derive.empty()) {
    if (a.from.empty()) return InvalidArgument("--derive needs --from PROFILE (a measured profile)");
    SI_ASSIGN_OR_RETURN(auto measured, plan::LoadProfile(a.from));
    SI_ASSIGN_OR_RETURN(auto factors, plan::LoadScaleFactors(a.derive));
    const auto derived = plan::DeriveProfile(measured, factors);
    SI_RETURN_IF_ERROR(plan::SaveProfile(a.out, derived));
    std::printf("derived %s: %s\n", a.out.c_str(), derived.derived_from.c_str());
    return Status::Ok();
  }
  a.o.model = a.model.ref;
  SI_ASSIGN_OR_RETURN(a.o.model_flags, MetaFlags(a.model));
  if (a.o.model.empty()) {
    return InvalidArgument("profile needs --model (a zoo name, checkpoint or TorchScript file), or --derive with --from");
  }
  SI_ASSIGN_OR_RETURN(auto batches, ParseList<int64_t>(a.batches, "--batches"));
  a.o.batches = batches;
  SI_ASSIGN_OR_RETURN(a.o.bits, ParseList<int>(a.bits, "--bits"));
  std::vector<std::string> coders;
  std::stringstream ss(a.coders);
  for (std::string c; std::getline(ss, c, ',');) coders.push_back(c);
  a.o.coders = coders;
  if (a.idle_gaps == "none") {
    a.o.idle_gaps_ms.clear();
  } else {
    SI_ASSIGN_OR_RETURN(a.o.idle_gaps_ms, ParseList<double>(a.idle_gaps, "--idle-gaps"));
    if (a.o.idle_gaps_ms.front() != 0) return InvalidArgument("--idle-gaps starts at 0 (the back-to-back reference)");
  }
  SI_ASSIGN_OR_RETURN(auto p, plan::MeasureProfile(a.o));
  SI_RETURN_IF_ERROR(plan::SaveProfile(a.out, p));
  double total = p.BlocksMs(0, static_cast<int64_t>(p.blocks.size()), 1);
  std::printf("profiled %s on %s (%d thread(s)): %zu blocks, %.3f ms per image at batch 1; %zu codec cells, %zu "
              "pipelines -> %s\n",
              p.model.c_str(), p.machine.c_str(), p.threads, p.blocks.size(), total, p.codecs.size(),
              p.pipelines.size(), a.out.c_str());
  return Status::Ok();
}

struct PlanArgs {
  std::string node, server, rates = "1,2,5,10", rtt = "10ms", links, bits, plot, checkpoint, data,
      work_dir = "runs/plan", transport = "unary", image_format = "png", validate_server;
  std::vector<std::string> results;  // --results, repeatable
  double min_accuracy = -1;
  int64_t images = 200;
  bool json = false, validate = false, hot = false, prepare = false;
  int threads = 1;
};

// Latency against link rate for node-only, server-only and the best split: gnuplot SVG (and
// its .dat and .gp beside it, so it can be re-plotted).
Status WritePlot(const std::string& svg, const plan::Profile& node, const plan::Profile& server,
                 const plan::PlanOptions& base, const std::vector<plan::MeasuredAccuracy>& results) {
  const std::string dat = svg + ".dat", gp = svg + ".gp";
  std::ofstream d(dat);
  d << "# rate_MBps node_only_ms server_only_ms best_split_ms best_split_name\n";
  for (double r = 0.1; r <= 100.0 + 1e-9; r *= std::pow(10.0, 0.05)) {
    plan::PlanOptions o = base;
    o.rates = {r * 1e6};
    if (!o.rtts_s.empty()) o.rtt_s = o.rtts_s.front();  // a sweep over rates at the first link's RTT
    o.rtts_s.clear();
    auto plans = plan::Plan(node, server, o, results);
    if (!plans.ok()) return plans.status();
    const auto& p = plans->front();
    // The best split even where a baseline beats it: the plot shows where the lines cross.
    const plan::Choice& split = p.has_split ? p.best_split : p.best;
    d << r << " " << p.node_only.total_ms << " " << p.server_only.total_ms << " " << split.total_ms << " \""
      << split.name << "\"\n";
  }
  d.close();
  if (!d) return IoError("cannot write " + dat);
  // Everything taken from the profiles or the command line is quoted for gnuplot, and gnuplot is
  // run without a shell: a machine name or a path cannot become a command.
  // By file name: RunGnuplot runs it from its folder, so the three files can move together.
  const auto name = [](const std::string& path) { return std::filesystem::path(path).filename().string(); };
  std::ofstream g(gp);
  g << "# Re-plot from this folder with: gnuplot " << name(gp) << "\n"
    << "set terminal svg size 800,500 dynamic\nset output " << eval::GnuplotQuote(name(svg)) << "\n"
    << "set logscale x\nset xlabel 'link rate (MB/s)'\nset ylabel 'end-to-end latency (ms)'\n"
    << "set title " << eval::GnuplotQuote(node.model + ": node " + node.machine + ", server " + server.machine)
    << " noenhanced\n"
    << "set key top right\nset grid\n"
    << "plot " << eval::GnuplotQuote(name(dat)) << " using 1:2 with lines lw 2 title 'node-only', "
    << "'' using 1:3 with lines lw 2 title 'server-only', '' using 1:4 with lines lw 2 title 'best split'\n";
  g.close();
  if (!g) return IoError("cannot write " + gp);
  const auto gnuplot = FindOnPath("gnuplot");
  if (!gnuplot) return Unimplemented("gnuplot is not on PATH (apt-get install gnuplot-nox); the data is in " + dat);
  SI_RETURN_IF_ERROR(eval::RunGnuplot(*gnuplot, gp, svg));
  return Status::Ok();
}

Status RunPlan(const PlanArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  SI_ASSIGN_OR_RETURN(auto node, plan::LoadProfile(a.node));
  SI_ASSIGN_OR_RETURN(auto server, plan::LoadProfile(a.server));
  plan::PlanOptions o;
  SI_ASSIGN_OR_RETURN(o.rtt_s, runtime::ParseDuration(a.rtt));
  if (!a.links.empty()) {
    SI_ASSIGN_OR_RETURN(auto links, plan::LoadLinks(a.links));
    for (const auto& l : links) {
      o.rates.push_back(l.rate_bytes_per_s);
      o.rtts_s.push_back(l.rtt_s);
    }
  } else {
    SI_ASSIGN_OR_RETURN(auto rates, ParseList<double>(a.rates, "--rates"));
    for (double r : rates) o.rates.push_back(r * 1e6);
  }
  if (!a.bits.empty()) {
    SI_ASSIGN_OR_RETURN(o.bits, ParseList<int>(a.bits, "--bits"));
  }
  o.min_accuracy = a.min_accuracy;
  o.idle_slowdown = !a.hot;
  o.transport = a.transport;
  o.image_format = a.image_format;
  // Several files read as one (a study's, and a shipped pipeline's own rows beside it); all in
  // one metric.
  std::vector<plan::MeasuredAccuracy> results;
  for (const auto& path : a.results) {
    SI_ASSIGN_OR_RETURN(auto more, plan::LoadResults(path));
    if (!results.empty() && !more.empty() && more.front().metric != results.front().metric) {
      return InvalidArgument(path + " is measured in " + more.front().metric + ", " + a.results.front() + " in " +
                                 results.front().metric + "; give results of one study's task");
    }
    results.insert(results.end(), more.begin(), more.end());
  }
  SI_ASSIGN_OR_RETURN(auto plans, plan::Plan(node, server, o, results));
  const double plan_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::vector<plan::Validation> validations;
  if (a.validate) {
    plan::ValidateOptions vo;
    vo.checkpoint = a.checkpoint;
    vo.work_dir = a.work_dir;
    vo.data = a.data;
    vo.images = a.images;
    vo.threads = a.threads;
    vo.transport = o.transport;
    vo.image_format = o.image_format;
    vo.jpeg_quality = node.jpeg_quality;
    vo.server = a.validate_server;
    if (a.prepare) {
      SI_ASSIGN_OR_RETURN(const std::string config, plan::PrepareServer(plans, vo));
      std::printf("pipelines for the plan's choices written; start the server with\n  splitinfer serve --config %s\n"
                  "then validate against it with the same plan command and --server HOST:PORT\n", config.c_str());
      return Status::Ok();
    }
    vo.progress = !a.json;
    SI_ASSIGN_OR_RETURN(validations, plan::Validate(plans, vo));
  }
  if (!a.plot.empty()) SI_RETURN_IF_ERROR(WritePlot(a.plot, node, server, o, results));
  if (a.json) {
    nlohmann::json j = {{"model", node.model},     {"node", node.machine}, {"server", server.machine},
                        {"rtt_ms", o.rtt_s * 1e3}, {"plan_ms", plan_ms},   {"transport", o.transport},
                        {"plans", nlohmann::json::array()}};
    if (o.min_accuracy >= 0) j["min_accuracy"] = o.min_accuracy;
    for (const auto& p : plans) j["plans"].push_back(p.ToJson());
    if (a.validate) {
      j["validation"] = nlohmann::json::array();
      for (const auto& v : validations) j["validation"].push_back(v.ToJson());
    }
    std::printf("%s\n", j.dump().c_str());
    return Status::Ok();
  }
  const std::string label = plan::MetricOf(node) == "ap50" ? "AP50" : "top-1";
  std::printf("model %s; node: %s; server: %s%s\n", node.model.c_str(), node.machine.c_str(),
              server.machine.c_str(),
              o.min_accuracy >= 0 ? (", " + label + " >= " + std::to_string(o.min_accuracy).substr(0, 5) + " %").c_str() : "");
  // Where the bytes around each frame come from: a profile made before they were counted gets
  // the shipped pipeline's unary overheads, and the output says so.
  const auto& first = plans.front().has_split ? plans.front().best_split : plans.front().server_only;
  std::printf("transport %s (server-only: %s); request/reply overheads %s\n", o.transport.c_str(), o.image_format.c_str(),
              first.overheads_measured ? "as the node profile measured them"
                                       : "assumed (the node profile did not count them)");
  auto pct = [](double v) { return v < 0 ? std::string("-") : std::to_string(v).substr(0, 5); };
  std::printf("| MB/s | RTT ms | best | %s %% | bytes | best ms | x server-only | x node-only | best split | "
              "its %s %% | its ms | server-only ms | node-only ms |\n", label.c_str(), label.c_str());
  std::printf("|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n");
  for (const auto& p : plans) {
    std::printf("| %g | %g | %s | %s | %.1f | %.2f | %.2f | %.2f | %s | %s | %s | %.2f | %.2f |\n", p.rate / 1e6,
                p.rtt_s * 1e3,
                p.best.name.c_str(), pct(p.best.score).c_str(), p.best.frame_bytes, p.best.total_ms,
                p.speedup_vs_server_only, p.speedup_vs_node_only, p.has_split ? p.best_split.name.c_str() : "-",
                p.has_split ? pct(p.best_split.score).c_str() : "-",
                p.has_split ? std::to_string(p.best_split.total_ms).substr(0, 6).c_str() : "-", p.server_only.total_ms,
                p.node_only.total_ms);
  }
  std::printf("planned in %.1f ms\n", plan_ms);
  if (a.validate) {
    std::printf("\n| MB/s | kind | configuration | predicted ms | measured median ms | p95 ms | error | %s %% | "
                "node / encode / link / server ms, predicted | measured |\n", label.c_str());
    std::printf("|---:|---|---|---:|---:|---:|---:|---:|---|---|\n");
    for (const auto& v : validations) {
      std::printf("| %g | %s | %s | %.2f | %.2f | %.2f | %+.1f %% | %.2f | %.2f / %.2f / %.2f / %.2f | %.2f / %.2f / "
                  "%.2f / %.2f |\n",
                  v.rate / 1e6, v.kind.c_str(), v.name.c_str(), v.predicted_ms, v.measured_median_ms,
                  v.measured_p95_ms, v.error_pct, v.score, v.predicted_node_ms, v.predicted_encode_ms,
                  v.predicted_link_ms, v.predicted_server_ms, v.measured_node_ms, v.measured_encode_ms,
                  v.measured_link_ms, v.measured_server_ms);
    }
  }
  return Status::Ok();
}

}  // namespace

std::function<Status()> AddPlanCommands(CLI::App& app, std::function<bool()>* selected) {
  auto pa = std::make_shared<ProfileArgs>();
  auto* profile = app.add_subcommand("profile", "measure per-block, codec and PNG times of a model on this machine");
  AddModelOptions(profile, pa->model, /*required=*/false);
  profile->add_option("--data", pa->o.data,
                      "images for the codec maps and PNGs: fmnist, imagefolder:DIR, ... (default: the model's dataset; "
                      "random images for a zoo name)");
  profile->add_option("--device", pa->o.device, "cpu | cuda | cuda:N");
  profile->add_option("--threads", pa->o.threads, "LibTorch threads")->check(CLI::Range(1, 1024));
  profile->add_option("--out", pa->out, "profile YAML to write")->required();
  profile->add_option("--batches", pa->batches, "batch sizes to time the blocks at (default 1,8,32)");
  profile->add_option("--bits", pa->bits, "codec bit widths (default 1,2,4,8)");
  profile->add_option("--coders", pa->coders, "codec coders (default none,lzma,zstd,cabac)");
  profile->add_option("--repeats", pa->o.repeats, "timed runs per batch size (median)")->check(CLI::Range(1, 10000));
  profile->add_option("--maps", pa->o.codec_maps, "images the codec, PNG and JPEG are measured on")->check(CLI::Range(2, 100000));
  profile->add_option("--jpeg-quality", pa->o.jpeg_quality, "the server-only path's JPEG quality (default 90, a camera's)")
      ->check(CLI::Range(1, 100));
  profile->add_option("--pipeline", pa->o.pipelines, "trained pipeline YAML to measure as a whole (repeatable)");
  profile->add_option("--call-ms", pa->o.call_ms,
                      "per-request call cost in ms to record instead of measuring it (required by a build "
                      "without the runtime)")->check(CLI::Range(0.0, 1e6));
  profile->add_option("--idle-gaps", pa->idle_gaps,
                      "idle gaps in ms to time the model after, from 0 (default 0,1,2,5,10,20,50,100,200,500; none)");
  profile->add_option("--derive", pa->derive, "instead: scale --from PROFILE by this factors YAML (configs/devices)");
  profile->add_option("--from", pa->from, "the measured profile --derive scales");

  auto pl = std::make_shared<PlanArgs>();
  auto* planc = app.add_subcommand("plan", "choose the split and codec setting with the lowest predicted latency");
  planc->add_option("--node", pl->node, "node profile YAML")->required();
  planc->add_option("--server", pl->server, "server profile YAML")->required();
  planc->add_option("--rates", pl->rates, "link rates in MB/s, comma-separated (default 1,2,5,10)");
  planc->add_option("--rtt", pl->rtt, "round-trip time (default 10ms)");
  planc->add_option("--links", pl->links, "instead of --rates/--rtt: a links YAML (configs/devices/links.yaml)");
  planc->add_option("--bits", pl->bits, "only these bit widths, comma-separated (default: all profiled)");
  planc->add_option("--min-accuracy", pl->min_accuracy,
                   "only configurations whose measured top-1 (a detector: AP50) is >= A percent");
  planc->add_option("--results", pl->results,
                    "the study's results.json: measured accuracy and bytes (repeatable: e.g. also a shipped "
                    "pipeline's models/NAME/results.jsonl)");
  planc->add_option("--plot", pl->plot, "write latency vs rate as SVG (gnuplot)");
  planc->add_option("--transport", pl->transport,
                    "how the node calls the server for split choices: unary (default) or stream (a session on "
                    "ModelStreamInfer, top-1 replies); the profiles' measurements of it are used")
      ->check(CLI::IsMember({"unary", "stream"}));
  planc->add_option("--image-format", pl->image_format,
                    "how server-only sends the image: png (default) or jpeg (as a camera does; the profiles' JPEG "
                    "measurements at the node profile's quality)")
      ->check(CLI::IsMember({"png", "jpeg"}));
  planc->add_flag("--hot", pl->hot, "ignore the profiles' idle slowdown (compute times as timed back to back)");
  planc->add_flag("--validate", pl->validate, "run the choices through the real runtime and compare");
  planc->add_option("--model,--checkpoint", pl->checkpoint,
                    "with --validate: the profiled model (checkpoint or TorchScript file; a model reference)");
  planc->add_option("--data", pl->data,
                    "with --validate: the images (fmnist, imagefolder:DIR, tinyimagenet:DIR; default: the model's)");
  planc->add_option("--images", pl->images, "with --validate: images per configuration")->check(CLI::Range(1, 100000));
  planc->add_option("--work-dir", pl->work_dir, "with --validate: where generated pipelines go");
  planc->add_flag("--prepare", pl->prepare,
                  "with --validate: only write the choices' pipelines and a server config (WORK_DIR/server.yaml) "
                  "to start `serve` with, apart (another core, a machine, a quota), then validate with "
                  "--validate-server");
  planc->add_option("--validate-server", pl->validate_server,
                    "with --validate: HOST:PORT of a running serve of WORK_DIR/server.yaml (default: an in-process "
                    "server)");
  planc->add_option("--threads", pl->threads, "with --validate: node and server threads (as profiled)");
  planc->add_flag("--json", pl->json, "print one JSON object");

  *selected = [profile, planc] { return profile->parsed() || planc->parsed(); };
  return [profile, planc, pa, pl]() -> Status {
    if (profile->parsed()) return RunProfile(*pa);
    if (planc->parsed()) return RunPlan(*pl);
    return Status::Ok();
  };
}

}  // namespace splitinfer::cli
