// `splitinfer quantize-head`, `eval-head` and `bench head` (src/eval/lowbit, src/kernels).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "core/status.h"

namespace splitinfer::cli {

// Adds the three commands; the returned function runs whichever was parsed.
std::function<Status()> AddLowbitCommands(CLI::App& app, std::function<bool()>* selected);

}  // namespace splitinfer::cli
