// `splitinfer codec ...`: calibrate, encode, decode, bench.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "core/status.h"

namespace splitinfer::cli {

// Adds the `codec` subcommand tree to `app`; returns the function that runs whichever codec
// subcommand was parsed (called only when `codec` was given).
std::function<Status()> AddCodecCommands(CLI::App& app, CLI::App** codec_out);

}  // namespace splitinfer::cli
