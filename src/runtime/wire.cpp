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
