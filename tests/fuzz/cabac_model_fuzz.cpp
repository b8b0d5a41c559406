// libFuzzer target: a cabac-trained context model file (src/codec/lossless/cabac.h), as a node or
// a server loads it beside a pipeline. A file is not a frame: it is read once at start-up, but a
// hostile or corrupt one must still be refused cleanly.
//
// CabacModel::Parse must return kDataLoss or a model; a parsed model must serialise back to
// exactly the input (every field has one encoding), and, when its geometry is small, must code
// a pseudo-random map of that geometry and decode it back unchanged. Each input also runs with
// its FNV-1a checksum corrected, so that mutations reach the field checks behind it.
#include <cstdint>
#include <cstring>
#include <vector>

#include "codec/lossless/cabac.h"
#include "codec/lossless/lossless.h"
#include "fuzz_common.h"
#include "fuzz_fail.h"

namespace {

using namespace splitinfer;
using namespace splitinfer::codec;

[[noreturn]] void Fail(const char* what, const Status& s) { splitinfer_fuzz::Fail("cabac_model_fuzz", what, s); }

void CheckModel(const uint8_t* data, size_t size) {
  Result<CabacModel> model = CabacModel::Parse(data, size);
  if (!model.ok()) {
    if (model.status().code() != ErrorCode::kDataLoss) Fail("not DATA_LOSS", model.status());
    if (model.status().message().empty()) Fail("an error without a message", model.status());
    return;
  }
  const std::vector<uint8_t> again = model->Serialize();
  if (again.size() != size || std::memcmp(again.data(), data, size) != 0) {
    Fail("a parsed model serialises to other bytes", Status::Ok());
  }
  const SymbolGeometry& g = model->geometry();
  if (g.count() == 0 || g.count() > (size_t{1} << 14)) return;
  std::vector<uint8_t> symbols(g.count());
  uint32_t x = static_cast<uint32_t>(size) * 2654435761u + 1;
  for (auto& s : symbols) {
    x = x * 1664525u + 1013904223u;
    s = static_cast<uint8_t>((x >> 24) & ((1u << g.bits) - 1)) * ((x >> 20) & 1);  // half zeros
  }
  CoderOptions options;
  options.cabac_model = &*model;
  Result<std::vector<uint8_t>> coded = EncodeSymbols(CoderId::kCabacTrained, symbols.data(), g, options);
  if (!coded.ok()) Fail("a parsed model does not encode its own geometry", coded.status());
  std::vector<uint8_t> back(g.count());
  const Status d = DecodeSymbols(CoderId::kCabacTrained, coded->data(), coded->size(), g, options, back.data());
  if (!d.ok()) Fail("a parsed model does not decode what it encoded", d);
  if (back != symbols) Fail("round trip through a parsed model changed the symbols", Status::Ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckModel(data, size);
  if (size >= 8) {
    std::vector<uint8_t> fixed(data, data + size);
    splitinfer_fuzz::ResealCabacModel(fixed);
    CheckModel(fixed.data(), fixed.size());
  }
  return 0;
}
