#include "models/device.h"

#include <dlfcn.h>
#include <sched.h>

#include <cstdint>
#include <thread>

#include <torch/cuda.h>
#include <torch/torch.h>

namespace splitinfer::models {

Result<torch::Device> ParseDevice(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    torch::Device device(torch::kCPU);
    try {
      device = torch::Device(name);
    } catch (const c10::Error&) {
      return InvalidArgument("bad device '" + name + "'; use cpu, cuda or cuda:N");
    }
    if (!torch::cuda::is_available()) {
      return FailedPrecondition("device '" + name +
                                "' requested, but this build of LibTorch has no CUDA or no GPU is visible; use "
                                "--device cpu, or build against a CUDA LibTorch (see README)");
    }
    if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count())) {
      return FailedPrecondition("device '" + name + "' requested, but only " +
                                std::to_string(torch::cuda::device_count()) + " GPU(s) are visible");
    }
    return device;
  }
  return InvalidArgument("unknown device '" + name + "'; use cpu, cuda or cuda:N");
}

int ConfigureThreads(int n) {
  if (n <= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                    : static_cast<int>(std::thread::hardware_concurrency());
    n = std::max(n, 1);
  }
  torch::set_num_threads(n);
  // Debian's LibTorch calls BLAS through the generic libblas.so.3 and so never tells the library
  // behind it how many threads to use: BLIS (what install-deps puts there) would stay at one
  // thread whatever --threads says, OpenBLAS would spread a "one thread" benchmark's GEMMs over
  // every core. Each is told here, by its own entry point, where it is the one loaded.
  using SetThreadsBlis = void (*)(int64_t);  // dim_t: 64-bit in Debian's BLIS
  using SetThreadsOpenBlas = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreadsBlis>(dlsym(RTLD_DEFAULT, "bli_thread_set_num_threads"))) set(n);
  if (auto* set = reinterpret_cast<SetThreadsOpenBlas>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(n);
  return torch::get_num_threads();
}

}  // namespace splitinfer::models
