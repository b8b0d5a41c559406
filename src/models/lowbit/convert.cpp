#include "models/lowbit/convert.h"

#include <algorithm>
#include <cctype>
#include <map>

#include <torch/torch.h>

#include "models/torch_compat.h"

namespace splitinfer::models::lowbit {

namespace {

using kernels::HeadGraph;
using kernels::HeadOp;
using kernels::HeadOpKind;
using ModulePtr = std::shared_ptr<torch::nn::Module>;

std::map<std::string, ModulePtr> Children(const torch::nn::Module& m) {
  std::map<std::string, ModulePtr> out;
  for (const auto& c : m.named_children()) out[c.key()] = c.value();
  return out;
}

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

struct Builder {
  HeadGraph g;
  int reg = 0;     // the register holding the current value
  int c = 0, h = 0, w = 0;
  std::vector<std::array<int, 3>> shapes;  // per register

  // conv + batch norm (folded) reading `input`; returns the register written.
  Result<int> ConvBn(const ModulePtr& conv_m, const ModulePtr& bn_m, int input, bool relu, int residual,
                     const std::string& path) {
    auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(conv_m.get());
    auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(bn_m.get());
    if (!conv || !bn) return Unimplemented(path + ": expected a Conv2d followed by a BatchNorm2d");
    const auto& o = conv->options;
    const auto* pad = compat::GetIf<torch::ExpandingArray<2>>(&o.padding());
    if (o.groups() != 1 || (*o.dilation())[0] != 1 || (*o.dilation())[1] != 1 || !pad ||
        (**pad)[0] != (**pad)[1] || (*o.stride())[0] != (*o.stride())[1]) {
      return Unimplemented(path + ": only convolutions with one group, no dilation and square stride and padding "
                                  "have a low-bit kernel");
    }
    const auto in = shapes[static_cast<size_t>(input)];
    HeadOp op;
    op.kind = HeadOpKind::kConv;
    op.name = path;
    op.input = input;
    op.residual = residual;
    op.relu = relu;
    op.shape.in_channels = in[0];
    op.shape.in_height = in[1];
    op.shape.in_width = in[2];
    op.shape.out_channels = static_cast<int>(o.out_channels());
    op.shape.kernel_h = static_cast<int>((*o.kernel_size())[0]);
    op.shape.kernel_w = static_cast<int>((*o.kernel_size())[1]);
    op.shape.stride = static_cast<int>((*o.stride())[0]);
    op.shape.padding = static_cast<int>((**pad)[0]);
    op.shape.group_size = op.shape.in_channels;
    if (o.in_channels() != in[0]) {
      return Mismatch(path + ": takes " + std::to_string(o.in_channels()) + " channels, gets " + std::to_string(in[0]));
    }
    torch::NoGradGuard no_grad;
    const auto scale = bn->weight.to(torch::kFloat) / torch::sqrt(bn->running_var.to(torch::kFloat) + bn->options.eps());
    auto weight = (conv->weight.to(torch::kFloat) * scale.view({-1, 1, 1, 1})).contiguous().cpu();
    auto conv_bias = conv->bias.defined() ? conv->bias.to(torch::kFloat) : torch::zeros_like(scale);
    auto bias = (bn->bias.to(torch::kFloat) + (conv_bias - bn->running_mean.to(torch::kFloat)) * scale).contiguous().cpu();
    op.weight.assign(weight.data_ptr<float>(), weight.data_ptr<float>() + weight.numel());
    op.bias.assign(bias.data_ptr<float>(), bias.data_ptr<float>() + bias.numel());
    g.ops.push_back(std::move(op));
    const auto& s = g.ops.back().shape;
    shapes.push_back({s.out_channels, s.out_height(), s.out_width()});
    return static_cast<int>(g.ops.size());
  }

  int MaxPool(int input, int k, int stride, int padding, const std::string& path) {
    HeadOp op;
    op.kind = HeadOpKind::kMaxPool;
    op.name = path;
    op.input = input;
    op.pool_kernel = k;
    op.pool_stride = stride;
    op.pool_padding = padding;
    const auto in = shapes[static_cast<size_t>(input)];
    g.ops.push_back(op);
    shapes.push_back({in[0], (in[1] + 2 * padding - k) / stride + 1, (in[2] + 2 * padding - k) / stride + 1});
    return static_cast<int>(g.ops.size());
  }

  Status Block(const torch::nn::Module& m, const std::string& path) {
    auto ch = Children(m);
    auto has = [&](const char* n) { return ch.count(n) > 0; };
    if (ch.size() == 2 && has("conv") && has("bn")) {  // resnet_fmnist stem: relu(bn(conv(x)))
      SI_ASSIGN_OR_RETURN(reg, ConvBn(ch["conv"], ch["bn"], reg, true, -1, path + ".conv"));
      return Status::Ok();
    }
    if (ch.size() == 2 && has("conv1") && has("bn1")) {  // torchvision stem: + 3x3/2 max-pool
      SI_ASSIGN_OR_RETURN(reg, ConvBn(ch["conv1"], ch["bn1"], reg, true, -1, path + ".conv1"));
      reg = MaxPool(reg, 3, 2, 1, path + ".maxpool");
      return Status::Ok();
    }
    if (has("conv1") && has("bn1") && has("conv2") && has("bn2")) {  // basic block or bottleneck
      const int x = reg;
      SI_ASSIGN_OR_RETURN(int y, ConvBn(ch["conv1"], ch["bn1"], x, true, -1, path + ".conv1"));
      ModulePtr last_conv = ch["conv2"], last_bn = ch["bn2"];
      std::string last = ".conv2";
      if (has("conv3")) {
        if (!has("bn3")) return Unimplemented(path + ": conv3 without bn3");
        SI_ASSIGN_OR_RETURN(y, ConvBn(ch["conv2"], ch["bn2"], y, true, -1, path + ".conv2"));
        last_conv = ch["conv3"];
        last_bn = ch["bn3"];
        last = ".conv3";
      }
      int shortcut = x;
      for (const char* name : {"shortcut", "downsample"}) {
        if (!has(name)) continue;
        auto sc = Children(*ch[name]);
        if (sc.size() != 2 || !sc.count("0") || !sc.count("1")) {
          return Unimplemented(path + "." + name + ": expected a Sequential(Conv2d, BatchNorm2d)");
        }
        SI_ASSIGN_OR_RETURN(shortcut, ConvBn(sc["0"], sc["1"], x, false, -1, path + "." + name));
      }
      SI_ASSIGN_OR_RETURN(reg, ConvBn(last_conv, last_bn, y, true, shortcut, path + last));
      return Status::Ok();
    }
    if (!ch.empty() && std::all_of(ch.begin(), ch.end(), [](const auto& kv) { return AllDigits(kv.first); })) {
      std::vector<std::pair<int, ModulePtr>> ordered;
      for (const auto& [k, v] : ch) ordered.emplace_back(std::stoi(k), v);
      std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& [i, v] : ordered) SI_RETURN_IF_ERROR(Block(*v, path + "." + std::to_string(i)));
      return Status::Ok();
    }
    std::string names;
    for (const auto& [k, v] : ch) names += (names.empty() ? "" : ", ") + k;
    return Unimplemented("block " + path + " (children: " + names +
                         ") has no low-bit form: quantize-head supports ResNet-style heads");
  }
};

}  // namespace

Result<HeadGraph> ExtractHead(BlockChain& model, const std::string& model_name, const SplitPoint& split,
                              const std::vector<int64_t>& input_shape) {
  if (input_shape.size() != 3) return InvalidArgument("the model's input shape needs C, H, W");
  Builder b;
  b.g.model = model_name;
  b.g.split = split.name;
  b.g.in_channels = static_cast<int>(input_shape[0]);
  b.g.in_height = static_cast<int>(input_shape[1]);
  b.g.in_width = static_cast<int>(input_shape[2]);
  b.shapes.push_back({b.g.in_channels, b.g.in_height, b.g.in_width});
  const auto names = model->block_names();
  auto children = model->named_children();
  for (int64_t i = 0; i <= split.block; ++i) {
    const auto* m = children.find(names[static_cast<size_t>(i)]);
    if (!m) return Internal("block " + names[static_cast<size_t>(i)] + " is not a child of the model");
    SI_RETURN_IF_ERROR(b.Block(**m, names[static_cast<size_t>(i)]));
  }
  SI_RETURN_IF_ERROR(b.g.Validate());
  return b.g;
}

kernels::Tensor3 ToTensor3(const torch::Tensor& chw) {
  auto t = chw.dim() == 4 ? chw[0] : chw;
  t = t.to(torch::kCPU, torch::kFloat).contiguous();
  kernels::Tensor3 out{static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), static_cast<int>(t.size(2)), {}};
  out.data.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  return out;
}

torch::Tensor FromTensor3(const kernels::Tensor3& t) {
  return torch::from_blob(const_cast<float*>(t.data.data()), {1, t.c, t.h, t.w}, torch::kFloat).clone();
}

Result<double> CheckAgainstTorch(const HeadGraph& graph, BlockChain& model, const SplitPoint& split,
                                 const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto want = model->head(images, split).to(torch::kCPU).contiguous();
  double worst = 0, top = 0;
  for (int64_t i = 0; i < images.size(0); ++i) {
    SI_ASSIGN_OR_RETURN(auto got, kernels::RunFloat(graph, ToTensor3(images[i])));
    const auto diff = (FromTensor3(got)[0] - want[i]).abs().max().item<double>();
    worst = std::max(worst, diff);
    top = std::max(top, want[i].abs().max().item<double>());
  }
  return top > 0 ? worst / top : worst;
}

}  // namespace splitinfer::models::lowbit
