#!/usr/bin/env bash
# The peer table of issue 17 (bench/README.md, "The node head against ONNX Runtime"): batch-1
# head time of the same head, with the same weights, in LibTorch (float), ONNX Runtime (float
# and 8-bit QDQ, its own int8 kernels) and splitinfer's low-bit kernels (8-bit, and 2-bit
# weights / 4-bit activations through the int8 and the look-up kernels and `auto`).
#
# Usage:
#   bench/peer_bench.sh [BIN] [OUT_DIR]     (defaults: build/tools/cli/splitinfer, runs/peer_bench)
# Environment: THREADS (default 1: splitinfer's --threads and ORT's intra-op threads),
#   ROUNDS (default 5: every engine of every head once per round, rounds interleaved, so that a
#   noisy neighbour on a VM shows as a spread instead of as one engine's bad luck),
#   ORT_VERSION (default 1.30.0), ORT_DIR (where onnxruntime-node is installed; default
#   ~/.cache/splitinfer/onnxruntime-node-VERSION).
#
# The peer is installed here, never by scripts/install-deps.sh and never as a dependency of
# splitinfer: the npm package onnxruntime-node (its Linux x64 library is in the package) with
# --ignore-scripts, because its install script would download GPU parts from elsewhere; and
# Debian's python3-onnx, with which bench/peer_export.py writes the ONNX graphs.
#
# Heads (the same weights on both sides: each engine reads them from the same file):
#   fmnist            the shipped Fashion-MNIST model, stem to stage3, 1x28x28
#   resnet50_stem     torchvision ResNet-50's conv1+bn1+relu+maxpool, 3x224x224 (random weights)
#   resnet18_layer2   torchvision ResNet-18 up to layer2, 3x224x224 (random weights)
# Output: OUT_DIR/bench.jsonl (one JSON line per engine, head and round), census.jsonl (the
# operators ORT runs after its optimizations: whether QDQ became QLinearConv), table.md.
# Run it on an otherwise idle machine.
set -euo pipefail
BIN=${1:-build/tools/cli/splitinfer}
OUT=${2:-runs/peer_bench}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-5}
ORT_VERSION=${ORT_VERSION:-1.30.0}
ORT_DIR=${ORT_DIR:-$HOME/.cache/splitinfer/onnxruntime-node-$ORT_VERSION}
PY=/usr/bin/python3  # Debian's python3-torch; a pyenv/venv python3 may lack it
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
mkdir -p "$OUT"

die() { echo "peer_bench: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN not found; build first (make build)"
command -v node > /dev/null && command -v npm > /dev/null || die "needs Node.js and npm: apt-get install nodejs npm"
$PY -c 'import torch, torchvision' 2> /dev/null || die "needs python3-torch and python3-torchvision (scripts/install-deps.sh)"
if ! $PY -c 'import onnx' 2> /dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-onnx > /dev/null
  else
    die "needs Debian's python3-onnx (for bench/peer_export.py): sudo apt-get install python3-onnx"
  fi
fi
ORT_PKG=$ORT_DIR/node_modules/onnxruntime-node
if [ ! -f "$ORT_PKG/package.json" ]; then
  echo "peer_bench: installing onnxruntime-node@$ORT_VERSION into $ORT_DIR (npm, --ignore-scripts)" >&2
  mkdir -p "$ORT_DIR"
  npm install --prefix "$ORT_DIR" --ignore-scripts --no-audit --no-fund --no-save --loglevel=error \
    "onnxruntime-node@$ORT_VERSION" > /dev/null
fi
ls "$ORT_PKG"/bin/napi-v*/linux/x64/libonnxruntime.so* > /dev/null 2>&1 ||
  die "$ORT_PKG has no Linux x64 library (bin/napi-v*/linux/x64); remove $ORT_DIR and run again"

# The torchvision models as TorchScript chains with splitinfer's metadata (seeded weights).
for arch in resnet50 resnet18; do
  [ -s "$OUT/$arch.pt" ] || $PY "$ROOT/tools/export_torchscript.py" --model $arch --out "$OUT/$arch.pt" > /dev/null
done

# Post-training quantization: times do not depend on the weights' values. The 8-bit files have
# ORT's granularity (weights per output channel, one activation range per tensor); the 2-bit
# Fashion-MNIST file has regions of 16 input channels and its first conv at 8 bits (the accurate
# configuration of docs/results.md); the ResNet stem is one convolution, all low-bit.
# name | model file | splitinfer split | peer_export head | input | runs | common, 8-bit, 2-bit quantize-head args
HEADS=(
  "fmnist|$ROOT/models/resnet_fmnist.pt|stage3|fmnist|1x1x28x28|300|--calibration 64||--group 16 --first-wbits 8"
  "resnet50_stem|$OUT/resnet50.pt|maxpool|resnet_stem|1x3x224x224|100|--calibration 4||"
  "resnet18_layer2|$OUT/resnet18.pt|layer2|resnet_to_layer2|1x3x224x224|60|--calibration 4||"
)
for h in "${HEADS[@]}"; do
  IFS='|' read -r name model split head shape runs qargs q8 q2 <<< "$h"
  [ -s "$OUT/$head.json" ] || $PY "$HERE/peer_export.py" --head "$head" --model "$model" --out "$OUT" > /dev/null
  # shellcheck disable=SC2086
  [ -s "$OUT/${name}_w8a8.sihead" ] || "$BIN" quantize-head --checkpoint "$model" --split "$split" --wbits 8 \
    --abits 8 $qargs $q8 --out "$OUT/${name}_w8a8.sihead" > /dev/null
  # shellcheck disable=SC2086
  [ -s "$OUT/${name}_w2a4.sihead" ] || "$BIN" quantize-head --checkpoint "$model" --split "$split" --wbits 2 \
    --abits 4 $qargs $q2 --out "$OUT/${name}_w2a4.sihead" > /dev/null
done

: > "$OUT/bench.jsonl"
: > "$OUT/census.jsonl"
tag() {  # head engine round: appends stdin's JSON object with those fields to bench.jsonl
  $PY -c 'import json,sys; j=json.loads(sys.stdin.read()); j.update(head=sys.argv[1], engine=sys.argv[2], round=int(sys.argv[3])); print(json.dumps(j))' "$@" >> "$OUT/bench.jsonl"
}
for round in $(seq 1 "$ROUNDS"); do
  for h in "${HEADS[@]}"; do
    IFS='|' read -r name model split head shape runs _ <<< "$h"
    si=("$BIN" bench head --checkpoint "$model" --split "$split" --threads "$THREADS" --runs "$runs" --json)
    "${si[@]}" --impl torch | tag "$name" libtorch_float "$round"
    for kind in float qdq; do
      node "$HERE/peer_ort.js" "$ORT_DIR" "$OUT/${head}_$kind.onnx" "$OUT/${head}_input.bin" "$shape" "$runs" 20 \
        "$OUT/${head}_ref_$kind.bin" "$OUT/${head}_${kind}_ort_optimized.onnx" "$THREADS" 2> /dev/null |
        tag "$name" "ort_$kind" "$round"
    done
    "${si[@]}" --impl int8 --quantized "$OUT/${name}_w8a8.sihead" | tag "$name" si_w8a8_int8 "$round"
    "${si[@]}" --impl int8 --quantized "$OUT/${name}_w2a4.sihead" | tag "$name" si_w2a4_int8 "$round"
    "${si[@]}" --impl lut --quantized "$OUT/${name}_w2a4.sihead" | tag "$name" si_w2a4_lut "$round"
    "${si[@]}" --impl auto --quantized "$OUT/${name}_w2a4.sihead" | tag "$name" si_w2a4_auto "$round"
    if [ "$round" = 1 ]; then
      for kind in float qdq; do
        $PY "$HERE/peer_export.py" --census "$OUT/${head}_${kind}_ort_optimized.onnx" |
          $PY -c 'import json,sys; c=json.loads(sys.stdin.read()); print(json.dumps(dict(head=sys.argv[1], graph=sys.argv[2], expected=json.load(open(sys.argv[3])), ops=c)))' \
            "$name" "$kind" "$OUT/$head.json" >> "$OUT/census.jsonl"
      done
    fi
  done
done
{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $THREADS thread(s); $ROUNDS rounds; $(date -u +%Y-%m-%d)"
  echo
  $PY "$HERE/peer_table.py" "$OUT/bench.jsonl" "$OUT/census.jsonl"
} | tee "$OUT/table.md"
