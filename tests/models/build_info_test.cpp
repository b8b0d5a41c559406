#include "models/build_info.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>

#include <torch/torch.h>
#include <torch/version.h>

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

// oneDNN 3.x's AVX-512 convolution backward gives non-finite gradients now and then (build_info.h).
// A compensator-shaped stack (8 channels padded to oneDNN's blocks of 16, a zero last layer) is
// trained for 200 steps of fresh data; with the cap every gradient is finite. Without it, under
// LibTorch 2.6 on an AMD EPYC Zen 5, 1 of 20 to 64 of 200 steps had NaN gradients. The cap was
// set before main() by tests/torch_platform.cpp, as the CLI's main() sets it.
TEST(ComputeInfoTest, ConvolutionGradientsAreFiniteWithTheOneDnnCap) {
#if TORCH_VERSION_MAJOR >= 2 && defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) {
    EXPECT_TRUE(std::getenv("ONEDNN_MAX_CPU_ISA") != nullptr || std::getenv("DNNL_MAX_CPU_ISA") != nullptr)
        << "the cap was not applied";
  }
#endif
  EXPECT_FALSE(CapOneDnnIsaWhereBackwardIsBroken())
      << "a second call, a user's own setting or LibTorch 1.x (oneDNN 2.x) changes nothing";
  namespace nn = torch::nn;
  torch::manual_seed(1);
  int bad = 0;
  for (int step = 0; step < 200; ++step) {
    auto last = nn::Conv2d(nn::Conv2dOptions(16, 8, 3).padding(1));
    {
      torch::NoGradGuard g;
      last->weight.zero_();
      last->bias.zero_();
    }
    nn::Sequential body(nn::Conv2d(nn::Conv2dOptions(8, 16, 3).padding(1)), nn::BatchNorm2d(16), nn::ReLU(),
                        nn::Conv2d(nn::Conv2dOptions(16, 16, 3).padding(1)), nn::BatchNorm2d(16), nn::ReLU(), last);
    auto x = torch::randn({64, 8, 14, 14});
    torch::mse_loss(x + body->forward(x), torch::randn_like(x)).backward();
    bool finite = true;
    for (const auto& p : body->parameters()) finite = finite && torch::isfinite(p.grad()).all().item<bool>();
    bad += finite ? 0 : 1;
  }
  EXPECT_EQ(bad, 0) << "of 200 backward passes had non-finite gradients: " << ComputeLine(DescribeCompute());
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
