// Devices by name, checked against this build and machine.
#pragma once

#include <string>

#include <torch/types.h>

#include "core/status.h"

namespace splitinfer::models {

// "cpu", "cuda", "cuda:N". FAILED_PRECONDITION when CUDA is asked of a CPU-only build or a
// machine without a visible GPU; INVALID_ARGUMENT for anything else.
Result<torch::Device> ParseDevice(const std::string& name);

// Sets LibTorch's intra-op thread count: n > 0 exactly, 0 = every core this process may use.
// Needed because LibTorch's own default is 1 thread on some machines (containers whose
// OpenMP runtime sees one CPU), which silently halves training speed on a 2-core box.
// Returns the count in force.
int ConfigureThreads(int n);

}  // namespace splitinfer::models
