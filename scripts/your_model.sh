#!/usr/bin/env bash
# docs/your_model.md, run: a torchvision ResNet-18 at 224x224 and an image folder through every
# command, each command echoed before what it printed, into OUT/log.txt (default
# runs/your_model). Random weights except for one short fine-tuning epoch: the bytes and
# latencies are real, the accuracies say nothing about ResNet-18. About 5 minutes on 2 cores.
#
#   bash scripts/your_model.sh [BUILD_DIR] [OUT]
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-runs/your_model}
S="$BUILD/tools/cli/splitinfer"
PY=/usr/bin/python3
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: > "$LOG"
run() {  # echo the command, then run it, both into the log and onto the terminal
  echo "\$ $*" | sed "s|$OUT|\$OUT|g" | tee -a "$LOG"
  "$@" 2>&1 | grep -v "img/s\|ETA" | tee -a "$LOG"
  echo | tee -a "$LOG"
}

run $PY tools/fmnist_to_folder.py --out "$OUT/folder" --train-per-class 100 --test-per-class 30
CLASSES=$(ls "$OUT/folder/train" | paste -sd,)
run $PY tools/export_torchscript.py --model resnet18 --num-classes 10 --classes "$CLASSES" \
  --mean 0.286,0.286,0.286 --std 0.353,0.353,0.353 --dataset imagefolder --out "$OUT/r18.pt"
run "$S" eval --model "$OUT/r18.pt" --data "imagefolder:$OUT/folder" --split layer2
cat > "$OUT/train.yaml" <<YAML
model: {name: $OUT/r18.pt}
data: {dataset: imagefolder, dir: $OUT/folder}
optimizer: {name: adamw, lr: 0.0005}
epochs: 1
batch_size: 25
YAML
run "$S" train --config "$OUT/train.yaml" --out "$OUT/run"
run "$S" bench head --model "$OUT/run/checkpoint.pt" --split layer1 --impl torch --runs 20
run "$S" quantize-head --model "$OUT/run/checkpoint.pt" --split layer1 --calibration 64 --out "$OUT/layer1.sihead"
run "$S" eval-head --model "$OUT/run/checkpoint.pt" --head "$OUT/layer1.sihead"
run "$S" bench head --model "$OUT/run/checkpoint.pt" --split layer1 --impl auto --quantized "$OUT/layer1.sihead" \
  --runs 20
cat > "$OUT/study.yaml" <<YAML
model: $OUT/run/checkpoint.pt
data: {dataset: imagefolder, dir: $OUT/folder}
coders: [zstd, cabac]
image_baselines: true
ptq: {splits: [layer1, layer2], bits: [2, 4], granularity: [tensor], calibration_images: 64}
YAML
run "$S" experiment --config "$OUT/study.yaml" --out "$OUT/study"
run cut -d, -f1-9 "$OUT/study/results.csv"
PIPE="$OUT/study/runs/ptq_layer2_b2_tensor/pipeline.yaml"
"$S" serve --config "$PIPE" --listen 127.0.0.1:0 --port-file "$OUT/port" > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
echo "\$ splitinfer serve --config \$OUT/study/runs/ptq_layer2_b2_tensor/pipeline.yaml --listen 127.0.0.1:0 &" >> "$LOG"
head -2 "$OUT/serve.log" >> "$LOG"
echo >> "$LOG"
PORT=$(cat "$OUT/port")
run "$S" node --server "127.0.0.1:$PORT" --pipeline "$PIPE" --data "$OUT/folder" --limit 100 --rate 1MB/s --rtt 10ms --quiet
run "$S" node --server "127.0.0.1:$PORT" --pipeline "$PIPE" --data "$OUT/folder" --limit 100 --rate 1MB/s --rtt 10ms \
  --mode server-only --quiet
kill $SERVER
run "$S" profile --model "$OUT/run/checkpoint.pt" --threads 1 --batches 1 --repeats 5 --maps 4 --idle-gaps 0,10,50 \
  --bits 2,4 --coders zstd,cabac --out "$OUT/profile.yaml"
run "$S" plan --node "$OUT/profile.yaml" --server "$OUT/profile.yaml" --rates 0.5,1,10 --rtt 10ms \
  --results "$OUT/study/results.json" --min-accuracy 0
echo "log: $LOG"
