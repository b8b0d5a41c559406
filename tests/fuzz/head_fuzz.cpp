// libFuzzer target: an untrusted head file (`splitinfer node --head lowbit FILE` loads one).
//
// ParseHead must return an error or a graph that passes HeadGraph::Validate. A parsed graph
// small enough to run quickly (every register <= 2^14 values, <= 2^20 multiply-adds per conv)
// then runs through QuantizedHead on a fixed input with every implementation, which must agree
// bit for bit (the kernels' exactness contract, on shapes and codes nobody chose by hand), and
// the graph re-written with SaveHead and parsed again must give the same output. Never a
// crash, an out-of-bounds access (ASan) or an allocation beyond what the file's size allows.
//
// Build with -DSPLITINFER_FUZZ=ON (clang); without it, head_fuzz_replay runs the stored corpus
// (tests/fuzz/corpus/head) as a ctest case.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include "kernels/head.h"

#include "fuzz_fail.h"

namespace {

using namespace splitinfer;
using namespace splitinfer::kernels;

[[noreturn]] void Fail(const char* what, const Status& s) { splitinfer_fuzz::Fail("head_fuzz", what, s); }

bool SmallEnough(const HeadGraph& g) {
  if (static_cast<size_t>(g.in_channels) * g.in_height * g.in_width > (1u << 14)) return false;
  for (size_t i = 0; i < g.ops.size(); ++i) {
    auto shape = g.ShapeOf(static_cast<int>(i) + 1);
    if (!shape.ok() || static_cast<size_t>(shape->c) * shape->h * shape->w > (1u << 14)) return false;
    const HeadOp& op = g.ops[i];
    if (op.kind == HeadOpKind::kConv &&
        static_cast<double>(op.shape.weight_size()) * static_cast<double>(op.shape.pixels()) > (1u << 20))
      return false;
  }
  return true;
}

bool SameBits(const Tensor3& a, const Tensor3& b) {
  return a.c == b.c && a.h == b.h && a.w == b.w && a.data.size() == b.data.size() &&
         std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

Result<Tensor3> RunAll(const HeadGraph& g, const Tensor3& x) {
  auto head = QuantizedHead::Prepare(g, KernelPath::kAuto);
  if (!head.ok()) return head.status();
  auto ref = head->Run(x, HeadImpl::kReference);
  if (!ref.ok()) return ref.status();
  for (HeadImpl impl : {HeadImpl::kInt8, HeadImpl::kLut}) {
    auto got = head->Run(x, impl);
    if (!got.ok()) Fail("a kernel refused what the reference ran", got.status());
    if (!SameBits(*got, *ref)) Fail(impl == HeadImpl::kInt8 ? "int8 differs from the reference" : "lut differs from the reference", Status::Ok());
  }
  if (head->path() != KernelPath::kPortable) {  // the portable path too, when auto picked a SIMD one
    auto portable = QuantizedHead::Prepare(g, KernelPath::kPortable);
    if (!portable.ok()) Fail("portable path refused a graph auto took", portable.status());
    for (HeadImpl impl : {HeadImpl::kInt8, HeadImpl::kLut}) {
      auto got = portable->Run(x, impl);
      if (!got.ok() || !SameBits(*got, *ref)) Fail("the portable path differs from the reference", got.status());
    }
  }
  return ref;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Result<HeadGraph> parsed = ParseHead(data, size);
  if (!parsed.ok()) {
    if (parsed.status().message().empty()) Fail("an error without a message", parsed.status());
    return 0;
  }
  const HeadGraph& g = *parsed;
  const Status valid = g.Validate();
  if (!valid.ok()) Fail("parsed graph does not validate", valid);
  if (!SmallEnough(g)) return 0;
  const Tensor3 x = PseudoRandomInput(g.in_channels, g.in_height, g.in_width, 12345);
  auto out = RunAll(g, x);
  if (!out.ok()) return 0;  // e.g. an unquantized graph is fine for RunFloat but not Prepare

  // Save and parse again: the same graph, the same output.
  const std::string path =
      (std::filesystem::temp_directory_path() / ("head_fuzz_" + std::to_string(::getpid()) + ".sihead")).string();
  const Status saved = SaveHead(path, g);
  if (!saved.ok()) Fail("a parsed graph does not save", saved);
  auto again = LoadHead(path);
  std::remove(path.c_str());
  if (!again.ok()) Fail("a saved graph does not load", again.status());
  auto out2 = RunAll(*again, x);
  if (!out2.ok()) Fail("the reloaded graph does not run", out2.status());
  if (!SameBits(*out, *out2)) Fail("save + load changed the output", Status::Ok());
  return 0;
}
