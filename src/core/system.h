// Small facts about the machine and files, shared by reports, profiles and the runtime.
// No LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace splitinfer {

// "2 cores, Intel(R) Xeon(R) Processor": hardware threads and /proc/cpuinfo's model name, for
// the machine line beside every measured figure.
std::string MachineDescription();

// The whole file as text. NOT_FOUND "<what> <path> not found" when it cannot be opened.
Result<std::string> ReadTextFile(const std::string& path, const std::string& what);
// The whole file, checked against max_bytes before anything is allocated (OUT_OF_RANGE).
Result<std::vector<uint8_t>> ReadBinaryFile(const std::string& path, const std::string& what, size_t max_bytes);

// The first line of a file without its line ending (tokens, ports). NOT_FOUND as above;
// INVALID_ARGUMENT "<what> <path> is empty" when that line is empty.
Result<std::string> ReadFirstLine(const std::string& path, const std::string& what);

}  // namespace splitinfer
