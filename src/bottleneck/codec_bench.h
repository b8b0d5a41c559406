// The measurement behind `splitinfer codec bench` and `profile`'s codec rows: frame bytes, order-0 entropy, encode and
// decode time (median over maps, one thread) and the reconstruction error, for one quantizer
// and coder on real features (a dump from `splitinfer eval --dump-features`) or on synthetic
// post-ReLU maps.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "codec/feature_codec.h"
#include "core/status.h"

namespace splitinfer::bottleneck {

// Spatially correlated, channel-scaled, ReLU-sparse maps [n, c, h, w] that look like early
// CNN activations (about half zeros, smooth blobs), from a fixed seed.
torch::Tensor SyntheticFeatures(int64_t n, const std::vector<int64_t>& shape, uint64_t seed);

struct CodecBenchOptions {
  codec::QuantSpec spec;
  codec::CoderId coder = codec::CoderId::kCabac;
  codec::CoderOptions coder_options;
  int repeats = 5;  // timing repeats per map; the median over all runs is reported
  uint8_t frame_version = codec::kFrameVersion;  // 1: cabac's layout 1, to compare with version 2
};

struct CodecBenchResult {
  std::vector<int64_t> shape;
  int bits = 0;
  std::string coder;
  int frame_version = 0;
  double frame_bytes = 0;   // mean over the measured maps, header and CRC included
  double session_frame_bytes = 0;  // the same frames inside a session (frame/session.h)
  double order0_bytes = 0;  // mean order-0 entropy of the symbols, in bytes
  double encode_ms = 0, decode_ms = 0;  // medians
  double max_abs_error = 0;             // over the measured maps
  int64_t maps = 0;
  nlohmann::json ToJson() const;
};

// Calibrates on the first half of `features` [N, ...] (N >= 2) and measures on the second half.
// For kCabacTrained the context model is trained on the calibration half too.
Result<CodecBenchResult> RunCodecBench(const torch::Tensor& features, const CodecBenchOptions& options);

}  // namespace splitinfer::bottleneck
