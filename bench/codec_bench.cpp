// Codec benchmarks on the real feature shapes of the zoo's split points (Google Benchmark).
// Run: build/bench/codec_bench --benchmark_filter=... (one thread; see bench/README.md).
//
// Each coder benchmark reports counters beside the time: frame_bytes (measured, header and CRC
// included) and order0_bytes (the order-0 entropy of the same symbols), as CompressAI does.
#include <benchmark/benchmark.h>

#include <torch/torch.h>

#include "bottleneck/codec_bench.h"
#include "bottleneck/faces.h"
#include "codec/feature_codec.h"
#include "codec/lossless/cabac.h"
#include "codec/pack/pack.h"
#include "models/build_info.h"
#include "models/device.h"

namespace si = splitinfer;
namespace codec = splitinfer::codec;

namespace {

struct Shape {
  const char* name;
  std::vector<int64_t> dims;
};
const std::vector<Shape>& Shapes() {
  static const std::vector<Shape> shapes = {
      {"fmnist_stem_64x14x14", {64, 14, 14}},
      {"resnet50_stem_64x56x56", {64, 56, 56}},
      {"resnet50_stage1_256x56x56", {256, 56, 56}},
      {"convnext_t_stage1_96x56x56", {96, 56, 56}},
      {"vit_b16_tokens_197x768", {197, 768}},
  };
  return shapes;
}
// A coder as a column of the table: cabac's payload depends on the frame version (layout 1 in
// version 1, zero groups in version 2), so the version-1 cabac is measured beside it.
struct Coder {
  codec::CoderId id;
  uint8_t frame_version;
  std::string name() const {
    return std::string(codec::CoderName(id)) + (frame_version == codec::kFrameVersion ? "" : "-v1");
  }
};
const std::vector<Coder>& Coders() {
  static const std::vector<Coder> coders = {
      {codec::CoderId::kNone, codec::kFrameVersion},  {codec::CoderId::kLzma, codec::kFrameVersion},
      {codec::CoderId::kZstd, codec::kFrameVersion},  {codec::CoderId::kCabac, 1},
      {codec::CoderId::kCabac, codec::kFrameVersion}, {codec::CoderId::kCabacTrained, codec::kFrameVersion}};
  return coders;
}

struct Fixture {
  codec::FeatureCodec codec;
  std::unique_ptr<codec::CabacModel> model;
  torch::Tensor maps;  // measured maps
};

// Calibrates on 8 synthetic maps, measures on 8 others.
Fixture Make(const Shape& s, int bits, codec::CoderId coder, uint8_t frame_version = codec::kFrameVersion) {
  auto all = splitinfer::bottleneck::SyntheticFeatures(16, s.dims, /*seed=*/77);
  codec::QuantSpec spec;
  spec.bits = bits;
  auto quant = codec::Calibrate(spec, all.slice(0, 0, 8)).value();
  Fixture f{codec::FeatureCodec{quant, coder, {}, 1}, nullptr, all.slice(0, 8, 16).contiguous()};
  f.codec.frame_version = frame_version;
  if (coder == codec::CoderId::kCabacTrained) {
    std::vector<std::vector<uint8_t>> syms;
    std::vector<const uint8_t*> ptrs;
    for (int i = 0; i < 8; ++i) syms.push_back(codec::Quantize(quant, all[i]).value().symbols);
    for (auto& v : syms) ptrs.push_back(v.data());
    f.model = std::make_unique<codec::CabacModel>(
        codec::TrainCabacModel(ptrs, codec::GeometryOf(f.codec.header())).value());
    f.codec.coder_options.cabac_model = f.model.get();
  }
  return f;
}

void BM_Encode(benchmark::State& state, Shape s, int bits, Coder coder) {
  auto f = Make(s, bits, coder.id, coder.frame_version);
  double bytes = 0, order0 = 0;
  for (int i = 0; i < f.maps.size(0); ++i) {
    auto e = splitinfer::bottleneck::CodecFace(f.codec).Encode(f.maps[i]).value();
    bytes += static_cast<double>(e.frame.size());
    order0 += codec::Order0Bytes(e.symbols.data(), e.symbols.size(), bits);
  }
  int64_t i = 0;
  for (auto _ : state) {
    auto e = splitinfer::bottleneck::CodecFace(f.codec).Encode(f.maps[i++ % f.maps.size(0)]);
    benchmark::DoNotOptimize(e);
  }
  state.counters["frame_bytes"] = bytes / static_cast<double>(f.maps.size(0));
  state.counters["order0_bytes"] = order0 / static_cast<double>(f.maps.size(0));
}

void BM_Decode(benchmark::State& state, Shape s, int bits, Coder coder) {
  auto f = Make(s, bits, coder.id, coder.frame_version);
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < f.maps.size(0); ++i) frames.push_back(splitinfer::bottleneck::CodecFace(f.codec).Encode(f.maps[i]).value().frame);
  size_t i = 0;
  for (auto _ : state) {
    const auto& fr = frames[i++ % frames.size()];
    auto d = splitinfer::bottleneck::CodecFace(f.codec).Decode(fr.data(), fr.size());
    benchmark::DoNotOptimize(d);
  }
}

// The node-side hot path without lossless coding: quantize + pack (and its inverse), the
// 64x56x56 1-bit target of the codec issue.
void BM_QuantizePack(benchmark::State& state, Shape s, int bits) {
  auto f = Make(s, bits, codec::CoderId::kNone);
  auto map = f.maps[0].contiguous();
  std::vector<uint8_t> packed(codec::PackedSize(static_cast<size_t>(map.numel()), bits));
  for (auto _ : state) {
    auto q = codec::Quantize(f.codec.quant, map).value();
    codec::Pack(q.symbols.data(), q.symbols.size(), bits, packed.data());
    benchmark::DoNotOptimize(packed.data());
  }
}

void BM_UnpackDequantize(benchmark::State& state, Shape s, int bits) {
  auto f = Make(s, bits, codec::CoderId::kNone);
  auto q = codec::Quantize(f.codec.quant, f.maps[0]).value();
  std::vector<uint8_t> packed(codec::PackedSize(q.symbols.size(), bits));
  codec::Pack(q.symbols.data(), q.symbols.size(), bits, packed.data());
  std::vector<uint8_t> symbols(q.symbols.size());
  for (auto _ : state) {
    codec::Unpack(packed.data(), symbols.size(), bits, symbols.data());
    auto x = codec::Dequantize(f.codec.quant, symbols.data(), symbols.size(), nullptr, 0);
    benchmark::DoNotOptimize(x);
  }
}

int Register() {
  for (const auto& s : Shapes()) {
    for (int bits : {1, 2, 3, 4, 8}) {
      benchmark::RegisterBenchmark(("QuantizePack/" + std::string(s.name) + "/" + std::to_string(bits) + "bit").c_str(),
                                   BM_QuantizePack, s, bits)->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("UnpackDequantize/" + std::string(s.name) + "/" + std::to_string(bits) + "bit").c_str(),
                                   BM_UnpackDequantize, s, bits)->Unit(benchmark::kMillisecond);
      for (auto c : Coders()) {
        const std::string tag = std::string(s.name) + "/" + std::to_string(bits) + "bit/" + c.name();
        benchmark::RegisterBenchmark(("Encode/" + tag).c_str(), BM_Encode, s, bits, c)->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("Decode/" + tag).c_str(), BM_Decode, s, bits, c)->Unit(benchmark::kMillisecond);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  si::models::ConfigureThreads(1);
  Register();
  // In the context block Google Benchmark prints first: which BLAS and CPU kernels ran this.
  benchmark::AddCustomContext("compute", si::models::ComputeLine(si::models::DescribeCompute()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
