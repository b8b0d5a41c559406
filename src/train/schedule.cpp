#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace splitinfer::train {
namespace {
double CosineBetween(double from, double to, double t) {  // t in [0, 1]
  return to + (from - to) * 0.5 * (1.0 + std::cos(M_PI * std::clamp(t, 0.0, 1.0)));
}
}  // namespace

double LearningRate(const ScheduleConfig& s, double lr, int64_t step, int64_t total_steps) {
  if (s.name == "constant" || total_steps <= 1) return lr;
  const double t = static_cast<double>(step) / static_cast<double>(total_steps - 1);
  const double warm = s.warmup_fraction;
  const double final_lr = lr * s.final_lr_fraction;
  if (s.name == "onecycle") {
    const double start = lr / 25.0;  // PyTorch OneCycleLR's default div_factor
    if (warm > 0 && t < warm) return CosineBetween(start, lr, t / warm);
    return CosineBetween(lr, final_lr, warm >= 1 ? 1.0 : (t - warm) / (1.0 - warm));
  }
  // cosine
  if (warm > 0 && t < warm) return lr * t / warm;
  return CosineBetween(lr, final_lr, warm >= 1 ? 1.0 : (t - warm) / (1.0 - warm));
}

}  // namespace splitinfer::train
