// torch_compat.h: the one place where splitinfer bridges LibTorch API differences.
//
// splitinfer builds against Debian's LibTorch 1.13 (make test) and LibTorch 2.x (Debian 13's
// 2.6 in CI's second lane; the CUDA LibTorch inside a PyTorch installation on a GPU server).
// Code elsewhere calls these helpers instead of the version-specific API, so that neither
// version prints deprecation warnings and API drift shows up here and nowhere else.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
#include <variant>
#else
#include <c10/util/variant.h>
#endif

namespace splitinfer::models::compat {

// Turns autocast on for CUDA with `dtype` (true) or off again (false, clearing its cast cache).
// 1.13 has only the global switch and the "gpu" dtype; 2.x takes the device type and deprecates
// the old names (a warning on every call, i.e. every training step).
inline void SetCudaAutocast(bool enabled, c10::ScalarType dtype = c10::kBFloat16) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_enabled(c10::DeviceType::CUDA, enabled);
  if (enabled) at::autocast::set_autocast_dtype(c10::DeviceType::CUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  if (enabled) at::autocast::set_autocast_gpu_dtype(dtype);
#endif
  if (!enabled) at::autocast::clear_cache();
}

// std::get_if on LibTorch's option variants (e.g. Conv2dOptions::padding_t): c10::variant in
// 1.13, std::variant from 2.x on (where c10::get_if no longer exists).
template <class T, class Variant>
const T* GetIf(const Variant* v) {
#if TORCH_VERSION_MAJOR >= 2
  return std::get_if<T>(v);
#else
  return c10::get_if<T>(v);
#endif
}

}  // namespace splitinfer::models::compat
