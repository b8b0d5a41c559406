#include "core/system.h"

#include <link.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
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

std::optional<ProcessUsage> ReadProcessUsage(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return std::nullopt;
  ProcessUsage usage;
  bool rss = false, threads = false;
  std::string line;
  while (std::getline(in, line)) {
    // "VmRSS:\t  12345 kB", "Threads:\t17"; strtod/strtoll skip the blanks and never throw.
    if (line.rfind("VmRSS:", 0) == 0) {
      usage.resident_mib = std::strtod(line.c_str() + 6, nullptr) / 1024.0;
      rss = true;
    } else if (line.rfind("Threads:", 0) == 0) {
      usage.threads = std::strtoll(line.c_str() + 8, nullptr, 10);
      threads = true;
    }
  }
  // A zombie has no VmRSS line: it holds nothing any more, which is not a measurement.
  if (!rss || !threads) return std::nullopt;
  return usage;
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

std::optional<std::string> FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / program;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  return std::nullopt;
}

extern "C" char** environ;

Result<ProgramResult> RunProgram(const std::vector<std::string>& argv) {
  if (argv.empty()) return InvalidArgument("RunProgram: no program");
  int fds[2];
  if (::pipe(fds) != 0) return Internal("cannot create a pipe for " + argv[0] + ": " + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return Internal("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  ProgramResult r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      r.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Internal("waiting for " + argv[0] + ": " + std::strerror(errno));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace splitinfer
