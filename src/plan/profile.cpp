#include "plan/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include "bottleneck/codec_bench.h"
#include "codec/frame/session.h"
#include "codec/lossless/lossless.h"
#include "core/progress.h"
#include "core/stats.h"
#include "core/system.h"
#include "detect/yolo.h"
#include "data/datasets.h"
#include "data/detection.h"
#include "data/transforms.h"
#include "models/checkpoint.h"
#include "models/device.h"
#include "models/model_ref.h"
#include "bottleneck/faces.h"
#include "bottleneck/model_data.h"
#include "bottleneck/pipeline.h"
#include "models/build_info.h"
#include "models/zoo/zoo.h"
#if SPLITINFER_WITH_PNG
#include "runtime/png.h"
#if SPLITINFER_WITH_JPEG
#include "runtime/jpeg.h"
#endif
#endif
#if SPLITINFER_WITH_RUNTIME
#include "runtime/node.h"
#include "runtime/probe.h"
#include "runtime/server.h"
#endif

namespace splitinfer::plan {

using Clock = std::chrono::steady_clock;

namespace {

// What a request costs beyond compute, codec and link. With a trained pipeline of the model
// (Fashion-MNIST), the real runtime on loopback with no link emulated: the node's round trip
// outside the server's reported time is the call, the server's reported time beyond its
// profiled decode and compute is its per-request work (parsing, batcher hand-off, softmax,
// reply), for frames and for PNG. Without one, an empty gRPC call (runtime/probe.h) stands in
// for the call and the server's per-request work is taken as zero.
Status MeasureCalls(const ProfileOptions& o, Profile& p) {
  // Without a served pipeline, every transport gets the one call time (the frame and PNG
  // requests' bytes then stay unmeasured, see TransportProfile).
  auto same_call_everywhere = [&p](double call_ms) {
    p.transports.clear();
    for (const char* t : {"unary", "png"}) p.transports[t].call_ms = call_ms;
    p.transports["unary"].reply_bytes_per_class = p.transports["png"].reply_bytes_per_class = 4;
  };
#if !SPLITINFER_WITH_RUNTIME
  // No gRPC in this build: nothing to measure a call with. The value is the user's (checked
  // before anything is measured), and the profile says so; the server's per-request work beyond
  // decode and compute is left at zero.
  same_call_everywhere(o.call_ms);
  p.calls_measured_with = "not measured (built without the runtime): call_ms " + std::to_string(o.call_ms) +
                          " given by --call-ms; server per-request work taken as 0";
  return Status::Ok();
#else
  if (o.call_ms >= 0) {
    same_call_everywhere(o.call_ms);
    p.calls_measured_with = "not measured: call_ms given by --call-ms";
    return Status::Ok();
  }
  // The node reads the model's own test images (Fashion-MNIST, or a detector's scenes).
  if (o.pipelines.empty() || p.pipelines.empty() ||
      (p.input_shape != std::vector<int64_t>{1, 28, 28} && p.task != "detect")) {
    SI_ASSIGN_OR_RETURN(const double call_ms, runtime::LoopbackCallMs());
    same_call_everywhere(call_ms);
    p.calls_measured_with = "an empty gRPC call on loopback (no pipeline to serve; request and reply bytes "
                            "not measured)";
    return Status::Ok();
  }
  runtime::ServerConfig sc;
  sc.pipelines = {o.pipelines.front()};
  sc.listen = "127.0.0.1:0";
  sc.device = o.device;
  sc.threads = o.threads;
  SI_ASSIGN_OR_RETURN(auto server, runtime::Server::Start(sc));
  const PipelineProfile& pp = p.pipelines.front();
  const double whole = p.BlocksMs(0, static_cast<int64_t>(p.blocks.size()), 1);
  p.transports.clear();
  for (const std::string transport : kTransports) {
    runtime::NodeOptions no;
    no.server = "127.0.0.1:" + std::to_string(server->port());
    no.pipeline = o.pipelines.front();
    no.mode = transport == "png" ? "server-only" : "split";
    no.transport = transport == "stream" ? "stream" : "unary";
    no.threads = o.threads;
    no.progress = false;
    // A deployment's threshold, as the answer above is timed at (the node's default, 0.001, is
    // for scoring AP and sends ~100 boxes back).
    no.score_threshold = 0.25;
    no.limit = 20;  // warm-up: connection set-up, allocator growth
    SI_RETURN_IF_ERROR(runtime::RunNode(no).status());
    no.limit = o.call_images;
    SI_ASSIGN_OR_RETURN(auto rep, runtime::RunNode(no));
    TransportProfile& t = p.transports[transport];
    t.call_ms = rep.transmit.median_ms;
    t.server_request_ms = std::max(0.0, rep.server.median_ms - (transport == "png" ? p.png_decode_ms + whole
                                                                                   : pp.decode_ms + pp.server_ms));
    // Top-1 replies carry no per-class scores; the others 4 bytes (FP32) per class. A
    // detector's reply is its boxes, whatever the transport: all of it is overhead here.
    t.reply_bytes_per_class = transport == "stream" || p.task == "detect" ? 0 : 4;
    t.request_overhead_bytes = rep.message_bytes_per_image - rep.frame_bytes_per_image;
    t.reply_overhead_bytes =
        rep.reply_bytes_per_image - t.reply_bytes_per_class * static_cast<double>(p.classes);
  }
  server->Shutdown(5);
  p.calls_measured_with = "the runtime on loopback serving " + pp.name + ", " + std::to_string(o.call_images) +
                          " images per transport, no link";
  if (o.progress) {
    for (const auto& [name, t] : p.transports) {
      std::fprintf(stderr,
                   "profile %s: %s call %.3f ms, server per request %.3f ms, request/reply overhead %.1f / %.1f B\n",
                   p.model.c_str(), name.c_str(), t.call_ms, t.server_request_ms, t.request_overhead_bytes,
                   t.reply_overhead_bytes);
    }
  }
  return Status::Ok();
#endif
}

}  // namespace

Result<Profile> MeasureProfile(const ProfileOptions& o) {
#if !SPLITINFER_WITH_RUNTIME
  if (o.call_ms < 0) {
    return InvalidArgument("this build has no runtime (gRPC) to measure the per-request call with: give it with "
                           "--call-ms MS (e.g. from a profile of the same machines made by a build with the runtime)");
  }
#endif
  SI_ASSIGN_OR_RETURN(torch::Device device, models::ParseDevice(o.device));
  if (o.threads > 0) models::ConfigureThreads(o.threads);
  torch::NoGradGuard no_grad;
  Profile p;
  p.machine = MachineDescription();
  p.compute = models::ComputeLine(models::DescribeCompute());
  if (o.progress) std::fprintf(stderr, "profile: %s\n", p.compute.c_str());
  for (const auto& coder : o.coders) {
    SI_ASSIGN_OR_RETURN(const codec::CoderId id, codec::CoderFromName(coder));
    if (!codec::CoderBuiltIn(id) && o.progress) {
      std::fprintf(stderr, "profile: coder %s is not built in (no liblzma): not profiled\n", coder.c_str());
    }
  }
  p.device = o.device;
  p.threads = o.threads;
  data::Normalization norm;
  torch::Tensor images_u8;  // the inputs the codec and PNG are measured on
  SI_ASSIGN_OR_RETURN(models::OpenedModel opened, models::OpenModel(o.model, device, o.model_flags));
  models::SplitModel* model = opened.net.get();
  p.model = opened.meta.model;
  p.task = models::IsDetector(opened.meta) ? "detect" : "classify";
  p.source = opened.kind == models::ModelKind::kZoo ? "random weights" : o.model;
  p.input_shape = opened.meta.input_shape;
  norm = {opened.meta.norm_mean, opened.meta.norm_std};
  // The codec's maps and the server-only path's PNGs are made from real images where there are
  // some: --data, else the model's own dataset (a zoo name has random weights and no dataset).
  if (!o.data.empty() || (opened.kind != models::ModelKind::kZoo && !opened.meta.dataset.empty())) {
    // A detector's images are its detection dataset's, letterboxed to its input.
    auto test = [&]() -> Result<std::unique_ptr<data::Dataset>> {
      if (!models::IsDetector(opened.meta)) return bottleneck::OpenDatasetFor(opened.meta, o.data, data::Split::kTest);
      SI_ASSIGN_OR_RETURN(auto d, bottleneck::OpenDetectionDataFor(opened.meta, o.data, data::Split::kTest, o.progress));
      return std::unique_ptr<data::Dataset>(std::make_unique<data::DetectionImages>(std::move(d)));
    }();
    if (!test.ok() && !o.data.empty()) return test.status();
    if (test.ok()) {
      std::vector<int64_t> idx(static_cast<size_t>(std::min<int64_t>(o.codec_maps, (*test)->size())));
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
      SI_ASSIGN_OR_RETURN(auto batch, (*test)->batch(idx));
      images_u8 = batch.first;
      p.inputs = "the first " + std::to_string(idx.size()) + " images of " + (*test)->name();
    } else if (o.progress) {
      std::fprintf(stderr, "profile: the model's dataset does not open (%s): smooth random images instead; give --data\n",
                   test.status().ToString().c_str());
    }
  }
  if (!images_u8.defined()) {
    // Smooth random images (a blurred noise field): the codec's bytes on such inputs say little
    // about real images, but its times do not depend on the content much.
    images_u8 = data::SmoothRandomImages(o.codec_maps, p.input_shape[0], p.input_shape[1], p.input_shape[2], /*seed=*/7);
    p.inputs = std::to_string(o.codec_maps) + " smooth random images (times only: bytes are not those of real images)";
  }
  const auto names = model->block_names();
  const int64_t nblocks = model->num_blocks();
  ProgressBar bar(stderr, "profile " + p.model, static_cast<int64_t>(o.batches.size()) * (o.warmup + o.repeats),
                  o.progress ? 0.5 : 1e9);
  int64_t step = 0;
  p.blocks.resize(static_cast<size_t>(nblocks));
  for (int64_t b = 0; b < nblocks; ++b) {
    p.blocks[b].name = names[b];
    p.blocks[b].op = model->block_op(b);
  }
  for (int64_t batch : o.batches) {
    auto x0 = data::ToFloatNormalized(images_u8.index({torch::indexing::Slice(0, 1)}).repeat({batch, 1, 1, 1}), norm)
                  .to(device);
    std::vector<std::vector<double>> times(static_cast<size_t>(nblocks));
    for (int r = 0; r < o.warmup + o.repeats; ++r) {
      auto x = x0;
      for (int64_t b = 0; b < nblocks; ++b) {
        if (device.is_cuda()) torch::cuda::synchronize();
        const auto t0 = Clock::now();
        x = model->run_blocks(x, b, b + 1);
        if (device.is_cuda()) torch::cuda::synchronize();
        if (r >= o.warmup) times[b].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
      if (o.progress) bar.update(++step, batch, "batch " + std::to_string(batch));
    }
    for (int64_t b = 0; b < nblocks; ++b) p.blocks[b].ms[batch] = Median(times[b]);
  }
  if (o.progress) bar.finish("");
  // What the node computes to answer one image on its own: a classifier's top class; a
  // detector's boxes (decoded, thresholded at a deployment's 0.25 and suppressed), part of its
  // cost.
  std::optional<detect::YoloLayout> boxes;
  if (models::IsDetector(opened.meta)) {
    SI_ASSIGN_OR_RETURN(boxes, detect::LayoutFor(opened.meta));
  }
  auto answer = [&](const torch::Tensor& out) -> Status {
    if (!boxes) {
      (void)out.argmax(1).item<int64_t>();
      return Status::Ok();
    }
    detect::PostProcessOptions post;
    post.score_threshold = 0.25f;
    SI_ASSIGN_OR_RETURN(const auto found, detect::PostProcess(out.to(torch::kCPU), *boxes, post));
    (void)found;
    return Status::Ok();
  };
  // The whole model at batch 1 after an idle gap, against back to back: in a split deployment
  // each side waits on the link between images and starts the next one cold.
  {
    auto x1 = data::ToFloatNormalized(images_u8.index({torch::indexing::Slice(0, 1)}), norm).to(device);
    auto run_once = [&] {
      if (device.is_cuda()) torch::cuda::synchronize();
      const auto t0 = Clock::now();
      auto y = model->run_blocks(x1, 0, nblocks);
      if (device.is_cuda()) torch::cuda::synchronize();
      return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    };
    for (int r = 0; r < o.warmup; ++r) run_once();
    // A stream of different images, each normalised and answered as the node does it (the
    // blocks above run one repeated input): fresh tensors and inputs cost a little more.
    // The answer (a detector's decoding and NMS) is timed apart: it is not the network's, and
    // whichever side holds the last block pays it (profile.h, answer_ms).
    {
      std::vector<double> t, t_answer;
      for (int r = 0; r < o.warmup + o.stream_images; ++r) {
        const int64_t i = r % images_u8.size(0);
        const auto t0 = Clock::now();
        const auto xi = data::ToFloatNormalized(images_u8.index({torch::indexing::Slice(i, i + 1)}), norm).to(device);
        const auto y = model->run_blocks(xi, 0, nblocks);
        if (device.is_cuda()) torch::cuda::synchronize();
        const auto t1 = Clock::now();
        SI_RETURN_IF_ERROR(answer(y));
        if (r >= o.warmup) {
          t.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          t_answer.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t1).count());
        }
      }
      const double blocks = p.BlocksMs(0, nblocks, 1);
      p.stream_factor = blocks > 0 ? Median(t) / blocks : 1.0;
      p.answer_ms = Median(t_answer);
      if (boxes && opened.kind == models::ModelKind::kZoo && o.progress) {
        std::fprintf(stderr,
                     "profile %s: the answer (decoding, score >= 0.25, NMS) takes %.3f ms with random weights, "
                     "which put far more boxes over the threshold than a trained detector does\n",
                     p.model.c_str(), p.answer_ms);
      }
    }
    // Rounds over all gaps (not gap after gap), so that the machine drifting while this runs
    // (a shared VM does) moves every gap alike and the ratios stay put.
    double per_round = 0;
    for (double gap : o.idle_gaps_ms) per_round += gap;
    const double run_ms = p.BlocksMs(0, nblocks, 1) * p.stream_factor;
    per_round += 2 * run_ms * static_cast<double>(o.idle_gaps_ms.size());
    const int rounds = std::clamp(static_cast<int>(o.idle_budget_ms / std::max(per_round, 1.0)), 5, o.idle_repeats);
    std::vector<std::vector<double>> t(o.idle_gaps_ms.size());
    for (int r = 0; r < rounds; ++r) {
      for (size_t g = 0; g < o.idle_gaps_ms.size(); ++g) {
        const double gap = o.idle_gaps_ms[g];
        run_once();  // the gap is counted from the end of a run, as between two images
        if (gap > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(gap));
        t[g].push_back(run_once());
      }
    }
    double hot = 0;
    for (size_t g = 0; g < o.idle_gaps_ms.size(); ++g) {
      const double m = Median(t[g]);
      if (g == 0) hot = m;
      p.idle_slowdown[o.idle_gaps_ms[g]] = m / hot;
    }
    if (o.progress && !o.idle_gaps_ms.empty()) {
      std::fprintf(stderr, "profile %s: %.3f ms back to back, x%.2f after %g ms idle\n", p.model.c_str(), hot,
                   p.idle_slowdown.rbegin()->second, p.idle_slowdown.rbegin()->first);
    }
  }
  // Features at every split point, on the measurement images; the codec on them.
  auto x = data::ToFloatNormalized(images_u8, norm).to(device);
  int64_t done_block = -1;
  for (const auto& s : model->split_points()) {
    x = model->run_blocks(x, done_block + 1, s.block + 1);
    done_block = s.block;
    SplitProfile sp;
    sp.name = s.name;
    sp.block = s.block;
    sp.shape.assign(x.sizes().begin() + 1, x.sizes().end());
    int64_t n = 1;
    for (int64_t d : sp.shape) n *= d;
    sp.float_bytes = n * 4;
    p.splits.push_back(sp);
    const auto features = x.to(torch::kCPU).contiguous();
    for (int bits : o.bits) {
      for (const auto& gran : o.granularities) {
        for (const auto& coder : o.coders) {
          SI_ASSIGN_OR_RETURN(const codec::CoderId coder_id, codec::CoderFromName(coder));
          if (!codec::CoderBuiltIn(coder_id)) continue;  // lzma without liblzma: said once below
          bottleneck::CodecBenchOptions co;
          co.spec.bits = bits;
          SI_ASSIGN_OR_RETURN(co.spec.granularity, codec::GranularityFromName(gran));
          co.spec.clip = codec::ClipMethod::kMse;
          co.spec.range = features.min().item<float>() < 0 ? codec::RangeKind::kSymmetric : codec::RangeKind::kZeroBased;
          co.coder = coder_id;
          co.repeats = 1;
          SI_ASSIGN_OR_RETURN(auto r, bottleneck::RunCodecBench(features, co));
          p.codecs.push_back({s.name, bits, gran, coder, r.encode_ms, r.decode_ms, r.frame_bytes, r.session_frame_bytes});
        }
      }
    }
    if (o.progress) std::fprintf(stderr, "profile %s: codec at %s done\n", p.model.c_str(), s.name.c_str());
  }
  // Trained pipelines, each as a whole, on the same images one at a time.
  for (const auto& file : o.pipelines) {
    SI_ASSIGN_OR_RETURN(auto pipe, bottleneck::Pipeline::Load(file, device));
    if (pipe.model_meta().model != p.model) {
      return Mismatch("pipeline " + file + " runs " + pipe.model_meta().model + ", the profile is of " + p.model);
    }
    PipelineProfile pp;
    pp.name = pipe.spec().name;
    pp.file = file;
    pp.split = pipe.spec().split;
    pp.coder = codec::CoderName(pipe.codec().coder);
    pp.bits = pipe.codec().quant.spec.bits;
    std::vector<double> node, server, enc, dec;
    double bytes = 0, session_bytes = 0;
    const auto xs = data::ToFloatNormalized(images_u8, pipe.normalization()).to(device);
    bottleneck::NodeFace node_face(pipe);
    bottleneck::ServerFace server_face(pipe);
    for (int r = 0; r < o.warmup + 1; ++r) {
      for (int64_t i = 0; i < xs.size(0); ++i) {
        const auto xi = xs.index({torch::indexing::Slice(i, i + 1)});
        const auto t0 = Clock::now();
        SI_ASSIGN_OR_RETURN(auto f, node_face.Features(xi));
        const auto t1 = Clock::now();
        SI_ASSIGN_OR_RETURN(auto e, node_face.Encode(f[0]));
        const auto t2 = Clock::now();
        SI_ASSIGN_OR_RETURN(auto back, server_face.Decode(e.frame.data(), e.frame.size()));
        const auto t3 = Clock::now();
        SI_ASSIGN_OR_RETURN(auto logits, server_face.Scores(back.unsqueeze(0)));
        if (device.is_cuda()) torch::cuda::synchronize();
        const auto t4 = Clock::now();
        if (r < o.warmup) continue;
        auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
        node.push_back(ms(t0, t1));
        enc.push_back(ms(t1, t2));
        dec.push_back(ms(t2, t3));
        server.push_back(ms(t3, t4));
        bytes += static_cast<double>(e.frame.size());
        SI_ASSIGN_OR_RETURN(const size_t in_session, codec::SessionFrameSize(e.frame.data(), e.frame.size()));
        session_bytes += static_cast<double>(in_session);
      }
    }
    pp.node_ms = Median(node);
    pp.server_ms = Median(server);
    pp.encode_ms = Median(enc);
    pp.decode_ms = Median(dec);
    pp.frame_bytes = bytes / static_cast<double>(std::max<size_t>(node.size(), 1));
    pp.session_frame_bytes = session_bytes / static_cast<double>(std::max<size_t>(node.size(), 1));
    p.pipelines.push_back(pp);
  }
  // The logits' width sizes the reply in the latency model.
  p.classes = model->run_blocks(x, done_block + 1, nblocks).size(1);
  // The server-only baseline: the input image as PNG.
#if SPLITINFER_WITH_PNG
  std::vector<double> enc, dec;
  double bytes = 0;
  const int64_t c = p.input_shape[0], h = p.input_shape[1], w = p.input_shape[2];
  for (int64_t i = 0; i < images_u8.size(0); ++i) {
    const auto img = images_u8[i].contiguous();
    const auto t0 = Clock::now();
    SI_ASSIGN_OR_RETURN(auto png, runtime::EncodePng(img.data_ptr<uint8_t>(), static_cast<int>(c), static_cast<int>(h),
                                                     static_cast<int>(w)));
    const auto t1 = Clock::now();
    SI_ASSIGN_OR_RETURN(auto back, runtime::DecodePng(std::string_view(reinterpret_cast<const char*>(png.data()), png.size()),
                                                      static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
    const auto t2 = Clock::now();
    enc.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    dec.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    bytes += static_cast<double>(png.size());
  }
  p.png_encode_ms = Median(enc);
  p.png_decode_ms = Median(dec);
  p.png_bytes = bytes / static_cast<double>(images_u8.size(0));
#if SPLITINFER_WITH_JPEG
  // The same images as a camera's JPEG.
  enc.clear();
  dec.clear();
  bytes = 0;
  for (int64_t i = 0; i < images_u8.size(0); ++i) {
    const auto img = images_u8[i].contiguous();
    const auto t0 = Clock::now();
    SI_ASSIGN_OR_RETURN(auto jpeg, runtime::EncodeJpeg(img.data_ptr<uint8_t>(), static_cast<int>(c), static_cast<int>(h),
                                                       static_cast<int>(w), o.jpeg_quality));
    const auto t1 = Clock::now();
    SI_ASSIGN_OR_RETURN(auto back, runtime::DecodeJpeg(std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()),
                                                       static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
    const auto t2 = Clock::now();
    enc.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    dec.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    bytes += static_cast<double>(jpeg.size());
  }
  p.jpeg_quality = o.jpeg_quality;
  p.jpeg_encode_ms = Median(enc);
  p.jpeg_decode_ms = Median(dec);
  p.jpeg_bytes = bytes / static_cast<double>(images_u8.size(0));
#endif
#else
  // Without libpng the profile has no server-only baseline: bytes 0, which the planner reads
  // as "not profiled" (it plans no server-only choice from such a profile).
  if (o.progress) std::fprintf(stderr, "profile %s: PNG not measured (built without libpng)\n", p.model.c_str());
#endif
  SI_RETURN_IF_ERROR(MeasureCalls(o, p));
  return p;
}

}  // namespace splitinfer::plan
