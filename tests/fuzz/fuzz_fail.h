// How every fuzz target reports a broken invariant: one line naming the target, what broke and
// the status, then abort (libFuzzer keeps the input; the replay test fails). No codec, no LibTorch.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "core/status.h"

namespace splitinfer_fuzz {

[[noreturn]] inline void Fail(const char* target, const char* what, const splitinfer::Status& s) {
  std::fprintf(stderr, "%s: %s: %s\n", target, what, s.ToString().c_str());
  std::abort();
}

}  // namespace splitinfer_fuzz
