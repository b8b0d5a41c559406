#include "runtime/node.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <torch/torch.h>

#include "bottleneck/faces.h"
#include "bottleneck/model_data.h"
#include "bottleneck/pipeline.h"
#include "codec/frame/session.h"
#include "models/device.h"
#include "kernels/head.h"
#include "models/lowbit/convert.h"
#include "core/progress.h"
#include "core/stats.h"
#include "core/system.h"
#include "data/datasets.h"
#include "data/transforms.h"
#include "runtime/png.h"
#if SPLITINFER_WITH_JPEG
#include "runtime/jpeg.h"
#endif
#include "runtime/proto/inference.grpc.pb.h"
#include "runtime/wire.h"
#include "data/detection.h"
#include "detect/yolo.h"
#include "runtime/detections.h"
#include "models/checkpoint.h"

namespace splitinfer::runtime {

using Clock = std::chrono::steady_clock;

double PercentileMs(std::vector<double>& s, double q) { return Percentile(s, q) * 1e3; }

LatencyStats Summarise(std::vector<double> s) {
  LatencyStats r;
  if (s.empty()) return r;
  r.median_ms = PercentileMs(s, 0.5);
  r.p95_ms = PercentileMs(s, 0.95);
  double sum = 0;
  for (double v : s) sum += v;
  r.mean_ms = sum / static_cast<double>(s.size()) * 1e3;
  return r;
}

nlohmann::json NodeReport::ToJson() const {
  nlohmann::json j = ToJsonCommon();
  if (task == "detect") {
    j.erase("top1");
    j["ap50"] = coco.ap50;
    j["ap"] = coco.ap;
    j["ap75"] = coco.ap75;
    j["detections"] = detections;
    j["score_threshold"] = score_threshold;
  }
  return j;
}

nlohmann::json NodeReport::ToJsonCommon() const {
  auto stats = [](const LatencyStats& s) {
    return nlohmann::json{{"median_ms", s.median_ms}, {"p95_ms", s.p95_ms}, {"mean_ms", s.mean_ms}};
  };
  nlohmann::json j = {{"mode", mode},
          {"task", task},
          {"model", model},
          {"server", server_address},
          {"images", images},
          {"top1", top1},
          {"bytes_per_image", frame_bytes_per_image},
          {"message_bytes_per_image", message_bytes_per_image},
          {"reply_bytes_per_image", reply_bytes_per_image},
          {"rate_bytes_per_s", rate_bytes_per_s},
          {"rtt_ms", rtt_s * 1e3},
          {"threads", threads},
          {"retries", retries},
          {"seconds", seconds},
          {"latency",
           {{"node_compute", stats(node_compute)},
            {"encode", stats(encode)},
            {"transmit", stats(transmit)},
            {"server", stats(server)},
            {"total", stats(total)}}}};
  if (mode == "server-only") {
    j["image_format"] = image_format;
    if (image_format == "jpeg") j["jpeg_quality"] = jpeg_quality;
  }
  return j;
}

namespace {

class Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, const NodeOptions& o)
      : stub_(inference::GRPCInferenceService::NewStub(channel)), o_(o) {}

  // One call with retries: the Retryable codes back off exponentially from 50 ms to 2 s; any
  // other error is final.
  template <typename Req, typename Resp, typename Call>
  Status Do(const Req& req, Resp* resp, Call call, bool wait_for_ready) {
    double backoff = 0.05;
    for (int attempt = 0;; ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::chrono::duration<double>(o_.deadline_s)));
      ctx.set_wait_for_ready(wait_for_ready);
      if (!o_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + o_.token);
      grpc::Status s = call(&ctx, req, resp);
      if (s.ok()) return Status::Ok();
      if (!Retryable(s) || attempt >= o_.max_retries) {
        Status st = FromGrpc(s);
        return Status(st.code(), "server " + o_.server + ": " + st.message() +
                                     (attempt ? " (after " + std::to_string(attempt) + " retries)" : ""));
      }
      ++retries;
      std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
      backoff = std::min(2.0, backoff * 2);
    }
  }

  Status Metadata(const std::string& model, inference::ModelMetadataResponse* out) {
    inference::ModelMetadataRequest q;
    q.set_name(model);
    // Waits for the server to come up (a node may start first), for at most one deadline.
    Status s = Do(q, out, [&](grpc::ClientContext* c, const auto& r, auto* p) { return stub_->ModelMetadata(c, r, p); },
                  /*wait_for_ready=*/true);
    if (s.code() == ErrorCode::kDeadlineExceeded) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", o_.deadline_s);
      return Unavailable("no server answered at " + o_.server + " within " + secs +
                         " s; start `splitinfer serve` there, fix --server, or add --tls-ca if the server uses TLS");
    }
    return s;
  }
  Status Infer(const inference::ModelInferRequest& q, inference::ModelInferResponse* out) {
    return Do(q, out, [&](grpc::ClientContext* c, const auto& r, auto* p) { return stub_->ModelInfer(c, r, p); },
              /*wait_for_ready=*/false);
  }

  int64_t retries = 0;
  inference::GRPCInferenceService::Stub& stub() { return *stub_; }

 private:
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  const NodeOptions& o_;
};

// The status a stream's error_message carries: splitinfer's code name, ": ", the text (as
// ToGrpc writes it); INTERNAL with the whole text when the name is not one of ours.
Status FromStreamError(const std::string& message) {
  const auto colon = message.find(": ");
  if (colon != std::string::npos) {
    const std::string name = message.substr(0, colon);
    for (int c = 0; c <= static_cast<int>(ErrorCode::kFrameSymbolRange); ++c) {
      if (name == ErrorCodeName(static_cast<ErrorCode>(c))) {
        return Status(static_cast<ErrorCode>(c), message.substr(colon + 2));
      }
    }
  }
  return Internal(message);
}

// The node's session (docs/wire_protocol.md, "Sessions"): one ModelStreamInfer stream, one
// request in flight so that per-image latency keeps its meaning. The first request of a stream
// carries a full frame, the model name and "reply": "top1"; every later one only a session frame
// (codec/frame/session.h) in raw_input_contents, answered by the top1 reply alone. A stream that
// breaks (server restarted, connection lost) is reopened with backoff, and the frame it was
// carrying is sent again in full, which opens the new stream's session: nothing is lost.
class StreamSession {
 public:
  // `open_params`: the parameters of the request that opens a session (the stream's later
  // requests carry none: the server keeps the opening request's reply form and settings).
  StreamSession(Client& client, const NodeOptions& o, std::string model, Params open_params)
      : client_(client), o_(o), model_(std::move(model)), open_params_(std::move(open_params)) {
    watchdog_ = std::thread([this] { Watch(); });
  }
  ~StreamSession() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    Close();
  }

  // One frame (a full frame, as the codec writes it) -> the server's reply. Counts the request
  // and reply bytes of the exchange that succeeded (serialised message + gRPC's 5-byte prefix).
  Status Exchange(const std::vector<uint8_t>& frame, uint64_t* frame_bytes, uint64_t* request_bytes,
                  uint64_t* reply_bytes, inference::ModelInferResponse* reply) {
    double backoff = 0.05;
    for (int attempt = 0;; ++attempt) {
      if (!stream_) Open();
      inference::ModelInferRequest q;
      if (opened_) {
        SI_ASSIGN_OR_RETURN(auto body, codec::SessionFrameOf(*session_, frame.data(), frame.size()));
        q.add_raw_input_contents(std::string(body.begin(), body.end()));
        *frame_bytes = body.size();
      } else {
        *frame_bytes = frame.size();
        q.set_model_name(model_);
        AddBytes(q, frame);
        *q.mutable_parameters() = open_params_;
      }
      inference::ModelStreamInferResponse r;
      grpc::Status broken;
      // A stream has no per-message deadline: the watchdog cancels the stream when this exchange
      // takes longer than --deadline, which ends it as DEADLINE_EXCEEDED (final, as unary).
      Arm();
      const bool answered = stream_->Write(q) && stream_->Read(&r);
      if (Disarm()) {
        Close();
        char secs[32];
        std::snprintf(secs, sizeof secs, "%g", o_.deadline_s);
        return DeadlineExceeded("server " + o_.server + " (stream): no answer within " + secs + " s (--deadline)");
      }
      if (answered) {
        if (r.error_message().empty()) {
          if (!opened_) {  // the server opened the session with this frame's header
            SI_ASSIGN_OR_RETURN(auto view, codec::ParseFrame(frame.data(), frame.size()));
            SI_ASSIGN_OR_RETURN(session_, codec::OpenSession(view.header));
            opened_ = true;
          }
          *request_bytes = q.ByteSizeLong() + 5;
          *reply_bytes = r.ByteSizeLong() + 5;
          *reply = std::move(*r.mutable_infer_response());
          return Status::Ok();
        }
        // An answered error: the stream goes on. Only a busy server is worth another try.
        Status st = FromStreamError(r.error_message());
        if (!(st.code() == ErrorCode::kResourceExhausted && st.message().rfind(kServerBusy, 0) == 0)) {
          return Status(st.code(), "server " + o_.server + ": " + st.message());
        }
        broken = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, st.message());
      } else {
        broken = Close();
        if (broken.ok()) broken = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server ended the stream");
      }
      if (!Retryable(broken) || attempt >= o_.max_retries) {
        Status st = FromGrpc(broken);
        return Status(st.code(), "server " + o_.server + " (stream): " + st.message() +
                                     (attempt ? " (after " + std::to_string(attempt) + " retries)" : ""));
      }
      ++client_.retries;
      std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
      backoff = std::min(2.0, backoff * 2);
    }
  }

 private:
  static void AddBytes(inference::ModelInferRequest& q, const std::vector<uint8_t>& element);
  void Arm() {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = true;
    fired_ = false;
    due_ = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                  std::chrono::duration<double>(o_.deadline_s));
    cv_.notify_all();
  }
  // True when the watchdog cancelled the exchange.
  bool Disarm() {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = false;
    return fired_;
  }
  void Watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (!armed_) {
        cv_.wait(lock);
        continue;
      }
      if (cv_.wait_until(lock, due_) == std::cv_status::timeout && armed_ && !fired_ &&
          std::chrono::steady_clock::now() >= due_) {
        fired_ = true;
        if (ctx_) ctx_->TryCancel();
      }
    }
  }
  void Open() {
    ctx_ = std::make_unique<grpc::ClientContext>();
    if (!o_.token.empty()) ctx_->AddMetadata("authorization", "Bearer " + o_.token);
    stream_ = client_.stub().ModelStreamInfer(ctx_.get());
    opened_ = false;  // a new stream has no session yet
  }
  grpc::Status Close() {
    if (!stream_) return grpc::Status::OK;
    stream_->WritesDone();
    grpc::Status s = stream_->Finish();
    stream_.reset();
    ctx_.reset();
    opened_ = false;
    return s;
  }

  Client& client_;
  const NodeOptions& o_;
  std::string model_;
  Params open_params_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<inference::ModelInferRequest, inference::ModelStreamInferResponse>> stream_;
  std::optional<codec::Session> session_;
  bool opened_ = false;
  std::mutex mu_;  // the watchdog's state below, and ctx_ while it may cancel it
  std::condition_variable cv_;
  bool armed_ = false, fired_ = false, stop_ = false;
  std::chrono::steady_clock::time_point due_;
  std::thread watchdog_;
};

// The handshake: everything a frame's meaning depends on must agree.
Status CheckHandshake(const inference::ModelMetadataResponse& md, const bottleneck::Pipeline& p, bool frames,
                      bool sessions) {
  const auto& params = md.parameters();
  auto proto = StringParam(params, param::kProtocol);
  if (!proto || *proto != kProtocol) {
    return FailedPrecondition("model '" + md.name() + "' is not served by a splitinfer server (no '" +
                              std::string(param::kProtocol) + "' in its metadata)");
  }
  auto need_int = [&](const char* key, int64_t mine) -> Status {
    auto v = IntParam(params, key);
    if (!v || *v != mine) {
      return FailedPrecondition(std::string("handshake: the server's ") + key + " is " +
                                (v ? std::to_string(*v) : std::string("missing")) + ", this node's " +
                                std::to_string(mine) + "; run the same release and pipeline file on both sides");
    }
    return Status::Ok();
  };
  auto need_str = [&](const char* key, const std::string& mine) -> Status {
    auto v = StringParam(params, key);
    if (!v || *v != mine) {
      return FailedPrecondition(std::string("handshake: the server's ") + key + " is '" + (v ? *v : "missing") +
                                "', this node's '" + mine + "'; load the same pipeline file on both sides");
    }
    return Status::Ok();
  };
  SI_RETURN_IF_ERROR(need_int(param::kProtocolVersion, kProtocolVersion));
  // The task decides what the replies hold (class scores or boxes), for images as for frames.
  // A server from before tasks serves classifiers only.
  const std::string mine = models::IsDetector(p.model_meta()) ? "detect" : "classify";
  const std::string theirs = StringParam(params, param::kTask).value_or("classify");
  if (theirs != mine) {
    return FailedPrecondition("handshake: model '" + md.name() + "' is served as a " +
                              (theirs == "detect" ? "detector" : "classifier") + " (task " + theirs +
                              "), but this node's pipeline " + p.spec().name + " is a " +
                              (mine == "detect" ? "detector" : "classifier") +
                              "; give the node the pipeline file the server serves");
  }
  if (!frames) return Status::Ok();
  const auto& codec = p.codec();
  SI_RETURN_IF_ERROR(need_int(param::kFrameVersion, codec::kFrameVersion));
  SI_RETURN_IF_ERROR(need_str(param::kCodec, codec::CoderName(codec.coder)));
  SI_RETURN_IF_ERROR(need_str(param::kModel, p.model_meta().model));
  SI_RETURN_IF_ERROR(need_str(param::kSplit, p.spec().split));
  SI_RETURN_IF_ERROR(need_int(param::kPipelineId, static_cast<int64_t>(codec.pipeline_id)));
  std::vector<int64_t> dims(codec.quant.dims.begin(), codec.quant.dims.end());
  SI_RETURN_IF_ERROR(need_str(param::kFeatureShape, ShapeString(dims)));
  // A frame coded with another context model decodes to other symbols, and its CRC still holds.
  const auto server_model = StringParam(params, param::kCabacModel);
  if (server_model.value_or("") != p.cabac_model_id()) {
    return FailedPrecondition("handshake: the server's cabac model is '" + server_model.value_or("none") +
                              "', this node's '" + (p.cabac_model_id().empty() ? "none" : p.cabac_model_id()) +
                              "'; load the same pipeline file and cabac_model on both sides");
  }
  if (sessions && !BoolParam(params, param::kSessions).value_or(false)) {
    return FailedPrecondition("handshake: the server does not take session frames on a stream (an older splitinfer "
                              "serve); upgrade it, or run the node with --transport unary");
  }
  return Status::Ok();
}

// The BYTES input as Triton's raw form: 4-byte little-endian length, then the bytes.
void AddBytesInput(inference::ModelInferRequest& q, const char* name, const std::vector<uint8_t>& element) {
  auto* in = q.add_inputs();
  in->set_name(name);
  in->set_datatype("BYTES");
  in->add_shape(1);
  std::string raw;
  raw.reserve(element.size() + 4);
  const uint32_t n = static_cast<uint32_t>(element.size());
  for (int b = 0; b < 4; ++b) raw.push_back(static_cast<char>((n >> (8 * b)) & 0xFF));
  raw.append(reinterpret_cast<const char*>(element.data()), element.size());
  q.add_raw_input_contents(std::move(raw));
}

void StreamSession::AddBytes(inference::ModelInferRequest& q, const std::vector<uint8_t>& element) {
  AddBytesInput(q, kInputFrame, element);
}

// The best class of a top1 reply (the classifier's stream), and the server's time in it.
Result<int64_t> Top1Class(const inference::ModelInferResponse& r, int64_t* server_us) {
  if (r.raw_output_contents_size() != 1) {
    return DataLoss("the server's reply in a top1 session has " + std::to_string(r.raw_output_contents_size()) +
                    " raw outputs, not 1 (a server that ignored \"reply\": \"top1\"?)");
  }
  SI_ASSIGN_OR_RETURN(auto rows, DecodeTop1Reply(r.raw_output_contents(0), server_us));
  if (rows.size() != 1) return DataLoss("the server answered one frame with " + std::to_string(rows.size()) + " rows");
  return rows[0].index;
}

std::vector<eval::CocoScorer::InputBox> ToInputBoxes(const std::vector<WireBox>& boxes) {
  std::vector<eval::CocoScorer::InputBox> out;
  for (const auto& b : boxes) out.push_back({b.x0, b.y0, b.x1, b.y1, b.score, b.label});
  return out;
}

Result<int64_t> TopClass(const inference::ModelInferResponse& r) {
  for (int i = 0; i < r.outputs_size(); ++i) {
    const auto& o = r.outputs(i);
    if (o.name() != kOutputScores || i >= r.raw_output_contents_size()) continue;
    const std::string& raw = r.raw_output_contents(i);
    if (o.shape_size() != 2 || o.shape(0) != 1 || raw.size() != static_cast<size_t>(o.shape(1)) * 4 || o.shape(1) < 1) {
      return DataLoss("the server's 'scores' output is malformed (shape and bytes disagree)");
    }
    const auto* f = reinterpret_cast<const float*>(raw.data());
    return static_cast<int64_t>(std::max_element(f, f + o.shape(1)) - f);
  }
  return DataLoss("the server's reply has no 'scores' output");
}

// The server-only path's image, as the node sends it: PNG, or JPEG at the asked quality.
Result<std::vector<uint8_t>> EncodeImage(const NodeOptions& o, const torch::Tensor& chw_u8) {
  const int c = static_cast<int>(chw_u8.size(0)), h = static_cast<int>(chw_u8.size(1)), w = static_cast<int>(chw_u8.size(2));
#if SPLITINFER_WITH_JPEG
  if (o.image_format == "jpeg") return EncodeJpeg(chw_u8.data_ptr<uint8_t>(), c, h, w, o.jpeg_quality);
#endif
  return EncodePng(chw_u8.data_ptr<uint8_t>(), c, h, w);
}

}  // namespace

Result<NodeReport> RunNode(const NodeOptions& o) {
  if (o.mode != "split" && o.mode != "server-only" && o.mode != "node-only") {
    return InvalidArgument("unknown mode '" + o.mode + "'; use split, server-only or node-only");
  }
  if (o.pipeline.empty()) return InvalidArgument("the node needs --pipeline FILE (the pipeline YAML it runs)");
  if (o.image_format != "png" && o.image_format != "jpeg") {
    return InvalidArgument("unknown image format '" + o.image_format + "'; use png or jpeg");
  }
  if (o.image_format == "jpeg") {
#if !SPLITINFER_WITH_JPEG
    return FailedPrecondition("--image-format jpeg: this build has no JPEG (libturbojpeg); install libturbojpeg0-dev "
                              "and rebuild");
#endif
    if (o.jpeg_quality < 1 || o.jpeg_quality > 100) {
      return InvalidArgument("--jpeg-quality " + std::to_string(o.jpeg_quality) + " is outside 1..100");
    }
  }
  if (o.transport != "stream" && o.transport != "unary") {
    return InvalidArgument("unknown transport '" + o.transport + "'; use stream or unary");
  }
  // Sessions carry frames: split mode streams (unless told otherwise), server-only sends PNGs unary.
  const bool streaming = o.mode == "split" && o.transport == "stream";
  const auto start = Clock::now();
  if (o.threads > 0) models::ConfigureThreads(o.threads);
  torch::NoGradGuard no_grad;
  SI_ASSIGN_OR_RETURN(auto pipeline, bottleneck::Pipeline::Load(o.pipeline, torch::kCPU));
  const auto& meta = pipeline.model_meta();
  // A detector's answers are boxes, scored with COCO's metric over the images sent.
  std::optional<detect::YoloLayout> detector;
  if (models::IsDetector(meta)) {
    SI_ASSIGN_OR_RETURN(detector, detect::LayoutFor(meta));
    if (!o.lowbit_head.empty()) {
      return InvalidArgument("--head lowbit does not run a detector's head (LeakyReLU and the route are not in the "
                             "low-bit kernels); run the detector's head with LibTorch (drop --head)");
    }
    if (!(o.score_threshold >= 0 && o.score_threshold <= 1)) {
      return InvalidArgument("--score-threshold must be in [0, 1]");
    }
  }
  detect::PostProcessOptions post;  // as `eval` scores a detector, unless told otherwise
  post.score_threshold = static_cast<float>(o.score_threshold);
  std::optional<kernels::QuantizedHead> lowbit;
  kernels::HeadImpl lowbit_impl = kernels::HeadImpl::kInt8;
  if (!o.lowbit_head.empty()) {
    if (o.mode != "split") return InvalidArgument("--head lowbit runs the node's head: it needs --mode split");
    SI_ASSIGN_OR_RETURN(lowbit_impl, kernels::ParseHeadImpl(o.lowbit_impl));
    SI_ASSIGN_OR_RETURN(auto graph, kernels::LoadHead(o.lowbit_head));
    if (graph.model != pipeline.model_meta().model || graph.split != pipeline.split().name) {
      return Mismatch("head file " + o.lowbit_head + " is " + graph.model + " up to " + graph.split + ", the pipeline " +
                      pipeline.model_meta().model + " split at " + pipeline.split().name);
    }
    SI_ASSIGN_OR_RETURN(auto head, kernels::QuantizedHead::Prepare(std::move(graph)));
    if (o.threads > 1) SI_RETURN_IF_ERROR(head.SetThreads(o.threads));
    // auto: time both kernels per conv once, before the first image (milliseconds).
    if (lowbit_impl == kernels::HeadImpl::kAuto) SI_RETURN_IF_ERROR(head.Tune());
    lowbit = std::move(head);
  }
  bottleneck::NodeFace node_face(pipeline);
  if (lowbit) {
    node_face.SetHead([&lowbit, lowbit_impl](const torch::Tensor& chw) -> Result<torch::Tensor> {
      SI_ASSIGN_OR_RETURN(auto y, lowbit->Run(models::lowbit::ToTensor3(chw), lowbit_impl));
      return models::lowbit::FromTensor3(y)[0];
    });
  }
  const auto& spec = pipeline.spec();
  models::OpenedModel full;
  if (o.mode == "node-only") {
    const std::string ref = spec.reference_model.empty() ? spec.model : spec.reference_model;
    SI_ASSIGN_OR_RETURN(full, models::OpenModel(spec.Resolve(ref), torch::kCPU));
  }
  // --data is a dataset reference; the node's older forms still work: "fmnist-test" (with
  // --data-dir for its files) and a bare DIR, which was always an image folder here.
  std::string data_ref = o.data;
  const data::DatasetRef parsed = data::ParseDatasetRef(data_ref);
  if (parsed.kind == data::kFashionMnist && parsed.dir.empty() && !o.data_dir.empty()) {
    data_ref = std::string(data::kFashionMnist) + ":" + o.data_dir;
  } else if (!data_ref.empty() && parsed.kind.empty()) {
    data_ref = std::string(data::kImageFolder) + ":" + data_ref;
  }
  std::unique_ptr<data::Dataset> dataset;
  std::unique_ptr<data::CocoDetectionDataset> scenes;
  std::optional<eval::CocoScorer> scorer;
  if (detector) {
    SI_ASSIGN_OR_RETURN(scenes, bottleneck::OpenDetectionDataFor(meta, data_ref, data::Split::kTest, o.progress));
  } else {
    SI_ASSIGN_OR_RETURN(dataset, bottleneck::OpenDatasetFor(meta, data_ref, data::Split::kTest));
  }
  const int64_t available = detector ? scenes->size() : dataset->size();
  const int64_t n = o.limit > 0 ? std::min(o.limit, available) : available;
  if (detector) {
    SI_ASSIGN_OR_RETURN(scorer, eval::CocoScorer::Create(scenes->annotations(), n, detector->num_classes,
                                                         scenes->annotation_file()));
  }
  NodeReport rep;
  rep.task = detector ? "detect" : "classify";
  rep.mode = o.mode;
  rep.image_format = o.image_format;
  rep.jpeg_quality = o.jpeg_quality;
  rep.model = o.model_name.empty() ? spec.name : o.model_name;
  rep.server_address = o.mode == "node-only" ? "" : o.server;
  rep.rate_bytes_per_s = o.link.rate_bytes_per_s;
  rep.rtt_s = o.link.rtt_s;
  rep.threads = o.threads;
  std::unique_ptr<Client> client;
  if (o.mode != "node-only") {
    SI_ASSIGN_OR_RETURN(auto creds, ChannelCredentialsFor(o.tls));
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    client = std::make_unique<Client>(grpc::CreateCustomChannel(o.server, creds, args), o);
  }
  inference::ModelMetadataResponse md;
  if (client) {
    SI_RETURN_IF_ERROR(client->Metadata(rep.model, &md));
    SI_RETURN_IF_ERROR(CheckHandshake(md, pipeline, o.mode == "split", streaming));
  }
  // What a request adds for the task: a classifier's stream asks for the top1 reply; a detector
  // asks for its post-processing (the stream's opening request sets it for the whole session).
  // Only the settings that differ from the server's defaults (its metadata) cross the link: each
  // costs ~30 bytes on every unary request.
  Params task_params;
  if (detector) {
    const auto& defaults = md.parameters();
    if (DoubleParam(defaults, param::kScoreThreshold) != std::optional<double>(post.score_threshold)) {
      SetParam(task_params, param::kScoreThreshold, static_cast<double>(post.score_threshold));
    }
    if (DoubleParam(defaults, param::kIouThreshold) != std::optional<double>(post.iou_threshold)) {
      SetParam(task_params, param::kIouThreshold, static_cast<double>(post.iou_threshold));
    }
    if (IntParam(defaults, param::kMaxDetections) != std::optional<int64_t>(post.max_detections)) {
      SetParam(task_params, param::kMaxDetections, post.max_detections);
    }
  }
  std::unique_ptr<StreamSession> session;
  if (streaming) {
    Params open = task_params;
    if (!detector) SetParam(open, param::kReply, std::string("top1"));
    session = std::make_unique<StreamSession>(*client, o, rep.model, std::move(open));
  }
  LinkEmulator link(o.link);
  std::vector<double> t_node, t_encode, t_transmit, t_server, t_total;
  double frame_bytes = 0, message_bytes = 0, reply_bytes = 0;
  ProgressBar bar(stderr, "node " + o.mode, n, o.progress ? 0.5 : 1e9);
  const auto& norm = pipeline.normalization();
  for (int64_t i = 0; i < n; ++i) {
    // The image as 8-bit [1, C, H, W]: a classifier's as its dataset gives it, a detector's
    // letterboxed to its input (the sample keeps how, to map the boxes back).
    std::pair<torch::Tensor, torch::Tensor> example;
    data::DetectionSample sample;
    if (detector) {
      SI_ASSIGN_OR_RETURN(sample, scenes->sample(i));
      example.first = sample.image.unsqueeze(0);
    } else {
      SI_ASSIGN_OR_RETURN(example, dataset->batch({i}));
    }
    const auto t0 = Clock::now();
    int64_t predicted = -1;
    std::vector<WireBox> boxes;
    // A detector's reply, decoded (the unary and stream replies are the same full form).
    auto read_boxes = [&](const inference::ModelInferResponse& r) -> Status {
      SI_ASSIGN_OR_RETURN(auto images, ReadDetectionOutputs(r, 1, detector->num_classes));
      boxes = std::move(images[0]);
      return Status::Ok();
    };
    try {
      if (o.mode == "node-only") {
        auto out = full.net->forward_all(data::ToFloatNormalized(example.first, norm));
        if (detector) {
          // Decoding and NMS are part of a detector's answer: timed with its compute.
          SI_ASSIGN_OR_RETURN(const auto found, detect::PostProcess(out.to(torch::kFloat32), *detector, post));
          boxes = ToWireBoxes(found[0]);
        } else {
          predicted = out.argmax(1).item<int64_t>();
        }
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        t_node.push_back(s);
        t_encode.push_back(0);
        t_transmit.push_back(0);
        t_server.push_back(0);
        t_total.push_back(s);
      } else if (streaming) {
        const auto x = data::ToFloatNormalized(example.first, norm);
        SI_ASSIGN_OR_RETURN(const torch::Tensor features, node_face.Features(x));
        const auto t1 = Clock::now();
        SI_ASSIGN_OR_RETURN(auto enc, node_face.Encode(features[0]));
        const auto t2 = Clock::now();
        uint64_t sent = 0, wire = 0, reply_wire = 0;
        inference::ModelInferResponse reply;
        int64_t server_us = 0;
        // The link is emulated around the exchange, as for a unary call: the request's bytes
        // out, the reply's back (their sizes are known once the exchange has chosen the form:
        // the full frame opens a stream's session, a session frame follows it).
        SI_RETURN_IF_ERROR(session->Exchange(enc.frame, &sent, &wire, &reply_wire, &reply));
        if (detector) {
          SI_RETURN_IF_ERROR(read_boxes(reply));
          server_us = IntParam(reply.parameters(), param::kServerUs).value_or(0);
        } else {
          SI_ASSIGN_OR_RETURN(predicted, Top1Class(reply, &server_us));
        }
        frame_bytes += static_cast<double>(sent);
        link.Transmit(wire);
        link.Receive(reply_wire);
        message_bytes += static_cast<double>(wire);
        reply_bytes += static_cast<double>(reply_wire);
        const auto t3 = Clock::now();
        const double server_s = static_cast<double>(server_us) * 1e-6;
        t_node.push_back(std::chrono::duration<double>(t1 - t0).count());
        t_encode.push_back(std::chrono::duration<double>(t2 - t1).count());
        t_server.push_back(server_s);
        t_transmit.push_back(std::max(0.0, std::chrono::duration<double>(t3 - t2).count() - server_s));
        t_total.push_back(std::chrono::duration<double>(t3 - t0).count());
      } else {
        inference::ModelInferRequest q;
        // Every byte here crosses the slow link: no id, no top-k strings; the handshake has
        // already checked the protocol, and the frame carries its pipeline id and CRC.
        q.set_model_name(rep.model);
        if (detector) {
          *q.mutable_parameters() = task_params;  // every output: boxes, scores, classes, counts
        } else {
          q.add_outputs()->set_name(kOutputScores);
        }
        Clock::time_point t1;
        if (o.mode == "split") {
          const auto x = data::ToFloatNormalized(example.first, norm);
          SI_ASSIGN_OR_RETURN(const torch::Tensor features, node_face.Features(x));
          t1 = Clock::now();
          SI_ASSIGN_OR_RETURN(auto enc, node_face.Encode(features[0]));
          frame_bytes += static_cast<double>(enc.frame.size());
          // No frame_version / codec parameters: the frame's own header carries both (and the
          // handshake checked them), so repeating them per request cost ~40 of ~134 bytes.
          AddBytesInput(q, kInputFrame, enc.frame);
        } else {
          t1 = Clock::now();
          const auto img = example.first[0].contiguous();
          SI_ASSIGN_OR_RETURN(auto bytes, EncodeImage(o, img));
          frame_bytes += static_cast<double>(bytes.size());
          AddBytesInput(q, o.image_format == "jpeg" ? kInputImageJpeg : kInputImagePng, bytes);
        }
        const auto t2 = Clock::now();
        // What the link carries: the serialised message and gRPC's 5-byte message prefix
        // (HTTP/2 framing and compressed headers add a few tens of bytes more, not counted).
        const uint64_t wire = q.ByteSizeLong() + 5;
        message_bytes += static_cast<double>(wire);
        link.Transmit(wire);
        inference::ModelInferResponse r;
        SI_RETURN_IF_ERROR(client->Infer(q, &r));
        const uint64_t reply_wire = r.ByteSizeLong() + 5;
        reply_bytes += static_cast<double>(reply_wire);
        link.Receive(reply_wire);
        const auto t3 = Clock::now();
        if (detector) {
          SI_RETURN_IF_ERROR(read_boxes(r));
        } else {
          SI_ASSIGN_OR_RETURN(predicted, TopClass(r));
        }
        const double server_s = static_cast<double>(IntParam(r.parameters(), param::kServerUs).value_or(0)) * 1e-6;
        t_node.push_back(std::chrono::duration<double>(t1 - t0).count());
        t_encode.push_back(std::chrono::duration<double>(t2 - t1).count());
        t_server.push_back(server_s);
        t_transmit.push_back(std::max(0.0, std::chrono::duration<double>(t3 - t2).count() - server_s));
        t_total.push_back(std::chrono::duration<double>(t3 - t0).count());
      }
    } catch (const c10::Error& e) {
      return Internal(std::string("node compute failed: ") + e.what_without_backtrace());
    }
    if (detector) {
      SI_RETURN_IF_ERROR(scorer->Add(i, sample.scale, sample.pad_x, sample.pad_y, ToInputBoxes(boxes)));
      rep.detections += static_cast<int64_t>(boxes.size());
      if (o.progress) bar.update(i + 1, i + 1, std::to_string(rep.detections) + " boxes");
    } else {
      if (predicted == example.second[0].item<int64_t>()) ++rep.correct;
      if (o.progress) bar.update(i + 1, i + 1, "top1 " + std::to_string(100.0 * rep.correct / (i + 1)).substr(0, 5) + "%");
    }
  }
  if (o.progress) bar.finish("");
  rep.images = n;
  if (detector) {
    SI_ASSIGN_OR_RETURN(rep.coco, scorer->Score());
    rep.score_threshold = o.score_threshold;
  } else {
    rep.top1 = n ? 100.0 * static_cast<double>(rep.correct) / static_cast<double>(n) : 0;
  }
  rep.frame_bytes_per_image = n ? frame_bytes / n : 0;
  rep.message_bytes_per_image = n ? message_bytes / n : 0;
  rep.reply_bytes_per_image = n ? reply_bytes / n : 0;
  rep.node_compute = Summarise(t_node);
  rep.encode = Summarise(t_encode);
  rep.transmit = Summarise(t_transmit);
  rep.server = Summarise(t_server);
  rep.total = Summarise(t_total);
  rep.retries = client ? client->retries : 0;
  rep.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return rep;
}

}  // namespace splitinfer::runtime
