#include "plan/planner.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace splitinfer::plan {
namespace {

// Three blocks: 10, 20, 30 ms on the node; a server ten times faster. One split after block 0
// ("early", 1000-byte frames) and one after block 1 ("late", 100-byte frames).
Profile Synthetic(double scale) {
  Profile p;
  p.machine = scale == 1 ? "node" : "server";
  p.model = "toy";
  p.input_shape = {1, 8, 8};
  p.classes = 10;
  for (int i = 0; i < 3; ++i) p.blocks.push_back({"b" + std::to_string(i), "conv", {{1, 10.0 * (i + 1) * scale}}});
  p.splits = {{"early", 0, {4, 4}, 64}, {"late", 1, {2, 2}, 16}};
  p.codecs = {{"early", 2, "tensor", "zstd", 1.0 * scale, 2.0 * scale, 1000},
              {"late", 2, "tensor", "zstd", 0.5 * scale, 1.0 * scale, 100}};
  p.png_encode_ms = 3 * scale;
  p.png_decode_ms = 4 * scale;
  p.png_bytes = 5000;
  // Requests carry 100 bytes beyond the frame, replies 60 + 4 x 10 classes = 100 bytes.
  p.transports["unary"] = {0, 0, 100, 60, 4};
  p.transports["png"] = {0, 0, 100, 60, 4};
  return p;
}

PlanOptions Options(double rate) {
  PlanOptions o;
  o.rates = {rate};
  o.rtt_s = 0.010;
  return o;
}

Choice Find(const std::vector<Choice>& all, const std::string& name) {
  for (const auto& c : all) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no candidate " << name;
  return Choice{};
}

// A profile from a build without libpng has no server-only baseline: planning with it is refused
// with the reason, not planned with a free PNG.
TEST(PlannerTest, AProfileWithoutPngIsRefused) {
  Profile node = Synthetic(1), server = Synthetic(0.1);
  server.png_bytes = 0;
  PlanOptions o;
  o.rates = {1e6};
  auto plans = Plan(node, server, o, {});
  EXPECT_EQ(plans.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(plans.status().message().find("without libpng"), std::string::npos) << plans.status().message();
}

// Server-only as a camera sends it: the image as JPEG, at the node profile's quality, with its
// measured bytes and times in place of PNG's; a profile without JPEG is refused by name. The
// profile file keeps the JPEG measurement, and a device's derivation scales it as PNG's.
TEST(PlannerTest, ServerOnlyAsJpeg) {
  Profile node = Synthetic(1), server = Synthetic(0.1);
  PlanOptions o = Options(1e6);
  o.image_format = "jpeg";
  auto refused = Plan(node, server, o, {});
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("has no JPEG measurement"), std::string::npos) << refused.status().message();
  for (Profile* p : {&node, &server}) {
    p->jpeg_quality = 90;
    p->jpeg_encode_ms = 0.5 * (p == &node ? 1 : 0.1);
    p->jpeg_decode_ms = 0.25 * (p == &node ? 1 : 0.1);
    p->jpeg_bytes = 1000;
  }
  const auto png = Find(EvaluateAll(node, server, 1e6, Options(1e6), {}), "server-only");
  const auto jpeg = Find(EvaluateAll(node, server, 1e6, o, {}), "server-only jpeg q90");
  EXPECT_DOUBLE_EQ(jpeg.frame_bytes, 1000);
  EXPECT_DOUBLE_EQ(jpeg.encode_ms, 0.5);
  EXPECT_DOUBLE_EQ(jpeg.decode_ms, 0.025);
  // 4000 fewer bytes at 1 MB/s and cheaper coding than PNG's 3 ms + 0.4 ms.
  EXPECT_NEAR(png.total_ms - jpeg.total_ms, 4.0 + (3 - 0.5) + (0.4 - 0.025), 1e-9);
  auto plans = Plan(node, server, o, {});
  ASSERT_TRUE(plans.ok()) << plans.status().ToString();
  EXPECT_EQ(plans->front().server_only.name, "server-only jpeg q90");
  o.image_format = "webp";
  EXPECT_EQ(Plan(node, server, o, {}).status().code(), ErrorCode::kInvalidArgument);

  const auto dir = std::filesystem::temp_directory_path() / ("si_plan_jpeg_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(SaveProfile((dir / "p.yaml").string(), node).ok());
  auto back = LoadProfile((dir / "p.yaml").string());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->jpeg_quality, 90);
  EXPECT_DOUBLE_EQ(back->jpeg_bytes, 1000);
  EXPECT_DOUBLE_EQ(back->jpeg_decode_ms, 0.25);
  std::ofstream(dir / "f.yaml") << "name: slow-board\nsource: test factors\nfactors: {png: 3}\n";
  auto f = LoadScaleFactors((dir / "f.yaml").string());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_DOUBLE_EQ(DeriveProfile(*back, *f).jpeg_encode_ms, 1.5);
  std::filesystem::remove_all(dir);
}

TEST(PlannerTest, LatencyModelMatchesAHandComputedAnswer) {
  const Profile node = Synthetic(1), server = Synthetic(0.1);
  const auto all = EvaluateAll(node, server, 1e6, Options(1e6), {});
  auto find = [&](const std::string& name) {
    for (const auto& c : all) {
      if (c.name == name) return c;
    }
    ADD_FAILURE() << "no candidate " << name;
    return Choice{};
  };
  // late: node 10 + 20, encode 0.5, (100 + 100 request + 100 reply) B at 1 MB/s = 0.3 ms, RTT 10,
  // decode 0.1 (server's codec), server block 2: 3 ms -> 43.9 ms.
  const auto late = find("late b2 tensor zstd");
  EXPECT_DOUBLE_EQ(late.node_ms, 30.0);
  EXPECT_DOUBLE_EQ(late.encode_ms, 0.5);
  EXPECT_NEAR(late.transmit_ms, 0.3, 1e-12);
  EXPECT_DOUBLE_EQ(late.rtt_ms, 10.0);
  EXPECT_NEAR(late.decode_ms, 0.1, 1e-12);
  EXPECT_NEAR(late.server_ms, 3.0, 1e-12);
  EXPECT_NEAR(late.total_ms, 43.9, 1e-9);
  // early: 10 + 1 + (1000 + 200) / 1e6 s = 1.2 ms + 10 + 0.2 + (2 + 3) = 27.4 ms.
  EXPECT_NEAR(find("early b2 tensor zstd").total_ms, 27.4, 1e-9);
  // server-only: PNG 3 + (5000 + 200) B = 5.2 ms + 10 + 0.4 + 6 = 24.6 ms.
  EXPECT_NEAR(find("server-only").total_ms, 24.6, 1e-9);
  // node-only: 60 ms, nothing sent.
  const auto node_only = find("node-only");
  EXPECT_NEAR(node_only.total_ms, 60.0, 1e-9);
  EXPECT_EQ(node_only.request_bytes, 0.0);
  // Sorted fastest first.
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LE(all[i - 1].total_ms, all[i].total_ms);
}

TEST(PlannerTest, TheBestChoiceMovesWithTheRate) {
  const Profile node = Synthetic(1), server = Synthetic(0.1);
  // Fast link: sending the PNG (24.6 ms) beats the early split (27.4 ms).
  auto fast = Plan(node, server, Options(1e6), {});
  ASSERT_TRUE(fast.ok()) << fast.status().ToString();
  EXPECT_EQ((*fast)[0].best.kind, "server-only");
  EXPECT_DOUBLE_EQ((*fast)[0].speedup_vs_server_only, 1.0);
  // At 100 kB/s: PNG 3 + 52 + 10 + 0.4 + 6 = 71.4; early 10 + 1 + 12 + 10 + 0.2 + 5 = 38.2;
  // late 30 + 0.5 + 3 + 10 + 0.1 + 3 = 46.6 -> early, 71.4 / 38.2 faster than server-only.
  auto slow = Plan(node, server, Options(1e5), {});
  ASSERT_TRUE(slow.ok());
  EXPECT_EQ((*slow)[0].best.name, "early b2 tensor zstd");
  EXPECT_NEAR((*slow)[0].best.total_ms, 38.2, 1e-9);
  EXPECT_NEAR((*slow)[0].speedup_vs_server_only, 71.4 / 38.2, 1e-9);
  EXPECT_NEAR((*slow)[0].speedup_vs_node_only, 60.0 / 38.2, 1e-9);
}

TEST(PlannerTest, AccuracyConstraintUsesMeasuredResults) {
  const Profile node = Synthetic(1), server = Synthetic(0.1);
  std::vector<MeasuredAccuracy> results = {
      {"float", "float", "", "", "none", "", 0, 90.0, 0},
      {"ptq_early", "ptq", "early", "tensor", "zstd", "", 2, 80.0, 900},  // fast but inaccurate
      {"ptq_late", "ptq", "late", "tensor", "zstd", "", 2, 89.5, 120},
  };
  auto o = Options(1e5);
  o.min_accuracy = 89.0;
  auto plans = Plan(node, server, o, results);
  ASSERT_TRUE(plans.ok()) << plans.status().ToString();
  const auto& p = (*plans)[0];
  // early is excluded (80 %); late (now 120 measured bytes) is the fastest accurate choice.
  EXPECT_EQ(p.best.name, "late b2 tensor zstd");
  EXPECT_DOUBLE_EQ(p.best.score, 89.5);
  EXPECT_DOUBLE_EQ(p.best.frame_bytes, 120.0);
  EXPECT_EQ(p.excluded_accuracy, 1);
  EXPECT_EQ(p.server_only.score, 90.0);  // the baselines carry the float model's accuracy

  o.min_accuracy = 95.0;  // nothing reaches it
  auto none = Plan(node, server, o, results);
  EXPECT_EQ(none.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("no configuration reaches"), std::string::npos);

  o.min_accuracy = 50.0;  // without results nothing has a measured accuracy
  auto unmeasured = Plan(node, server, o, {});
  EXPECT_EQ(unmeasured.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(unmeasured.status().message().find("pass --results"), std::string::npos);
}

TEST(PlannerTest, PerRequestCostsStreamFactorAndIdleSlowdown) {
  Profile node = Synthetic(1), server = Synthetic(0.1);
  node.transports["unary"].call_ms = node.transports["png"].call_ms = 0.5;
  server.transports["unary"].server_request_ms = 0.25;
  server.transports["png"].server_request_ms = 0.75;
  node.stream_factor = 1.5;
  auto find = [](const std::vector<Choice>& all, const std::string& name) {
    for (const auto& c : all) {
      if (c.name == name) return c;
    }
    ADD_FAILURE() << "no candidate " << name;
    return Choice{};
  };
  auto o = Options(1e6);
  // Hot (no idle curve): late = node 30 x 1.5 + 0.5 + 0.3 + 10 + call 0.5 + decode 0.1 + 0.25 + 3 = 59.65;
  // server-only = 3 + 5.2 + 10 + 0.5 + 0.4 + 0.75 + 6 = 25.85; node-only = 60 x 1.5 = 90.
  auto all = EvaluateAll(node, server, 1e6, o, {});
  EXPECT_NEAR(find(all, "late b2 tensor zstd").total_ms, 59.65, 1e-9);
  EXPECT_NEAR(find(all, "late b2 tensor zstd").call_ms, 0.5, 1e-12);
  EXPECT_NEAR(find(all, "server-only").total_ms, 25.85, 1e-9);
  EXPECT_NEAR(find(all, "node-only").total_ms, 90.0, 1e-9);
  // A flat idle curve of 2 on the node and 3 on the server: every networked compute term is
  // scaled (whatever the gap), the link is not, node-only (never idle) is not.
  node.idle_slowdown = {{0, 1.0}, {1, 2.0}, {1000, 2.0}};
  server.idle_slowdown = {{0, 1.0}, {1, 3.0}, {1000, 3.0}};
  all = EvaluateAll(node, server, 1e6, o, {});
  const auto late = find(all, "late b2 tensor zstd");
  EXPECT_NEAR(late.node_slowdown, 2.0, 1e-12);
  EXPECT_NEAR(late.server_slowdown, 3.0, 1e-12);
  // 45 x 2 + 0.5 x 2 + 0.3 + 10 + 0.5 + (0.1 + 0.25) x 3 + 3 x 3 = 111.85
  EXPECT_NEAR(late.total_ms, 111.85, 1e-9);
  EXPECT_NEAR(find(all, "node-only").total_ms, 90.0, 1e-9);
  o.idle_slowdown = false;
  EXPECT_NEAR(find(EvaluateAll(node, server, 1e6, o, {}), "late b2 tensor zstd").total_ms, 59.65, 1e-9);
}

TEST(PlannerTest, IdleSlowdownInterpolatesBetweenMeasuredGaps) {
  Profile p;
  EXPECT_DOUBLE_EQ(p.SlowdownAfter(50), 1.0);  // none measured
  p.idle_slowdown = {{0, 1.0}, {10, 1.5}, {100, 4.0}};
  EXPECT_DOUBLE_EQ(p.SlowdownAfter(0), 1.0);
  EXPECT_DOUBLE_EQ(p.SlowdownAfter(5), 1.25);
  EXPECT_DOUBLE_EQ(p.SlowdownAfter(10), 1.5);
  EXPECT_DOUBLE_EQ(p.SlowdownAfter(55), 2.75);
  EXPECT_DOUBLE_EQ(p.SlowdownAfter(1000), 4.0);  // flat beyond the last gap
}

TEST(PlannerTest, BitWidthFilterAndPerLinkRtt) {
  const Profile node = Synthetic(1), server = Synthetic(0.1);
  auto o = Options(1e5);
  o.bits = {4, 8};  // the synthetic profile has 2-bit cells only: baselines remain
  auto plans = Plan(node, server, o, {});
  ASSERT_TRUE(plans.ok());
  EXPECT_FALSE((*plans)[0].has_split);
  EXPECT_EQ((*plans)[0].best.kind, "node-only");  // 60 ms against server-only's 71.4 (the split's 38.2 is out)
  // Two links with their own RTTs: at 100 kB/s and 50 ms RTT the early split costs
  // 10 + 1 + 12 + 50 + 0.2 + 5 = 78.2 ms (node-only's 60 ms is then the best).
  o = Options(1e5);
  o.rates = {1e5, 1e6};
  o.rtts_s = {0.050, 0.001};
  plans = Plan(node, server, o, {});
  ASSERT_TRUE(plans.ok()) << plans.status().ToString();
  EXPECT_NEAR((*plans)[0].best_split.total_ms, 78.2, 1e-9);
  EXPECT_EQ((*plans)[0].best.kind, "node-only");
  EXPECT_DOUBLE_EQ((*plans)[0].rtt_s, 0.050);
  EXPECT_DOUBLE_EQ((*plans)[1].rtt_s, 0.001);
  o.rtts_s = {0.050};
  EXPECT_EQ(Plan(node, server, o, {}).status().code(), ErrorCode::kInvalidArgument);

  const auto dir = std::filesystem::temp_directory_path() / ("si_links_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "links.yaml") << "links:\n  - {name: slow, rate_mb_s: 1, rtt_ms: 10}\n"
                                       "  - {name: fast, rate_mb_s: 10, rtt_ms: 2.5}\n";
  auto links = LoadLinks((dir / "links.yaml").string());
  ASSERT_TRUE(links.ok()) << links.status().ToString();
  ASSERT_EQ(links->size(), 2u);
  EXPECT_DOUBLE_EQ((*links)[1].rate_bytes_per_s, 1e7);
  EXPECT_DOUBLE_EQ((*links)[1].rtt_s, 0.0025);
  std::ofstream(dir / "bad.yaml") << "links:\n  - {name: x, rate_mb_s: 0, rtt_ms: 10}\n";
  const auto bad = LoadLinks((dir / "bad.yaml").string());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("rate_mb_s > 0"), std::string::npos);
  EXPECT_EQ(LoadLinks((dir / "none.yaml").string()).status().code(), ErrorCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(PlannerTest, ProfilesMustDescribeTheSameModel) {
  Profile other = Synthetic(0.1);
  other.model = "other";
  EXPECT_EQ(Plan(Synthetic(1), other, Options(1e6), {}).status().code(), ErrorCode::kMismatch);
  auto o = Options(1e6);
  o.rates = {0};
  EXPECT_EQ(Plan(Synthetic(1), Synthetic(1), o, {}).status().code(), ErrorCode::kInvalidArgument);
}

TEST(PlannerTest, ProfileYamlRoundTripAndDerivation) {
  const auto dir = std::filesystem::temp_directory_path() / ("si_plan_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  Profile p = Synthetic(1);
  p.pipelines.push_back({"ae", "/x/ae.yaml", "late", "cabac", 2, 31.0, 4.0, 0.2, 0.3, 40.0});
  p.idle_slowdown = {{0, 1.0}, {10, 1.5}};
  p.codecs[1].session_frame_bytes = 89;
  p.transports["unary"].call_ms = 0.5;
  p.transports["unary"].server_request_ms = 0.25;
  p.transports["png"].server_request_ms = 0.75;
  p.transports["stream"] = {0.2, 0.125, 10, 14, 0};
  p.stream_factor = 1.25;
  p.calls_measured_with = "test";
  ASSERT_TRUE(SaveProfile((dir / "p.yaml").string(), p).ok());
  auto back = LoadProfile((dir / "p.yaml").string());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->blocks.size(), 3u);
  EXPECT_DOUBLE_EQ(back->BlocksMs(0, 3, 1), 60.0);
  EXPECT_EQ(back->codecs.size(), 2u);
  EXPECT_EQ(back->pipelines.size(), 1u);
  EXPECT_DOUBLE_EQ(back->pipelines[0].frame_bytes, 40.0);
  EXPECT_EQ(back->classes, 10);
  EXPECT_EQ(back->idle_slowdown, p.idle_slowdown);
  ASSERT_EQ(back->transports.size(), 3u);
  EXPECT_DOUBLE_EQ(back->transports.at("unary").call_ms, 0.5);
  EXPECT_DOUBLE_EQ(back->transports.at("unary").server_request_ms, 0.25);
  EXPECT_DOUBLE_EQ(back->transports.at("unary").request_overhead_bytes, 100);
  EXPECT_DOUBLE_EQ(back->transports.at("png").server_request_ms, 0.75);
  EXPECT_DOUBLE_EQ(back->transports.at("stream").call_ms, 0.2);
  EXPECT_DOUBLE_EQ(back->transports.at("stream").reply_overhead_bytes, 14);
  EXPECT_DOUBLE_EQ(back->transports.at("stream").reply_bytes_per_class, 0);
  EXPECT_DOUBLE_EQ(back->codecs[1].session_frame_bytes, 89);
  EXPECT_DOUBLE_EQ(back->codecs[0].session_frame_bytes, 0);  // not measured: not written
  EXPECT_DOUBLE_EQ(back->stream_factor, 1.25);
  EXPECT_EQ(back->calls_measured_with, "test");

  std::ofstream(dir / "f.yaml") << "name: slow-board\nsource: test factors\nfactors: {conv: 4, codec: 2, png: 3, rpc: 2}\n";
  auto f = LoadScaleFactors((dir / "f.yaml").string());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const Profile d = DeriveProfile(*back, *f);
  EXPECT_DOUBLE_EQ(d.BlocksMs(0, 3, 1), 240.0);
  EXPECT_DOUBLE_EQ(d.codecs[0].encode_ms, 2.0);
  EXPECT_DOUBLE_EQ(d.png_encode_ms, 9.0);
  EXPECT_DOUBLE_EQ(d.pipelines[0].node_ms, 124.0);
  EXPECT_NE(d.derived_from.find("test factors"), std::string::npos);
  EXPECT_DOUBLE_EQ(d.transports.at("unary").call_ms, 1.0);
  EXPECT_DOUBLE_EQ(d.transports.at("stream").call_ms, 0.4);
  EXPECT_DOUBLE_EQ(d.transports.at("stream").request_overhead_bytes, 10);  // bytes are not scaled
  EXPECT_EQ(d.idle_slowdown, p.idle_slowdown);  // a ratio: kept

  std::ofstream(dir / "bad.yaml") << "name: x\nfactors: {conv: -1}\nsource: s\n";
  EXPECT_EQ(LoadScaleFactors((dir / "bad.yaml").string()).status().code(), ErrorCode::kInvalidArgument);
  std::ofstream(dir / "notprofile.yaml") << "machine: x\n";
  EXPECT_NE(LoadProfile((dir / "notprofile.yaml").string()).status().message().find("not a profile"),
            std::string::npos);
  EXPECT_EQ(LoadProfile((dir / "missing.yaml").string()).status().code(), ErrorCode::kNotFound);
  std::filesystem::remove_all(dir);
}

// A profile made before the per-transport measurements (one call time, no byte counts) still
// plans unary calls, on the shipped pipeline's overheads, and says so in every choice.
TEST(PlannerTest, ProfileFromBeforeTransportsPlansUnaryOnAssumedOverheads) {
  auto legacy = LoadProfile(std::string(SPLITINFER_SOURCE_DIR) + "/configs/devices/profiles/resnet_fmnist_epyc-vm.yaml");
  ASSERT_TRUE(legacy.ok()) << legacy.status().ToString();
  ASSERT_EQ(legacy->transports.count("unary"), 1u);
  ASSERT_EQ(legacy->transports.count("png"), 1u);
  EXPECT_EQ(legacy->transports.count("stream"), 0u);
  EXPECT_FALSE(legacy->transports.at("unary").BytesMeasured());
  EXPECT_GT(legacy->transports.at("unary").call_ms, 0);
  auto o = Options(1e6);
  auto plans = Plan(*legacy, *legacy, o, {});
  ASSERT_TRUE(plans.ok()) << plans.status().ToString();
  const Choice& so = plans->front().server_only;
  EXPECT_FALSE(so.overheads_measured);
  EXPECT_EQ(so.transport, "png");
  EXPECT_DOUBLE_EQ(so.request_bytes, legacy->png_bytes + o.assumed_png_request_overhead_bytes);
  EXPECT_DOUBLE_EQ(so.reply_bytes, o.assumed_reply_overhead_bytes + 4.0 * legacy->classes);
  o.transport = "stream";
  auto refused = Plan(*legacy, *legacy, o, {});
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("no measurements of stream calls"), std::string::npos)
      << refused.status().message();
  o.transport = "carrier-pigeon";
  EXPECT_EQ(Plan(*legacy, *legacy, o, {}).status().code(), ErrorCode::kInvalidArgument);
}

// On a stream, frames shed their header (session frames) and replies carry top-1 only: the
// bytes, the call and the server's per-request work are the stream's measurements.
TEST(PlannerTest, StreamTransportUsesSessionFramesAndItsOwnCosts) {
  Profile node = Synthetic(1), server = Synthetic(0.1);
  node.codecs[0].session_frame_bytes = 989;
  node.codecs[1].session_frame_bytes = 89;
  node.transports["stream"] = {0.2, 0, 10, 14, 0};
  server.transports["stream"] = {0, 0.125, 10, 14, 0};
  auto o = Options(1e6);
  o.idle_slowdown = false;
  o.transport = "stream";
  const Choice late = Find(EvaluateAll(node, server, 1e6, o, {}), "late b2 tensor zstd");
  EXPECT_EQ(late.transport, "stream");
  EXPECT_TRUE(late.overheads_measured);
  EXPECT_DOUBLE_EQ(late.frame_bytes, 89);
  EXPECT_DOUBLE_EQ(late.request_bytes, 99);
  EXPECT_DOUBLE_EQ(late.reply_bytes, 14);  // no per-class scores
  EXPECT_NEAR(late.transmit_ms, 0.113, 1e-12);
  EXPECT_DOUBLE_EQ(late.call_ms, 0.2);
  // node 30 + encode 0.5 + 0.113 + RTT 10 + call 0.2 + decode 0.1 + 0.125 + server 3
  EXPECT_NEAR(late.total_ms, 44.038, 1e-9);
  // A frame size measured on the whole test set (full frames) sheds the same header.
  MeasuredAccuracy m;
  m.method = "ptq";
  m.split = "late";
  m.bits = 2;
  m.granularity = "tensor";
  m.coder = "zstd";
  m.score = 90;
  m.bytes_per_image = 120;
  EXPECT_DOUBLE_EQ(Find(EvaluateAll(node, server, 1e6, o, {m}), "late b2 tensor zstd").frame_bytes, 109);
  // Server-only still sends PNG in unary calls.
  const Choice so = Find(EvaluateAll(node, server, 1e6, o, {}), "server-only");
  EXPECT_EQ(so.transport, "png");
  EXPECT_DOUBLE_EQ(so.reply_bytes, 100);
  EXPECT_TRUE(Plan(node, server, o, {}).ok());
  // A node profile without session frame sizes cannot plan a stream.
  node.codecs[0].session_frame_bytes = 0;
  auto refused = Plan(node, server, o, {});
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("no session frame sizes"), std::string::npos)
      << refused.status().message();
}

// A detector's study is planned on AP50: the rows' metric is read and named in the plan, a
// results file of the other task (or mixing both) is refused, and a detector's reply, when no
// profile measured it, is the 100 boxes the node asks for.
TEST(PlannerTest, ADetectorIsPlannedOnAp50) {
  Profile node = Synthetic(1), server = Synthetic(0.1);
  node.task = server.task = "detect";
  EXPECT_EQ(MetricOf(node), "ap50");
  const auto dir = std::filesystem::temp_directory_path() / "planner_ap50";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "results.jsonl")
      << R"({"run":"float","method":"float","metric":"ap50","ap50":67.9,"bytes_per_image":0})" << "\n"
      << R"({"run":"ptq_late","method":"ptq","split":"late","granularity":"tensor","coder":"zstd","bits":2,"metric":"ap50","ap50":66.5,"bytes_per_image":120})"
      << "\n";
  auto results = LoadResults((dir / "results.jsonl").string());
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  EXPECT_EQ((*results)[1].metric, "ap50");
  EXPECT_DOUBLE_EQ((*results)[1].score, 66.5);
  auto o = Options(1e5);
  o.min_accuracy = 66;
  auto plans = Plan(node, server, o, *results);
  ASSERT_TRUE(plans.ok()) << plans.status().ToString();
  const auto& p = (*plans)[0];
  EXPECT_EQ(p.best.metric, "ap50");
  EXPECT_DOUBLE_EQ(p.best_split.score, 66.5);
  EXPECT_DOUBLE_EQ(p.server_only.score, 67.9);
  EXPECT_DOUBLE_EQ(p.best.ToJson().at("ap50").get<double>(), p.best.score);
  EXPECT_FALSE(p.best.ToJson().contains("top1"));
  // Measured overheads: a detector's reply is what was measured (no per-class part).
  node.transports["unary"].reply_bytes_per_class = 0;
  node.transports["unary"].reply_overhead_bytes = 2500;
  EXPECT_DOUBLE_EQ(Find(EvaluateAll(node, server, 1e6, Options(1e6), *results), "late b2 tensor zstd").reply_bytes, 2500);
  node.transports["unary"].reply_overhead_bytes = -1;  // not measured: 100 boxes assumed
  const Choice assumed = Find(EvaluateAll(node, server, 1e6, Options(1e6), *results), "late b2 tensor zstd");
  EXPECT_FALSE(assumed.overheads_measured);
  EXPECT_DOUBLE_EQ(assumed.reply_bytes, Options(1e6).assumed_detector_reply_bytes);

  // A classifier's profile with a detector's results, and a file of both metrics.
  auto wrong = Plan(Synthetic(1), Synthetic(0.1), o, *results);
  EXPECT_EQ(wrong.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("measured in ap50, but toy is scored by top1"), std::string::npos)
      << wrong.status().message();
  std::ofstream(dir / "mixed.jsonl") << R"({"run":"float","method":"float","top1":90})" << "\n"
                                     << R"({"run":"f","method":"float","metric":"ap50","ap50":60})" << "\n";
  auto mixed = LoadResults((dir / "mixed.jsonl").string());
  EXPECT_EQ(mixed.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(mixed.status().message().find("mixes rows measured in top1 and ap50"), std::string::npos)
      << mixed.status().message();
  std::filesystem::remove_all(dir);
}

// The answer after the network (a detector's decoding and NMS) is paid by the side that runs the
// last block: the node for node-only, the server for every other choice.
TEST(PlannerTest, TheAnswerIsPaidWhereTheLastBlockRuns) {
  Profile node = Synthetic(1), server = Synthetic(0.1);
  const auto before = EvaluateAll(node, server, 1e6, Options(1e6), {});
  node.answer_ms = 7;
  server.answer_ms = 0.7;
  const auto after = EvaluateAll(node, server, 1e6, Options(1e6), {});
  for (const char* name : {"node-only", "server-only", "early b2 tensor zstd", "late b2 tensor zstd"}) {
    const Choice b = Find(before, name), a = Find(after, name);
    if (std::string(name) == "node-only") {
      EXPECT_NEAR(a.node_ms - b.node_ms, 7, 1e-9);
      EXPECT_NEAR(a.server_ms, b.server_ms, 1e-9);
    } else {
      EXPECT_NEAR(a.server_ms - b.server_ms, 0.7, 1e-9) << name;
      EXPECT_NEAR(a.node_ms, b.node_ms, 1e-9) << name;
    }
  }
}

}  // namespace
}  // namespace splitinfer::plan
