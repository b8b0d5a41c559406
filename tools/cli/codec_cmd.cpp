#include "tools/cli/codec_cmd.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bottleneck/pipeline.h"
#include "bottleneck/codec_bench.h"
#include "bottleneck/faces.h"
#include "codec/feature_codec.h"
#include "core/system.h"
#include "data/dataset.h"
#include "eval/features.h"
#include "eval/pipeline_eval.h"
#include "models/device.h"

namespace splitinfer::cli {
namespace {
using codec::QuantSpec;

struct SpecArgs {
  int bits = 1;
  std::string granularity = "tensor", region = "", range = "unsigned", clip = "minmax", reconstruction = "level";
  double percentile = 99.9;
  bool dynamic = false;
};

void AddSpecOptions(CLI::App* cmd, SpecArgs& a) {
  cmd->add_option("--bits", a.bits, "bits per symbol, 1..8")->check(CLI::Range(1, 8));
  cmd->add_option("--granularity", a.granularity, "tensor | channel | region");
  cmd->add_option("--region", a.region, "local region size CxHxW (with --granularity region)");
  cmd->add_option("--range", a.range, "unsigned (post-ReLU, [0,hi]) | signed ([-a,a]) | affine ([lo,hi])");
  cmd->add_option("--clip", a.clip, "minmax | percentile | mse (clip search over calibration data)");
  cmd->add_option("--percentile", a.percentile, "with --clip percentile");
  cmd->add_option("--reconstruction", a.reconstruction, "level | centroid");
  cmd->add_flag("--dynamic", a.dynamic, "per-frame ranges sent as side information (minmax)");
}

Result<std::vector<int64_t>> ParseShape(const std::string& text, const std::string& what) {
  std::vector<int64_t> dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, 'x')) {
    char* end = nullptr;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v < 1 || v > (1 << 20)) {
      return InvalidArgument(what + " '" + text + "' must look like 64x14x14 (each side 1..1048576)");
    }
    dims.push_back(v);
  }
  if (dims.empty() || dims.size() > 4) return InvalidArgument(what + " '" + text + "' must have 1 to 4 sides");
  return dims;
}

Result<QuantSpec> ToSpec(const SpecArgs& a) {
  QuantSpec s;
  s.bits = a.bits;
  SI_ASSIGN_OR_RETURN(s.granularity, codec::GranularityFromName(a.granularity));
  SI_ASSIGN_OR_RETURN(s.range, codec::RangeFromName(a.range));
  SI_ASSIGN_OR_RETURN(s.clip, codec::ClipFromName(a.clip));
  if (a.reconstruction != "level" && a.reconstruction != "centroid") {
    return InvalidArgument("--reconstruction must be level or centroid");
  }
  s.reconstruction = a.reconstruction == "centroid" ? codec::Reconstruction::kCentroid : codec::Reconstruction::kLevel;
  s.percentile = a.percentile;
  s.params_in_frame = a.dynamic;
  if (s.granularity == codec::Granularity::kRegion) {
    if (a.region.empty()) return InvalidArgument("--granularity region needs --region CxHxW");
    SI_ASSIGN_OR_RETURN(auto r, ParseShape(a.region, "--region"));
    if (r.size() != 3) return InvalidArgument("--region must be CxHxW");
    for (int i = 0; i < 3; ++i) s.region[i] = static_cast<uint32_t>(r[i]);
  }
  SI_RETURN_IF_ERROR(codec::ValidateSpec(s));
  return s;
}

Result<codec::QuantParams> LoadQuant(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("quantizer file " + path + " not found (make one with `splitinfer codec calibrate`)");
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return DataLoss(path + " is not valid JSON");
  return codec::QuantParamsFromJson(j, path);
}

// --- subcommands ---------------------------------------------------------------------------

struct CalibrateArgs {
  SpecArgs spec;
  std::string input, out;
};
Status RunCalibrate(const CalibrateArgs& a) {
  SI_ASSIGN_OR_RETURN(QuantSpec spec, ToSpec(a.spec));
  SI_ASSIGN_OR_RETURN(torch::Tensor f, eval::LoadFeatures(a.input));
  SI_ASSIGN_OR_RETURN(codec::QuantParams p, codec::Calibrate(spec, f));
  std::ofstream out(a.out);
  out << codec::ToJson(p).dump(1) << "\n";
  if (!out) return IoError("cannot write " + a.out);
  std::printf("calibrated %d-bit %s quantizer on %lld maps: %llu region(s) -> %s\n", spec.bits,
              codec::GranularityName(spec.granularity), static_cast<long long>(f.size(0)),
              static_cast<unsigned long long>(p.regions()), a.out.c_str());
  return Status::Ok();
}

struct EncodeArgs {
  std::string input, quant, coder = "cabac", out;
  int64_t index = 0;
  int level = -1;
  uint32_t pipeline_id = 0;
};
Status RunEncode(const EncodeArgs& a) {
  SI_ASSIGN_OR_RETURN(codec::QuantParams q, LoadQuant(a.quant));
  SI_ASSIGN_OR_RETURN(codec::CoderId coder, codec::CoderFromName(a.coder));
  SI_ASSIGN_OR_RETURN(torch::Tensor f, eval::LoadFeatures(a.input));
  // Accept one map (the quantizer's dims) or a batch [N, dims...] with --index.
  if (f.dim() == static_cast<int64_t>(q.dims.size()) + 1) {
    if (a.index < 0 || a.index >= f.size(0)) {
      return OutOfRange("--index " + std::to_string(a.index) + " outside 0.." + std::to_string(f.size(0) - 1));
    }
    f = f[a.index];
  }
  codec::FeatureCodec c{q, coder, {}, a.pipeline_id};
  c.coder_options.level = a.level;
  SI_ASSIGN_OR_RETURN(codec::EncodedFeature e, bottleneck::CodecFace(c).Encode(f));
  std::ofstream out(a.out, std::ios::binary);
  out.write(reinterpret_cast<const char*>(e.frame.data()), static_cast<std::streamsize>(e.frame.size()));
  if (!out) return IoError("cannot write " + a.out);
  std::printf("%zu bytes (%s, %d bit) -> %s\n", e.frame.size(), codec::CoderName(coder), q.spec.bits, a.out.c_str());
  return Status::Ok();
}

struct DecodeArgs {
  std::string input, quant, out;
  uint32_t pipeline_id = 0;
};
Status RunDecode(const DecodeArgs& a) {
  SI_ASSIGN_OR_RETURN(codec::QuantParams q, LoadQuant(a.quant));
  SI_ASSIGN_OR_RETURN(std::vector<uint8_t> frame, ReadBinaryFile(a.input, "frame file", codec::FrameLimits{}.max_frame_bytes));
  codec::FeatureCodec c{q, codec::CoderId::kNone, {}, a.pipeline_id};
  SI_ASSIGN_OR_RETURN(torch::Tensor f, bottleneck::CodecFace(c).Decode(frame.data(), frame.size()));
  SI_RETURN_IF_ERROR(eval::SaveFeatures(a.out, f));
  std::printf("decoded %zu-byte frame -> %s %s\n", frame.size(), nlohmann::json(f.sizes().vec()).dump().c_str(),
              a.out.c_str());
  return Status::Ok();
}

struct BenchArgs {
  SpecArgs spec;
  std::string shape = "64x56x56", coder = "cabac", input;
  int level = -1, repeats = 5, frame_version = codec::kFrameVersion;
  int64_t maps = 16, limit = 64;
  bool json = false;
};
Status RunBench(const BenchArgs& a) {
  models::ConfigureThreads(1);  // the node's budget: one core
  bottleneck::CodecBenchOptions o;
  SI_ASSIGN_OR_RETURN(o.spec, ToSpec(a.spec));
  SI_ASSIGN_OR_RETURN(o.coder, codec::CoderFromName(a.coder));
  o.coder_options.level = a.level;
  o.repeats = a.repeats;
  o.frame_version = static_cast<uint8_t>(a.frame_version);
  torch::Tensor f;
  if (!a.input.empty()) {
    SI_ASSIGN_OR_RETURN(f, eval::LoadFeatures(a.input));
    if (a.limit > 0 && f.size(0) > a.limit) f = f.slice(0, 0, a.limit);
  } else {
    SI_ASSIGN_OR_RETURN(auto shape, ParseShape(a.shape, "--shape"));
    f = bottleneck::SyntheticFeatures(2 * a.maps, shape, /*seed=*/1234);
  }
  SI_ASSIGN_OR_RETURN(bottleneck::CodecBenchResult r, bottleneck::RunCodecBench(f, o));
  if (a.json) {
    std::printf("%s\n", r.ToJson().dump().c_str());
  } else {
    std::printf("%s %d bit %s: %.1f frame bytes (order-0 %.1f), encode %.3f ms, decode %.3f ms, max |err| %.4g\n",
                nlohmann::json(r.shape).dump().c_str(), r.bits, r.coder.c_str(), r.frame_bytes, r.order0_bytes,
                r.encode_ms, r.decode_ms, r.max_abs_error);
  }
  return Status::Ok();
}

struct TrainCabacArgs {
  std::string pipeline, out, pipeline_out, data_dir;
  int64_t images = 2000;
};
// The cabac-trained coder's context model for a pipeline, and optionally a copy of the pipeline
// that uses it (the model file then sits beside that YAML and is named relative to it).
Status RunTrainCabac(const TrainCabacArgs& a) {
  SI_ASSIGN_OR_RETURN(auto pipeline, bottleneck::Pipeline::Load(a.pipeline, torch::kCPU));
  SI_ASSIGN_OR_RETURN(auto train, bottleneck::OpenDatasetFor(pipeline.model_meta(), a.data_dir, data::Split::kTrain));
  SI_ASSIGN_OR_RETURN(codec::CabacModel model, eval::TrainPipelineCabacModel(pipeline, *train, a.images));
  const std::vector<uint8_t> bytes = model.Serialize();
  {
    std::ofstream out(a.out, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) return IoError("cannot write " + a.out);
  }
  std::printf("cabac model for %s from %lld training images: %zu contexts, %zu bytes -> %s\n",
              pipeline.spec().name.c_str(), static_cast<long long>(std::min(a.images, train->size())),
              model.context_count(), bytes.size(), a.out.c_str());
  if (!a.pipeline_out.empty()) {
    bottleneck::PipelineSpec spec = pipeline.spec();
    spec.coder = "cabac-trained";
    spec.cabac_model = std::filesystem::absolute(a.out).string();
    spec = spec.RebasedTo(std::filesystem::path(a.pipeline_out).parent_path().string());
    SI_RETURN_IF_ERROR(bottleneck::SavePipelineSpec(a.pipeline_out, spec));
    // Load it back: the file must be a pipeline that runs, not only one that was written.
    SI_RETURN_IF_ERROR(bottleneck::Pipeline::Load(a.pipeline_out, torch::kCPU).status());
    std::printf("pipeline %s: coder cabac-trained, cabac_model %s\n", a.pipeline_out.c_str(), spec.cabac_model.c_str());
  }
  return Status::Ok();
}

}  // namespace

std::function<Status()> AddCodecCommands(CLI::App& app, CLI::App** codec_out) {
  auto* codec_cmd = app.add_subcommand("codec", "feature-map codec: calibrate, encode, decode, bench, train-cabac");
  codec_cmd->require_subcommand(1);
  *codec_out = codec_cmd;

  auto calibrate_args = std::make_shared<CalibrateArgs>();
  auto* cal = codec_cmd->add_subcommand("calibrate", "fit a quantizer to features from `eval --dump-features`");
  cal->add_option("--input", calibrate_args->input, "features [N, ...] (.pt or raw float32 + .json)")->required();
  cal->add_option("--out", calibrate_args->out, "quantizer parameters (JSON)")->required();
  AddSpecOptions(cal, calibrate_args->spec);

  auto encode_args = std::make_shared<EncodeArgs>();
  auto* enc = codec_cmd->add_subcommand("encode", "one feature map -> one frame");
  enc->add_option("--input", encode_args->input, "a feature map, or a batch with --index")->required();
  enc->add_option("--quant", encode_args->quant, "quantizer from `codec calibrate`")->required();
  enc->add_option("--coder", encode_args->coder, "none | lzma | zstd | cabac");
  enc->add_option("--level", encode_args->level, "lzma preset 0..9 / zstd level 1..19");
  enc->add_option("--index", encode_args->index, "which map of a batch");
  enc->add_option("--pipeline-id", encode_args->pipeline_id, "pipeline id written into the frame");
  enc->add_option("--out", encode_args->out, "frame file")->required();

  auto decode_args = std::make_shared<DecodeArgs>();
  auto* dec = codec_cmd->add_subcommand("decode", "one frame -> one feature map");
  dec->add_option("--input", decode_args->input, "frame file")->required();
  dec->add_option("--quant", decode_args->quant, "the quantizer the frame was made with")->required();
  dec->add_option("--pipeline-id", decode_args->pipeline_id, "expected pipeline id");
  dec->add_option("--out", decode_args->out, "feature file (.pt or raw float32 + .json)")->required();

  auto bench_args = std::make_shared<BenchArgs>();
  auto* bench = codec_cmd->add_subcommand("bench", "bytes and speed of one quantizer + coder (one thread)");
  bench->add_option("--shape", bench_args->shape, "CxHxW of synthetic maps (without --input)");
  bench->add_option("--coder", bench_args->coder, "none | lzma | zstd | cabac | cabac-trained");
  bench->add_option("--level", bench_args->level, "lzma preset / zstd level");
  bench->add_option("--input", bench_args->input, "real features from `eval --dump-features`");
  bench->add_option("--limit", bench_args->limit, "use at most this many maps of --input (half calibrate, half measure)");
  bench->add_option("--maps", bench_args->maps, "synthetic maps measured (as many again calibrate)");
  bench->add_option("--repeats", bench_args->repeats, "timing runs per map")->check(CLI::Range(1, 1000));
  bench->add_flag("--json", bench_args->json, "print one JSON object");
  bench->add_option("--frame-version", bench_args->frame_version,
                    "frame version to write (1: the cabac layout of version 1, for comparison)")
      ->check(CLI::Range(int{codec::kOldestFrameVersion}, int{codec::kFrameVersion}));
  AddSpecOptions(bench, bench_args->spec);

  auto train_args = std::make_shared<TrainCabacArgs>();
  auto* tc = codec_cmd->add_subcommand("train-cabac", "the cabac-trained coder's context model for a pipeline");
  tc->add_option("--pipeline", train_args->pipeline, "pipeline YAML whose quantizer makes the symbol maps")->required();
  tc->add_option("--images", train_args->images, "training images to learn from (the test set is not used)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  tc->add_option("--data", train_args->data_dir, "dataset directory (default: the checkpoint's)");
  tc->add_option("--out", train_args->out, "context model file")->required();
  tc->add_option("--pipeline-out", train_args->pipeline_out, "also write a copy of the pipeline that uses it");

  return [=]() -> Status {
    if (*tc) return RunTrainCabac(*train_args);
    if (*cal) return RunCalibrate(*calibrate_args);
    if (*enc) return RunEncode(*encode_args);
    if (*dec) return RunDecode(*decode_args);
    if (*bench) return RunBench(*bench_args);
    return InvalidArgument("codec: no subcommand");
  };
}

}  // namespace splitinfer::cli
