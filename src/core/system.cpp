#include "core/system.h"

#include <link.h>
#include <limits.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace splitinfer {

std::string MachineDescription() {
  std::ifstream cpu("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return std::to_string(std::thread::hardware_concurrency()) + " cores, " + model;
}

std::vector<std::string> LoadedLibraries() {
  std::vector<std::string> out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* libs = static_cast<std::vector<std::string>*>(data);
        // The executable itself has an empty name, the vDSO a bare one; neither is a file.
        if (info->dlpi_name == nullptr || info->dlpi_name[0] != '/') return 0;
        char real[PATH_MAX];
        libs->push_back(realpath(info->dlpi_name, real) ? real : info->dlpi_name);
        return 0;
      },
      &out);
  return out;
}

std::string BlasFromLibraries(const std::vector<std::string>& libraries, std::string* path) {
  // The optimized libraries first: a process can load the reference libblas.so.3 beside one of
  // them (another dependency linked it); the caller prints the path, so a mixed process shows.
  struct Kind {
    const char* needle;
    const char* name;
  };
  static const Kind kKinds[] = {{"openblas", "OpenBLAS"},
                                {"/libblis", "BLIS"},
                                {"/blis-", "BLIS"},
                                {"/libmkl_", "MKL"},
                                {"/blas/libblas.so", "reference BLAS (Netlib)"},
                                {"/libblas.so", "a generic libblas (not OpenBLAS, BLIS or MKL)"}};
  // OpenBLAS also provides liblapack.so.3: name the BLAS library itself where both are loaded.
  for (const Kind& k : kKinds) {
    for (bool lapack_too : {false, true}) {
      for (const std::string& lib : libraries) {
        if (lib.find(k.needle) == std::string::npos) continue;
        if (!lapack_too && lib.find("lapack") != std::string::npos) continue;
        if (path) *path = lib;
        return k.name;
      }
    }
  }
  if (path) path->clear();
  return "";
}

Result<std::string> ReadTextFile(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) return NotFound(what + " " + path + " not found");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::vector<uint8_t>> ReadBinaryFile(const std::string& path, const std::string& what, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFound(what + " " + path + " not found");
  const auto size = static_cast<size_t>(in.tellg());
  if (size > max_bytes) {
    return OutOfRange(what + " " + path + " is " + std::to_string(size) + " bytes, more than the " +
                      std::to_string(max_bytes) + " allowed");
  }
  std::vector<uint8_t> buf(size);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(size));
  if (!in) return IoError("cannot read " + what + " " + path);
  return buf;
}

Result<std::string> ReadFirstLine(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) return NotFound(what + " " + path + " not found");
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) return InvalidArgument(what + " " + path + " is empty");
  return line;
}

}  // namespace splitinfer
