// Small facts about the machine and files, shared by reports, profiles and the runtime.
// No LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace splitinfer {

// "2 cores, Intel(R) Xeon(R) Processor": hardware threads and /proc/cpuinfo's model name, for
// the machine line beside every measured figure.
std::string MachineDescription();

// The shared libraries loaded into this process, as real paths (symlinks such as Debian's
// alternatives resolved), in load order. Empty where the platform cannot list them.
std::vector<std::string> LoadedLibraries();

// Which BLAS a process runs on, judged from its loaded libraries: "OpenBLAS", "BLIS", "MKL",
// "reference BLAS (Netlib)" or "" when none of them is loaded (e.g. a LibTorch that links its
// BLAS in statically). `path` gets the library that decided it. Debian's libblas.so.3 is an
// alternative: /usr/lib/<triplet>/blas/ is Netlib's reference implementation (the slowest GEMM
// there is), openblas-pthread/, openblas-openmp/ and blis-*/ the optimized ones.
std::string BlasFromLibraries(const std::vector<std::string>& libraries, std::string* path = nullptr);

// The whole file as text. NOT_FOUND "<what> <path> not found" when it cannot be opened.
Result<std::string> ReadTextFile(const std::string& path, const std::string& what);
// The whole file, checked against max_bytes before anything is allocated (OUT_OF_RANGE).
Result<std::vector<uint8_t>> ReadBinaryFile(const std::string& path, const std::string& what, size_t max_bytes);

// The first line of a file without its line ending (tokens, ports). NOT_FOUND as above;
// INVALID_ARGUMENT "<what> <path> is empty" when that line is empty.
Result<std::string> ReadFirstLine(const std::string& path, const std::string& what);

// What a running process holds, from /proc/PID/status (Linux): resident memory and threads.
// nullopt when the process is gone or the platform has no /proc.
struct ProcessUsage {
  double resident_mib = 0;  // VmRSS
  int64_t threads = 0;
};
std::optional<ProcessUsage> ReadProcessUsage(int64_t pid);

// The executable `program` on PATH ("gnuplot" -> "/usr/bin/gnuplot"), or nullopt.
std::optional<std::string> FindOnPath(const std::string& program);

// Runs argv[0] (a path) with argv as its arguments, without a shell (nothing in argv is ever
// interpreted), and waits for it. exit_code is -1 when a signal ended it; output is its stdout
// and stderr together. INTERNAL when it cannot be started.
struct ProgramResult {
  int exit_code = 0;
  std::string output;
};
Result<ProgramResult> RunProgram(const std::vector<std::string>& argv);

}  // namespace splitinfer
