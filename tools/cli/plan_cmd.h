// `splitinfer profile` and `splitinfer plan` (src/plan).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "core/status.h"

namespace splitinfer::cli {

// Adds `profile` and `plan`; the returned function runs whichever was parsed.
std::function<Status()> AddPlanCommands(CLI::App& app, std::function<bool()>* selected);

}  // namespace splitinfer::cli
