#!/usr/bin/env bash
# The GPU server's checks, in priority order, for a GPU machine that is at hand for minutes at a
# time and has PyTorch (its CUDA LibTorch) but no package registry. Each run advances as far as
# its time allows; every step's output and a summary land in OUT, which is what comes back.
#
#   1. configure + build the core against PyTorch's LibTorch (optional parts switch themselves off)
#   2. facts: `splitinfer version`, the libraries' order, where std::filesystem binds
#   3. the test suite (ctest), bounded by GPU_CHECK_TEST_S seconds
#   4. `profile --device cuda`: ResNet-50 and the shipped Fashion-MNIST model + pipeline
#   5. training and study throughput on the GPU
#
# Usage (repo root): scripts/gpu_check.sh OUT [CARRY_DIR]
# OUT receives at most four files (a device machine returns only a few): summary.txt, the
# server profiles (*_h200.yaml: named after the machine kind, rename for another) and logs.tgz
# with every step's log, packed also when the run is cut short.
# CARRY_DIR (default .gpu) may hold what the machine lacks, prepared on a Debian machine:
#   debs-<name>/*.deb   -dev packages (`apt-get download`), unpacked only where the header is
#                       missing; e.g. debs-zstd: libzstd-dev, debs-png: libpng-dev libpng16-16
#   unpack.sh           a script that unpacks them with dpkg-deb -x into a prefix the build
#                       finds (the lending workplace's own; it is not part of splitinfer)
#   fashion-mnist/      the four .gz files of Debian's dataset-fashion-mnist
set -u
out=${1:?usage: scripts/gpu_check.sh OUT [CARRY_DIR]}
carry=${2:-.gpu}
mkdir -p "$out"
logs=$(mktemp -d)
trap 'tar czf "$out/logs.tgz" -C "$logs" .' EXIT
summary="$out/summary.txt"
note() { echo "$(date +%T) $*" | tee -a "$summary"; }
# step NAME COMMAND...: runs it with its output in LOGS/NAME.log and says how it went.
step() {
  local name=$1; shift
  local t0 t1 rc
  t0=$(date +%s.%N)
  "$@" > "$logs/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  note "$name: rc=$rc in $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s"
  return $rc
}
jobs=$(nproc)
note "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); " \
     "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"

# --- 0. what the machine lacks ----------------------------------------------------------------
for d in "$carry"/debs-*; do
  [ -d "$d" ] || continue
  header=${d##*/debs-}.h
  if [ -e "/usr/include/$header" ]; then note "have /usr/include/$header: $d not unpacked"; continue; fi
  eval "$(bash "$carry/unpack.sh" "$d")"
  export LD_LIBRARY_PATH=/tmp/dev/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  note "unpacked $d (no /usr/include/$header)"
done
fm=/usr/share/datasets/fashion-mnist
if [ ! -e "$fm/t10k-labels-idx1-ubyte.gz" ] && [ -d "$carry/fashion-mnist" ]; then
  mkdir -p "$fm" && cp "$carry"/fashion-mnist/*.gz "$fm"/ && note "Fashion-MNIST copied to $fm"
fi
torch_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)' 2>/dev/null)
note "PyTorch $(python3 -c 'import torch;print(torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null)"

# --- 1. build ---------------------------------------------------------------------------------
b=/tmp/si-gpu-build
step configure cmake -S . -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" || exit 1
grep 'splitinfer:' "$logs/configure.log" | tee -a "$summary"
step build cmake --build "$b" -j "$jobs" || { tail -40 "$logs/build.log"; exit 1; }
si=$b/tools/cli/splitinfer

# --- 2. facts ---------------------------------------------------------------------------------
"$si" version >> "$summary" 2>&1
t=$b/tests/eval/eval_test
readelf -d "$t" | grep NEEDED > "$logs/needed.txt"
note "eval_test's first needed libraries: $(head -3 "$logs/needed.txt" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
LD_DEBUG=bindings LD_DEBUG_OUTPUT=/tmp/si-bind "$t" --gtest_filter='ResultsLogTest.*' > /dev/null 2>&1
grep -h 'remove_all' /tmp/si-bind.* | sed 's/^ *[0-9]*: *//' | sort -u | head -5 > "$logs/bindings.txt"
note "std::filesystem::remove_all binds: $(head -1 "$logs/bindings.txt")"

# --- 3. tests ---------------------------------------------------------------------------------
step ctest timeout "${GPU_CHECK_TEST_S:-300}" ctest --test-dir "$b" -j "$jobs" --output-on-failure
grep -E 'tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|\*\*\*' "$logs/ctest.log" | head -40 | tee -a "$summary"

# --- 4. server profiles on the GPU ------------------------------------------------------------
# No runtime here (no gRPC): the per-request call is not measured; 0 is recorded as given (the
# planner takes the call from the node's profile, not the server's).
step profile_resnet50 "$si" profile --model resnet50 --device cuda --threads 1 --batches 1,8,32 --repeats 20 \
  --maps 4 --idle-gaps 0,10,50,200,1000 --call-ms 0 --out "$out/resnet50_h200.yaml"
step profile_fmnist "$si" profile --model models/resnet_fmnist.pt --device cuda --threads 1 \
  --pipeline models/fmnist_best.yaml --call-ms 0 --out "$out/resnet_fmnist_h200.yaml"
tail -q -n 1 "$logs/profile_resnet50.log" "$logs/profile_fmnist.log" >> "$summary"

# --- 5. throughput ----------------------------------------------------------------------------
step train_fmnist "$si" train --config configs/fmnist_resnet.yaml --device cuda --epochs 2 --restart \
  --out /tmp/si-gpu-train
tail -n 2 "$logs/train_fmnist.log" >> "$summary"
step eval_pipeline "$si" eval --pipeline models/fmnist_best.yaml --device cuda --json
tail -n 1 "$logs/eval_pipeline.log" >> "$summary"
step experiment_qcnet "$si" experiment --config configs/fmnist_study.yaml --only qcnet_b2 --device cuda \
  --out /tmp/si-gpu-study
tail -n 3 "$logs/experiment_qcnet.log" >> "$summary"
note "done"
