// Learning-rate schedules as pure functions of the step, so a resumed run continues on exactly
// the curve it left.
#pragma once

#include <cstdint>

#include "train/config.h"

namespace splitinfer::train {

// Learning rate at `step` (0-based) of `total_steps`.
//   onecycle: cosine rise from lr/25 to lr over warmup_fraction, cosine fall to lr*final_lr_fraction
//   cosine:   linear warm-up from 0 over warmup_fraction, cosine fall to lr*final_lr_fraction
//   constant: lr
double LearningRate(const ScheduleConfig& schedule, double lr, int64_t step, int64_t total_steps);

}  // namespace splitinfer::train
