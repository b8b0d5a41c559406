#include "core/system.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>
#include <vector>

namespace splitinfer {
namespace {

TEST(BlasFromLibrariesTest, NamesDebiansAlternativesAndOthers) {
  const std::string lib = "/usr/lib/x86_64-linux-gnu/";
  std::string path;
  EXPECT_EQ(BlasFromLibraries({lib + "libc.so.6", lib + "openblas-pthread/libblas.so.3"}, &path), "OpenBLAS");
  EXPECT_EQ(path, lib + "openblas-pthread/libblas.so.3");
  EXPECT_EQ(BlasFromLibraries({lib + "openblas-openmp/libopenblasp-r0.3.21.so"}), "OpenBLAS");
  // OpenBLAS's LAPACK loaded first: the BLAS library is the one named.
  EXPECT_EQ(BlasFromLibraries({lib + "openblas-pthread/liblapack.so.3", lib + "openblas-pthread/libblas.so.3"}, &path),
            "OpenBLAS");
  EXPECT_EQ(path, lib + "openblas-pthread/libblas.so.3");
  EXPECT_EQ(BlasFromLibraries({lib + "blis-pthread/libblas.so.3"}), "BLIS");
  EXPECT_EQ(BlasFromLibraries({"/opt/intel/lib/libmkl_rt.so.2"}), "MKL");
  EXPECT_EQ(BlasFromLibraries({lib + "blas/libblas.so.3", lib + "libm.so.6"}, &path), "reference BLAS (Netlib)");
  EXPECT_EQ(path, lib + "blas/libblas.so.3");
  // The reference library loaded beside an optimized one: the optimized one is named.
  EXPECT_EQ(BlasFromLibraries({lib + "blas/libblas.so.3", lib + "openblas-pthread/libopenblas.so.0"}), "OpenBLAS");
  EXPECT_EQ(BlasFromLibraries({"/opt/x/libblas.so.3"}), "a generic libblas (not OpenBLAS, BLIS or MKL)");
  EXPECT_EQ(BlasFromLibraries({lib + "libtorch_cpu.so"}, &path), "");
  EXPECT_EQ(path, "");
}

TEST(LoadedLibrariesTest, ListsTheCLibraryAsARealPath) {
  const std::vector<std::string> libs = LoadedLibraries();
  ASSERT_FALSE(libs.empty());
  bool libc = false;
  for (const std::string& l : libs) {
    EXPECT_EQ(l.front(), '/') << l;
    if (l.find("/libc.so") != std::string::npos || l.find("/libc-") != std::string::npos) libc = true;
  }
  EXPECT_TRUE(libc) << "libc is loaded in every process";
}

// This process: resident memory grows when it touches 64 MiB, and a started thread is counted.
TEST(ProcessUsageTest, SeesThisProcessGrowAndItsThreads) {
  const auto before = ReadProcessUsage(getpid());
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(before->resident_mib, 1.0);
  EXPECT_GE(before->threads, 1);
  std::vector<char> block(64 << 20, 1);  // written, so resident
  bool stop = false;
  std::thread t([&stop] {
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) std::this_thread::yield();
  });
  const auto during = ReadProcessUsage(getpid());
  __atomic_store_n(&stop, true, __ATOMIC_RELEASE);
  t.join();
  ASSERT_TRUE(during.has_value());
  EXPECT_GE(during->resident_mib, before->resident_mib + 60.0) << "64 MiB written";
  EXPECT_EQ(during->threads, before->threads + 1);
  EXPECT_EQ(block[12345], 1);
}

TEST(ProcessUsageTest, NoProcessIsNoReading) {
  EXPECT_FALSE(ReadProcessUsage(-1).has_value());
  EXPECT_FALSE(ReadProcessUsage(int64_t{1} << 40).has_value());
}

}  // namespace
}  // namespace splitinfer
