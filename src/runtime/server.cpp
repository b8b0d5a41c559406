#include "runtime/server.h"

#include "config/yaml_reader.h"

#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>
#include <functional>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <mutex>
#include <unordered_map>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/health_check_service_interface.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include "bottleneck/faces.h"
#include "bottleneck/pipeline.h"
#include "detect/yolo.h"
#include "runtime/detections.h"
#include "models/device.h"
#include "core/system.h"
#include "data/transforms.h"
#include "runtime/png.h"
#if SPLITINFER_WITH_JPEG
#include "runtime/jpeg.h"
#endif
#include "runtime/proto/inference.grpc.pb.h"

namespace fs = std::filesystem;

namespace splitinfer::runtime {

// ------------------------------------------------------------------------------- config

namespace {

const std::string kFrameInputName = kInputFrame;
#if SPLITINFER_WITH_JPEG
constexpr bool kJpegBuiltIn = true;
#else
constexpr bool kJpegBuiltIn = false;
#endif

}  // namespace

Result<ServerConfig> LoadServerConfig(const std::string& path) {
  SI_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, "server config"));
  SI_ASSIGN_OR_RETURN(YAML::Node root, config::ParseYaml(text, path));
  if (!root.IsMap()) return InvalidArgument(path + ": a server config is a YAML mapping (pipelines: [...], ...)");
  ServerConfig c;
  const fs::path dir = fs::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return fs::path(p).is_absolute() ? p : (dir / p).string(); };
  if (!root["pipelines"]) {
    // A pipeline file: serve it alone. Its own parser reports its errors.
    SI_RETURN_IF_ERROR(bottleneck::LoadPipelineSpec(path).status());
    c.pipelines.push_back(path);
    return c;
  }
  config::MapReader r(root, "", path);
  if (!r["pipelines"].IsSequence() || r["pipelines"].size() == 0) {
    return InvalidArgument(path + ": 'pipelines' must be a non-empty list of pipeline YAML files");
  }
  std::vector<std::string> pipelines;
  SI_RETURN_IF_ERROR(r.get("pipelines", &pipelines));
  for (const auto& p : pipelines) c.pipelines.push_back(resolve(p));
  SI_RETURN_IF_ERROR(r.get("listen", &c.listen));
  SI_RETURN_IF_ERROR(r.get("device", &c.device));
  SI_RETURN_IF_ERROR(r.get_in("threads", &c.threads, 0, 1024));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("max_batch", &c.batch.max_batch, 1, 4096));
  double max_wait_ms = c.batch.max_wait.count() / 1000.0;
  SI_RETURN_IF_ERROR(r.get_in("max_wait_ms", &max_wait_ms, 0.0, 60e3));
  c.batch.max_wait = std::chrono::microseconds(static_cast<int64_t>(max_wait_ms * 1000));
  // gRPC takes the receive limit as an int; above INT_MAX the cast would wrap (-1 = unlimited).
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("max_message_bytes", &c.max_message_bytes, 1024, 2147483647));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("max_in_flight", &c.max_in_flight, 1, 1 << 20));
  SI_RETURN_IF_ERROR(r.get_in<uint64_t>("max_images_per_request", &c.limits.max_batch, 1, 1 << 16));
  SI_RETURN_IF_ERROR(r.get_in("default_deadline_s", &c.default_deadline_s, 1e-3, 86400.0));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("max_streams", &c.max_streams, 1, 4096));
  SI_RETURN_IF_ERROR(r.get_in("max_threads", &c.max_threads, 8, 4096));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("max_connections", &c.max_connections, 1, 65536));
  SI_RETURN_IF_ERROR(r.get_in("malloc_arenas", &c.malloc_arenas, 0, 1024));
  SI_RETURN_IF_ERROR(r.get("insecure_token", &c.insecure_token));
  std::string token_file, tls_cert, tls_key, tls_client_ca;
  SI_RETURN_IF_ERROR(r.get("token_file", &token_file));
  SI_RETURN_IF_ERROR(r.get("tls_cert", &tls_cert));
  SI_RETURN_IF_ERROR(r.get("tls_key", &tls_key));
  SI_RETURN_IF_ERROR(r.get("tls_client_ca", &tls_client_ca));
  SI_RETURN_IF_ERROR(r.get("metrics", &c.metrics_listen));
  SI_RETURN_IF_ERROR(r.finish());
  if (!token_file.empty()) {
    SI_ASSIGN_OR_RETURN(c.token, ReadFirstLine(resolve(token_file), "token file"));
  }
  if (!tls_cert.empty()) c.tls_cert = resolve(tls_cert);
  if (!tls_key.empty()) c.tls_key = resolve(tls_key);
  if (!tls_client_ca.empty()) c.tls_client_ca = resolve(tls_client_ca);
  if (c.tls_cert.empty() != c.tls_key.empty()) return InvalidArgument(path + ": give both tls_cert and tls_key, or neither");
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return InvalidArgument(path + ": tls_client_ca (client certificates) needs TLS: give tls_cert and tls_key too");
  }
  return c;
}

// ------------------------------------------------------------------------------- core

namespace {
constexpr int kKindFeatures = 0;
constexpr int kKindImage = 1;
// A detector's post-processing when the request does not set it: YOLOv5's detect.py defaults
// (score 0.25, NMS IoU 0.45), at most COCO's 100 boxes an image. An evaluation asks for 0.001,
// as `eval` uses (the node does): AP needs the low-scoring boxes too.
const detect::PostProcessOptions kServePostProcess{0.25f, 0.45f, 100};
}  // namespace

struct InferenceCore::Model {
  std::string name;
  bottleneck::Pipeline pipeline;
  std::unique_ptr<bottleneck::ServerFace> face;  // decodes frames and answers them (after frame_limits)
  models::OpenedModel full;  // the float model, for images (server-only)
  std::vector<int64_t> input_shape;
  std::vector<std::string> labels;
  // A detector's outputs decode into boxes (detect/yolo.h); a classifier has no layout.
  std::optional<detect::YoloLayout> detector;
  codec::FrameLimits frame_limits;
  std::unique_ptr<Batcher> batcher;
};

struct InferenceCore::Pending {
  Model* model = nullptr;
  std::string id;
  std::vector<std::future<BatchOutput>> futures;
  Clock::time_point start, deadline;
  double decode_s = 0;
  int64_t top_k = 5;
  bool want_scores = true, want_classes = true;
  bool want_timings = false;  // the stage breakdown in the reply (request parameter "timings")
  bool compact = false;       // the top1 reply alone (request parameter "reply": "top1")
  bool want_boxes = true;     // a detector's outputs (counts are always sent)
  detect::PostProcessOptions post = kServePostProcess;
  InferenceCore* core = nullptr;
  int64_t held = 0;  // in-flight slots this request holds
  ~Pending() {
    if (core) {
      core->in_flight_ -= held;
      if (core->metrics_) core->metrics_->InFlight(static_cast<double>(core->in_flight_.load()));
    }
  }
};

InferenceCore::InferenceCore(ServerConfig config, Metrics* metrics) : config_(std::move(config)), metrics_(metrics) {}
InferenceCore::~InferenceCore() = default;

Result<std::unique_ptr<InferenceCore>> InferenceCore::Create(const ServerConfig& config, Metrics* metrics) {
  if (config.pipelines.empty()) return InvalidArgument("the server needs at least one pipeline");
  std::unique_ptr<InferenceCore> core(new InferenceCore(config, metrics));
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(config.device);
  } catch (const c10::Error&) {
    return InvalidArgument("device '" + config.device + "' is not a device; use cpu, cuda or cuda:N");
  }
  if (device.is_cuda() && !torch::cuda::is_available()) {
    return FailedPrecondition("device " + config.device + " asked for, but this LibTorch has no usable CUDA");
  }
  if (config.threads > 0) models::ConfigureThreads(config.threads);
  for (const auto& path : config.pipelines) {
    auto m = std::make_unique<Model>();
    SI_ASSIGN_OR_RETURN(m->pipeline, bottleneck::Pipeline::Load(path, device));
    if (models::IsDetector(m->pipeline.model_meta())) {
      SI_ASSIGN_OR_RETURN(m->detector, detect::LayoutFor(m->pipeline.model_meta()));
    }
    const auto& spec = m->pipeline.spec();
    m->name = spec.name;
    if (core->models_.count(m->name)) {
      return InvalidArgument("two pipelines are named '" + m->name + "' (" + path + "); give each a unique name");
    }
    const std::string ref = spec.reference_model.empty() ? spec.model : spec.reference_model;
    SI_ASSIGN_OR_RETURN(m->full, models::OpenModel(spec.Resolve(ref), device));
    m->input_shape = m->pipeline.model_meta().input_shape;
    m->labels = m->pipeline.model_meta().class_names;
    // A frame for this pipeline has exactly its dims: anything larger is refused unread.
    m->frame_limits.max_elements = 1;
    for (uint32_t d : m->pipeline.codec().quant.dims) m->frame_limits.max_elements *= d;
    m->frame_limits.max_frame_bytes = static_cast<size_t>(config.max_message_bytes);
    m->face = std::make_unique<bottleneck::ServerFace>(m->pipeline, m->frame_limits);
    Model* raw = m.get();
    m->batcher = std::make_unique<Batcher>(config.batch, [raw](int kind, const torch::Tensor& batch) -> Result<torch::Tensor> {
      if (kind == kKindFeatures) return raw->face->Scores(batch);
      return raw->full.net->forward_all(batch.to(raw->pipeline.device())).to(torch::kCPU);
    });
    core->models_[m->name] = std::move(m);
  }
  return core;
}

std::vector<std::string> InferenceCore::model_names() const {
  std::vector<std::string> names;
  for (const auto& [n, m] : models_) names.push_back(n);
  return names;
}

Result<InferenceCore::Model*> InferenceCore::Find(const std::string& name, const std::string& version) {
  std::string wanted = name;
  if (wanted.empty() && models_.size() == 1) wanted = models_.begin()->first;
  auto it = models_.find(wanted);
  if (it == models_.end()) {
    std::string list;
    for (const auto& n : model_names()) list += (list.empty() ? "" : ", ") + n;
    return NotFound("model '" + name + "' is not served here; served: " + list);
  }
  if (!version.empty() && version != "1") {
    return NotFound("model '" + wanted + "' has only version 1, not '" + version + "'");
  }
  return it->second.get();
}

bool InferenceCore::ModelReady(const std::string& name, const std::string& version) {
  return Find(name, version).ok();
}

void InferenceCore::Count(const std::string& model, const Status& s) {
  if (!metrics_) return;
  // Labelled by the model served, never by the name a client wrote: each unknown name would be a
  // new time series (memory without bound for anyone who reaches the port). models_ is fixed
  // after Create, so reading it here needs no lock.
  std::string label = kUnknownModelLabel;
  if (model.empty() && models_.size() == 1) {
    label = models_.begin()->first;
  } else if (models_.count(model)) {
    label = model;
  }
  metrics_->Request(label, GrpcCodeName(GrpcCode(s.code())));
}

Status InferenceCore::Metadata(const inference::ModelMetadataRequest& request,
                               inference::ModelMetadataResponse* response) {
  SI_ASSIGN_OR_RETURN(Model * m, Find(request.name(), request.version()));
  const auto& codec = m->pipeline.codec();
  response->set_name(m->name);
  response->add_versions("1");
  response->set_platform(kPlatform);
  auto add = [](auto* list, const std::string& name, const std::string& type, std::vector<int64_t> shape) {
    auto* t = list->Add();
    t->set_name(name);
    t->set_datatype(type);
    for (int64_t d : shape) t->add_shape(d);
  };
  std::vector<int64_t> image{-1};
  image.insert(image.end(), m->input_shape.begin(), m->input_shape.end());
  add(response->mutable_inputs(), kInputFrame, "BYTES", {-1});
  add(response->mutable_inputs(), kInputImagePng, "BYTES", {-1});
#if SPLITINFER_WITH_JPEG
  add(response->mutable_inputs(), kInputImageJpeg, "BYTES", {-1});
#endif
  add(response->mutable_inputs(), kInputImage, "UINT8", image);
  const auto classes = static_cast<int64_t>(m->labels.size());
  auto* p = response->mutable_parameters();
  if (m->detector) {  // docs/wire_protocol.md, "Detections"
    add(response->mutable_outputs(), kOutputBoxes, "FP32", {-1, 4});
    add(response->mutable_outputs(), kOutputScores, "FP32", {-1});
    add(response->mutable_outputs(), kOutputClasses, "INT32", {-1});
    add(response->mutable_outputs(), kOutputCounts, "INT32", {-1});
    SetParam(*p, param::kTask, std::string("detect"));
    SetParam(*p, param::kScoreThreshold, static_cast<double>(kServePostProcess.score_threshold));
    SetParam(*p, param::kIouThreshold, static_cast<double>(kServePostProcess.iou_threshold));
    SetParam(*p, param::kMaxDetections, kServePostProcess.max_detections);
  } else {
    add(response->mutable_outputs(), kOutputScores, "FP32", {-1, classes});
    add(response->mutable_outputs(), kOutputClasses, "BYTES", {-1, -1});
    SetParam(*p, param::kTask, std::string("classify"));
  }
  SetParam(*p, param::kProtocol, std::string(kProtocol));
  SetParam(*p, param::kProtocolVersion, kProtocolVersion);
  SetParam(*p, param::kFrameVersion, static_cast<int64_t>(codec::kFrameVersion));
  SetParam(*p, param::kCodec, std::string(codec::CoderName(codec.coder)));
  SetParam(*p, param::kModel, m->pipeline.model_meta().model);
  SetParam(*p, param::kSplit, m->pipeline.spec().split);
  SetParam(*p, param::kPipelineId, static_cast<int64_t>(codec.pipeline_id));
  if (const std::string id = m->pipeline.cabac_model_id(); !id.empty()) SetParam(*p, param::kCabacModel, id);
  SetParam(*p, param::kSessions, true);
  std::vector<int64_t> dims(codec.quant.dims.begin(), codec.quant.dims.end());
  SetParam(*p, param::kFeatureShape, ShapeString(dims));
  SetParam(*p, param::kBits, static_cast<int64_t>(codec.quant.spec.bits));
  return Status::Ok();
}

namespace {
// A detector request's post-processing parameters over the serving defaults, each checked.
Status ReadDetectorParams(const Params& params, const std::string& model, detect::PostProcessOptions* post) {
  auto fraction = [&](const char* key, double low, bool low_open, float* out) -> Status {
    if (!params.count(key)) return Status::Ok();
    const auto v = DoubleParam(params, key);
    if (!v) return InvalidArgument(std::string("parameter '") + key + "' must be a number (double_param)");
    if (!std::isfinite(*v) || *v > 1 || (low_open ? *v <= low : *v < low)) {
      return InvalidArgument(std::string("parameter '") + key + "' = " + std::to_string(*v) + " is outside " +
                             (low_open ? "(" : "[") + std::to_string(low).substr(0, 3) + ", 1] (model '" + model + "')");
    }
    *out = static_cast<float>(*v);
    return Status::Ok();
  };
  SI_RETURN_IF_ERROR(fraction(param::kScoreThreshold, 0, false, &post->score_threshold));
  SI_RETURN_IF_ERROR(fraction(param::kIouThreshold, 0, true, &post->iou_threshold));
  if (params.count(param::kMaxDetections)) {
    const auto v = IntParam(params, param::kMaxDetections);
    if (!v || *v < 1 || *v > 10000) {
      return InvalidArgument("parameter 'max_detections' must be an int64 in 1..10000 (boxes per image)");
    }
    post->max_detections = *v;
  }
  return Status::Ok();
}
}  // namespace

Result<std::shared_ptr<InferenceCore::Pending>> InferenceCore::Begin(const inference::ModelInferRequest& request,
                                                                     Clock::time_point deadline, StreamState* stream) {
  const auto start = Clock::now();
  // A session request: no inputs, one raw entry that is one frame (docs/wire_protocol.md,
  // "Sessions"); it names neither model nor input, the stream's session does.
  const bool session_request = request.inputs_size() == 0 && request.raw_input_contents_size() == 1;
  std::string model_name = request.model_name();
  if (session_request) {
    if (stream == nullptr || stream->model_name.empty()) {
      return FailedPrecondition(
          "SESSION_NOT_OPEN: a session request (no inputs, one raw_input_contents entry) needs a session: send it on "
          "ModelStreamInfer after a request with a full frame (input 'frame') opened one");
    }
    if (!model_name.empty() && model_name != stream->model_name) {
      return FailedPrecondition("a session request for model '" + model_name + "' on a stream whose session is for '" +
                                stream->model_name + "'; open a session for it with a full frame first");
    }
    model_name = stream->model_name;
  }
  SI_ASSIGN_OR_RETURN(Model * m, Find(model_name, session_request ? "" : request.model_version()));
  auto pending = std::make_shared<Pending>();
  pending->model = m;
  pending->id = request.id();
  pending->start = start;
  pending->deadline = deadline;
  // A session request carries no parameters: it is answered as the request that opened the
  // session asked (reply form, a detector's post-processing).
  const auto& params = session_request ? stream->params : request.parameters();
  if (auto v = IntParam(params, param::kProtocolVersion); v && *v != kProtocolVersion) {
    return FailedPrecondition("the client speaks splitinfer protocol " + std::to_string(*v) + ", this server " +
                              std::to_string(kProtocolVersion) + "; use matching releases");
  }
  if (auto v = IntParam(params, param::kFrameVersion); v && (*v < codec::kOldestFrameVersion || *v > codec::kFrameVersion)) {
    return FailedPrecondition("the client sends frame version " + std::to_string(*v) + ", this server decodes " +
                              std::to_string(codec::kOldestFrameVersion) + " to " +
                              std::to_string(codec::kFrameVersion) + "; use matching releases");
  }
  const std::string coder = codec::CoderName(m->pipeline.codec().coder);
  if (auto v = StringParam(params, param::kCodec); v && *v != coder) {
    return FailedPrecondition("the client codes frames with '" + *v + "' but pipeline '" + m->name + "' uses '" +
                              coder + "'; load the same pipeline file on the node");
  }
  if (m->detector) {
    SI_RETURN_IF_ERROR(ReadDetectorParams(params, m->name, &pending->post));
  } else if (params.count(param::kScoreThreshold) || params.count(param::kIouThreshold) ||
             params.count(param::kMaxDetections)) {
    return InvalidArgument("score_threshold, iou_threshold and max_detections are a detector's parameters; model '" +
                           m->name + "' is a classifier (use top_k)");
  }
  if (auto v = IntParam(params, param::kTopK)) {
    if (m->detector) {
      return InvalidArgument("top_k is a classifier's parameter; model '" + m->name +
                             "' is a detector (use score_threshold, iou_threshold, max_detections)");
    }
    if (*v < 1) return InvalidArgument("top_k must be >= 1, got " + std::to_string(*v));
    pending->top_k = *v;
  }
  pending->top_k = std::min<int64_t>(pending->top_k, static_cast<int64_t>(m->labels.size()));
  if (params.count(param::kTimings)) {
    const auto v = BoolParam(params, param::kTimings);
    if (!v) return InvalidArgument("parameter 'timings' must be a bool (bool_param)");
    pending->want_timings = *v;
  }
  pending->compact = session_request && stream->compact;
  if (auto v = StringParam(params, param::kReply)) {
    if (*v != "full" && *v != "top1") {
      return InvalidArgument("parameter 'reply' must be \"full\" or \"top1\", got \"" + v->substr(0, 64) + "\"");
    }
    pending->compact = *v == "top1";
  }
  if (pending->compact && m->detector) {
    return InvalidArgument("reply \"top1\" is a classifier's reply; model '" + m->name +
                           "' is a detector: ask for \"full\" (boxes, scores, classes, counts)");
  }
  if (request.outputs_size() > 0) {
    pending->want_scores = pending->want_classes = pending->want_boxes = false;
    for (const auto& o : request.outputs()) {
      if (o.name() == kOutputScores) pending->want_scores = true;
      else if (o.name() == kOutputClasses) pending->want_classes = true;
      else if (m->detector && o.name() == kOutputBoxes) pending->want_boxes = true;
      else if (m->detector && o.name() == kOutputCounts) continue;  // always sent
      else if (m->detector) return InvalidArgument("unknown output '" + o.name() + "'; this detector has 'boxes', 'scores', 'classes' and 'counts'");
      else return InvalidArgument("unknown output '" + o.name() + "'; this model has 'scores' and 'classes'");
    }
  }
  if (request.inputs_size() != 1 && !session_request) {
    return InvalidArgument("a request has exactly one input ('frame', 'image_png', 'image_jpeg' or 'image'), got " +
                           std::to_string(request.inputs_size()));
  }
  // A session request names no input: its one raw entry is a frame.
  const std::string& input = session_request ? kFrameInputName : request.inputs(0).name();
  std::vector<torch::Tensor> items;
  int kind = kKindFeatures;
  double bytes = 0;
  const auto& norm = m->pipeline.normalization();
  const int64_t c = m->input_shape[0], h = m->input_shape[1], w = m->input_shape[2];
  auto normalise = [&](torch::Tensor u8_chw) { return data::ToFloatNormalized(u8_chw.unsqueeze(0), norm)[0]; };
  // Count the images first, so that the in-flight limit is checked before anything is decoded.
  int64_t n = 0;
  std::vector<std::string_view> elements;
  NumericInput numeric;
  std::string storage;
  if (session_request) {
    elements.emplace_back(request.raw_input_contents(0));
    n = 1;
  } else if (input == kInputImageJpeg && !kJpegBuiltIn) {
    return FailedPrecondition("input 'image_jpeg': this server was built without JPEG (libturbojpeg); install "
                              "libturbojpeg0-dev and rebuild, or send 'image_png'");
  } else if (input == kInputFrame || input == kInputImagePng || input == kInputImageJpeg) {
    SI_ASSIGN_OR_RETURN(elements, BytesInput(request, 0, config_.limits));
    n = static_cast<int64_t>(elements.size());
  } else if (input == kInputImage) {
    SI_ASSIGN_OR_RETURN(numeric, NumericInputAt(request, 0, config_.limits, storage));
    const auto& s = numeric.shape;
    const bool batched = s.size() == 4;
    if (!(s.size() == 3 || batched) || s[batched] != c || s[batched + 1] != h || s[batched + 2] != w) {
      return InvalidArgument("input 'image' has shape [" + ShapeString(s) + "]; this model takes [N, " +
                             ShapeString(m->input_shape) + "] or [" + ShapeString(m->input_shape) + "]");
    }
    n = batched ? s[0] : 1;
    if (static_cast<uint64_t>(n) > config_.limits.max_batch) {
      return ResourceExhausted("input 'image' has " + std::to_string(n) + " images; the server takes at most " +
                               std::to_string(config_.limits.max_batch) + " per request");
    }
  } else {
    return InvalidArgument("unknown input '" + input + "'; use 'frame' (BYTES), 'image_png' (BYTES), 'image_jpeg' "
                           "(BYTES) or 'image' (UINT8/FP32)");
  }
  if (n == 0) return InvalidArgument("input '" + input + "' holds no images");
  const int64_t now_in_flight = in_flight_.fetch_add(n) + n;
  pending->core = this;
  pending->held = n;
  if (metrics_) metrics_->InFlight(static_cast<double>(now_in_flight));
  if (now_in_flight > config_.max_in_flight) {
    return ResourceExhausted(std::string(kServerBusy) + ": " + std::to_string(now_in_flight - n) +
                             " images in flight, limit " + std::to_string(config_.max_in_flight) +
                             "; retry with backoff");
  }
  try {
    if (input == kInputFrame) {
      for (size_t i = 0; i < elements.size(); ++i) {
        const auto& e = elements[i];
        bytes += static_cast<double>(e.size());
        const auto* data = reinterpret_cast<const uint8_t*>(e.data());
        // On a stream, a full frame that decodes (re)opens the stream's session; unary (no
        // session to open), a session frame is SESSION_NOT_OPEN.
        const bool opens = stream != nullptr && !codec::IsSessionFrame(data, e.size());
        auto f = m->face->Decode(data, e.size(), stream ? &stream->session : nullptr);
        if (!f.ok()) {
          return Status(f.status().code(), "frame " + std::to_string(i) + ": " + f.status().message());
        }
        if (opens) {
          stream->model_name = m->name;
          stream->compact = pending->compact;
          stream->params = request.parameters();
        }
        items.push_back(std::move(f).value());
      }
    } else if (input == kInputImagePng) {
      kind = kKindImage;
      for (size_t i = 0; i < elements.size(); ++i) {
        const auto& e = elements[i];
        bytes += static_cast<double>(e.size());
        SI_ASSIGN_OR_RETURN(auto info, PeekPng(e));
        if (info.width != w || info.height != h) {
          return InvalidArgument("image_png " + std::to_string(i) + " is " + std::to_string(info.width) + "x" +
                                 std::to_string(info.height) + "; this model takes " + std::to_string(w) + "x" +
                                 std::to_string(h));
        }
        SI_ASSIGN_OR_RETURN(auto px, DecodePng(e, static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
        auto t = torch::from_blob(px.data(), {c, h, w}, torch::kUInt8).clone();
        items.push_back(normalise(t));
      }
    } else if (input == kInputImageJpeg) {
#if SPLITINFER_WITH_JPEG
      kind = kKindImage;
      for (size_t i = 0; i < elements.size(); ++i) {
        const auto& e = elements[i];
        bytes += static_cast<double>(e.size());
        // The header first: the size is checked before a pixel buffer is allocated.
        auto info = PeekJpeg(e);
        if (!info.ok()) return Status(info.status().code(), "image_jpeg " + std::to_string(i) + ": " + info.status().message());
        if (info->width != w || info->height != h) {
          return InvalidArgument("image_jpeg " + std::to_string(i) + " is " + std::to_string(info->width) + "x" +
                                 std::to_string(info->height) + "; this model takes " + std::to_string(w) + "x" +
                                 std::to_string(h));
        }
        auto px = DecodeJpeg(e, static_cast<int>(c), static_cast<int>(h), static_cast<int>(w));
        if (!px.ok()) return Status(px.status().code(), "image_jpeg " + std::to_string(i) + ": " + px.status().message());
        auto t = torch::from_blob(px->data(), {c, h, w}, torch::kUInt8).clone();
        items.push_back(normalise(t));
      }
#endif
    } else {
      kind = kKindImage;
      bytes = static_cast<double>(numeric.bytes.size());
      auto flat = torch::from_blob(const_cast<char*>(numeric.bytes.data()), {n, c, h, w},
                                   numeric.datatype == "UINT8" ? torch::kUInt8 : torch::kFloat32);
      torch::Tensor u8;
      if (numeric.datatype == "UINT8") {
        u8 = flat.clone();
      } else {
        if (!torch::isfinite(flat).all().item<bool>()) return InvalidArgument("input 'image' has NaN or infinite values");
        u8 = (flat.clamp(0, 1) * 255).round().to(torch::kUInt8);
      }
      for (int64_t i = 0; i < n; ++i) items.push_back(normalise(u8[i]));
    }
  } catch (const c10::Error& e) {
    return Internal(std::string("decoding the input failed: ") + e.what_without_backtrace());
  }
  const auto decoded = Clock::now();
  pending->decode_s = std::chrono::duration<double>(decoded - start).count();
  if (metrics_) {
    metrics_->Bytes(m->name, bytes);
    metrics_->Images(m->name, input, static_cast<double>(n));
    metrics_->Stage(m->name, "decode", pending->decode_s);
  }
  for (auto& t : items) pending->futures.push_back(m->batcher->Submit(kind, std::move(t), deadline));
  return pending;
}

Status InferenceCore::Finish(Pending& p, inference::ModelInferResponse* response) {
  Model* m = p.model;
  std::vector<torch::Tensor> rows;
  BatchOutput last;
  double queue_s = 0;
  Status failed;
  for (auto& f : p.futures) {
    BatchOutput out = f.get();  // every item completes: the batcher answers expired ones itself
    if (!out.status.ok()) {
      if (failed.ok()) failed = out.status;
      continue;
    }
    queue_s = std::max(queue_s, out.queue_s);
    rows.push_back(out.logits);
    last = out;
  }
  if (!failed.ok()) return failed;
  auto us = [](double s) { return static_cast<int64_t>(s * 1e6); };
  auto record = [&](double total_s) {
    if (metrics_) {
      metrics_->Batch(m->name, static_cast<double>(last.batch_size));
      metrics_->Stage(m->name, "queue", queue_s);
      metrics_->Stage(m->name, "compute", last.compute_s);
      metrics_->Stage(m->name, "total", total_s);
    }
    return Status::Ok();
  };
  auto set_params = [&](double total_s) {
    auto* params = response->mutable_parameters();
    SetParam(*params, param::kServerUs, us(total_s));
    if (p.want_timings) {
      SetParam(*params, param::kDecodeUs, us(p.decode_s));
      SetParam(*params, param::kQueueUs, us(queue_s));
      SetParam(*params, param::kComputeUs, us(last.compute_s));
      SetParam(*params, param::kBatchSize, last.batch_size);
    }
  };
  if (m->detector) {
    // Decoding and NMS here, so that boxes, not the raw heads, cross the link back.
    SI_ASSIGN_OR_RETURN(const auto images,
                        detect::PostProcess(torch::stack(rows).to(torch::kFloat32), *m->detector, p.post));
    std::vector<std::vector<WireBox>> wire;
    for (const auto& image : images) wire.push_back(ToWireBoxes(image));
    response->set_model_name(m->name);
    response->set_model_version("1");
    response->set_id(p.id);
    AddDetectionOutputs(wire, p.want_boxes, p.want_scores, p.want_classes, response);
    const double total_s = std::chrono::duration<double>(Clock::now() - p.start).count();
    set_params(total_s);
    return record(total_s);
  }
  const auto probs = torch::softmax(torch::stack(rows).to(torch::kFloat32), 1).contiguous();
  const int64_t n = probs.size(0), classes = probs.size(1);
  if (p.compact) {  // raw_output_contents[0] alone: every other field would cost link bytes
    const auto best = probs.max(1);
    const auto values = std::get<0>(best).contiguous(), indices = std::get<1>(best).contiguous();
    std::vector<Top1> top(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) top[i] = {indices[i].item<int64_t>(), values[i].item<float>()};
    const double total_s = std::chrono::duration<double>(Clock::now() - p.start).count();
    response->add_raw_output_contents(EncodeTop1Reply(top, us(total_s)));
    return record(total_s);
  }
  response->set_model_name(m->name);
  response->set_model_version("1");
  response->set_id(p.id);
  if (p.want_scores) {
    auto* o = response->add_outputs();
    o->set_name(kOutputScores);
    o->set_datatype("FP32");
    o->add_shape(n);
    o->add_shape(classes);
    response->add_raw_output_contents(std::string(reinterpret_cast<const char*>(probs.data_ptr<float>()),
                                                  static_cast<size_t>(n * classes) * sizeof(float)));
  }
  if (p.want_classes) {
    auto* o = response->add_outputs();
    o->set_name(kOutputClasses);
    o->set_datatype("BYTES");
    o->add_shape(n);
    o->add_shape(p.top_k);
    const auto top = probs.topk(p.top_k, 1);
    const auto values = std::get<0>(top).contiguous(), indices = std::get<1>(top).contiguous();
    std::string raw;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < p.top_k; ++k) {
        const int64_t idx = indices[i][k].item<int64_t>();
        char score[32];
        std::snprintf(score, sizeof score, "%.6f", values[i][k].item<float>());
        const std::string label = idx < static_cast<int64_t>(m->labels.size()) ? m->labels[idx] : "";
        const std::string e = std::string(score) + ":" + std::to_string(idx) + ":" + label;
        const uint32_t len = static_cast<uint32_t>(e.size());
        for (int b = 0; b < 4; ++b) raw.push_back(static_cast<char>((len >> (8 * b)) & 0xFF));
        raw += e;
      }
    }
    response->add_raw_output_contents(raw);
  }
  const double total_s = std::chrono::duration<double>(Clock::now() - p.start).count();
  set_params(total_s);
  return record(total_s);
}

Status InferenceCore::Infer(const inference::ModelInferRequest& request, inference::ModelInferResponse* response,
                            Clock::time_point deadline) {
  Status s = Guarded(request.id(), [&]() -> Status {
    SI_ASSIGN_OR_RETURN(auto pending, Begin(request, deadline));
    return Finish(*pending, response);
  });
  Count(request.model_name(), s);
  return s;
}

Status InferenceCore::Guarded(const std::string& id, const std::function<Status()>& step) {
  // One request's failure is that request's INTERNAL answer; the server lives on.
  try {
    return step();
  } catch (const c10::Error& e) {
    return Internal("request '" + id + "': " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Internal("request '" + id + "': " + e.what());
  } catch (...) {
    return Internal("request '" + id + "': an unknown exception");
  }
}

// ------------------------------------------------------------------------------- gRPC

namespace {
// Compares every byte whatever the first difference, so that the time taken says nothing about
// how much of a guessed token was right (only its length, which a token file does not hide).
bool ConstantTimeEqual(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// protobuf logs an ERROR line for every message it parses with invalid UTF-8 in a string field
// (a request parameter, say), so any client could fill the server's log at its request rate.
// The server keeps protobuf's messages but at most one a second, and says how many it dropped.
void RateLimitedProtobufLog(google::protobuf::LogLevel level, const char* filename, int line,
                            const std::string& message) {
  static std::mutex mu;
  static std::chrono::steady_clock::time_point last{};
  static int64_t dropped = 0;
  std::lock_guard<std::mutex> lock(mu);
  const auto now = std::chrono::steady_clock::now();
  if (level < google::protobuf::LOGLEVEL_FATAL && now - last < std::chrono::seconds(1)) {
    ++dropped;
    return;
  }
  last = now;
  std::fprintf(stderr, "[protobuf %s:%d] %s", filename, line, message.c_str());
  if (dropped > 0) std::fprintf(stderr, " (%lld similar lines dropped)", static_cast<long long>(dropped));
  std::fprintf(stderr, "\n");
  dropped = 0;
}

// gRPC 1.51 (Debian 12) has no setting that caps incoming connections (the channel argument
// grpc.max_allowed_incoming_connections came in a later release), so the service caps the
// connections that cost something: those with inference calls in progress, told apart by the
// peer gRPC reports for each call (the client's address and port, one per connection). A call
// on a further connection is refused; an idle connection holds only a socket and is closed
// after GRPC_ARG_MAX_CONNECTION_IDLE_MS.
class ConnectionGate {
 public:
  explicit ConnectionGate(int64_t max) : max_(max) {}
  // Holds a connection's place while one of its calls runs.
  class Pass {
   public:
    Pass(ConnectionGate* gate, std::string peer) : gate_(gate), peer_(std::move(peer)) {}
    Pass(Pass&& o) noexcept : gate_(std::exchange(o.gate_, nullptr)), peer_(std::move(o.peer_)) {}
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    Pass& operator=(Pass&&) = delete;
    ~Pass() {
      if (gate_) gate_->Leave(peer_);
    }

   private:
    ConnectionGate* gate_;
    std::string peer_;
  };
  // A pass, or RESOURCE_EXHAUSTED when max connections already have calls in progress and
  // `peer` is not one of them.
  Result<Pass> Enter(const std::string& peer) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_.find(peer);
    if (it == calls_.end()) {
      if (static_cast<int64_t>(calls_.size()) >= max_) {
        return ResourceExhausted("too many connections with calls in progress (max_connections " +
                                 std::to_string(max_) +
                                 "): retry later, share one connection per client, or raise max_connections");
      }
      it = calls_.emplace(peer, 0).first;
    }
    ++it->second;
    return Pass(this, peer);
  }
  size_t active() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_.size();
  }

 private:
  void Leave(const std::string& peer) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_.find(peer);
    if (it != calls_.end() && --it->second == 0) calls_.erase(it);
  }
  const int64_t max_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, int64_t> calls_;  // peer -> calls in progress
};

// glibc keeps what a thread frees in that thread's arena, and gRPC runs calls on up to
// max_threads threads, so after a burst the resident size of an idle server stays tens of MiB
// above its footprint, by an amount that depends on which threads served what (the abuse test's
// idle server wandered by tens of MiB from round to round of the same load, with no growth
// trend; commit 0be555f has the figures). Once the server has been idle for a whole period after activity, malloc_trim gives
// the free pages of every arena back to the system: an idle server shows its real footprint,
// and a leak shows as growth instead of hiding in that noise. Busy servers are never trimmed.
class IdleTrimmer {
 public:
  explicit IdleTrimmer(const std::atomic<uint64_t>* activity, std::chrono::milliseconds period)
      : activity_(activity), period_(period) {
    thread_ = std::thread([this] { Run(); });  // std::system_error at startup: Start fails
  }
  ~IdleTrimmer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Run() {
    uint64_t seen = activity_->load();
    bool dirty = false;
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, period_, [this] { return stop_; })) {
      const uint64_t now = activity_->load();
      if (now != seen) {
        seen = now;
        dirty = true;
      } else if (dirty) {
#ifdef __GLIBC__
        malloc_trim(0);
#endif
        dirty = false;
      }
    }
  }
  const std::atomic<uint64_t>* activity_;
  const std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};
}  // namespace

struct Server::Service final : public inference::GRPCInferenceService::Service {
  InferenceCore* core = nullptr;
  std::string token;
  std::atomic<bool> ready{true};
  std::atomic<int64_t> open_streams{0};
  std::unique_ptr<ConnectionGate> connections;
  std::atomic<uint64_t> activity{0};  // inference calls and stream messages (IdleTrimmer)
  std::unique_ptr<IdleTrimmer> trimmer;
  std::mutex streams_mu;
  std::set<grpc::ServerContext*> streams;  // open ModelStreamInfer calls (CancelStreams)

  // A graceful shutdown waits for calls in progress, and a node's stream is one for as long as
  // the node runs, idle or not: so the streams are cancelled first. Their clients see CANCELLED
  // (retryable) and send what was unanswered again to the next server, as the node does.
  void CancelStreams() {
    std::lock_guard<std::mutex> lock(streams_mu);
    for (auto* ctx : streams) ctx->TryCancel();
  }

  // Requests without the token are UNAUTHENTICATED (health and reflection stay open, as
  // load balancers probe them without credentials).
  grpc::Status Authorize(grpc::ServerContext* ctx) {
    activity.fetch_add(1, std::memory_order_relaxed);
    if (token.empty()) return grpc::Status::OK;
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (it == md.end() || !ConstantTimeEqual(std::string(it->second.data(), it->second.size()), "Bearer " + token)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'");
    }
    return grpc::Status::OK;
  }

  InferenceCore::Clock::time_point DeadlineOf(grpc::ServerContext* ctx) const {
    const auto fallback = InferenceCore::Clock::now() + std::chrono::duration_cast<InferenceCore::Clock::duration>(
                                                            std::chrono::duration<double>(core->config().default_deadline_s));
    const auto d = ctx->deadline();  // system_clock; "infinite" when the client gave none
    const auto left = d - std::chrono::system_clock::now();
    if (left > std::chrono::hours(24 * 365)) return fallback;
    return std::min(fallback, InferenceCore::Clock::now() + std::chrono::duration_cast<InferenceCore::Clock::duration>(left));
  }

  grpc::Status ServerLive(grpc::ServerContext* ctx, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* r) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    r->set_live(true);
    return grpc::Status::OK;
  }
  grpc::Status ServerReady(grpc::ServerContext* ctx, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* r) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    r->set_ready(ready.load());
    return grpc::Status::OK;
  }
  grpc::Status ModelReady(grpc::ServerContext* ctx, const inference::ModelReadyRequest* q,
                          inference::ModelReadyResponse* r) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    r->set_ready(ready.load() && core->ModelReady(q->name(), q->version()));
    return grpc::Status::OK;
  }
  grpc::Status ServerMetadata(grpc::ServerContext* ctx, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* r) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    r->set_name("splitinfer");
    r->set_version(SPLITINFER_VERSION);
    r->add_extensions("splitinfer_frames");
    r->add_extensions("model_stream_infer");
    r->add_extensions("splitinfer_sessions");
    return grpc::Status::OK;
  }
  grpc::Status ModelMetadata(grpc::ServerContext* ctx, const inference::ModelMetadataRequest* q,
                             inference::ModelMetadataResponse* r) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    return ToGrpc(core->Metadata(*q, r));
  }
  grpc::Status ModelInfer(grpc::ServerContext* ctx, const inference::ModelInferRequest* q,
                          inference::ModelInferResponse* r) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    Result<ConnectionGate::Pass> pass = connections->Enter(ctx->peer());
    if (!pass.ok()) return ToGrpc(pass.status());
    return ToGrpc(core->Infer(*q, r, DeadlineOf(ctx)));
  }

  // Reads and writes run on two threads, so a node can keep many frames in flight: the reader
  // decodes and queues each request (Begin), the writer answers them in order (Finish). At
  // most kWindow requests wait for answers; beyond that the reader stops reading, which
  // pushes back on the client through gRPC's flow control.
  grpc::Status ModelStreamInfer(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>* stream) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    Result<ConnectionGate::Pass> pass = connections->Enter(ctx->peer());
    if (!pass.ok()) return ToGrpc(pass.status());
    // Each stream holds a writer thread: past max_streams a new one is refused, not started.
    struct StreamCount {
      std::atomic<int64_t>& n;
      ~StreamCount() { --n; }
    } count{open_streams};
    if (++open_streams > core->config().max_streams) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "too many open streams (max_streams " + std::to_string(core->config().max_streams) +
                              "): retry later, or raise max_streams in the server config");
    }
    struct Registered {
      Service* service;
      grpc::ServerContext* ctx;
      Registered(Service* s, grpc::ServerContext* c) : service(s), ctx(c) {
        std::lock_guard<std::mutex> lock(service->streams_mu);
        service->streams.insert(ctx);
      }
      ~Registered() {
        std::lock_guard<std::mutex> lock(service->streams_mu);
        service->streams.erase(ctx);
      }
    } registered(this, ctx);
    constexpr size_t kWindow = 64;
    struct Slot {
      std::shared_ptr<InferenceCore::Pending> pending;
      Status error;
      std::string id, model;
    };
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Slot> slots;
    bool reading_done = false;
    std::thread writer;
    try {
      writer = std::thread([&] {
      for (;;) {
        Slot slot;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return reading_done || !slots.empty(); });
          if (slots.empty()) return;
          slot = std::move(slots.front());
          slots.pop_front();
        }
        cv.notify_all();
        inference::ModelStreamInferResponse out;
        Status s = slot.error;
        if (s.ok()) s = core->Guarded(slot.id, [&] { return core->Finish(*slot.pending, out.mutable_infer_response()); });
        core->Count(slot.model, s);
        if (!s.ok()) {
          out.Clear();
          out.set_error_message(ToGrpc(s).error_message());
          out.mutable_infer_response()->set_id(slot.id);
          out.mutable_infer_response()->set_model_name(slot.model);
        }
        slot.pending.reset();  // release the in-flight slots before the (possibly slow) write
        stream->Write(out);    // a failed write means the client left; keep draining
      }
      });
    } catch (const std::system_error& e) {  // no thread to be had: refuse this stream, live on
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, std::string("cannot start a stream: ") + e.what());
    }
    inference::ModelInferRequest q;
    InferenceCore::StreamState state;  // the stream's session (reader thread only)
    while (stream->Read(&q)) {
      activity.fetch_add(1, std::memory_order_relaxed);
      Slot slot;
      slot.id = q.id();
      slot.model = q.model_name().empty() ? state.model_name : q.model_name();
      slot.error = core->Guarded(q.id(), [&]() -> Status {
        SI_ASSIGN_OR_RETURN(slot.pending, core->Begin(q, DeadlineOf(ctx), &state));
        return Status::Ok();
      });
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return slots.size() < kWindow; });
      slots.push_back(std::move(slot));
      lock.unlock();
      cv.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      reading_done = true;
    }
    cv.notify_all();
    writer.join();
    return grpc::Status::OK;
  }
};

Result<std::unique_ptr<Server>> Server::Start(const ServerConfig& config) {
  google::protobuf::SetLogHandler(&RateLimitedProtobufLog);
  // The same bounds as the YAML's, for a config built in code (gRPC takes an int).
  if (config.max_message_bytes < 1024 || config.max_message_bytes > 2147483647) {
    return InvalidArgument("max_message_bytes = " + std::to_string(config.max_message_bytes) +
                           " is outside 1024..2147483647");
  }
  if (!(config.default_deadline_s > 0)) return InvalidArgument("default_deadline_s must be > 0");
  if (!config.token.empty() && config.tls_cert.empty() && !config.insecure_token) {
    return FailedPrecondition(
        "a bearer token without TLS crosses the network in plain text: give tls_cert and tls_key, or "
        "insecure_token: true (serve --insecure-token) on a network you trust");
  }
  if (config.malloc_arenas < 0 || config.malloc_arenas > 1024) {
    return InvalidArgument("malloc_arenas = " + std::to_string(config.malloc_arenas) + " is outside 0..1024");
  }
#ifdef __GLIBC__
  // gRPC serves calls on up to max_threads threads and glibc gives threads up to 8 arenas per
  // core, each keeping what its threads freed: with glibc's default the abuse test's idle server
  // wandered by tens of MiB from round to round of the same load, with 4 arenas by about ten
  // (tests/runtime/abuse_test.sh; commit 0be555f has the figures). Set before the pipelines load, so
  // that every thread the server starts shares the same few arenas.
  if (config.malloc_arenas > 0) mallopt(M_ARENA_MAX, config.malloc_arenas);
#endif
  std::unique_ptr<Server> s(new Server());
  SI_ASSIGN_OR_RETURN(s->metrics_, Metrics::Create(config.metrics_listen));
  SI_ASSIGN_OR_RETURN(s->core_, InferenceCore::Create(config, s->metrics_.get()));
  s->service_ = std::make_unique<Service>();
  s->service_->core = s->core_.get();
  s->service_->token = config.token;
  s->service_->connections = std::make_unique<ConnectionGate>(config.max_connections);
  try {
    s->service_->trimmer = std::make_unique<IdleTrimmer>(&s->service_->activity, std::chrono::milliseconds(1000));
  } catch (const std::system_error& e) {
    return ResourceExhausted(std::string("cannot start the server's idle-trim thread: ") + e.what());
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!config.tls_cert.empty()) {
    SI_ASSIGN_OR_RETURN(auto cert, ReadTextFile(config.tls_cert, "TLS certificate"));
    SI_ASSIGN_OR_RETURN(auto key, ReadTextFile(config.tls_key, "TLS key"));
    // With tls_client_ca, a client without a certificate signed by it cannot even connect.
    grpc::SslServerCredentialsOptions opts(config.tls_client_ca.empty()
                                               ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                               : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    if (!config.tls_client_ca.empty()) {
      SI_ASSIGN_OR_RETURN(opts.pem_root_certs, ReadTextFile(config.tls_client_ca, "TLS client CA"));
    }
    opts.pem_key_cert_pairs.push_back({key, cert});
    creds = grpc::SslServerCredentials(opts);
  }
  builder.AddListeningPort(config.listen, creds, &s->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(64 << 20);
  // gRPC's own bounds: threads for calls (beyond them a call is RESOURCE_EXHAUSTED), keepalive
  // pings that find dead peers, a floor on how often a client may ping (more often: GOAWAY), and
  // idle connections closed, so that a client cannot hold threads or connections for free.
  grpc::ResourceQuota quota("splitinfer-serve");
  quota.SetMaxThreads(config.max_threads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return IoError("cannot listen on " + config.listen + " (in use, or not a HOST:PORT this machine has)");
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  return s;
}

Server::~Server() {
  if (server_) Shutdown(0);
}

void Server::Shutdown(double grace_s) {
  if (!server_) return;
  service_->ready = false;
  server_->GetHealthCheckService()->SetServingStatus(false);
  service_->CancelStreams();
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(grace_s)));
  server_->Wait();
  server_.reset();
}

void Server::Wait() {
  if (server_) server_->Wait();
}

}  // namespace splitinfer::runtime
