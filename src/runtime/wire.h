// runtime/wire: splitinfer's use of the Open Inference Protocol (proto/inference.proto), shared
// by the server, the node and the tests. No LibTorch. docs/wire_protocol.md is the reference.
//
//   node --ModelMetadata--> server        handshake: protocol, frame version, codec, split, shape
//   node --ModelInfer{frame: BYTES[n]}--> server --> {scores: FP32[n, classes], classes: BYTES[n, k]}
//
// Status codes: a malformed request or frame is INVALID_ARGUMENT, a frame for another pipeline
// or a protocol/version mismatch FAILED_PRECONDITION, an unknown model NOT_FOUND, a full server
// or an over-limit request RESOURCE_EXHAUSTED; each with a message naming what and what to do.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/security/credentials.h>
#include <grpcpp/support/status.h>

#include "core/status.h"
#include "runtime/client_tls.h"
#include "runtime/proto/inference.pb.h"

namespace splitinfer::runtime {

inline constexpr char kProtocol[] = "splitinfer";
inline constexpr int64_t kProtocolVersion = 1;
inline constexpr char kPlatform[] = "splitinfer_libtorch";

// Input and output tensor names.
inline constexpr char kInputFrame[] = "frame";         // BYTES [n]: one splitinfer frame per element
inline constexpr char kInputImagePng[] = "image_png";  // BYTES [n]: one PNG image per element
inline constexpr char kInputImageJpeg[] = "image_jpeg";  // BYTES [n]: one JPEG image per element
inline constexpr char kInputImage[] = "image";         // UINT8 (0..255) or FP32 (0..1) [n, C, H, W] or [C, H, W]
inline constexpr char kOutputScores[] = "scores";      // FP32 [n, classes]: softmax probabilities
inline constexpr char kOutputClasses[] = "classes";    // BYTES [n, k]: "score:index:label", best first
// A detector answers m boxes over the request's n images instead (docs/wire_protocol.md,
// "Detections"): boxes FP32 [m, 4] (x0, y0, x1, y1 in the model input's pixels), scores FP32 [m],
// classes INT32 [m] (class index), counts INT32 [n] (each image's boxes, in order: always sent).
inline constexpr char kOutputBoxes[] = "boxes";
inline constexpr char kOutputCounts[] = "counts";

// Parameter keys (ModelMetadataResponse.parameters, ModelInferRequest/Response.parameters).
namespace param {
inline constexpr char kProtocol[] = "protocol";                  // string "splitinfer"
inline constexpr char kProtocolVersion[] = "protocol_version";   // int64
inline constexpr char kFrameVersion[] = "frame_version";         // int64 (docs/bitstream_format.md)
inline constexpr char kCodec[] = "codec";                        // string: none | lzma | zstd | cabac
inline constexpr char kModel[] = "model";                        // string: the network (zoo name)
inline constexpr char kSplit[] = "split";                        // string: split point name
inline constexpr char kPipelineId[] = "pipeline_id";             // int64: the frames' pipeline id
inline constexpr char kFeatureShape[] = "feature_shape";         // string "64x14x14": what is quantized
inline constexpr char kBits[] = "bits";                          // int64
inline constexpr char kCabacModel[] = "cabac_model";             // string: the cabac-trained model's
                                                                 // checksum (8 hex digits); absent without one
inline constexpr char kTopK[] = "top_k";                         // request: int64, entries in "classes"
inline constexpr char kTimings[] = "timings";                    // request: bool, the stage breakdown below
inline constexpr char kReply[] = "reply";                        // request: string "full" (default) | "top1"
inline constexpr char kSessions[] = "sessions";                  // metadata: bool, session frames on streams
inline constexpr char kTask[] = "task";                          // metadata: string classify | detect
// A detector's request: the post-processing (detect/yolo.h); the metadata gives the defaults.
inline constexpr char kScoreThreshold[] = "score_threshold";     // double in [0, 1]
inline constexpr char kIouThreshold[] = "iou_threshold";         // double in (0, 1]: per-class NMS
inline constexpr char kMaxDetections[] = "max_detections";       // int64 >= 1, per image
// Response timings (microseconds, as measured inside the server for this request). server_us is
// in every reply; the rest only when the request sets "timings" (they cost ~70 bytes a reply).
inline constexpr char kServerUs[] = "server_us";    // receipt to reply
inline constexpr char kDecodeUs[] = "decode_us";    // frame -> features
inline constexpr char kQueueUs[] = "queue_us";      // waiting for a batch
inline constexpr char kComputeUs[] = "compute_us";  // the batch's server-side network
inline constexpr char kBatchSize[] = "batch_size";  // how many images that batch held
}  // namespace param

// Pinned ErrorCode -> gRPC status code (the table in docs/wire_protocol.md), and back.
grpc::StatusCode GrpcCode(ErrorCode code);
const char* GrpcCodeName(grpc::StatusCode code);  // "INVALID_ARGUMENT", as in the gRPC docs
grpc::Status ToGrpc(const Status& status);
Status FromGrpc(const grpc::Status& status);

// The start of the RESOURCE_EXHAUSTED message of a server at its in-flight limit; the other
// RESOURCE_EXHAUSTED causes (a request above a size limit) fail the same way when resent.
inline constexpr char kServerBusy[] = "server busy";

// Whether a client should resend a call that failed with `status`. Inference is a pure function
// of the request, so resending is safe; the question is whether it can succeed:
//   UNAVAILABLE         no server (not yet up, or restarting)
//   RESOURCE_EXHAUSTED  only kServerBusy: the server's in-flight limit, which clears
//   CANCELLED           a client that never cancels its own calls (the node) gets it when the
//                       server drops a call it accepted but had not started, which a graceful
//                       shutdown does to calls that arrive while it drains
bool Retryable(const grpc::Status& status);

using Params = google::protobuf::Map<std::string, inference::InferParameter>;
std::optional<int64_t> IntParam(const Params& params, const std::string& key);
std::optional<std::string> StringParam(const Params& params, const std::string& key);
void SetParam(Params& params, const std::string& key, int64_t value);
void SetParam(Params& params, const std::string& key, const std::string& value);
void SetParam(Params& params, const std::string& key, bool value);
std::optional<bool> BoolParam(const Params& params, const std::string& key);
// A double_param (an int64_param is taken too: a client may write 1 for 1.0).
std::optional<double> DoubleParam(const Params& params, const std::string& key);
void SetParam(Params& params, const std::string& key, double value);

// The compact reply (request parameter "reply": "top1"; docs/wire_protocol.md, "Sessions"): a
// response whose only field is raw_output_contents[0] = server_us (varint), then per image the
// best class (varint) and its probability (uint16 little-endian, round(p x 65535)).
struct Top1 {
  int64_t index = 0;
  float score = 0;  // 0..1, in steps of 1/65535
};
std::string EncodeTop1Reply(const std::vector<Top1>& rows, int64_t server_us);
// DATA_LOSS naming what is malformed (a varint that runs off the end or is over 63 bits, a
// score cut off, no rows).
Result<std::vector<Top1>> DecodeTop1Reply(const std::string& raw, int64_t* server_us);

// A detector's reply (kOutputBoxes above). One box: corners in the model input's pixels.
struct WireBox {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0, score = 0;
  int32_t label = 0;
};
// Appends the outputs (boxes, scores, classes as asked; counts always) for `images`, in order.
void AddDetectionOutputs(const std::vector<std::vector<WireBox>>& images, bool boxes, bool scores, bool classes,
                         inference::ModelInferResponse* response);
// The boxes of each of `images` images back from a reply with all four outputs. DATA_LOSS naming
// what is wrong: an output missing or of another type or shape, bytes that disagree with the
// shape, counts that do not add up, a non-finite value, a class outside 0..num_classes-1.
Result<std::vector<std::vector<WireBox>>> ReadDetectionOutputs(const inference::ModelInferResponse& response,
                                                               int64_t images, int64_t num_classes);

struct RequestLimits {
  uint64_t max_elements_per_input = uint64_t{1} << 24;  // image values or frames in one input
  uint64_t max_batch = 256;                             // images in one request
};

// The elements of BYTES input `index`, from contents.bytes_contents or raw_input_contents
// (4-byte little-endian length before each element); views into `request`. Checks the element
// count against the shape and the limits before building the list.
Result<std::vector<std::string_view>> BytesInput(const inference::ModelInferRequest& request, int index,
                                                 const RequestLimits& limits);

// A numeric input (UINT8 or FP32) as raw little-endian bytes of exactly prod(shape) elements,
// from raw_input_contents or the typed contents (copied into `storage`).
struct NumericInput {
  std::string datatype;
  std::vector<int64_t> shape;
  std::string_view bytes;
};
Result<NumericInput> NumericInputAt(const inference::ModelInferRequest& request, int index,
                                    const RequestLimits& limits, std::string& storage);

// PNG width, height and channels from the IHDR chunk, without decoding: the server checks them
// against the model's input before it lets a decoder allocate anything.
struct PngInfo {
  uint32_t width = 0, height = 0;
  int channels = 0;
  int bit_depth = 0;
};
Result<PngInfo> PeekPng(std::string_view bytes);

// "64x14x14"
std::string ShapeString(const std::vector<int64_t>& shape);

// Credentials for a channel: insecure without `ca`. INVALID_ARGUMENT for a cert without a key
// (or the reverse) or a client certificate without `ca`; NOT_FOUND naming a missing file.
Result<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(const ClientTls& tls);

}  // namespace splitinfer::runtime
