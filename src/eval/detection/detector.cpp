#include "eval/detection/detector.h"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/progress.h"
#include "data/transforms.h"
#include "eval/image_baseline.h"

namespace splitinfer::eval {
namespace {
std::vector<CocoScorer::InputBox> ToInputBoxes(const std::vector<detect::Box>& boxes) {
  std::vector<CocoScorer::InputBox> out;
  out.reserve(boxes.size());
  for (const auto& d : boxes) out.push_back({d.x, d.y, d.x + d.w, d.y + d.h, d.score, d.label});
  return out;
}
}  // namespace

Result<DetectorEvalResult> EvaluateDetector(const DetectorForward& forward, const data::CocoDetectionDataset& dataset,
                                            const models::CheckpointMeta& meta, const DetectorEvalOptions& options) {
  SI_ASSIGN_OR_RETURN(const detect::YoloLayout layout, detect::LayoutFor(meta));
  if (options.batch_size < 1) return InvalidArgument("batch size must be >= 1");
  const int64_t n = options.limit > 0 ? std::min(options.limit, dataset.size()) : dataset.size();
  SI_ASSIGN_OR_RETURN(CocoScorer scorer,
                      CocoScorer::Create(dataset.annotations(), n, layout.num_classes, dataset.annotation_file()));
  DetectorEvalResult r;
  const data::Normalization norm{meta.norm_mean, meta.norm_std};
  torch::NoGradGuard no_grad;
  ProgressBar bar(stderr, "eval", n, 30.0);
  const auto start = std::chrono::steady_clock::now();
  try {
    for (int64_t begin = 0; begin < n; begin += options.batch_size) {
      const int64_t end = std::min(n, begin + options.batch_size);
      std::vector<data::DetectionSample> samples;
      for (int64_t i = begin; i < end; ++i) {
        SI_ASSIGN_OR_RETURN(auto s, dataset.sample(i));
        samples.push_back(std::move(s));
      }
      const auto [images, targets] = data::CollateDetection(samples);
      const auto x = data::ToFloatNormalized(images.to(options.device), norm);
      SI_ASSIGN_OR_RETURN(const torch::Tensor out, forward(x));
      SI_ASSIGN_OR_RETURN(const auto boxes, detect::PostProcess(out.to(torch::kCPU, torch::kFloat), layout, options.post));
      for (size_t b = 0; b < boxes.size(); ++b) {
        const auto& s = samples[b];
        SI_RETURN_IF_ERROR(scorer.Add(begin + static_cast<int64_t>(b), s.scale, s.pad_x, s.pad_y, ToInputBoxes(boxes[b])));
      }
      if (options.progress) bar.update(end, end, std::to_string(scorer.detections().size()) + " detections");
    }
  } catch (const c10::Error& e) {
    return Internal(std::string("detector evaluation failed inside LibTorch: ") + e.what_without_backtrace());
  }
  SI_ASSIGN_OR_RETURN(r.metrics, scorer.Score(options.class_agnostic));
  r.detections = scorer.detections();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images = n;
  return r;
}

Result<DetectorEvalResult> EvaluateDetector(models::SplitModel& model, const data::CocoDetectionDataset& dataset,
                                            const models::CheckpointMeta& meta, const DetectorEvalOptions& options) {
  model.set_eval();
  return EvaluateDetector([&model](const torch::Tensor& x) -> Result<torch::Tensor> { return model.forward_all(x); },
                          dataset, meta, options);
}

Result<JpegMatch> JpegMatchingAp50(models::SplitModel& model, const data::CocoDetectionDataset& dataset,
                                   const models::CheckpointMeta& meta, double target_ap50, double tolerance,
                                   const DetectorEvalOptions& options, const std::vector<int>& ladder) {
  if (ladder.empty()) return InvalidArgument("no JPEG qualities to try");
  model.set_eval();
  const auto mean = torch::tensor(meta.norm_mean, torch::kFloat).view({1, -1, 1, 1});
  const auto std = torch::tensor(meta.norm_std, torch::kFloat).view({1, -1, 1, 1});
  JpegMatch best;
  for (int quality : ladder) {
    double bytes = 0;
    auto forward = [&](const torch::Tensor& x) -> Result<torch::Tensor> {
      // Back to the 8-bit pixels the normalisation was made from, through JPEG, and on.
      const auto pixels = ((x.to(torch::kCPU) * std + mean) * 255.0).round().clamp(0, 255).to(torch::kUInt8);
      SI_ASSIGN_OR_RETURN(const torch::Tensor back, JpegRoundTrip(pixels, quality, &bytes));
      const auto y = ((back.to(torch::kFloat) / 255.0 - mean) / std).to(x.device());
      return model.forward_all(y);
    };
    SI_ASSIGN_OR_RETURN(auto ev, EvaluateDetector(forward, dataset, meta, options));
    const double per_image = bytes / static_cast<double>(std::max<int64_t>(ev.images, 1));
    best.tried.push_back({quality, ev.metrics.ap50, per_image});
    const bool ok = ev.metrics.ap50 >= target_ap50 - tolerance;
    if (!ok && best.quality != 0) break;  // the previous quality was the last that matched
    best.quality = quality;
    best.matched = ok;
    best.bytes_per_image = per_image;
    best.metrics = ev.metrics;
    if (!ok) break;  // not even the first rung matches
  }
  return best;
}

nlohmann::json DetectionsToCocoResults(const std::vector<DetectionBox>& detections) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : detections) {
    out.push_back({{"image_id", d.image_id},
                   {"category_id", d.category_id},
                   {"bbox", {d.box.x, d.box.y, d.box.w, d.box.h}},
                   {"score", d.score}});
  }
  return out;
}

}  // namespace splitinfer::eval
