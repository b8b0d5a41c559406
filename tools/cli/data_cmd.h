// `splitinfer data ...`: datasets made or checked by splitinfer (src/data).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "core/status.h"

namespace splitinfer::cli {

// Adds `data make-scenes` and `data anchors`; the returned function runs the one parsed.
std::function<Status()> AddDataCommands(CLI::App& app, std::function<bool()>* selected);

}  // namespace splitinfer::cli
