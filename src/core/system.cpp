#include "core/system.h"

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
