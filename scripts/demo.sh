#!/usr/bin/env bash
# `make demo`: evaluates the shipped Fashion-MNIST model on the full test set, runs the same
# images through the split (head on the "node", tail on the "server") at the stem, shows what
# the codec makes of that feature map, and finishes with the shipped trained pipeline
# (models/fmnist_best.yaml): every test image through a real frame of at most 64 bytes.
set -euo pipefail
BUILD_DIR=${1:-build}
BIN="$BUILD_DIR/tools/cli/splitinfer"
CKPT=models/resnet_fmnist.pt
SPLIT=stem
PIPELINE=models/fmnist_best.yaml

if [ ! -f "$CKPT" ]; then
  echo "demo: $CKPT is missing; train it with the command in docs/reproduce.md" >&2
  exit 1
fi
echo "== splitinfer demo =="
echo "-- the model zoo and its split points"
"$BIN" models
echo
echo "-- the shipped model, whole network on one machine (10,000 Fashion-MNIST test images)"
echo "\$ $BIN eval --checkpoint $CKPT"
"$BIN" eval --checkpoint "$CKPT"
echo
echo "-- the same model cut after '$SPLIT': head (node) then tail (server)"
echo "\$ $BIN eval --checkpoint $CKPT --split $SPLIT --json"
"$BIN" eval --checkpoint "$CKPT" --split "$SPLIT" --json
"$BIN" eval --checkpoint "$CKPT" --split "$SPLIT"
echo
echo "The split run matches the whole-network accuracy exactly; the feature above is what the node"
echo "would send as float32, before any compression."
echo
echo "-- what the codec makes of that feature: 1-bit per-tensor quantization, then each lossless coder"
echo "   (calibrated on 500 test-set stem maps, measured on 500 others; frame bytes include header and CRC)"
mkdir -p runs/demo
"$BIN" eval --checkpoint "$CKPT" --split "$SPLIT" --limit 1000 --dump-features runs/demo/stem.f32 >/dev/null
for coder in none lzma zstd cabac cabac-trained; do
  echo "\$ $BIN codec bench --input runs/demo/stem.f32 --bits 1 --clip mse --coder $coder --limit 1000 --repeats 1"
  "$BIN" codec bench --input runs/demo/stem.f32 --bits 1 --clip mse --coder "$coder" --limit 1000 --repeats 1
done
echo
echo "-- the shipped pipeline (docs/results.md): node head + encoder, quantized latent, cabac frame;"
echo "   server decoder + tail. Every test image crosses as a real frame; bytes include header and CRC."
echo "\$ $BIN eval --pipeline $PIPELINE --json"
"$BIN" eval --pipeline "$PIPELINE" --json
"$BIN" eval --pipeline "$PIPELINE"
