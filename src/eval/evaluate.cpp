#include "eval/evaluate.h"

#include <chrono>

#include <torch/torch.h>

#include "core/progress.h"
#include "data/transforms.h"

namespace splitinfer::eval {

int64_t CountTopK(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  auto topk = std::get<1>(logits.topk(k, /*dim=*/1));
  return topk.eq(labels.view({-1, 1})).any(1).sum().item<int64_t>();
}

Result<EvalResult> Evaluate(models::SplitModel& model, const data::Dataset& dataset, const data::Normalization& norm,
                            const std::optional<models::SplitPoint>& split, const EvalOptions& options) {
  if (options.batch_size < 1) return InvalidArgument("batch size must be >= 1");
  const int64_t n = options.limit > 0 ? std::min(options.limit, dataset.size()) : dataset.size();
  if (n == 0) return InvalidArgument("dataset " + dataset.name() + " is empty");
  const bool with_top5 = dataset.num_classes() > 10;
  torch::NoGradGuard no_grad;
  model.set_eval();
  EvalResult r;
  int64_t correct1 = 0, correct5 = 0;
  ProgressBar bar(stderr, "eval", n, 30.0);
  const auto start = std::chrono::steady_clock::now();
  try {
    for (int64_t begin = 0; begin < n; begin += options.batch_size) {
      const int64_t end = std::min(n, begin + options.batch_size);
      std::vector<int64_t> idx(end - begin);
      for (int64_t i = begin; i < end; ++i) idx[i - begin] = i;
      SI_ASSIGN_OR_RETURN(auto batch, dataset.batch(idx));
      auto x = data::ToFloatNormalized(batch.first.to(options.device), norm);
      auto labels = batch.second.to(options.device);
      torch::Tensor logits;
      if (split) {
        auto f = model.head(x, *split);
        if (r.feature_shape.empty()) {
          r.feature_shape.assign(f.sizes().begin() + 1, f.sizes().end());
          r.feature_float_bytes = f[0].numel() * static_cast<int64_t>(sizeof(float));
        }
        if (options.feature_sink) options.feature_sink(f);
        logits = model.tail(f, *split);
      } else {
        logits = model.forward_all(x);
      }
      correct1 += CountTopK(logits, labels, 1);
      if (with_top5) correct5 += CountTopK(logits, labels, 5);
      if (options.progress) {
        bar.update(end, end, "top1 " + std::to_string(100.0 * correct1 / end).substr(0, 5) + "%");
      }
    }
  } catch (const c10::Error& e) {
    return Internal(std::string("evaluation failed inside LibTorch: ") + e.what_without_backtrace() +
                    " (does the checkpoint's input shape match the dataset's images?)");
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images = n;
  r.top1 = 100.0 * static_cast<double>(correct1) / static_cast<double>(n);
  if (with_top5) r.top5 = 100.0 * static_cast<double>(correct5) / static_cast<double>(n);
  return r;
}

}  // namespace splitinfer::eval
