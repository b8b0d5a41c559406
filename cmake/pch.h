// Precompiled header shared by every LibTorch-using target (see CMakeLists.txt).
// Only heavy, stable third-party headers belong here; never project headers.
#pragma once
#include <torch/torch.h>
#include <torch/script.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
