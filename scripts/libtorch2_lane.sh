#!/usr/bin/env bash
# The LibTorch 2.x lane of `make test`: builds and tests this tree against Debian 13's LibTorch
# (2.6) in a Debian 13 chroot, so that API drift between LibTorch 1.13 (Debian 12, the main
# build) and 2.x (Debian 13; the CUDA LibTorch inside a PyTorch installation) is caught here
# and not by a user.
#
# The chroot has the core's dependencies only (DESIGN.md): no gRPC (so no runtime), no OpenCV,
# no liblzma, no libpng, no Google Benchmark. That is the configuration of a PyTorch GPU machine,
# so the lane also checks that every optional part switches itself off and that the tests skip
# what needs it. Everything else that uses LibTorch is built and tested.
#
# It lives in a fixed directory (SPLITINFER_LANE_ROOT, default /var/cache/splitinfer/debian13)
# with its own build folder and ccache, so a later run on the same machine reuses all three:
# made from nothing it takes about 2 minutes (debootstrap) plus a cold build. Needs root (or
# sudo) for debootstrap, chroot and a private mount namespace; Debian packages only.
#
# Usage: scripts/libtorch2_lane.sh [JOBS]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
root=${SPLITINFER_LANE_ROOT:-/var/cache/splitinfer/debian13}
jobs=${1:-$(nproc)}
packages=(build-essential cmake ninja-build ccache pkg-config libtorch-dev libyaml-cpp-dev libcli11-dev
          nlohmann-json3-dev zlib1g-dev libzstd-dev libgtest-dev libgmock-dev dataset-fashion-mnist
          libblis4-pthread gnuplot-nox)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "libtorch2 lane: skipped: needs root (debootstrap, chroot); run make test as root or with sudo" >&2
    exit 0
  fi
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "libtorch2 lane: installing debootstrap"
  $SUDO apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

if [ ! -x "$root/usr/bin/cmake" ] || [ ! -e "$root/usr/include/torch/csrc/api/include/torch/torch.h" ]; then
  echo "libtorch2 lane: making the Debian 13 chroot in $root (once; about 2 minutes)"
  $SUDO rm -rf "$root.partial"
  $SUDO mkdir -p "$(dirname "$root")"
  include=$(IFS=,; echo "${packages[*]}")
  $SUDO debootstrap --variant=minbase --include="$include" trixie "$root.partial" http://deb.debian.org/debian \
    > "$(dirname "$root")/debootstrap.log" 2>&1 ||
    { echo "libtorch2 lane: debootstrap failed; see $(dirname "$root")/debootstrap.log" >&2; exit 1; }
  $SUDO rm -rf "$root"
  $SUDO mv "$root.partial" "$root"
else
  # Packages added to the list since the chroot was made.
  missing=()
  for p in "${packages[@]}"; do
    $SUDO chroot "$root" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "libtorch2 lane: installing into the chroot: ${missing[*]}"
    $SUDO chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends ${missing[*]}" > /dev/null
  fi
fi
echo "libtorch2 lane: $($SUDO chroot "$root" dpkg-query -W -f='libtorch-dev ${Version}' libtorch-dev), in $root"

# The source is bound read-only at /src inside a private mount namespace: nothing stays mounted
# when this ends, and the lane cannot write into the checkout. The build folder and ccache stay
# in the chroot, at the same paths for every clone, so a fresh clone elsewhere reuses them.
$SUDO mkdir -p "$root/src"
$SUDO unshare --mount --propagation private bash -euo pipefail -c '
  root=$1 src=$2 jobs=$3
  mount --bind "$src" "$root/src"
  mount -o remount,bind,ro "$root/src"
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  chroot "$root" env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    CCACHE_DIR=/ccache CCACHE_BASEDIR=/src \
    CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime \
    bash -euo pipefail -c "
      cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release > /build.configure.log 2>&1 ||
        { cat /build.configure.log; exit 1; }
      grep \"splitinfer:\" /build.configure.log
      cmake --build /build -j $jobs > /build.log 2>&1 ||
        { grep -E -A8 \"error|FAILED\" /build.log | head -100; echo \"libtorch2 lane: build failed\"; exit 1; }
      # Our own code compiles without warnings on LibTorch 2.x too (no deprecated API).
      ! grep -E \"^/src/.*warning:\" /build.log || { echo \"libtorch2 lane: warnings above\"; exit 1; }
      cd /build && ctest --output-on-failure -j $jobs
    "
' lane "$root" "$src" "$jobs"
