// Linked into every test executable that uses LibTorch (tests/CMakeLists.txt): before main(), the
// same oneDNN ISA cap the CLI applies at the start of its main() (models/build_info.h), so that
// tests train with what users get and not with oneDNN 3.x's AVX-512 convolution backward, which
// gives non-finite gradients now and then. A user's own ONEDNN_MAX_CPU_ISA still wins.
#include "models/build_info.h"

namespace {
const bool kCapped = splitinfer::models::CapOneDnnIsaWhereBackwardIsBroken();
}  // namespace
