// ViT-B/16 as a block chain, equivalent to torchvision's vit_b_16 (224x224 input only: the
// learned position embedding has exactly 14*14 + 1 = 197 tokens).
//
//   patch_embed (conv 16x16/16 -> tokens, prepend class token, add position embedding)
//   | encoder_0 | ... | encoder_11 | classifier (final LayerNorm, class token, Linear)
//
// Every cut sends [N, 197, 768]. Mapping from torchvision:
//   conv_proj, class_token, encoder.pos_embedding  -> patch_embed.{conv_proj, class_token, pos_embedding}
//   encoder.layers.encoder_layer_i                 -> encoder_i (ln_1, self_attention.{in_proj_weight,
//                                                     in_proj_bias, out_proj}, ln_2; mlp.{0,3} -> mlp.{fc1,fc2})
//   encoder.ln, heads.head                         -> classifier.{ln, head}
// torchvision's vit_b_16 uses dropout 0 everywhere, so no dropout layers are built.
#include <cmath>
#include <string>

#include <torch/torch.h>

#include "models/zoo/zoo.h"

namespace splitinfer::models {
namespace {

namespace nn = torch::nn;

constexpr int64_t kImageSize = 224;
constexpr int64_t kPatchSize = 16;
constexpr int64_t kHidden = 768;
constexpr int64_t kMlp = 3072;
constexpr int64_t kHeads = 12;
constexpr int64_t kLayers = 12;
constexpr int64_t kTokens = (kImageSize / kPatchSize) * (kImageSize / kPatchSize) + 1;
constexpr double kNormEps = 1e-6;

nn::LayerNorm MakeLayerNorm() { return nn::LayerNorm(nn::LayerNormOptions({kHidden}).eps(kNormEps)); }

struct PatchEmbedImpl : nn::Module {
  explicit PatchEmbedImpl(int64_t in_channels)
      : class_token(register_parameter("class_token", torch::zeros({1, 1, kHidden}))),
        pos_embedding(register_parameter("pos_embedding", torch::empty({1, kTokens, kHidden}))),
        conv_proj(register_module(
            "conv_proj", nn::Conv2d(nn::Conv2dOptions(in_channels, kHidden, kPatchSize).stride(kPatchSize)))) {}

  torch::Tensor forward(torch::Tensor x) {
    TORCH_CHECK(x.dim() == 4 && x.size(2) == kImageSize && x.size(3) == kImageSize, "vit_b_16 needs [N, C, ",
                kImageSize, ", ", kImageSize, "] input (its position embedding has ", kTokens,
                " tokens), got ", x.sizes());
    const int64_t n = x.size(0);
    x = conv_proj(x).reshape({n, kHidden, kTokens - 1}).permute({0, 2, 1});
    x = torch::cat({class_token.expand({n, -1, -1}), x}, /*dim=*/1);
    return x + pos_embedding;
  }

  torch::Tensor class_token;
  torch::Tensor pos_embedding;
  nn::Conv2d conv_proj;
};
TORCH_MODULE(PatchEmbed);

// Multi-head self-attention with torch.nn.MultiheadAttention's parameter layout (packed q/k/v
// projection). Written out because LibTorch 1.13's MultiheadAttention has no batch_first and
// registers undefined q/k/v_proj_weight placeholders.
struct SelfAttentionImpl : nn::Module {
  SelfAttentionImpl()
      : in_proj_weight(register_parameter("in_proj_weight", torch::empty({3 * kHidden, kHidden}))),
        in_proj_bias(register_parameter("in_proj_bias", torch::zeros({3 * kHidden}))),
        out_proj(register_module("out_proj", nn::Linear(kHidden, kHidden))) {
    // torch.nn.MultiheadAttention._reset_parameters; out_proj.weight keeps Linear's default.
    nn::init::xavier_uniform_(in_proj_weight);
    nn::init::zeros_(out_proj->bias);
  }

  torch::Tensor forward(torch::Tensor x) {
    const int64_t n = x.size(0), tokens = x.size(1), head_dim = kHidden / kHeads;
    // [N, L, 3E] -> [3, N, heads, L, head_dim]
    torch::Tensor qkv = torch::linear(x, in_proj_weight, in_proj_bias)
                            .view({n, tokens, 3, kHeads, head_dim})
                            .permute({2, 0, 3, 1, 4});
    torch::Tensor q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    torch::Tensor attn = torch::softmax(torch::matmul(q, qkv[1].transpose(-2, -1)), /*dim=*/-1);
    torch::Tensor out = torch::matmul(attn, qkv[2]).transpose(1, 2).reshape({n, tokens, kHidden});
    return out_proj(out);
  }

  torch::Tensor in_proj_weight;
  torch::Tensor in_proj_bias;
  nn::Linear out_proj;
};
TORCH_MODULE(SelfAttention);

struct MlpImpl : nn::Module {
  MlpImpl() : fc1(register_module("fc1", nn::Linear(kHidden, kMlp))), fc2(register_module("fc2", nn::Linear(kMlp, kHidden))) {
    // torchvision's MLPBlock init.
    for (auto* fc : {fc1.get(), fc2.get()}) {
      nn::init::xavier_uniform_(fc->weight);
      nn::init::normal_(fc->bias, /*mean=*/0.0, /*std=*/1e-6);
    }
  }

  torch::Tensor forward(torch::Tensor x) { return fc2(torch::gelu(fc1(x))); }

  nn::Linear fc1;
  nn::Linear fc2;
};
TORCH_MODULE(Mlp);

// Pre-norm transformer layer.
struct EncoderBlockImpl : nn::Module {
  EncoderBlockImpl()
      : ln_1(register_module("ln_1", MakeLayerNorm())),
        self_attention(register_module("self_attention", SelfAttention())),
        ln_2(register_module("ln_2", MakeLayerNorm())),
        mlp(register_module("mlp", Mlp())) {}

  torch::Tensor forward(torch::Tensor x) {
    TORCH_CHECK(x.dim() == 3, "vit_b_16 encoder expects [N, tokens, ", kHidden, "], got ", x.sizes());
    x = x + self_attention(ln_1(x));
    return x + mlp(ln_2(x));
  }

  nn::LayerNorm ln_1;
  SelfAttention self_attention;
  nn::LayerNorm ln_2;
  Mlp mlp;
};
TORCH_MODULE(EncoderBlock);

struct ClassifierImpl : nn::Module {
  explicit ClassifierImpl(int64_t num_classes)
      : ln(register_module("ln", MakeLayerNorm())), head(register_module("head", nn::Linear(kHidden, num_classes))) {}

  // Only the class token feeds the head.
  torch::Tensor forward(torch::Tensor x) { return head(ln(x).select(/*dim=*/1, /*index=*/0)); }

  nn::LayerNorm ln;
  nn::Linear head;
};
TORCH_MODULE(Classifier);

}  // namespace

BlockChain MakeViTB16(const ModelOptions& options) {
  TORCH_CHECK(options.width == 0, "vit_b_16 has a fixed width; ModelOptions::width must be 0, got ", options.width);
  BlockChain chain("vit_b_16");

  PatchEmbed patch_embed(options.in_channels);
  {
    torch::NoGradGuard no_grad;
    nn::init::normal_(patch_embed->pos_embedding, /*mean=*/0.0, /*std=*/0.02);  // from BERT, as torchvision
    // torchvision: trunc_normal_(std=sqrt(1/fan_in)) with absolute bounds +-2 (> 50 std), which
    // is a plain normal in practice.
    const double fan_in = static_cast<double>(options.in_channels * kPatchSize * kPatchSize);
    nn::init::normal_(patch_embed->conv_proj->weight, /*mean=*/0.0, /*std=*/std::sqrt(1.0 / fan_in));
    nn::init::zeros_(patch_embed->conv_proj->bias);
  }
  chain->add("patch_embed", patch_embed, /*split_after=*/true);

  for (int64_t i = 0; i < kLayers; ++i) {
    chain->add("encoder_" + std::to_string(i), EncoderBlock(), /*split_after=*/true);
  }

  // torchvision zero-initialises the head, so a fresh model outputs all-zero logits until it
  // is trained (or loaded).
  Classifier classifier(options.num_classes);
  nn::init::zeros_(classifier->head->weight);
  nn::init::zeros_(classifier->head->bias);
  chain->add("classifier", classifier, /*split_after=*/false);
  return chain;
}

}  // namespace splitinfer::models
