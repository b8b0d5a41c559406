// codec/lossless/cabac: the trained starting point of the `cabac-trained` coder. No LibTorch.
//
//   calibration symbol maps --TrainCabacModel--> CabacModel --Serialize--> bytes (shipped with
//   the pipeline) --Parse--> CabacModel --CoderOptions::cabac_model--> Encode/DecodeSymbols
//
// The coder itself (cabac.cpp) codes each channel's significance map ("symbol >= 1"), then
// the remaining bits of the nonzero symbols MSB first; every binary decision "symbol >= t" has
// a context made of its kind (significance or tree node) and of neighbour flags "is that
// neighbour's symbol >= t". `cabac` uses one set of contexts for all channels, flags from left,
// above, above-left, above-right and the previous channel, and starts every context at p = 1/2.
// `cabac-trained` gives each channel its own contexts, adds flags from two reference channels
// chosen on the calibration data (the earlier channels that best predict this one), and starts
// every context from calibration counts. The model holds exactly that: the reference channels
// and the per-context starting probabilities and confidences, for one geometry (channels x
// height x width, bits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/lossless/lossless.h"
#include "core/status.h"

namespace splitinfer::codec {

class CabacModel {
 public:
  // Serialised format, version 1 (a pipeline artifact shipped beside the model weights, not part
  // of the frame; all integers little-endian):
  //   "SICM" | version u8 = 1 | bits u8 | layout u8 = 1 | reserved u8 = 0 |
  //   channels u32 | height u32 | width u32 |
  //   channels x (ref1 u32, ref2 u32)          reference planes: 0 = none, r + 1 = channel r < c
  //   contexts x (p u16, confidence u8)        p = P(bit = 1) in 1/65536, within the coder's clamp
  //   FNV-1a-32 u32 of everything before it
  // where contexts = channels * NodeClasses(bits) * 128. Parse checks the size implied by the
  // header before allocating and returns kDataLoss for any deviation.
  std::vector<uint8_t> Serialize() const;
  static Result<CabacModel> Parse(const uint8_t* data, size_t size);

  // The geometry the model was trained for; the coder refuses (kFailedPrecondition) any other.
  const SymbolGeometry& geometry() const { return geometry_; }
  size_t context_count() const { return prob_.size(); }

  // For the coder (cabac.cpp); not a stable API.
  const std::vector<uint32_t>& ref1() const { return ref1_; }
  const std::vector<uint32_t>& ref2() const { return ref2_; }
  const std::vector<uint16_t>& prob() const { return prob_; }
  const std::vector<uint8_t>& confidence() const { return confidence_; }
  // prob and confidence in the coder's working form, built once so that a frame starts with
  // one copy.
  const std::vector<uint32_t>& initial_contexts() const { return initial_; }

 private:
  CabacModel() = default;  // models come from TrainCabacModel or Parse, complete and checked
  void BuildInitialContexts();
  friend Result<CabacModel> TrainCabacModel(const std::vector<const uint8_t*>& maps, const SymbolGeometry& geometry);
  SymbolGeometry geometry_;
  std::vector<uint32_t> ref1_, ref2_;  // per channel, as in the format above
  std::vector<uint16_t> prob_;
  std::vector<uint8_t> confidence_;    // how many calibration observations (capped at 255)
  std::vector<uint32_t> initial_;
};

// Learns a model from calibration maps, each geometry.count() symbols < 2^bits.
// Errors: kInvalidArgument for no maps, a null map or a bad geometry; kOutOfRange for a symbol
// that does not fit or a geometry whose model would exceed kMaxCabacModelContexts.
Result<CabacModel> TrainCabacModel(const std::vector<const uint8_t*>& maps, const SymbolGeometry& geometry);

inline constexpr size_t kMaxCabacModelContexts = size_t{1} << 22;  // 12 MiB serialised

// FNV-1a-32, the checksum that ends a serialised model. Public so that tools and tests which
// build or deliberately damage a model file compute it the same way.
uint32_t Fnv1a32(const uint8_t* data, size_t size);

}  // namespace splitinfer::codec
