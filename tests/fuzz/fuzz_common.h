// Shared by the fuzz targets: what they need beyond the public codec headers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "codec/lossless/cabac.h"
#include "codec/lossless/lossless.h"

namespace splitinfer_fuzz {

// Rewrites the trailing FNV-1a-32 of a serialised cabac model (cabac.h) so that a mutated field
// reaches its own check instead of stopping at the checksum. Inputs under 8 bytes are left alone.
inline void ResealCabacModel(std::vector<uint8_t>& bytes) {
  if (bytes.size() < 8) return;
  const uint32_t h = splitinfer::codec::Fnv1a32(bytes.data(), bytes.size() - 4);
  for (size_t i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<uint8_t>(h >> (8 * i));
}

// A CabacModel for `g`, so that kCabacTrained payloads reach the trained decoder. Training one
// per input would dominate the run time, so the model is assembled directly in the serialised
// form documented in cabac.h (reference channels c-2 and c-3, pseudo-random starting
// probabilities over the whole allowed range, including the clamp edges) and loaded through
// CabacModel::Parse, which is itself under test this way. Null for geometries whose model
// would be large (the targets then expect FAILED_PRECONDITION, or pick another coder) or when
// the model format has moved on (reported once).
inline const splitinfer::codec::CabacModel* CabacModelFor(const splitinfer::codec::SymbolGeometry& g) {
  using splitinfer::codec::CabacModel;
  static std::unique_ptr<CabacModel> cached;
  static splitinfer::codec::SymbolGeometry cached_geometry;
  static bool warned = false;
  if (cached && cached_geometry.channels == g.channels && cached_geometry.height == g.height &&
      cached_geometry.width == g.width && cached_geometry.bits == g.bits) {
    return cached.get();
  }
  if (g.bits < 1 || g.bits > 8 || g.height == 0 || g.width == 0) return nullptr;
  // Contexts per channel, taken from a real (1-channel, 1x1) model so that the count follows
  // the coder's layout rather than a copy of its formula.
  static uint64_t per_channel[9] = {};
  if (per_channel[g.bits] == 0) {
    const uint8_t zero = 0;
    splitinfer::codec::SymbolGeometry one;
    one.bits = g.bits;
    auto trained = splitinfer::codec::TrainCabacModel({&zero}, one);
    if (!trained.ok()) return nullptr;
    per_channel[g.bits] = trained->context_count();
  }
  const uint64_t contexts = uint64_t{g.channels} * per_channel[g.bits];
  if (contexts > (uint64_t{1} << 16)) return nullptr;

  std::vector<uint8_t> m = {'S', 'I', 'C', 'M', 1, static_cast<uint8_t>(g.bits), 1, 0};
  auto put32 = [&m](uint32_t v) {
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put32(g.channels);
  put32(g.height);
  put32(g.width);
  for (uint32_t c = 0; c < g.channels; ++c) {
    put32(c >= 2 ? c - 1 : 0);  // channel c - 2 (stored as index + 1)
    put32(c >= 3 ? c - 2 : 0);  // channel c - 3
  }
  uint32_t x = 0x9E3779B9u ^ g.channels ^ (g.bits << 24);
  for (uint64_t i = 0; i < contexts; ++i) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    const uint32_t p = (i % 7 == 0) ? 16 : (i % 11 == 0) ? 65520 : 16 + x % (65520 - 16 + 1);
    m.push_back(static_cast<uint8_t>(p));
    m.push_back(static_cast<uint8_t>(p >> 8));
    m.push_back(static_cast<uint8_t>(x >> 24));
  }
  put32(splitinfer::codec::Fnv1a32(m.data(), m.size()));

  auto parsed = CabacModel::Parse(m.data(), m.size());
  if (!parsed.ok()) {
    if (!warned) std::fprintf(stderr, "fuzz: synthetic cabac model rejected (%s)\n", parsed.status().ToString().c_str());
    warned = true;
    return nullptr;
  }
  cached = std::make_unique<CabacModel>(std::move(parsed.value()));
  cached_geometry = g;
  return cached.get();
}

}  // namespace splitinfer_fuzz
