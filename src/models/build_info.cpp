#include "models/build_info.h"

#include <cstdlib>
#include <regex>

#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "core/system.h"

namespace splitinfer::models {
namespace {

// A "KEY=value" (BLAS_INFO=mkl) or "label: value" (CPU capability usage: AVX2) from
// at::show_config(), or "" when this LibTorch does not print it.
std::string ConfigValue(const std::string& config, const std::string& pattern) {
  std::smatch m;
  if (std::regex_search(config, m, std::regex(pattern))) return m[1].str();
  return "";
}

}  // namespace

ComputeInfo DescribeCompute() {
  ComputeInfo info;
  info.torch_version = TORCH_VERSION;
  info.cuda_devices = static_cast<int>(torch::cuda::device_count());
  const std::string config = at::show_config();
  info.blas = BlasFromLibraries(LoadedLibraries(), &info.blas_path);
  if (info.blas.empty()) {
    // No BLAS library loaded: LibTorch carries its own (the PyTorch wheels link MKL in).
    const std::string linked = ConfigValue(config, "BLAS_INFO=([A-Za-z0-9_]+)");
    info.blas = linked.empty() ? "none found" : linked + " (linked into LibTorch)";
  }
  const std::string mkldnn = at::get_mkldnn_version();
  info.onednn = mkldnn.empty() ? "off" : mkldnn;
  for (const char* var : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}) {
    if (const char* isa = std::getenv(var)) info.onednn_isa_cap = std::string(var) + "=" + isa;
  }
  info.cpu_capability = ConfigValue(config, "CPU capability usage: ([A-Za-z0-9_]+)");
  if (info.cpu_capability.empty()) info.cpu_capability = "unknown";
  return info;
}

std::string ComputeLine(const ComputeInfo& info) {
  // oneDNN's version string is long ("Intel(R) MKL-DNN v2.7.3 (Git Hash ...)"): keep the vN.N.N.
  std::string onednn = info.onednn;
  std::smatch m;
  if (std::regex_search(info.onednn, m, std::regex("v[0-9]+\\.[0-9]+(\\.[0-9]+)?"))) onednn = m[0].str();
  std::string line = "LibTorch " + info.torch_version + ", BLAS " + info.blas;
  if (!info.blas_path.empty()) line += " (" + info.blas_path + ")";
  if (!info.onednn_isa_cap.empty()) onednn += " (" + info.onednn_isa_cap + ")";
  line += ", oneDNN " + onednn + ", CPU kernels " + info.cpu_capability + ", " +
          (info.cuda_devices > 0 ? std::to_string(info.cuda_devices) + " GPU(s)" : std::string("no GPU"));
  if (info.reference_blas()) {
    line += "; WARNING: LibTorch is several times slower on the reference BLAS (ResNet-50 at batch 1: 6x): "
            "apt-get install libblis4-pthread";
  }
  return line;
}

bool CapOneDnnIsaWhereBackwardIsBroken() {
#if TORCH_VERSION_MAJOR >= 2 && (defined(__x86_64__) || defined(__i386__))
  if (std::getenv("ONEDNN_MAX_CPU_ISA") != nullptr || std::getenv("DNNL_MAX_CPU_ISA") != nullptr) return false;
  if (!__builtin_cpu_supports("avx512f")) return false;
  return ::setenv("ONEDNN_MAX_CPU_ISA", "AVX2", /*overwrite=*/0) == 0;
#else
  return false;
#endif
}

}  // namespace splitinfer::models
