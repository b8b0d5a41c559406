#include "models/build_info.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>

#include <torch/torch.h>

#include "models/device.h"

namespace splitinfer::models {
namespace {

// LibTorch must not run on Netlib's reference BLAS (scripts/install-deps.sh installs OpenBLAS,
// which switches Debian's libblas.so.3 alternative). The GEMM is run first so that the BLAS in
// use is certainly loaded, whichever way this LibTorch loads it.
TEST(ComputeInfoTest, TheReferenceBlasIsNotTheOneLoaded) {
  const auto a = torch::randn({64, 64});
  ASSERT_EQ(torch::mm(a, a).size(0), 64);
  const ComputeInfo info = DescribeCompute();
  EXPECT_FALSE(info.reference_blas()) << ComputeLine(info);
  EXPECT_NE(info.blas, "none found") << ComputeLine(info);
  EXPECT_FALSE(info.torch_version.empty());
  const std::string line = ComputeLine(info);
  EXPECT_NE(line.find("LibTorch " + info.torch_version), std::string::npos) << line;
  EXPECT_NE(line.find("BLAS " + info.blas), std::string::npos) << line;
}

// The LibTorch of a PyTorch installation exports broken copies of libstdc++'s std::filesystem
// functions; the build puts libstdc++ first on every link line (CMakeLists.txt) so that calls
// bind to libstdc++ (or to a static copy in the executable), never into LibTorch.
TEST(ComputeInfoTest, StdFilesystemIsNotBoundIntoLibTorch) {
  using RemoveAll = std::uintmax_t (*)(const std::filesystem::path&);
  const RemoveAll remove_all = &std::filesystem::remove_all;
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(remove_all), &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  EXPECT_EQ(std::string(info.dli_fname).find("libtorch"), std::string::npos) << info.dli_fname;
  // And it works: a directory tree goes away.
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "si_remove_all_test" / "a";
  std::filesystem::create_directories(dir);
  EXPECT_GE(remove_all(dir.parent_path()), 2u);
  EXPECT_FALSE(std::filesystem::exists(dir.parent_path()));
}

TEST(ComputeInfoTest, TheReferenceBlasLineSaysWhatToInstall) {
  ComputeInfo info;
  info.torch_version = "1.13.1";
  info.blas = "reference BLAS (Netlib)";
  info.blas_path = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
  info.onednn = "Intel(R) MKL-DNN v2.7.3 (Git Hash N/A)";
  info.cpu_capability = "AVX512";
  EXPECT_TRUE(info.reference_blas());
  EXPECT_EQ(ComputeLine(info),
            "LibTorch 1.13.1, BLAS reference BLAS (Netlib) (/usr/lib/x86_64-linux-gnu/blas/libblas.so.3), oneDNN "
            "v2.7.3, CPU kernels AVX512, no GPU; WARNING: LibTorch is several times slower on the reference BLAS "
            "(ResNet-50 at batch 1: 6x): apt-get install libblis4-pthread");
}

}  // namespace
}  // namespace splitinfer::models
