#include "models/lowbit/convert.h"

#include <algorithm>
#include <cctype>
#include <map>

#include <optional>
#include <variant>

#include <torch/script.h>
#include <torch/torch.h>

#include "models/torch_compat.h"
#include "models/torchscript_chain.h"

namespace splitinfer::models::lowbit {

namespace {

using kernels::HeadGraph;
using kernels::HeadOp;
using kernels::HeadOpKind;
using ModulePtr = std::shared_ptr<torch::nn::Module>;

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// A module of either kind, native (torch::nn) or scripted (torch::jit), seen the same way, so
// that one converter reads the zoo's chains and a user's TorchScript file alike: what the layer
// is, its children, and a convolution's, batch norm's or max-pool's parameters.
class ModuleView {
 public:
  explicit ModuleView(ModulePtr m) : native_(std::move(m)) {}
  explicit ModuleView(torch::jit::Module m) : script_(std::move(m)) {}

  // "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Identity", else "" (a container or block).
  std::string kind() const {
    if (native_) {
      auto* m = native_.get();
      if (dynamic_cast<torch::nn::Conv2dImpl*>(m)) return "Conv2d";
      if (dynamic_cast<torch::nn::BatchNorm2dImpl*>(m)) return "BatchNorm2d";
      if (dynamic_cast<torch::nn::ReLUImpl*>(m)) return "ReLU";
      if (dynamic_cast<torch::nn::MaxPool2dImpl*>(m)) return "MaxPool2d";
      if (dynamic_cast<torch::nn::IdentityImpl*>(m)) return "Identity";
      return "";
    }
    // The class name without its module path (and any ___torch_mangle_N atom before it).
    const auto& q = script_->type()->name();
    const std::string name = q ? q->name() : "";
    for (const char* k : {"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Identity"}) {
      if (name == k) return k;
    }
    return "";
  }

  // The class name, for messages ("AdaptiveAvgPool2d").
  std::string type_name() const {
    if (native_) {
      std::string n = native_->name();  // "torch::nn::AdaptiveAvgPool2dImpl"
      n = n.substr(n.rfind(':') == std::string::npos ? 0 : n.rfind(':') + 1);
      return n.size() > 4 && n.compare(n.size() - 4, 4, "Impl") == 0 ? n.substr(0, n.size() - 4) : n;
    }
    const auto& q = script_->type()->name();
    return q ? q->name() : "?";
  }

  std::map<std::string, ModuleView> children() const {
    std::map<std::string, ModuleView> out;
    if (native_) {
      for (const auto& c : native_->named_children()) out.emplace(c.key(), ModuleView(c.value()));
    } else {
      for (const auto& c : script_->named_children()) out.emplace(c.name, ModuleView(c.value));
    }
    return out;
  }

  struct Conv {
    torch::Tensor weight, bias;  // bias undefined when the conv has none
    std::array<int64_t, 2> stride{}, padding{}, dilation{};
    int64_t groups = 1;
    bool zero_padding = true;  // padding given as numbers, padding_mode zeros
  };
  Conv conv() const {
    Conv c;
    if (native_) {
      const auto& o = dynamic_cast<torch::nn::Conv2dImpl&>(*native_).options;
      auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(native_.get());
      c.weight = conv->weight;
      c.bias = conv->bias;
      const auto* pad = compat::GetIf<torch::ExpandingArray<2>>(&o.padding());
      c.zero_padding = pad != nullptr && compat::GetIf<torch::enumtype::kZeros>(&o.padding_mode()) != nullptr;
      if (pad) c.padding = {(**pad)[0], (**pad)[1]};
      c.stride = {(*o.stride())[0], (*o.stride())[1]};
      c.dilation = {(*o.dilation())[0], (*o.dilation())[1]};
      c.groups = o.groups();
      return c;
    }
    c.weight = script_->attr("weight").toTensor();
    const auto bias = script_->attr("bias");
    if (bias.isTensor()) c.bias = bias.toTensor();
    c.stride = Pair(script_->attr("stride"));
    c.dilation = Pair(script_->attr("dilation"));
    c.groups = script_->attr("groups").toInt();
    const auto pad = script_->attr("padding");
    c.zero_padding = !pad.isString() && script_->attr("padding_mode").toStringRef() == "zeros";
    if (!pad.isString()) c.padding = Pair(pad);
    return c;
  }

  struct Bn {
    torch::Tensor weight, bias, mean, var;  // weight and bias undefined without affine
    double eps = 1e-5;
  };
  Bn bn() const {
    Bn b;
    if (native_) {
      auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(native_.get());
      return {bn->weight, bn->bias, bn->running_mean, bn->running_var, bn->options.eps()};
    }
    for (auto [name, out] : {std::pair<const char*, torch::Tensor*>{"weight", &b.weight}, {"bias", &b.bias},
                             {"running_mean", &b.mean}, {"running_var", &b.var}}) {
      const auto v = script_->attr(name);
      if (v.isTensor()) *out = v.toTensor();
    }
    b.eps = script_->attr("eps").toDouble();
    return b;
  }

  struct Pool {
    std::array<int64_t, 2> kernel{}, stride{}, padding{}, dilation{1, 1};
    bool ceil_mode = false;
  };
  Pool pool() const {
    Pool p;
    if (native_) {
      const auto& o = dynamic_cast<torch::nn::MaxPool2dImpl&>(*native_).options;
      p.kernel = {(*o.kernel_size())[0], (*o.kernel_size())[1]};
      p.stride = {(*o.stride())[0], (*o.stride())[1]};
      p.padding = {(*o.padding())[0], (*o.padding())[1]};
      p.dilation = {(*o.dilation())[0], (*o.dilation())[1]};
      p.ceil_mode = o.ceil_mode();
      return p;
    }
    p.kernel = Pair(script_->attr("kernel_size"));
    const auto stride = script_->attr("stride");
    p.stride = stride.isNone() ? p.kernel : Pair(stride);  // nn.MaxPool2d: stride None = kernel_size
    p.padding = Pair(script_->attr("padding"));
    p.dilation = Pair(script_->attr("dilation"));
    p.ceil_mode = script_->attr("ceil_mode").toBool();
    return p;
  }

 private:
  // An int or a pair of ints (nn.Conv2d and nn.MaxPool2d keep either).
  static std::array<int64_t, 2> Pair(const c10::IValue& v) {
    if (v.isInt()) return {v.toInt(), v.toInt()};
    const auto& e = v.toTupleRef().elements();
    if (e.size() != 2) return {-1, -1};
    return {e[0].toInt(), e[1].toInt()};
  }

  ModulePtr native_;
  std::optional<torch::jit::Module> script_;
};

struct Builder {
  HeadGraph g;
  int reg = 0;     // the register holding the current value
  std::vector<std::array<int, 3>> shapes;  // per register
  // The last op is a conv whose output nothing has read yet, so a following BatchNorm2d or ReLU
  // (separate blocks in a TorchScript chain: conv1, bn1, relu) folds into it.
  bool open_conv = false, open_conv_has_bn = false;

  // A convolution reading `input`, with the batch norm after it folded in when there is one;
  // returns the register written.
  Result<int> ConvBn(const ModuleView& conv_m, const ModuleView* bn_m, int input, bool relu, int residual,
                     const std::string& path) {
    if (conv_m.kind() != "Conv2d" || (bn_m && bn_m->kind() != "BatchNorm2d")) {
      return Unimplemented(path + ": expected a Conv2d followed by a BatchNorm2d");
    }
    const auto c = conv_m.conv();
    if (c.groups != 1 || c.dilation[0] != 1 || c.dilation[1] != 1 || !c.zero_padding || c.padding[0] != c.padding[1] ||
        c.stride[0] != c.stride[1]) {
      return Unimplemented(path + ": only convolutions with one group, no dilation and square stride and zero "
                                  "padding have a low-bit kernel");
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
    op.shape.out_channels = static_cast<int>(c.weight.size(0));
    op.shape.kernel_h = static_cast<int>(c.weight.size(2));
    op.shape.kernel_w = static_cast<int>(c.weight.size(3));
    op.shape.stride = static_cast<int>(c.stride[0]);
    op.shape.padding = static_cast<int>(c.padding[0]);
    op.shape.group_size = op.shape.in_channels;
    if (c.weight.size(1) != in[0]) {
      return Mismatch(path + ": takes " + std::to_string(c.weight.size(1)) + " channels, gets " +
                      std::to_string(in[0]));
    }
    torch::NoGradGuard no_grad;
    auto weight = c.weight.to(torch::kCPU, torch::kFloat).contiguous();
    auto bias = c.bias.defined() ? c.bias.to(torch::kCPU, torch::kFloat).contiguous()
                                 : torch::zeros({weight.size(0)}, torch::kFloat);
    op.weight.assign(weight.data_ptr<float>(), weight.data_ptr<float>() + weight.numel());
    op.bias.assign(bias.data_ptr<float>(), bias.data_ptr<float>() + bias.numel());
    if (bn_m) FoldBn(bn_m->bn(), &op);
    g.ops.push_back(std::move(op));
    const auto& s = g.ops.back().shape;
    shapes.push_back({s.out_channels, s.out_height(), s.out_width()});
    return static_cast<int>(g.ops.size());
  }

  // w' = w * s, b' = beta + (b - mean) * s with s = gamma / sqrt(var + eps), per output channel.
  static void FoldBn(const ModuleView::Bn& bn, HeadOp* op) {
    torch::NoGradGuard no_grad;
    const int64_t oc = static_cast<int64_t>(op->bias.size());
    auto f = [oc](const torch::Tensor& t, float fill) {
      return t.defined() ? t.to(torch::kCPU, torch::kFloat).contiguous() : torch::full({oc}, fill);
    };
    const auto scale = f(bn.weight, 1.0f) / torch::sqrt(f(bn.var, 1.0f) + bn.eps);
    const auto shift = f(bn.bias, 0.0f), mean = f(bn.mean, 0.0f);
    const int64_t per = static_cast<int64_t>(op->weight.size()) / oc;
    for (int64_t o = 0; o < oc; ++o) {
      const float s = scale[o].item<float>();
      for (int64_t i = 0; i < per; ++i) op->weight[static_cast<size_t>(o * per + i)] *= s;
      op->bias[static_cast<size_t>(o)] =
          shift[o].item<float>() + (op->bias[static_cast<size_t>(o)] - mean[o].item<float>()) * s;
    }
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

  // A lone layer: a block of a TorchScript chain, where torchvision's stem is four blocks.
  Status Layer(const ModuleView& m, const std::string& kind, const std::string& path) {
    const bool last_is_open = open_conv && reg == static_cast<int>(g.ops.size());
    if (kind == "Conv2d") {
      SI_ASSIGN_OR_RETURN(reg, ConvBn(m, nullptr, reg, false, -1, path));
      open_conv = true;
      open_conv_has_bn = false;
      return Status::Ok();
    }
    if (kind == "BatchNorm2d") {
      if (!last_is_open || open_conv_has_bn || g.ops.back().relu) {
        return Unimplemented(path + ": a BatchNorm2d folds only into the convolution right before it");
      }
      FoldBn(m.bn(), &g.ops.back());
      open_conv_has_bn = true;
      return Status::Ok();
    }
    if (kind == "ReLU") {
      if (!last_is_open) return Unimplemented(path + ": a ReLU runs only as part of the convolution before it");
      g.ops.back().relu = true;
      open_conv = false;  // a batch norm after the ReLU would not fold
      return Status::Ok();
    }
    if (kind == "MaxPool2d") {
      const auto p = m.pool();
      if (p.kernel[0] != p.kernel[1] || p.stride[0] != p.stride[1] || p.padding[0] != p.padding[1] ||
          p.dilation[0] != 1 || p.dilation[1] != 1 || p.ceil_mode) {
        return Unimplemented(path + ": only square max-pools without dilation or ceil_mode have a low-bit kernel");
      }
      reg = MaxPool(reg, static_cast<int>(p.kernel[0]), static_cast<int>(p.stride[0]), static_cast<int>(p.padding[0]),
                    path);
      open_conv = false;
      return Status::Ok();
    }
    return Status::Ok();  // Identity
  }

  Status Block(const ModuleView& m, const std::string& path) {
    const std::string kind = m.kind();
    if (!kind.empty()) return Layer(m, kind, path);
    open_conv = false;
    auto ch = m.children();
    auto has = [&](const char* n) { return ch.count(n) > 0; };
    if (ch.size() == 2 && has("conv") && has("bn")) {  // resnet_fmnist stem: relu(bn(conv(x)))
      SI_ASSIGN_OR_RETURN(reg, ConvBn(ch.at("conv"), &ch.at("bn"), reg, true, -1, path + ".conv"));
      return Status::Ok();
    }
    if (ch.size() == 2 && has("conv1") && has("bn1")) {  // native torchvision stem: + 3x3/2 max-pool
      SI_ASSIGN_OR_RETURN(reg, ConvBn(ch.at("conv1"), &ch.at("bn1"), reg, true, -1, path + ".conv1"));
      reg = MaxPool(reg, 3, 2, 1, path + ".maxpool");
      return Status::Ok();
    }
    if (has("conv1") && has("bn1") && has("conv2") && has("bn2")) {  // basic block or bottleneck
      const int x = reg;
      SI_ASSIGN_OR_RETURN(int y, ConvBn(ch.at("conv1"), &ch.at("bn1"), x, true, -1, path + ".conv1"));
      const ModuleView* last_conv = &ch.at("conv2");
      const ModuleView* last_bn = &ch.at("bn2");
      std::string last = ".conv2";
      if (has("conv3")) {
        if (!has("bn3")) return Unimplemented(path + ": conv3 without bn3");
        SI_ASSIGN_OR_RETURN(y, ConvBn(ch.at("conv2"), &ch.at("bn2"), y, true, -1, path + ".conv2"));
        last_conv = &ch.at("conv3");
        last_bn = &ch.at("bn3");
        last = ".conv3";
      }
      int shortcut = x;
      for (const char* name : {"shortcut", "downsample"}) {
        if (!has(name)) continue;
        auto sc = ch.at(name).children();
        if (sc.size() != 2 || !sc.count("0") || !sc.count("1")) {
          return Unimplemented(path + "." + name + ": expected a Sequential(Conv2d, BatchNorm2d)");
        }
        SI_ASSIGN_OR_RETURN(shortcut, ConvBn(sc.at("0"), &sc.at("1"), x, false, -1, path + "." + name));
      }
      SI_ASSIGN_OR_RETURN(reg, ConvBn(*last_conv, last_bn, y, true, shortcut, path + last));
      return Status::Ok();
    }
    if (!ch.empty() && std::all_of(ch.begin(), ch.end(), [](const auto& kv) { return AllDigits(kv.first); })) {
      std::vector<std::pair<int, const ModuleView*>> ordered;
      for (const auto& [k, v] : ch) ordered.emplace_back(std::stoi(k), &v);
      std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& [i, v] : ordered) SI_RETURN_IF_ERROR(Block(*v, path + "." + std::to_string(i)));
      return Status::Ok();
    }
    if (ch.empty()) {
      return Unimplemented("block " + path + " is a " + m.type_name() +
                           ", which has no low-bit kernel: quantize-head supports ResNet-style heads (convolution, "
                           "batch norm, ReLU, max-pool, residual blocks); split before it");
    }
    std::string names;
    for (const auto& [k, v] : ch) names += (names.empty() ? "" : ", ") + k;
    return Unimplemented("block " + path + " (children: " + names +
                         ") has no low-bit form: quantize-head supports ResNet-style heads");
  }
};

}  // namespace

Result<HeadGraph> ExtractHead(SplitModel& model, const std::string& model_name, const SplitPoint& split,
                              const std::vector<int64_t>& input_shape) {
  if (input_shape.size() != 3) return InvalidArgument("the model's input shape needs C, H, W");
  Builder b;
  b.g.model = model_name;
  b.g.split = split.name;
  b.g.in_channels = static_cast<int>(input_shape[0]);
  b.g.in_height = static_cast<int>(input_shape[1]);
  b.g.in_width = static_cast<int>(input_shape[2]);
  b.shapes.push_back({b.g.in_channels, b.g.in_height, b.g.in_width});
  const auto names = model.block_names();
  auto* native = dynamic_cast<BlockChainImpl*>(&model);
  for (int64_t i = 0; i <= split.block; ++i) {
    const std::string& name = names[static_cast<size_t>(i)];
    if (native != nullptr) {
      const auto* m = native->named_children().find(name);
      if (!m) return Internal("block " + name + " is not a child of the model");
      SI_RETURN_IF_ERROR(b.Block(ModuleView(*m), name));
    } else if (const torch::jit::Module* s = TorchScriptBlock(model, i)) {
      try {
        SI_RETURN_IF_ERROR(b.Block(ModuleView(*s), name));
      } catch (const c10::Error& e) {  // an attribute missing or of another type than nn's
        return Unimplemented("block " + name + " of " + model_name + " is not the torch.nn layer its class name " +
                             "says (" + e.what_without_backtrace() + ")");
      }
    } else {
      return Unimplemented("the low-bit converter reads native and TorchScript chains, not " + model_name);
    }
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

Result<double> CheckAgainstTorch(const HeadGraph& graph, SplitModel& model, const SplitPoint& split,
                                 const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  model.set_eval();
  const auto want = model.head(images, split).to(torch::kCPU).contiguous();
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
