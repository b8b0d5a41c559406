// Compression study for the lossless stage on real feature maps (a tuning tool, not a test).
//
//   cabac_study FEATURES.f32 [--bits 1,2] [--shape NxCxHxW] [--train-fraction 0.5] [--repeat 3]
//
// FEATURES.f32: raw little-endian float32 feature maps, N x C x H x W, as dumped by
// `splitinfer eval --dump-features`; the shape comes from FEATURES.f32.json
// ({"dtype":"float32","shape":[N,C,H,W]}) unless --shape gives it.
//
// Quantisation (the simple rule the codec issue uses for tuning): per-tensor range [0, hi] with
// hi = the 99.9th percentile of all values, L = 2^bits levels, symbol = clamp(round(x / hi *
// (L - 1)), 0, L - 1). The first train-fraction of the maps trains the cabac-trained model; every
// coder is measured on the rest, so cabac-trained is scored on maps it has not seen. Every frame
// is decoded and compared with its input. Times are per map on one thread, in the thread's CPU
// time (so that other processes on a shared machine do not count): the median of --repeat
// passes over the evaluation maps, after one warm-up pass (warm caches, as in a node that codes
// one frame after another). Sizes are payload bytes: the frame adds its header and CRC.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <time.h>

#include "codec/lossless/cabac.h"
#include "codec/lossless/lossless.h"

using splitinfer::codec::CabacModel;
using splitinfer::codec::CoderId;
using splitinfer::codec::CoderOptions;
using splitinfer::codec::SymbolGeometry;

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// CPU time of the calling thread (POSIX).
double ThreadSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

[[noreturn]] void Die(const std::string& m) {
  std::fprintf(stderr, "cabac_study: %s\n", m.c_str());
  std::exit(1);
}

std::vector<size_t> ParseList(const std::string& s, char sep) {
  std::vector<size_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep)) {
    if (item.empty()) Die("bad list '" + s + "'");
    out.push_back(std::stoul(item));
  }
  return out;
}

// The "shape" array of the sidecar JSON; enough parsing for the file the CLI writes.
std::vector<size_t> ShapeFromJson(const std::string& path) {
  std::ifstream f(path);
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string j = ss.str();
  const size_t key = j.find("\"shape\"");
  if (key == std::string::npos) return {};
  const size_t open = j.find('[', key), close = j.find(']', key);
  if (open == std::string::npos || close == std::string::npos || close < open) return {};
  std::string inner = j.substr(open + 1, close - open - 1);
  inner.erase(std::remove(inner.begin(), inner.end(), ' '), inner.end());
  return ParseList(inner, ',');
}

struct Row {
  std::string name;
  double bytes = 0, encode_ms = 0, decode_ms = 0;
  bool timed = true;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: cabac_study FEATURES.f32 [--bits 1,2] [--shape NxCxHxW] [--train-fraction F] [--repeat R]");
  const std::string path = argv[1];
  std::vector<size_t> bit_widths = {1, 2}, shape;
  double train_fraction = 0.5;
  int repeat = 5;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) Die("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--bits") bit_widths = ParseList(v, ',');
    else if (a == "--shape") shape = ParseList(v, 'x');
    else if (a == "--train-fraction") train_fraction = std::stod(v);
    else if (a == "--repeat") repeat = std::max(1, std::stoi(v));
    else Die("unknown option " + a);
  }
  if (shape.empty()) shape = ShapeFromJson(path + ".json");
  if (shape.size() != 4) Die("need a 4-d shape N,C,H,W (--shape or " + path + ".json)");
  const size_t maps = shape[0];
  SymbolGeometry g;
  g.channels = static_cast<uint32_t>(shape[1]);
  g.height = static_cast<uint32_t>(shape[2]);
  g.width = static_cast<uint32_t>(shape[3]);
  const size_t per_map = g.count();

  std::vector<float> x(maps * per_map);
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) Die("cannot open " + path);
    f.read(reinterpret_cast<char*>(x.data()), static_cast<std::streamsize>(x.size() * sizeof(float)));
    if (static_cast<size_t>(f.gcount()) != x.size() * sizeof(float)) Die(path + " is shorter than its shape says");
  }
  float hi;
  {
    std::vector<float> tmp(x);
    const size_t k = static_cast<size_t>(0.999 * static_cast<double>(tmp.size() - 1));
    std::nth_element(tmp.begin(), tmp.begin() + static_cast<ptrdiff_t>(k), tmp.end());
    hi = tmp[k];
  }
  const size_t train_maps = std::min(maps - 1, static_cast<size_t>(train_fraction * static_cast<double>(maps)));
  const size_t eval_maps = maps - train_maps;
  std::printf("features: %s, %zu maps of %ux%ux%u, hi (99.9th percentile) = %.4g\n", path.c_str(), maps, g.channels,
              g.height, g.width, hi);
  std::printf("cabac-trained model: trained on maps [0, %zu), every coder measured on maps [%zu, %zu)\n\n", train_maps,
              train_maps, maps);

  for (size_t bits : bit_widths) {
    g.bits = static_cast<int>(bits);
    const int levels = 1 << bits;
    std::vector<uint8_t> symbols(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const float q = std::nearbyint(x[i] / hi * static_cast<float>(levels - 1));
      symbols[i] = static_cast<uint8_t>(std::min<float>(std::max<float>(q, 0.f), static_cast<float>(levels - 1)));
    }
    std::vector<const uint8_t*> train;
    for (size_t m = 0; m < train_maps; ++m) train.push_back(symbols.data() + m * per_map);
    const auto t0 = Clock::now();
    auto model = splitinfer::codec::TrainCabacModel(train, g);
    const double train_s = Seconds(t0, Clock::now());
    if (!model.ok()) Die("training failed: " + model.status().ToString());
    const size_t model_bytes = model->Serialize().size();

    double order0 = 0;
    for (size_t m = train_maps; m < maps; ++m) {
      order0 += splitinfer::codec::Order0Bytes(symbols.data() + m * per_map, per_map, g.bits);
    }
    struct Coder {
      std::string name;
      CoderId id;
      int level;
    };
    const std::vector<Coder> coders = {{"none", CoderId::kNone, -1},   {"lzma-6", CoderId::kLzma, 6},
                                       {"zstd-3", CoderId::kZstd, 3},  {"zstd-19", CoderId::kZstd, 19},
                                       {"cabac", CoderId::kCabac, -1}, {"cabac-trained", CoderId::kCabacTrained, -1}};
    std::vector<Row> rows;
    std::vector<std::vector<uint8_t>> frames(eval_maps);
    std::vector<uint8_t> decoded(per_map);
    for (const Coder& c : coders) {
      CoderOptions options;
      options.level = c.level;
      options.cabac_model = &model.value();
      Row row;
      row.name = c.name;
      std::vector<double> enc_s, dec_s;
      for (int r = 0; r <= repeat; ++r) {  // pass 0 warms up and checks the round trip
        const double a = ThreadSeconds();
        for (size_t m = 0; m < eval_maps; ++m) {
          auto f = splitinfer::codec::EncodeSymbols(c.id, symbols.data() + (train_maps + m) * per_map, g, options);
          if (!f.ok()) Die(c.name + " encode: " + f.status().ToString());
          frames[m] = std::move(f.value());
        }
        const double b = ThreadSeconds();
        for (size_t m = 0; m < eval_maps; ++m) {
          auto st = splitinfer::codec::DecodeSymbols(c.id, frames[m].data(), frames[m].size(), g, options,
                                                     decoded.data());
          if (!st.ok()) Die(c.name + " decode: " + st.ToString());
          if (r == 0 && std::memcmp(decoded.data(), symbols.data() + (train_maps + m) * per_map, per_map) != 0) {
            Die(c.name + " does not round-trip map " + std::to_string(train_maps + m));
          }
        }
        const double e = ThreadSeconds();
        if (r == 0) continue;
        enc_s.push_back(b - a);
        dec_s.push_back(e - b);
      }
      for (const auto& f : frames) row.bytes += static_cast<double>(f.size());
      row.bytes /= static_cast<double>(eval_maps);
      row.encode_ms = Median(enc_s) / static_cast<double>(eval_maps) * 1e3;
      row.decode_ms = Median(dec_s) / static_cast<double>(eval_maps) * 1e3;
      rows.push_back(row);
    }
    Row o0;
    o0.name = "order-0 entropy";
    o0.bytes = order0 / static_cast<double>(eval_maps);
    o0.timed = false;
    rows.push_back(o0);

    const Row& lzma = rows[1];
    std::printf("%zu-bit symbols (%zu per map), cabac-trained model %zu bytes, trained in %.2f s\n", bits, per_map,
                model_bytes, train_s);
    std::printf("| %-16s | %11s | %9s | %10s | %10s | %14s |\n", "coder", "bytes/map", "vs lzma-6", "encode ms",
                "decode ms", "encode speedup");
    std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(18, '-').c_str(), std::string(13, '-').c_str(),
                std::string(11, '-').c_str(), std::string(12, '-').c_str(), std::string(12, '-').c_str(),
                std::string(16, '-').c_str());
    for (const Row& r : rows) {
      const double vs = (r.bytes / lzma.bytes - 1) * 100;
      if (r.timed) {
        std::printf("| %-16s | %11.1f | %+8.1f%% | %10.4f | %10.4f | %13.1fx |\n", r.name.c_str(), r.bytes, vs,
                    r.encode_ms, r.decode_ms, lzma.encode_ms / r.encode_ms);
      } else {
        std::printf("| %-16s | %11.1f | %+8.1f%% | %10s | %10s | %14s |\n", r.name.c_str(), r.bytes, vs, "-", "-", "-");
      }
    }
    std::printf("\n");
  }
  return 0;
}
