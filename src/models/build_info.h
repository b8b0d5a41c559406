// What this build of splitinfer computes with: the LibTorch version, CUDA, which BLAS library is
// really loaded, oneDNN and the CPU kernels LibTorch dispatches to. Printed once by the
// commands that measure time (profile, bench, serve), recorded in profiles, and checked by a
// test, because a LibTorch running on Netlib's reference BLAS is several times slower at batch 1
// (ResNet-50 on one core: 839 ms against 133 ms with BLIS) and nothing else says so: LibTorch's
// own BLAS_INFO reads "generic" whatever libblas.so.3 points at.
#pragma once

#include <string>

namespace splitinfer::models {

struct ComputeInfo {
  std::string torch_version;  // "1.13.1", "2.6.0"
  int cuda_devices = 0;       // visible GPUs (0 on a CPU build)
  std::string blas;           // "OpenBLAS", "reference BLAS (Netlib)", "MKL (linked into LibTorch)", ...
  std::string blas_path;      // the loaded library that decided `blas`; empty when linked in
  std::string onednn;         // oneDNN version LibTorch uses, or "off"
  // "ONEDNN_MAX_CPU_ISA=AVX2" when oneDNN is capped (CapOneDnnIsaWhereBackwardIsBroken or the
  // user): convolutions then run other kernels, so a timing recorded with this says so.
  std::string onednn_isa_cap;
  std::string cpu_capability; // LibTorch's CPU kernel set: "AVX512", "AVX2", "DEFAULT", ...
  bool reference_blas() const { return blas.rfind("reference BLAS", 0) == 0; }
};

ComputeInfo DescribeCompute();

// One line: "LibTorch 1.13.1, BLAS OpenBLAS (/usr/lib/.../libblas.so.3), oneDNN v2.7.3, CPU
// kernels AVX512, no GPU" and, on the reference BLAS, what to install.
std::string ComputeLine(const ComputeInfo& info);

// oneDNN 3.x (LibTorch 2.x; Debian 13's 3.7.2) gives non-finite gradients in its AVX-512
// convolution backward now and then, so a fine-tune "diverges" with a finite loss and nothing
// else wrong (measured on an AMD EPYC Zen 5: 1 in 20 to 64 in 200 backward passes of a
// compensator-shaped stack, tests/models/build_info_test.cpp; the LibTorch 1.13 build with
// oneDNN 2.x: 0 in 200). Where LibTorch is 2.x, the CPU has AVX-512 and the user has not chosen
// an ISA (ONEDNN_MAX_CPU_ISA or DNNL_MAX_CPU_ISA), this caps oneDNN at AVX2, which gives finite
// gradients (0 in 600). oneDNN reads the variable when it first creates a primitive, so call it
// at the start of main(). Returns true when it set the variable.
bool CapOneDnnIsaWhereBackwardIsBroken();

}  // namespace splitinfer::models
