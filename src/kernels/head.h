// kernels/head: a network head (blocks 0..k) as a small graph of convolutions, residual adds and
// max-pools, run in float (the reference) or with low-bit weights and activations through the
// kernels of qconv.h, qgemm.h and lut.h. No LibTorch: the node can run it without it, and the
// file parser can be fuzzed.
//
//   image (float, normalised) -> op 0 -> op 1 -> ... -> features (float, the split point's map)
//
// Registers: register 0 holds the input; op i writes register i + 1 and reads registers below
// that. A conv op reads `input`, optionally adds register `residual` (same shape as its output)
// before its ReLU; batch norm is folded into its weights and bias by the converter
// (src/models/lowbit). A max-pool op reads `input`.
//
// Quantized execution of a conv: its input is quantized to `abits` unsigned codes with the
// calibrated (scale, zero point), per tensor or per local region of input channels; the int32 sums come from the int8 kernel (8-bit
// weights) or the LUT kernel (<= 4-bit weights and activations); Requantize (qconv.h) turns
// them into floats, then the residual is added and the ReLU applied in float. Between ops the
// values are float, so an op's output is quantized once, by the op that reads it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/direct.h"
#include "kernels/lut.h"
#include "kernels/parallel.h"
#include "kernels/qconv.h"
#include "kernels/qgemm.h"

namespace splitinfer::kernels {

enum class HeadOpKind : int { kConv = 1, kMaxPool = 2 };

// Quantization of one conv. Weight codes: for wbits == 8, int8 values in [-127, 127] stored as
// their two's-complement bytes; for wbits <= 4, the unsigned LUT codes of lut.h (odd symmetric
// levels). One weight scale per local region ([out_channels][regions]).
struct ConvQuant {
  int wbits = 8, abits = 8;
  std::vector<uint8_t> weight_codes;
  std::vector<float> weight_scales;
  float input_scale = 1.f;
  int32_t input_zero_point = 0;
  // Per-region activation ranges: the input channels of region g (shape.group_size of them)
  // have their own scale and zero point, so a region's sum has the one scale
  // weight_scale[oc][g] * input_scales[g]. Empty: the scalars above hold for every region.
  std::vector<float> input_scales;
  std::vector<int32_t> input_zero_points;

  bool per_region_inputs() const { return !input_scales.empty(); }
  float InputScale(int g) const { return input_scales.empty() ? input_scale : input_scales[static_cast<size_t>(g)]; }
  int32_t InputZeroPoint(int g) const {
    return input_zero_points.empty() ? input_zero_point : input_zero_points[static_cast<size_t>(g)];
  }
};

struct HeadOp {
  HeadOpKind kind = HeadOpKind::kConv;
  std::string name;             // the module path it came from ("stage1.0.conv1")
  int input = 0, residual = -1;
  // conv
  ConvShape shape;              // in_* are the input register's dimensions
  bool relu = false;
  std::vector<float> weight;    // float, BN folded, [oc][c][ky][kx]
  std::vector<float> bias;      // [oc]
  bool quantized = false;
  ConvQuant quant;
  // max-pool (square window, zero padding counts as -inf)
  int pool_kernel = 0, pool_stride = 1, pool_padding = 0;
};

struct Tensor3 {
  int c = 0, h = 0, w = 0;
  std::vector<float> data;  // [c][h][w]
};

// A deterministic pseudo-random [c, h, w] map with values in [-1, 1) (a linear congruential
// generator, the same on every platform): what Tune times a head on, and what tests run.
Tensor3 PseudoRandomInput(int c, int h, int w, uint32_t seed);

struct HeadGraph {
  std::string model, split;
  int in_channels = 0, in_height = 0, in_width = 0;
  std::vector<HeadOp> ops;

  // Checks every op against the registers it reads (indices, shapes, counts, limits) and that
  // every float weight and bias is finite.
  Status Validate() const;
  // Output shape of register r (0 = input).
  Result<Tensor3> ShapeOf(int reg) const;
};

// Max-pool of one [C, H, W] map (square window; zero padding counts as -inf), as the ops run it.
Tensor3 MaxPool2d(const Tensor3& in, int kernel, int stride, int padding);
void MaxPool2dInto(const Tensor3& in, int kernel, int stride, int padding, Tensor3* out);  // reuses out's capacity

// Float execution: what the converter checks against LibTorch.
Result<Tensor3> RunFloat(const HeadGraph& graph, const Tensor3& input);

enum class HeadImpl { kInt8 = 1, kLut = 2, kReference = 3, kAuto = 4 };
const char* HeadImplName(HeadImpl impl);
// "int8", "lut", "reference" or "auto"; INVALID_ARGUMENT naming the choices otherwise.
Result<HeadImpl> ParseHeadImpl(const std::string& name);

// One conv's kernel times as QuantizedHead::Tune measured them (median, milliseconds).
struct ConvTiming {
  size_t op = 0;  // index in graph().ops
  std::string name;
  double int8_ms = 0, lut_ms = 0;
  bool lut = false;  // kAuto runs the LUT kernel on it (after Tune's whole-head check)
};

// Low-bit execution. kInt8 runs every conv through Int8ConvAccumulate (LUT-coded weights are
// decoded to int8 once, in Prepare); kLut runs convs with wbits and abits <= 4 through
// LutConvAccumulate and the rest through the int8 kernel; kReference uses
// ReferenceConvAccumulate; kAuto runs each conv the LUT can take on whichever of the two
// kernels Tune found faster on this CPU (the int8 kernel wins some layers: see
// bench/README.md), and like kLut before Tune. All give the same result bit for bit, so the
// choice changes only the time.
class QuantizedHead {
 public:
  static Result<QuantizedHead> Prepare(HeadGraph graph, KernelPath path = KernelPath::kAuto);
  Result<Tensor3> Run(const Tensor3& input, HeadImpl impl) const;
  // Times the int8 and LUT kernels on every conv both can run (`runs` calls each, on
  // deterministic pseudo-random codes of the conv's input size), then the whole head with
  // those per-conv choices, with int8 everywhere and with the LUT everywhere (`runs` calls each,
  // pseudo-random input), and keeps the fastest of the three for kAuto.
  Status Tune(int runs = 7);
  const std::vector<ConvTiming>& timings() const { return timings_; }
  const HeadGraph& graph() const { return graph_; }
  KernelPath path() const { return path_; }  // resolved: never kAuto
  // kInt8 runs the whole head on the direct NHWC kernel (direct.h): VNNI and every op a
  // quantized conv or a max-pool.
  bool direct() const { return direct_; }
  // Threads for the direct kernel's larger convolutions (direct.h: RunDirectConv), the caller
  // being one of them; 1 (the default) runs on the calling thread alone. The other paths run
  // on one thread. Copies of this head share its threads. INVALID_ARGUMENT outside 1..256.
  Status SetThreads(int threads);
  int threads() const { return pool_ ? pool_->threads() : 1; }

 private:
  HeadGraph graph_;
  KernelPath path_ = KernelPath::kAuto;
  std::vector<std::vector<int8_t>> int8_weights_;  // per op (empty for non-conv)
  std::vector<Int8ConvWeights> int8_convs_;        // per op: int8_weights_ prepared for path_
  std::vector<LutWeights> lut_weights_;            // per op (wbits <= 4 only)
  std::vector<std::vector<int32_t>> zero_points_;  // per op: the input zero point of each region
  std::vector<char> auto_lut_;                     // per op: kAuto runs the LUT kernel
  std::vector<Requant> requants_;                  // per op: its scales and bias, made once
  // The VNNI path's direct NHWC kernel (direct.h), per op, when every op is a quantized conv or
  // a max-pool: kInt8 (and kAuto where no conv takes the LUT) then run the whole head in NHWC.
  std::vector<DirectConv> direct_convs_;
  std::vector<Tensor3> reg_shapes_;  // every register's dimensions (no data), for RunDirect
  bool direct_ = false;
  std::shared_ptr<ThreadPool> pool_;  // SetThreads; null: one thread
  Result<Tensor3> RunDirect(const Tensor3& input) const;
  std::vector<ConvTiming> timings_;                // from Tune
};

// The activation quantization of a quantized conv's input, per tensor, in float:
//   codes[k] = clamp(nearbyint(x[k] * (1 / scale)) + zero_point, 0, 2^abits - 1)
// (1 / scale rounded once; nearbyint in the current rounding mode, which this module never
// changes); a NaN gets code 0. Vectorised where the CPU allows; every path gives the same codes.
void QuantizeActivations(const float* x, size_t n, float scale, int32_t zero_point, int abits, uint8_t* codes);

// Quantization of a float graph, arithmetic only (the converter in src/models/lowbit calls it).
//
// Weights: every conv gets `wbits` codes with one scale per local region of `group_size` input
// channels (0 = all of them, plain per output channel): 8 bits symmetric int8 with scale =
// max|w| / 127; <= 4 bits the odd levels of lut.h with scale = max|w| / (2^wbits - 1).
// Activations: each conv's input range comes from running the float graph on calibration
// images; the range is [min, the `percentile` of its values] (percentile 100 = the maximum),
// zero point from min (0 after a ReLU), scale = range / (2^abits - 1). With
// region_activations, each local region (the same group_size input channels as the weights')
// gets its own range from its own channels' values; otherwise one range per tensor.
struct QuantizeOptions {
  int wbits = 8, abits = 8;
  int group_size = 0;
  double percentile = 100.0;
  bool quantize_first = true;  // the first conv (raw image in) too
  int first_wbits = 0;         // the first conv's weight bits (0 = wbits): it sees the raw image
                               // with few taps per region, so low bits cost it most
  bool region_activations = true;  // activation ranges per local region, not per tensor
};
Status QuantizeGraph(HeadGraph& graph, const std::vector<Tensor3>& calibration, const QuantizeOptions& options);

// The head file (`splitinfer quantize-head --out`; specified in docs/head_format.md):
// "SIHEAD\0\0", u32 version, u32 header bytes, a JSON header (model, split, input shape, ops
// with their fields and blob offsets), then the blob (float32 and byte arrays, little-endian).
// LoadHead checks every count, offset and shape against the file before it allocates; errors
// name the field.
// Version 2 added per-region activation ranges ("input_scales", "input_zero_points"); version 1
// files (one range per conv) still load.
inline constexpr uint32_t kHeadFileVersion = 2;
Status SaveHead(const std::string& path, const HeadGraph& graph);
Result<HeadGraph> ParseHead(const uint8_t* data, size_t size);
Result<HeadGraph> LoadHead(const std::string& path);

}  // namespace splitinfer::kernels
