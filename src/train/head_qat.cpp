#include "train/head_qat.h"

#include <cstdio>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/progress.h"
#include "data/transforms.h"
#include "models/checkpoint.h"
#include "models/lowbit/convert.h"
#include "train/loop.h"
#include "train/schedule.h"

namespace splitinfer::train {

namespace {

namespace F = torch::nn::functional;

// Straight-through: the forward value of `q`, the gradient of `x`.
torch::Tensor Ste(const torch::Tensor& x, const torch::Tensor& q) { return x + (q - x).detach(); }

int RegionSize(const kernels::HeadOp& op, const kernels::QuantizeOptions& o) {
  const int cin = op.shape.in_channels;
  return o.group_size > 0 && cin % o.group_size == 0 ? o.group_size : cin;
}

// The weight arithmetic of kernels::QuantizeGraph, on a [oc, cin, kh, kw] tensor.
torch::Tensor FakeQuantWeight(const torch::Tensor& w, int group, int wbits) {
  const auto oc = w.size(0), cin = w.size(1), taps = w.size(2) * w.size(3);
  const auto r = w.reshape({oc, cin / group, group * taps});
  const double levels = wbits == 8 ? 127.0 : static_cast<double>((1 << wbits) - 1);
  auto scale = (r.abs().amax(2, /*keepdim=*/true) / levels).detach();
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  torch::Tensor q;
  if (wbits == 8) {
    q = torch::clamp(torch::round(r / scale), -127, 127) * scale;
  } else {
    const auto u = torch::clamp(torch::round((r / scale + levels) / 2), 0, levels);
    q = (2 * u - levels) * scale;
  }
  return Ste(r, q).reshape(w.sizes());
}

// The activation arithmetic of kernels::QuantizedHead::Run, per tensor or per region of
// input channels (a [1, C, 1, 1] scale and zero point, channel c taking its region's).
torch::Tensor FakeQuantAct(const torch::Tensor& x, const kernels::HeadOp& op) {
  const kernels::ConvQuant& cq = op.quant;
  const double top = static_cast<double>((1 << cq.abits) - 1);
  if (!cq.per_region_inputs()) {
    const auto q = (torch::clamp(torch::round(x / cq.input_scale) + cq.input_zero_point, 0, top) -
                    cq.input_zero_point) * cq.input_scale;
    return Ste(x, q);
  }
  const int channels = op.shape.in_channels, group = op.shape.group_size;
  std::vector<float> scale(static_cast<size_t>(channels)), zero(static_cast<size_t>(channels));
  for (int c = 0; c < channels; ++c) {
    scale[static_cast<size_t>(c)] = cq.InputScale(c / group);
    zero[static_cast<size_t>(c)] = static_cast<float>(cq.InputZeroPoint(c / group));
  }
  const auto s = torch::tensor(scale).reshape({1, channels, 1, 1});
  const auto z = torch::tensor(zero).reshape({1, channels, 1, 1});
  const auto q = (torch::clamp(torch::round(x / s) + z, 0, top) - z) * s;
  return Ste(x, q);
}

// The graph as a trainable module: one weight and bias parameter per conv.
struct GraphHeadImpl : torch::nn::Module {
  GraphHeadImpl(const kernels::HeadGraph& graph, const kernels::HeadGraph& calibrated, const kernels::QuantizeOptions& o)
      : g(graph), q(calibrated), opts(o) {
    for (size_t i = 0; i < g.ops.size(); ++i) {
      const auto& op = g.ops[i];
      if (op.kind != kernels::HeadOpKind::kConv) {
        weights.emplace_back();
        biases.emplace_back();
        continue;
      }
      const auto& s = op.shape;
      auto w = torch::from_blob(const_cast<float*>(op.weight.data()),
                                {s.out_channels, s.in_channels, s.kernel_h, s.kernel_w}, torch::kFloat)
                   .clone();
      auto b = torch::from_blob(const_cast<float*>(op.bias.data()), {s.out_channels}, torch::kFloat).clone();
      weights.push_back(register_parameter("w" + std::to_string(i), w));
      biases.push_back(register_parameter("b" + std::to_string(i), b));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    std::vector<torch::Tensor> regs = {x};
    for (size_t i = 0; i < g.ops.size(); ++i) {
      const auto& op = g.ops[i];
      const auto& in = regs[static_cast<size_t>(op.input)];
      if (op.kind == kernels::HeadOpKind::kMaxPool) {
        regs.push_back(F::max_pool2d(in, F::MaxPool2dFuncOptions(op.pool_kernel).stride(op.pool_stride).padding(op.pool_padding)));
        continue;
      }
      const auto& cq = q.ops[i];
      auto xin = in;
      auto w = weights[i];
      if (cq.quantized) {
        xin = FakeQuantAct(in, cq);
        w = FakeQuantWeight(w, RegionSize(op, opts), cq.quant.wbits);
      }
      auto y = F::conv2d(xin, w, F::Conv2dFuncOptions().bias(biases[i]).stride(op.shape.stride).padding(op.shape.padding));
      if (op.residual >= 0) y = y + regs[static_cast<size_t>(op.residual)];
      if (op.relu) y = torch::relu(y);
      regs.push_back(y);
    }
    return regs.back();
  }

  kernels::HeadGraph g, q;
  kernels::QuantizeOptions opts;
  std::vector<torch::Tensor> weights, biases;
};
TORCH_MODULE(GraphHead);

}  // namespace

Result<int64_t> FinetuneHead(kernels::HeadGraph& graph, const HeadFinetuneOptions& o) {
  if (o.epochs < 1 || o.batch_size < 1) return InvalidArgument("fine-tuning needs epochs >= 1 and batch size >= 1");
  SI_ASSIGN_OR_RETURN(auto loaded, models::LoadCheckpoint(o.checkpoint, torch::kCPU));
  auto model = loaded.model;
  model->eval();
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  SI_ASSIGN_OR_RETURN(auto split, model->find_split(graph.split));
  const data::Normalization norm{loaded.meta.norm_mean, loaded.meta.norm_std};
  DataConfig dc;
  dc.dataset = loaded.meta.dataset;
  dc = SizedFor(dc, loaded.meta);
  dc.limit_train = o.limit_train;
  SI_ASSIGN_OR_RETURN(auto train, OpenSplit(dc, data::Split::kTrain));
  // Activation ranges, once, with kernels::QuantizeGraph's own calibration.
  kernels::HeadGraph calibrated = graph;
  {
    torch::NoGradGuard ng;
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < std::min(o.calibration_images, train->size()); ++i) idx.push_back(i);
    SI_ASSIGN_OR_RETURN(auto batch, train->batch(idx));
    const auto x = data::ToFloatNormalized(batch.first, norm);
    std::vector<kernels::Tensor3> calib;
    for (int64_t i = 0; i < x.size(0); ++i) calib.push_back(models::lowbit::ToTensor3(x[i]));
    SI_RETURN_IF_ERROR(kernels::QuantizeGraph(calibrated, calib, o.quant));
  }
  // Callers (quantize-head) may hold a NoGradGuard: training needs gradients.
  torch::AutoGradMode grad_on(true);
  GraphHead head(graph, calibrated, o.quant);
  head->train();
  auto opt = MakeOptimizer(OptimizerConfig{"adamw", o.lr, 0.9, false, 0.0}, head->parameters());
  // Everything the batches, the schedule and the fake quantization depend on.
  const auto& q = o.quant;
  const nlohmann::json settings = {
      {"checkpoint", o.checkpoint},  {"split", graph.split},
      {"wbits", q.wbits},            {"abits", q.abits},
      {"group", q.group_size},       {"percentile", q.percentile},
      {"quantize_first", q.quantize_first}, {"first_wbits", q.first_wbits},
      {"region_activations", q.region_activations}, {"epochs", o.epochs},
      {"batch_size", o.batch_size},  {"lr", o.lr},
      {"kd_weight", o.kd_weight},    {"kd_temperature", o.kd_temperature},
      {"calibration_images", o.calibration_images}, {"limit_train", o.limit_train}};
  const EpochState epoch_state{o.state_path, "head", settings.dump(), "delete it to start over"};
  int64_t start_epoch = 0;
  if (!o.state_path.empty()) {
    SI_ASSIGN_OR_RETURN(start_epoch, LoadEpochState(epoch_state, *head, *opt, torch::kCPU));
    if (start_epoch > 0) {  // on stderr even without progress, as the trainer does
      std::fprintf(stderr, "head fine-tuning: resuming after epoch %lld\n", static_cast<long long>(start_epoch));
    }
  }
  const int64_t n = train->size();
  const int64_t steps_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  const ScheduleConfig sched{"cosine", 0.05, 1e-2};
  const data::AugmentOptions aug{/*crop_padding=*/2, /*flip_probability=*/0.5};
  int64_t epoch = start_epoch;
  for (; epoch < o.epochs; ++epoch) {
    if (o.stop_after_epochs > 0 && epoch - start_epoch >= o.stop_after_epochs) return epoch;
    // The epoch's order and augmentation derive from (seed, epoch), as in the trainer, so a
    // resumed run sees the same batches as an uninterrupted one.
    torch::Generator gen = at::detail::createCPUGenerator(1234 * 104729ULL + static_cast<uint64_t>(epoch));
    const auto order = EpochOrder(n, 1234, epoch);
    ProgressBar bar(stderr, "head qat " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs), n,
                    o.progress ? 1.0 : 1e9);
    double loss_sum = 0;
    int64_t seen = 0, correct = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t b0 = s * o.batch_size, b1 = std::min(n, b0 + o.batch_size);
      std::vector<int64_t> idx(order.begin() + b0, order.begin() + b1);
      SI_ASSIGN_OR_RETURN(auto batch, train->batch(idx));
      const auto x = data::TrainTransform(batch.first, norm, aug, gen);
      SetLearningRate(*opt, LearningRate(sched, o.lr, epoch * steps_per_epoch + s, o.epochs * steps_per_epoch));
      torch::Tensor teacher;
      {
        torch::NoGradGuard ng;
        teacher = model->forward_all(x);
      }
      const auto features = head->forward(x);
      const auto logits = model->run_blocks(features, split.block + 1, model->num_blocks());
      auto loss = F::cross_entropy(logits, batch.second);
      if (o.kd_weight > 0) {
        const double t = o.kd_temperature;
        loss = loss + o.kd_weight * F::kl_div(F::log_softmax(logits / t, 1), F::softmax(teacher / t, 1),
                                              F::KLDivFuncOptions().reduction(torch::kBatchMean)) * t * t;
      }
      opt->zero_grad();
      loss.backward();
      opt->step();
      loss_sum += loss.item<double>() * static_cast<double>(b1 - b0);
      correct += logits.argmax(1).eq(batch.second).sum().item<int64_t>();
      seen += b1 - b0;
      if (o.progress) {
        bar.update(seen, seen, "loss " + std::to_string(loss_sum / seen).substr(0, 6) + " acc " +
                                      std::to_string(100.0 * correct / seen).substr(0, 5) + "%");
      }
    }
    if (o.progress) bar.finish("");
    if (!o.state_path.empty()) SI_RETURN_IF_ERROR(SaveEpochState(epoch_state, *head, *opt, epoch + 1));
  }
  // The fine-tuned float weights back into the graph.
  for (size_t i = 0; i < graph.ops.size(); ++i) {
    auto& op = graph.ops[i];
    if (op.kind != kernels::HeadOpKind::kConv) continue;
    const auto w = head->weights[i].detach().contiguous(), b = head->biases[i].detach().contiguous();
    op.weight.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
    op.bias.assign(b.data_ptr<float>(), b.data_ptr<float>() + b.numel());
  }
  SI_RETURN_IF_ERROR(graph.Validate());
  return epoch;
}

}  // namespace splitinfer::train
