// `splitinfer serve` and `splitinfer node`: the runtime's two programs (src/runtime).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "core/status.h"

namespace splitinfer::cli {

// Adds `serve` and `node` to `app`; the returned function runs whichever was parsed (or
// returns OK when neither was). Without the runtime (no gRPC) both say what is missing.
std::function<Status()> AddRuntimeCommands(CLI::App& app, std::function<bool()>* selected);

}  // namespace splitinfer::cli
