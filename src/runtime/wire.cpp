#include "runtime/wire.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include <grpcpp/security/credentials.h>

#include "core/bytes.h"
#include "core/system.h"

namespace splitinfer::runtime {

grpc::StatusCode GrpcCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return grpc::StatusCode::OK;
    case ErrorCode::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case ErrorCode::kFailedPrecondition:
    case ErrorCode::kMismatch: return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorCode::kUnimplemented: return grpc::StatusCode::UNIMPLEMENTED;
    case ErrorCode::kOutOfRange:
    case ErrorCode::kResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case ErrorCode::kDeadlineExceeded: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case ErrorCode::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case ErrorCode::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    case ErrorCode::kInternal:
    case ErrorCode::kIo: return grpc::StatusCode::INTERNAL;
    case ErrorCode::kDataLoss:
    case ErrorCode::kInvalidArgument:
    default: return grpc::StatusCode::INVALID_ARGUMENT;  // every kFrame* code: the request is bad
  }
}

const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(GrpcCode(s.code()), std::string(ErrorCodeName(s.code())) + ": " + s.message());
}

Status FromGrpc(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK: return Status::Ok();
    case grpc::StatusCode::INVALID_ARGUMENT: return InvalidArgument(s.error_message());
    case grpc::StatusCode::NOT_FOUND: return NotFound(s.error_message());
    case grpc::StatusCode::FAILED_PRECONDITION: return FailedPrecondition(s.error_message());
    case grpc::StatusCode::UNIMPLEMENTED: return Unimplemented(s.error_message());
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return ResourceExhausted(s.error_message());
    case grpc::StatusCode::DEADLINE_EXCEEDED: return DeadlineExceeded(s.error_message());
    case grpc::StatusCode::UNAVAILABLE: return Unavailable(s.error_message());
    case grpc::StatusCode::UNAUTHENTICATED: return Unauthenticated(s.error_message());
    default:
      return IoError("gRPC " + std::to_string(static_cast<int>(s.error_code())) + ": " + s.error_message());
  }
}

bool Retryable(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
      return true;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return s.error_message().find(kServerBusy) != std::string::npos;
    default:
      return false;
  }
}

std::optional<bool> BoolParam(const Params& params, const std::string& key) {
  auto it = params.find(key);
  if (it == params.end() || it->second.parameter_choice_case() != inference::InferParameter::kBoolParam) {
    return std::nullopt;
  }
  return it->second.bool_param();
}

void SetParam(Params& params, const std::string& key, bool value) { params[key].set_bool_param(value); }

std::optional<int64_t> IntParam(const Params& params, const std::string& key) {
  auto it = params.find(key);
  if (it == params.end() || it->second.parameter_choice_case() != inference::InferParameter::kInt64Param) {
    return std::nullopt;
  }
  return it->second.int64_param();
}

std::optional<std::string> StringParam(const Params& params, const std::string& key) {
  auto it = params.find(key);
  if (it == params.end() || it->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
    return std::nullopt;
  }
  return it->second.string_param();
}

void SetParam(Params& params, const std::string& key, int64_t value) { params[key].set_int64_param(value); }
void SetParam(Params& params, const std::string& key, double value) { params[key].set_double_param(value); }

std::optional<double> DoubleParam(const Params& params, const std::string& key) {
  auto it = params.find(key);
  if (it == params.end()) return std::nullopt;
  if (it->second.parameter_choice_case() == inference::InferParameter::kDoubleParam) return it->second.double_param();
  if (it->second.parameter_choice_case() == inference::InferParameter::kInt64Param) {
    return static_cast<double>(it->second.int64_param());
  }
  return std::nullopt;
}
void SetParam(Params& params, const std::string& key, const std::string& value) {
  params[key].set_string_param(value);
}

namespace {

// prod(shape) with every dimension >= 0 and the product bounded, or an error naming the input.
Result<uint64_t> ElementsOf(const inference::ModelInferRequest::InferInputTensor& in, uint64_t limit) {
  if (in.shape_size() == 0) return InvalidArgument("input '" + in.name() + "' has no shape; give e.g. [1]");
  uint64_t n = 1;
  for (int64_t d : in.shape()) {
    if (d < 0) return InvalidArgument("input '" + in.name() + "' has a negative dimension " + std::to_string(d));
    if (d != 0 && n > limit / static_cast<uint64_t>(d)) {
      return ResourceExhausted("input '" + in.name() + "' has more than " + std::to_string(limit) +
                        " elements (the server's limit); send fewer images per request");
    }
    n *= static_cast<uint64_t>(d);
  }
  if (n > limit) {
    return ResourceExhausted("input '" + in.name() + "' has " + std::to_string(n) + " elements, above the server's limit of " +
                      std::to_string(limit) + "; send fewer images per request");
  }
  return n;
}

bool UsesRaw(const inference::ModelInferRequest& r) { return r.raw_input_contents_size() > 0; }

Status CheckRawCount(const inference::ModelInferRequest& r) {
  if (UsesRaw(r) && r.raw_input_contents_size() != r.inputs_size()) {
    return InvalidArgument("raw_input_contents has " + std::to_string(r.raw_input_contents_size()) +
                           " entries for " + std::to_string(r.inputs_size()) + " inputs; give one per input");
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string_view>> BytesInput(const inference::ModelInferRequest& r, int index,
                                                 const RequestLimits& limits) {
  const auto& in = r.inputs(index);
  if (in.datatype() != "BYTES") {
    return InvalidArgument("input '" + in.name() + "' must be BYTES, not '" + in.datatype() + "'");
  }
  SI_ASSIGN_OR_RETURN(uint64_t n, ElementsOf(in, limits.max_batch));
  SI_RETURN_IF_ERROR(CheckRawCount(r));
  std::vector<std::string_view> out;
  if (!UsesRaw(r)) {
    if (static_cast<uint64_t>(in.contents().bytes_contents_size()) != n) {
      return InvalidArgument("input '" + in.name() + "' has shape of " + std::to_string(n) + " elements but " +
                             std::to_string(in.contents().bytes_contents_size()) + " in contents.bytes_contents");
    }
    out.reserve(n);
    for (const auto& b : in.contents().bytes_contents()) out.emplace_back(b);
    return out;
  }
  if (in.has_contents()) {
    return InvalidArgument("input '" + in.name() + "' has both contents and raw_input_contents; use one");
  }
  const std::string& raw = r.raw_input_contents(index);
  size_t pos = 0;
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    if (raw.size() - pos < 4) {
      return InvalidArgument("raw BYTES input '" + in.name() + "' ends inside the length of element " +
                             std::to_string(i) + " (each element is a 4-byte little-endian length, then the bytes)");
    }
    const auto* p = reinterpret_cast<const uint8_t*>(raw.data() + pos);
    const uint32_t len = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    pos += 4;
    if (len > raw.size() - pos) {
      return InvalidArgument("raw BYTES input '" + in.name() + "' element " + std::to_string(i) + " declares " +
                             std::to_string(len) + " bytes but only " + std::to_string(raw.size() - pos) + " remain");
    }
    out.emplace_back(raw.data() + pos, len);
    pos += len;
  }
  if (pos != raw.size()) {
    return InvalidArgument("raw BYTES input '" + in.name() + "' has " + std::to_string(raw.size() - pos) +
                           " bytes after its " + std::to_string(n) + " elements");
  }
  return out;
}

Result<NumericInput> NumericInputAt(const inference::ModelInferRequest& r, int index, const RequestLimits& limits,
                                    std::string& storage) {
  const auto& in = r.inputs(index);
  size_t elem = 0;
  if (in.datatype() == "UINT8") elem = 1;
  else if (in.datatype() == "FP32") elem = 4;
  else return InvalidArgument("input '" + in.name() + "' must be UINT8 or FP32, not '" + in.datatype() + "'");
  SI_ASSIGN_OR_RETURN(uint64_t n, ElementsOf(in, limits.max_elements_per_input));
  SI_RETURN_IF_ERROR(CheckRawCount(r));
  NumericInput out;
  out.datatype = in.datatype();
  out.shape.assign(in.shape().begin(), in.shape().end());
  if (UsesRaw(r)) {
    if (in.has_contents()) {
      return InvalidArgument("input '" + in.name() + "' has both contents and raw_input_contents; use one");
    }
    const std::string& raw = r.raw_input_contents(index);
    if (raw.size() != n * elem) {
      return InvalidArgument("input '" + in.name() + "' has " + std::to_string(raw.size()) + " raw bytes; its shape " +
                             ShapeString(out.shape) + " of " + in.datatype() + " needs " + std::to_string(n * elem));
    }
    out.bytes = raw;
    return out;
  }
  const auto& c = in.contents();
  if (elem == 1) {
    if (static_cast<uint64_t>(c.uint_contents_size()) != n) {
      return InvalidArgument("input '" + in.name() + "' needs " + std::to_string(n) + " values in uint_contents, has " +
                             std::to_string(c.uint_contents_size()));
    }
    storage.resize(n);
    for (uint64_t i = 0; i < n; ++i) {
      const uint32_t v = c.uint_contents(static_cast<int>(i));
      if (v > 255) return InvalidArgument("input '" + in.name() + "' value " + std::to_string(v) + " is not a UINT8");
      storage[i] = static_cast<char>(v);
    }
  } else {
    if (static_cast<uint64_t>(c.fp32_contents_size()) != n) {
      return InvalidArgument("input '" + in.name() + "' needs " + std::to_string(n) + " values in fp32_contents, has " +
                             std::to_string(c.fp32_contents_size()));
    }
    storage.resize(n * 4);
    // n == 0 (a shape with a zero) leaves the repeated field without storage: data() is null,
    // and memcpy from null is undefined even for 0 bytes (found by request_fuzz).
    if (n > 0) std::memcpy(storage.data(), c.fp32_contents().data(), n * 4);
  }
  out.bytes = storage;
  return out;
}

Result<PngInfo> PeekPng(std::string_view b) {
  static const unsigned char kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 33 || std::memcmp(b.data(), kSig, 8) != 0) {
    return InvalidArgument("an image_png element is not a PNG file (" + std::to_string(b.size()) + " bytes)");
  }
  const auto* p = reinterpret_cast<const uint8_t*>(b.data());
  if (std::memcmp(p + 12, "IHDR", 4) != 0) return InvalidArgument("PNG without an IHDR chunk first");
  auto be32 = [&](size_t o) { return uint32_t{p[o]} << 24 | uint32_t{p[o + 1]} << 16 | uint32_t{p[o + 2]} << 8 | p[o + 3]; };
  PngInfo info;
  info.width = be32(16);
  info.height = be32(20);
  info.bit_depth = p[24];
  switch (p[25]) {  // colour type
    case 0: info.channels = 1; break;
    case 2: info.channels = 3; break;
    case 3: info.channels = 3; break;  // palette: decoded to RGB
    case 4: info.channels = 2; break;
    case 6: info.channels = 4; break;
    default: return InvalidArgument("PNG colour type " + std::to_string(p[25]) + " is not defined");
  }
  return info;
}

std::string EncodeTop1Reply(const std::vector<Top1>& rows, int64_t server_us) {
  std::vector<uint8_t> out;
  out.reserve(4 + rows.size() * 4);
  PutVarint(out, static_cast<uint64_t>(std::max<int64_t>(0, server_us)));
  for (const Top1& r : rows) {
    PutVarint(out, static_cast<uint64_t>(std::max<int64_t>(0, r.index)));
    const double p = std::min(1.0, std::max(0.0, static_cast<double>(r.score)));
    PutU16LE(out, static_cast<uint16_t>(std::lround(p * 65535.0)));
  }
  return std::string(out.begin(), out.end());
}

Result<std::vector<Top1>> DecodeTop1Reply(const std::string& raw, int64_t* server_us) {
  ByteReader r(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  uint64_t us = 0;
  if (!r.GetVarint(&us) || us > uint64_t{INT64_MAX}) {
    return DataLoss("top1 reply: server_us is not a varint of at most 63 bits (" + std::to_string(raw.size()) +
                    " bytes)");
  }
  std::vector<Top1> rows;
  while (r.remaining() > 0) {
    uint64_t index = 0;
    if (!r.GetVarint(&index) || index > uint64_t{INT64_MAX}) {
      return DataLoss("top1 reply: class of image " + std::to_string(rows.size()) + " is not a varint of at most 63 bits");
    }
    const uint8_t* score = nullptr;
    if (!r.GetSpan(2, &score)) {
      return DataLoss("top1 reply: the score of image " + std::to_string(rows.size()) + " is cut off");
    }
    rows.push_back({static_cast<int64_t>(index), static_cast<float>((score[0] | score[1] << 8) / 65535.0)});
  }
  if (rows.empty()) return DataLoss("top1 reply holds no image");
  *server_us = static_cast<int64_t>(us);
  return rows;
}

namespace {
template <typename T>
std::string RawOf(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
void AddOutput(const char* name, const char* datatype, std::vector<int64_t> shape, std::string raw,
               inference::ModelInferResponse* r) {
  auto* o = r->add_outputs();
  o->set_name(name);
  o->set_datatype(datatype);
  for (int64_t d : shape) o->add_shape(d);
  r->add_raw_output_contents(std::move(raw));
}
}  // namespace

void AddDetectionOutputs(const std::vector<std::vector<WireBox>>& images, bool boxes, bool scores, bool classes,
                         inference::ModelInferResponse* response) {
  std::vector<float> corners, values;
  std::vector<int32_t> labels, counts;
  for (const auto& image : images) {
    counts.push_back(static_cast<int32_t>(image.size()));
    for (const WireBox& b : image) {
      corners.insert(corners.end(), {b.x0, b.y0, b.x1, b.y1});
      values.push_back(b.score);
      labels.push_back(b.label);
    }
  }
  const auto m = static_cast<int64_t>(values.size());
  // Little-endian on the wire: the raw tensors are copied as the (little-endian) host lays them out.
  if (boxes) AddOutput(kOutputBoxes, "FP32", {m, 4}, RawOf(corners), response);
  if (scores) AddOutput(kOutputScores, "FP32", {m}, RawOf(values), response);
  if (classes) AddOutput(kOutputClasses, "INT32", {m}, RawOf(labels), response);
  AddOutput(kOutputCounts, "INT32", {static_cast<int64_t>(counts.size())}, RawOf(counts), response);
}

Result<std::vector<std::vector<WireBox>>> ReadDetectionOutputs(const inference::ModelInferResponse& r, int64_t images,
                                                               int64_t num_classes) {
  // Each output's raw bytes, checked against its datatype and shape.
  auto find = [&](const char* name, const char* datatype, size_t rank) -> Result<std::pair<const std::string*, std::vector<int64_t>>> {
    for (int i = 0; i < r.outputs_size(); ++i) {
      const auto& o = r.outputs(i);
      if (o.name() != name) continue;
      if (i >= r.raw_output_contents_size()) return DataLoss(std::string("the reply's '") + name + "' output has no raw contents");
      if (o.datatype() != datatype || static_cast<size_t>(o.shape_size()) != rank) {
        return DataLoss(std::string("the reply's '") + name + "' output is " + o.datatype() + " of rank " +
                        std::to_string(o.shape_size()) + "; a detector's is " + datatype + " of rank " + std::to_string(rank));
      }
      std::vector<int64_t> shape(o.shape().begin(), o.shape().end());
      uint64_t elements = 1;
      for (int64_t d : shape) {
        if (d < 0 || d > (int64_t{1} << 31)) return DataLoss(std::string("the reply's '") + name + "' output has a dimension of " + std::to_string(d));
        elements *= static_cast<uint64_t>(d);
      }
      if (r.raw_output_contents(i).size() != elements * 4) {
        return DataLoss(std::string("the reply's '") + name + "' output has " + std::to_string(r.raw_output_contents(i).size()) +
                        " bytes; its shape [" + ShapeString(shape) + "] needs " + std::to_string(elements * 4));
      }
      return std::make_pair(&r.raw_output_contents(i), shape);
    }
    return DataLoss(std::string("the reply has no '") + name + "' output (is the server's model a detector?)");
  };
  SI_ASSIGN_OR_RETURN(auto counts, find(kOutputCounts, "INT32", 1));
  SI_ASSIGN_OR_RETURN(auto boxes, find(kOutputBoxes, "FP32", 2));
  SI_ASSIGN_OR_RETURN(auto scores, find(kOutputScores, "FP32", 1));
  SI_ASSIGN_OR_RETURN(auto classes, find(kOutputClasses, "INT32", 1));
  if (counts.second[0] != images) {
    return DataLoss("the reply counts boxes for " + std::to_string(counts.second[0]) + " images; the request had " +
                    std::to_string(images));
  }
  const int64_t m = scores.second[0];
  if (boxes.second[0] != m || boxes.second[1] != 4 || classes.second[0] != m) {
    return DataLoss("the reply's boxes [" + ShapeString(boxes.second) + "], scores [" + ShapeString(scores.second) +
                    "] and classes [" + ShapeString(classes.second) + "] disagree");
  }
  auto at = [](const std::string* raw, int64_t i, auto zero) {
    decltype(zero) v;
    std::memcpy(&v, raw->data() + i * 4, 4);
    return v;
  };
  std::vector<std::vector<WireBox>> out(static_cast<size_t>(images));
  int64_t next = 0;
  for (int64_t k = 0; k < images; ++k) {
    const int32_t c = at(counts.first, k, int32_t{0});
    if (c < 0 || c > m - next) {
      return DataLoss("the reply's counts do not add up to its " + std::to_string(m) + " boxes (image " +
                      std::to_string(k) + " claims " + std::to_string(c) + ")");
    }
    for (int32_t j = 0; j < c; ++j, ++next) {
      WireBox b;
      b.x0 = at(boxes.first, 4 * next, 0.0f);
      b.y0 = at(boxes.first, 4 * next + 1, 0.0f);
      b.x1 = at(boxes.first, 4 * next + 2, 0.0f);
      b.y1 = at(boxes.first, 4 * next + 3, 0.0f);
      b.score = at(scores.first, next, 0.0f);
      b.label = at(classes.first, next, int32_t{0});
      if (!std::isfinite(b.x0) || !std::isfinite(b.y0) || !std::isfinite(b.x1) || !std::isfinite(b.y1) ||
          !std::isfinite(b.score)) {
        return DataLoss("box " + std::to_string(next) + " of the reply has a non-finite value");
      }
      if (b.label < 0 || b.label >= num_classes) {
        return DataLoss("box " + std::to_string(next) + " of the reply has class " + std::to_string(b.label) +
                        "; the model has " + std::to_string(num_classes));
      }
      out[static_cast<size_t>(k)].push_back(b);
    }
  }
  if (next != m) {
    return DataLoss("the reply's counts add up to " + std::to_string(next) + " boxes, not its " + std::to_string(m));
  }
  return out;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

Result<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(const ClientTls& tls) {
  if (tls.cert.empty() != tls.key.empty()) {
    return InvalidArgument("give the client certificate and its key together (--tls-cert and --tls-key)");
  }
  if (tls.ca.empty()) {
    if (!tls.cert.empty()) {
      return InvalidArgument("a client certificate needs TLS: give --tls-ca (the root certificate of the server's)");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions so;
  SI_ASSIGN_OR_RETURN(so.pem_root_certs, ReadTextFile(tls.ca, "TLS root certificate"));
  if (!tls.cert.empty()) {
    SI_ASSIGN_OR_RETURN(so.pem_cert_chain, ReadTextFile(tls.cert, "TLS client certificate"));
    SI_ASSIGN_OR_RETURN(so.pem_private_key, ReadTextFile(tls.key, "TLS client key"));
  }
  return grpc::SslCredentials(so);
}

}  // namespace splitinfer::runtime
