#!/usr/bin/env bash
# Installs every Debian package splitinfer needs to build, test and run the demo.
# Idempotent: installs only what is missing and says what it installs. Debian packages only;
# nothing else is downloaded. Run as root (or with sudo available) on Debian 12.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # LibTorch (CPU) and the Python side used only by tools/export_torchscript.py
  libtorch-dev python3-torch python3-torchvision
  # An optimized BLAS. LibTorch is linked against the generic libblas.so.3 and only recommends
  # an optimized one, so with --no-install-recommends a fresh machine would run every GEMM
  # outside oneDNN on Netlib's reference BLAS (ResNet-50 at batch 1: 839 ms instead of 133 ms on one core). BLIS, not
  # OpenBLAS: OpenBLAS carries 60 KB of thread-local storage, which leaves no room in the 100 KB
  # thread stacks of civetweb (the metrics endpoint), so `serve --metrics` could not start. The
  # package switches Debian's libblas.so.3 alternative to BLIS; tests/models/build_info_test.cpp
  # checks what is loaded.
  libblis4-pthread
  # real data
  dataset-fashion-mnist
  # codecs
  zlib1g-dev liblzma-dev libzstd-dev libpng-dev libturbojpeg0-dev
  # transport and metrics
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler prometheus-cpp-dev
  # the independent Python client in tools/python (docs/wire_protocol.md, and a test)
  python3-grpcio python3-protobuf
  # TLS test certificates (tests/runtime/tls_test.sh)
  openssl
  # config, CLI, JSON, images
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libopencv-dev
  # tests, benchmarks, plots
  libgtest-dev libgmock-dev googletest libbenchmark-dev gnuplot-nox
)
# On x86-64, the kernels are also cross-compiled for 64-bit ARM and tested under emulation
# (tests/cross); an ARM host runs its NEON paths natively and needs neither.
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  PACKAGES+=(g++-aarch64-linux-gnu qemu-user)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: error: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has empty package lists; an update is cheap next to the install itself.
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
