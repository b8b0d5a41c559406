// libFuzzer target: what the server does with a client's bytes before any model runs
// (src/runtime/wire.h, png.h). The input is a serialised ModelInferRequest (gRPC hands the
// server exactly that); protobuf parses it, then every input goes through BytesInput (frames and
// PNGs: contents or Triton's length-prefixed raw form) and NumericInputAt (UINT8/FP32 images,
// raw or typed), and every BYTES element through PeekPng and, when its header says 28x28 or
// smaller, DecodePng (and, where libturbojpeg is built in, PeekJpeg and DecodeJpeg up to 32x32:
// image_jpeg). Each must return a status or a result that keeps its promises: as many
// elements as the shape says, within the limits; numeric bytes exactly prod(shape) x the
// element size; a decoded PNG exactly the size asked for.
#include <cstdint>
#include <string>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "fuzz_fail.h"
#if SPLITINFER_FUZZ_JPEG
#include "runtime/jpeg.h"
#endif
#include "runtime/png.h"
#include "runtime/proto/inference.pb.h"
#include "runtime/wire.h"

namespace {

using namespace splitinfer;
using namespace splitinfer::runtime;

[[noreturn]] void Fail(const char* what, const Status& s) { splitinfer_fuzz::Fail("request_fuzz", what, s); }

void ExpectMessage(const Status& s) {
  if (!s.ok() && s.message().empty()) Fail("an error without a message", s);
}

// protobuf logs one ERROR line for every string field with invalid UTF-8 it parses; under the
// fuzzer that is most inputs, and the log would drown the run (and its disk). Silence it once,
// before the first input (a static initialiser also runs for the replay build).
const bool kProtobufQuiet = (google::protobuf::SetLogHandler(nullptr), true);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest q;
  if (!q.ParseFromArray(data, static_cast<int>(size))) return 0;
  RequestLimits limits;
  limits.max_elements_per_input = uint64_t{1} << 16;  // a small server, so each input runs in microseconds
  limits.max_batch = 64;
  for (int i = 0; i < q.inputs_size() && i < 4; ++i) {
    uint64_t declared = 1;
    bool overflow = false;
    for (int64_t d : q.inputs(i).shape()) {
      if (d < 0 || (d > 0 && declared > UINT64_MAX / static_cast<uint64_t>(d))) overflow = true;
      else declared *= static_cast<uint64_t>(d);
    }
    auto elements = BytesInput(q, i, limits);
    ExpectMessage(elements.status());
    if (elements.ok()) {
      if (overflow || elements->size() != declared) Fail("BytesInput: element count differs from the shape", Status::Ok());
      if (elements->size() > limits.max_elements_per_input) Fail("BytesInput: over the element limit", Status::Ok());
      for (std::string_view e : *elements) {
#if SPLITINFER_FUZZ_JPEG
        // image_jpeg: the header first, then pixels only for a small image of the size it states.
        auto jpeg = PeekJpeg(e);
        ExpectMessage(jpeg.status());
        if (jpeg.ok() && jpeg->width > 0 && jpeg->height > 0 && jpeg->width <= 32 && jpeg->height <= 32) {
          for (int channels : {1, 3}) {
            auto px = DecodeJpeg(e, channels, jpeg->height, jpeg->width);
            ExpectMessage(px.status());
            if (px.ok() && px->size() != static_cast<size_t>(jpeg->width) * jpeg->height * channels) {
              Fail("DecodeJpeg: pixel count differs from the size asked for", Status::Ok());
            }
          }
        }
#endif
        auto info = PeekPng(e);
        ExpectMessage(info.status());
        if (!info.ok() || info->width == 0 || info->height == 0 || info->width > 28 || info->height > 28) continue;
        for (int channels : {1, 3}) {
          auto px = DecodePng(e, channels, static_cast<int>(info->height), static_cast<int>(info->width));
          ExpectMessage(px.status());
          if (px.ok() && px->size() != size_t{info->width} * info->height * static_cast<size_t>(channels)) {
            Fail("DecodePng: pixel count differs from the size asked for", Status::Ok());
          }
        }
      }
    }
    std::string storage;
    auto numeric = NumericInputAt(q, i, limits, storage);
    ExpectMessage(numeric.status());
    if (numeric.ok()) {
      uint64_t n = 1;
      for (int64_t d : numeric->shape) n *= static_cast<uint64_t>(d);
      const uint64_t element = numeric->datatype == "FP32" ? 4 : 1;
      if (numeric->datatype != "FP32" && numeric->datatype != "UINT8") Fail("NumericInputAt: other datatype", Status::Ok());
      if (n > limits.max_elements_per_input || numeric->bytes.size() != n * element) {
        Fail("NumericInputAt: bytes differ from the shape", Status::Ok());
      }
    }
  }
  return 0;
}
