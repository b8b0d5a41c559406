// codec/lossless: coder names, argument checks and dispatch; the `none` coder (plain packing).
// The individual coders live in lzma_coder.cpp, zstd_coder.cpp and cabac.cpp.
#include "codec/lossless/lossless.h"

#include <cmath>
#include <string>

#include "codec/lossless/cabac.h"
#include "codec/lossless/coders.h"
#include "codec/pack/pack.h"

namespace splitinfer::codec {
namespace {

constexpr int kDefaultLzmaPreset = 6;
constexpr int kDefaultZstdLevel = 3;
constexpr int kMaxZstdLevel = 19;

Status PayloadError(const std::string& m) { return Status(ErrorCode::kFramePayload, m); }

Result<int> LevelFor(CoderId coder, int level) {
  if (coder == CoderId::kLzma) {
    if (level == -1) return kDefaultLzmaPreset;
    if (level < 0 || level > 9) return InvalidArgument("lzma preset " + std::to_string(level) + " is outside 0..9");
  } else if (coder == CoderId::kZstd) {
    if (level == -1) return kDefaultZstdLevel;
    if (level < 1 || level > kMaxZstdLevel) {
      return InvalidArgument("zstd level " + std::to_string(level) + " is outside 1.." + std::to_string(kMaxZstdLevel));
    }
  }
  return level;
}

// kCabacTrained needs a model trained for exactly this geometry; the other coders take none.
// Both cabac coders need a layout this build knows.
Status CheckModel(CoderId coder, const SymbolGeometry& g, const CoderOptions& options) {
  if (coder != CoderId::kCabac && coder != CoderId::kCabacTrained) return Status::Ok();
  if (options.cabac_layout != kCabacLayoutPlain && options.cabac_layout != kCabacLayoutGroups) {
    return InvalidArgument("cabac layout " + std::to_string(options.cabac_layout) + " is neither " +
                           std::to_string(kCabacLayoutPlain) + " (frame version 1) nor " +
                           std::to_string(kCabacLayoutGroups) + " (frame version 2)");
  }
  if (coder != CoderId::kCabacTrained) return Status::Ok();
  const CabacModel* model = options.cabac_model;
  if (model == nullptr) return FailedPrecondition("coder cabac-trained needs a CabacModel (CoderOptions::cabac_model)");
  const SymbolGeometry& m = model->geometry();
  if (m.channels != g.channels || m.height != g.height || m.width != g.width || m.bits != g.bits) {
    return FailedPrecondition("cabac model was trained for " + std::to_string(m.channels) + "x" +
                              std::to_string(m.height) + "x" + std::to_string(m.width) + " at " +
                              std::to_string(m.bits) + " bits, not " + std::to_string(g.channels) + "x" +
                              std::to_string(g.height) + "x" + std::to_string(g.width) + " at " +
                              std::to_string(g.bits) + " bits");
  }
  return Status::Ok();
}

bool KnownCoder(CoderId coder) { return static_cast<int>(coder) <= kMaxCoderId; }  // uint8_t: never negative

// Packed payloads must be canonical: the bits after the last symbol are zero.
Status CheckPadding(const uint8_t* packed, size_t count, int bits, const char* coder) {
  const size_t used_bits = count * static_cast<size_t>(bits);
  if (used_bits % 8 == 0) return Status::Ok();
  const uint8_t last = packed[used_bits / 8];
  if (last >> (used_bits % 8) != 0) return PayloadError(std::string(coder) + " payload has nonzero padding bits");
  return Status::Ok();
}

}  // namespace

namespace internal {

Status ValidateGeometry(const SymbolGeometry& g) {
  if (g.bits < 1 || g.bits > 8) return InvalidArgument("bit width " + std::to_string(g.bits) + " is outside 1..8");
  const uint64_t plane = uint64_t{g.height} * g.width;  // < 2^64: both factors < 2^32
  if (plane != 0 && g.channels > kMaxSymbols / plane) {
    return InvalidArgument("geometry " + std::to_string(g.channels) + "x" + std::to_string(g.height) + "x" +
                           std::to_string(g.width) + " has more than 2^40 symbols");
  }
  return Status::Ok();
}

}  // namespace internal

const char* CoderName(CoderId id) {
  switch (id) {
    case CoderId::kNone: return "none";
    case CoderId::kLzma: return "lzma";
    case CoderId::kZstd: return "zstd";
    case CoderId::kCabac: return "cabac";
    case CoderId::kCabacTrained: return "cabac-trained";
  }
  return "unknown";
}

bool CoderBuiltIn(CoderId id) { return id != CoderId::kLzma || internal::LzmaBuiltIn(); }

Result<CoderId> CoderFromName(const std::string& name) {
  std::string known;
  for (int i = 0; i <= kMaxCoderId; ++i) {
    const CoderId id = static_cast<CoderId>(i);
    if (name == CoderName(id)) return id;
    known += (i ? ", " : "") + std::string(CoderName(id));
  }
  return InvalidArgument("unknown coder '" + name + "' (known: " + known + ")");
}

Result<std::vector<uint8_t>> EncodeSymbols(CoderId coder, const uint8_t* symbols, const SymbolGeometry& geometry,
                                           const CoderOptions& options) {
  if (!KnownCoder(coder)) return InvalidArgument("unknown coder id " + std::to_string(static_cast<int>(coder)));
  SI_RETURN_IF_ERROR(internal::ValidateGeometry(geometry));
  SI_ASSIGN_OR_RETURN(const int level, LevelFor(coder, options.level));
  SI_RETURN_IF_ERROR(CheckModel(coder, geometry, options));
  const size_t count = geometry.count();
  if (symbols == nullptr && count != 0) return InvalidArgument("symbols is null");
  SI_RETURN_IF_ERROR(CheckSymbols(symbols, count, geometry.bits));

  if (coder == CoderId::kCabac || coder == CoderId::kCabacTrained) {
    return internal::CabacEncode(symbols, geometry, coder == CoderId::kCabacTrained ? options.cabac_model : nullptr,
                                 options.cabac_layout);
  }
  std::vector<uint8_t> packed(PackedSize(count, geometry.bits));
  if (count != 0) Pack(symbols, count, geometry.bits, packed.data());
  switch (coder) {
    case CoderId::kLzma: return internal::LzmaCompress(packed.data(), packed.size(), level);
    case CoderId::kZstd: return internal::ZstdCompress(packed.data(), packed.size(), level);
    default: return packed;  // kNone
  }
}

Status DecodeSymbols(CoderId coder, const uint8_t* data, size_t size, const SymbolGeometry& geometry,
                     const CoderOptions& options, uint8_t* symbols) {
  if (!KnownCoder(coder)) return InvalidArgument("unknown coder id " + std::to_string(static_cast<int>(coder)));
  SI_RETURN_IF_ERROR(internal::ValidateGeometry(geometry));
  SI_RETURN_IF_ERROR(CheckModel(coder, geometry, options));
  if (data == nullptr && size != 0) return InvalidArgument("data is null");
  static const uint8_t kEmpty = 0;
  if (data == nullptr) data = &kEmpty;  // size == 0: the coders may form data + 0
  const size_t count = geometry.count();
  if (symbols == nullptr && count != 0) return InvalidArgument("symbols is null");

  if (coder == CoderId::kCabac || coder == CoderId::kCabacTrained) {
    return internal::CabacDecode(data, size, geometry, coder == CoderId::kCabacTrained ? options.cabac_model : nullptr,
                                 options.cabac_layout, symbols);
  }
  const size_t packed_size = PackedSize(count, geometry.bits);
  if (coder == CoderId::kNone) {
    if (size != packed_size) {
      return PayloadError("none payload has " + std::to_string(size) + " bytes, the geometry needs " +
                          std::to_string(packed_size));
    }
    SI_RETURN_IF_ERROR(CheckPadding(data, count, geometry.bits, "none"));
    if (count != 0) Unpack(data, count, geometry.bits, symbols);
    return Status::Ok();
  }
  // 8-bit symbols are their own packing: decompress straight into the output.
  std::vector<uint8_t> scratch;
  uint8_t* packed = symbols;
  if (geometry.bits != 8) {
    scratch.resize(packed_size);
    packed = scratch.data();
  }
  uint8_t dummy = 0;
  if (packed == nullptr) packed = &dummy;  // count == 0
  const char* name = CoderName(coder);
  if (coder == CoderId::kLzma) {
    SI_RETURN_IF_ERROR(internal::LzmaDecompress(data, size, packed, packed_size));
  } else {
    SI_RETURN_IF_ERROR(internal::ZstdDecompress(data, size, packed, packed_size));
  }
  if (geometry.bits != 8) {
    SI_RETURN_IF_ERROR(CheckPadding(packed, count, geometry.bits, name));
    if (count != 0) Unpack(packed, count, geometry.bits, symbols);
  }
  return Status::Ok();
}

double Order0Bytes(const uint8_t* symbols, size_t count, int bits) {
  if (count == 0) return 0;
  size_t histogram[256] = {};
  for (size_t i = 0; i < count; ++i) ++histogram[symbols[i]];
  double total_bits = 0;
  (void)bits;  // the histogram covers every byte value, so symbols need not be validated first
  for (int v = 0; v < 256; ++v) {
    const double n = static_cast<double>(histogram[v]);
    if (n != 0) total_bits -= n * std::log2(n / static_cast<double>(count));
  }
  return total_bits / 8;
}

}  // namespace splitinfer::codec
