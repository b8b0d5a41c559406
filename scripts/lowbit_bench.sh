#!/usr/bin/env bash
# The speed table of issue 7 (bench/README.md, "Low-bit node head"): batch-1 head time on one
# core, LibTorch float against the low-bit kernels, for the Fashion-MNIST head up to stage3 and
# the ResNet-50 stem at 224x224, on every kernel path this CPU has (AVX-512, AVX2, portable).
# Usage:
#   scripts/lowbit_bench.sh [BIN] [OUT_DIR]       (defaults: build/tools/cli/splitinfer, runs/lowbit_bench)
# Makes the head files it needs in OUT_DIR (post-training quantization: times do not depend on
# the weights' values), prints a markdown table; the JSON lines stay in OUT_DIR/bench.jsonl.
# Run it on an otherwise idle machine.
set -euo pipefail
BIN=${1:-build/tools/cli/splitinfer}
OUT=${2:-runs/lowbit_bench}
RUNS_FMNIST=${RUNS_FMNIST:-300}
RUNS_STEM=${RUNS_STEM:-40}
mkdir -p "$OUT"
: > "$OUT/bench.jsonl"

quantize() {  # name checkpoint split extra-args...
  local name=$1 ckpt=$2 split=$3; shift 3
  [ -s "$OUT/$name.sihead" ] || "$BIN" quantize-head --checkpoint "$ckpt" --split "$split" "$@" \
    --out "$OUT/$name.sihead" --json > "$OUT/$name.quant.json"
}
# Fashion-MNIST: regions of 16 input channels, the first conv at 8 bits (the accurate 2-bit
# configuration of docs/results.md). ResNet-50 (random weights): the stem is one conv on 3
# channels, so one region per output channel, and it is the head's only conv: all low-bit.
quantize fmnist_w8a8 models/resnet_fmnist.pt stage3 --wbits 8 --abits 8 --group 16
quantize fmnist_w2a4 models/resnet_fmnist.pt stage3 --wbits 2 --first-wbits 8 --abits 4 --group 16
quantize fmnist_w2a2 models/resnet_fmnist.pt stage3 --wbits 2 --first-wbits 8 --abits 2 --group 16
quantize stem_w8a8 resnet50 stem --wbits 8 --abits 8 --calibration 4
quantize stem_w2a4 resnet50 stem --wbits 2 --abits 4 --calibration 4
quantize stem_w2a2 resnet50 stem --wbits 2 --abits 2 --calibration 4

bench() {  # model-args... ; appends one JSON line tagged with $TAG
  "$BIN" bench head --threads 1 --json "$@" | python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); j["tag"]=sys.argv[1]; print(json.dumps(j))' "$TAG" >> "$OUT/bench.jsonl"
}
PATHS="avx512 avx2 portable"
if ! grep -qw avx512_vnni /proc/cpuinfo; then PATHS="avx2 portable"; fi
if ! grep -qw avx2 /proc/cpuinfo; then PATHS="portable"; fi
for head in fmnist stem; do
  if [ $head = fmnist ]; then M=(--checkpoint models/resnet_fmnist.pt --split stage3 --runs "$RUNS_FMNIST"); else
    M=(--checkpoint resnet50 --split stem --runs "$RUNS_STEM"); fi
  TAG="$head torch" bench "${M[@]}" --impl torch
  for p in $PATHS; do
    TAG="$head $p w8a8 int8" bench "${M[@]}" --impl int8 --kernel-path $p --quantized "$OUT/${head}_w8a8.sihead"
    TAG="$head $p w2a4 int8" bench "${M[@]}" --impl int8 --kernel-path $p --quantized "$OUT/${head}_w2a4.sihead"
    TAG="$head $p w2a4 lut" bench "${M[@]}" --impl lut --kernel-path $p --quantized "$OUT/${head}_w2a4.sihead"
    TAG="$head $p w2a4 auto" bench "${M[@]}" --impl auto --kernel-path $p --quantized "$OUT/${head}_w2a4.sihead"
    TAG="$head $p w2a2 lut" bench "${M[@]}" --impl lut --kernel-path $p --quantized "$OUT/${head}_w2a2.sihead"
  done
done
python3 - "$OUT/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
t = {r["tag"]: r for r in rows}
def ms(tag):
    r = t.get(tag)
    return f'{r["median_ms"]:.3f}' if r else "-"
print("| head | kernel path | LibTorch float | w8a8, int8 kernel | w2a4, int8 kernel | w2a4, LUT kernel | w2a4, auto (per conv) | w2a2, LUT kernel | w2a4 LUT / w8a8 int8 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for head in ("fmnist", "stem"):
    for p in ("avx512", "avx2", "portable"):
        if f"{head} {p} w8a8 int8" not in t: continue
        kp = t[f"{head} {p} w8a8 int8"].get("kernel_path", p)
        ratio = t[f"{head} {p} w2a4 lut"]["median_ms"] / t[f"{head} {p} w8a8 int8"]["median_ms"]
        print(f"| {head} | {kp} | {ms(head + ' torch')} | {ms(f'{head} {p} w8a8 int8')} | {ms(f'{head} {p} w2a4 int8')} "
              f"| {ms(f'{head} {p} w2a4 lut')} | {ms(f'{head} {p} w2a4 auto')} | {ms(f'{head} {p} w2a2 lut')} | {ratio:.2f} |")
PY
