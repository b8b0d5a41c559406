#!/usr/bin/env bash
# The user journey of issue 15, end to end on small data: a user's own torchvision model and
# their own image folder through every command, as docs/your_model.md describes it at full size.
#
#   1. tools/export_torchscript.py: torchvision ResNet-18 (random weights) at 32x32 input, 10
#      classes named after the folder's, metadata embedded
#   2. an image folder written here: Fashion-MNIST items as PNG files in class folders
#   3. train (fine-tune the exported file) until it is well above chance: random weights would
#      hide a class-order or normalisation bug
#   4. eval on the folder (whole model and split), 5. experiment (PTQ and QAT),
#   6. serve + node over the emulated link, 7. profile + plan
#
# Needs python3-torch/torchvision and PIL (installed by scripts/install-deps.sh) and a build with
# OpenCV (image folders); skips (exit 77) without them. Usage: user_journey_test.sh BIN
set -u
BIN=$1
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
TMP=$(mktemp -d)
SERVER_PID=""
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$TMP"' EXIT
pass=0 fail=0
step() {  # name, expected output substring, command...
  local name=$1 want=$2; shift 2
  if "$@" >"$TMP/out" 2>"$TMP/err" && grep -qF -- "$want" "$TMP/out"; then
    pass=$((pass + 1)); echo "ok   $name"
  else
    fail=$((fail + 1)); echo "FAIL $name (want '$want'):"; cat "$TMP/out" "$TMP/err"
  fi
}
value() { grep -o "\"$1\":[-0-9.e]*" "$TMP/out" | head -1 | cut -d: -f2; }

if ! "$BIN" version --json | grep -q '"image_folders":true'; then echo "skip: built without OpenCV"; exit 77; fi
if ! $PY -c "import torch, torchvision, PIL" 2>/dev/null; then echo "skip: no python3-torch/torchvision/PIL"; exit 77; fi

# 2. The image folder: 150 training and 50 test images per class, class folders named as a
# user would name them (folder order is class order, as in torchvision's ImageFolder).
$PY "$SRC/tools/fmnist_to_folder.py" --out "$TMP/folder" --train-per-class 150 --test-per-class 50 > /dev/null ||
  { echo "FAIL writing the image folder"; exit 1; }
ls "$TMP/folder/train" | tr '\n' ',' | sed 's/,$//' > "$TMP/classes.txt"
D="$TMP/folder"

# 1. Export, with the folder's class names and Fashion-MNIST's statistics on every channel.
step "export_torchscript resnet18 32x32" "splitinfer metadata embedded" $PY "$SRC/tools/export_torchscript.py" \
  --model resnet18 --input-size 32 --num-classes 10 --classes "$(cat "$TMP/classes.txt")" \
  --mean 0.286,0.286,0.286 --std 0.353,0.353,0.353 --dataset imagefolder --out "$TMP/r18.pt"
step "eval the exported model (random weights)" '"kind":"torchscript"' "$BIN" eval --model "$TMP/r18.pt" \
  --data "imagefolder:$D" --json
chance=$(value top1)

# 3. Fine-tune it on the folder.
cat > "$TMP/train.yaml" <<YAML
model: {name: $TMP/r18.pt}
data: {dataset: imagefolder, dir: $D}
optimizer: {name: adamw, lr: 0.001, weight_decay: 0.0001}
epochs: 3
batch_size: 50
threads: 2
YAML
step "train the exported model" "test top1" "$BIN" train --config "$TMP/train.yaml" --out "$TMP/run"
M="$TMP/run/checkpoint.pt"

# 4. eval: the trained file scores what training reported, far above the random weights' score.
step "eval the trained model" '"kind":"torchscript"' "$BIN" eval --model "$M" --data "imagefolder:$D" --json
top1=$(value top1)
if awk -v t="$top1" -v c="$chance" 'BEGIN { exit !(t >= 50 && t > c + 25) }'; then
  pass=$((pass + 1)); echo "ok   trained top-1 $top1 % (random weights $chance %)"
else
  fail=$((fail + 1)); echo "FAIL trained top-1 $top1 % is not well above chance (random weights $chance %)"
fi
step "eval split at layer2" '"feature_shape":[128,4,4]' "$BIN" eval --model "$M" --split layer2 --json
step "eval --dump-features at layer1" "feature [64,8,8]" "$BIN" eval --model "$M" --data "imagefolder:$D" --limit 20 \
  --split layer1 --dump-features "$TMP/layer1.f32"
grep -q '"shape": *\[ *20, *64, *8, *8 *\]' "$TMP/layer1.f32.json" && [ "$(stat -c %s "$TMP/layer1.f32")" -eq $((20 * 64 * 8 * 8 * 4)) ] &&
  { pass=$((pass + 1)); echo "ok   dumped features are 20x64x8x8 float32"; } ||
  { fail=$((fail + 1)); echo "FAIL dumped features:"; cat "$TMP/layer1.f32.json"; ls -l "$TMP/layer1.f32"; }
# The codec's own commands on those features (README "Using it"): one map to a frame file and
# back. The decoded map is checked here against the dumped one, independently of the codec's own
# error report: every value within half a quantization step of its clipped original.
step "codec calibrate on the dumped features" "calibrated 4-bit tensor quantizer on 20 maps" "$BIN" codec calibrate \
  --input "$TMP/layer1.f32" --bits 4 --out "$TMP/q.json"
step "codec encode map 3" "(cabac, 4 bit)" "$BIN" codec encode --input "$TMP/layer1.f32" --index 3 --quant "$TMP/q.json" \
  --coder cabac --out "$TMP/x.frame"
bytes=$(sed -n 's/^\([0-9]*\) bytes.*/\1/p' "$TMP/out")
step "codec decode the frame" "decoded ${bytes}-byte frame -> [64,8,8]" "$BIN" codec decode --input "$TMP/x.frame" \
  --quant "$TMP/q.json" --out "$TMP/x.f32"
if [ "$(stat -c %s "$TMP/x.frame")" = "$bytes" ] && $PY - "$TMP" <<'EOF'
import json, sys
import numpy as np
d = sys.argv[1]
q = json.load(open(d + "/q.json"))
lo, hi = np.float32(q["lo"][0]), np.float32(q["hi"][0])
orig = np.fromfile(d + "/layer1.f32", dtype=np.float32).reshape(20, 64, 8, 8)[3]
got = np.fromfile(d + "/x.f32", dtype=np.float32).reshape(64, 8, 8)
step = (hi - lo) / 15
err = np.abs(got - np.clip(orig, lo, hi)).max()
sys.exit(0 if err <= step / 2 + 1e-5 and got.std() > 0 else 1)
EOF
then pass=$((pass + 1)); echo "ok   the decoded map is the dumped map within half a 4-bit step"
else fail=$((fail + 1)); echo "FAIL codec round trip: frame $(stat -c %s "$TMP/x.frame") B, printed $bytes"; head -c 400 "$TMP/q.json"; fi
step "codec bench on the dumped features" '"coder":"cabac"' "$BIN" codec bench --input "$TMP/layer1.f32" --bits 4 --json
# The low-bit head of the scripted ResNet-18 (stem as four blocks, BasicBlocks with downsample).
step "quantize-head up to layer2" '"float_graph_error"' "$BIN" quantize-head --model "$M" --split layer2 \
  --data "imagefolder:$D" --calibration 64 --out "$TMP/r18_layer2.sihead" --json
step "eval-head on the folder" '"top1_lowbit_head"' "$BIN" eval-head --model "$M" --head "$TMP/r18_layer2.sihead" \
  --data "imagefolder:$D" --json
if awk -v l="$(value loss_pp)" 'BEGIN { exit !(l < 5) }'; then
  pass=$((pass + 1)); echo "ok   low-bit head loses $(value loss_pp) points"
else
  fail=$((fail + 1)); echo "FAIL low-bit head loses too much:"; cat "$TMP/out"
fi
if ! "$BIN" eval --model "$M" --data "imagefolder:$D" --classes a,b,c,d,e,f,g,h,i,j > "$TMP/out" 2>&1 &&
   grep -qF "MISMATCH: class 0 is 'a' in model resnet18 but 'bag'" "$TMP/out"; then
  pass=$((pass + 1)); echo "ok   eval with other class names is refused"
else
  fail=$((fail + 1)); echo "FAIL eval with other class names:"; cat "$TMP/out"
fi

# A 1-channel model reads the same folder in grayscale (the exported tiny chain: 1x28x28).
step "a 1-channel model on the folder" '"images":500' "$BIN" eval \
  --model "$SRC/tests/data/fixtures/tiny_chain_meta.pt" --data "imagefolder:$D" --json

# 5. experiment: PTQ at two splits and a short QAT run, on the folder, through real frames.
cat > "$TMP/study.yaml" <<YAML
model: $M
data: {dataset: imagefolder, dir: $D}
coders: [zstd, cabac]
image_baselines: false
ptq: {splits: [layer1, layer2], bits: [2, 4], granularity: [tensor], calibration_images: 100}
runs:
  - {name: qat, method: qat, split: layer2, bits: 2, epochs: 1, lr: 0.0001}
YAML
step "experiment PTQ + QAT" "study written to" "$BIN" experiment --config "$TMP/study.yaml" --out "$TMP/study" \
  --threads 2
rows=$(grep -c "^ptq_\|^qat," "$TMP/study/results.csv" 2>/dev/null || echo 0)
if [ "$rows" -eq 10 ]; then
  pass=$((pass + 1)); echo "ok   study rows ($rows)"
else
  fail=$((fail + 1)); echo "FAIL study rows: $rows of 10"; cat "$TMP/study/results.csv"
fi
PIPE="$TMP/study/runs/ptq_layer2_b4_tensor/pipeline.yaml"

# 6. serve + node over the emulated link, images read from the folder.
"$BIN" serve --config "$PIPE" --listen 127.0.0.1:0 --port-file "$TMP/port" > "$TMP/serve.log" 2>&1 &
SERVER_PID=$!
. "$SRC/tests/runtime/serve_lib.sh"
wait_port "$TMP/port" $SERVER_PID server || { cat "$TMP/serve.log"; exit 1; }
step "node over a 1 MB/s link" '"images":100' "$BIN" node --server "127.0.0.1:$(cat "$TMP/port")" --pipeline "$PIPE" \
  --data "imagefolder:$D" --limit 100 --rate 1MB/s --rtt 10ms --json --quiet
node_top1=$(value top1)
if awk -v t="$node_top1" 'BEGIN { exit !(t >= 45) }'; then
  pass=$((pass + 1)); echo "ok   node top-1 $node_top1 %"
else
  fail=$((fail + 1)); echo "FAIL node top-1 $node_top1 %"; cat "$TMP/out"
fi
step "load: 2 clients, frames from the folder" '"concurrency":2' "$BIN" load --server "127.0.0.1:$(cat "$TMP/port")" \
  --pipeline "$PIPE" --data "imagefolder:$D" --concurrency 2 --duration 1 --json
grep -q '"errors":{},"ok":[1-9]' "$TMP/out" && { pass=$((pass + 1)); echo "ok   load answered, without errors"; } ||
  { fail=$((fail + 1)); echo "FAIL load errors:"; cat "$TMP/out"; }
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""

# 7. profile + plan.
step "profile the trained model" "profiled resnet18" "$BIN" profile --model "$M" --threads 1 --batches 1 \
  --repeats 3 --maps 2 --idle-gaps 0,10 --bits 2,4 --coders zstd,cabac --call-ms 0.5 --out "$TMP/profile.yaml"
grep -q "inputs: the first 2 images of imagefolder:" "$TMP/profile.yaml" &&
  { pass=$((pass + 1)); echo "ok   profile measured the codec on the model's own images"; } ||
  { fail=$((fail + 1)); echo "FAIL profile inputs:"; grep inputs "$TMP/profile.yaml"; }
step "plan with the study's accuracy" "best" "$BIN" plan --node "$TMP/profile.yaml" --server "$TMP/profile.yaml" \
  --rates 1,10 --rtt 10ms --results "$TMP/study/results.json" --min-accuracy 1
step "plan --validate through the real runtime" "| 1 | split | " "$BIN" plan --node "$TMP/profile.yaml" \
  --server "$TMP/profile.yaml" --rates 1 --rtt 10ms --validate --model "$M" --data "imagefolder:$D" --images 20 \
  --threads 1 --work-dir "$TMP/validate"
# The same validation against a server started apart (on another core, machine, or outside the
# node's CPU quota: bench/throttled_split.sh), with server-only sent as a camera's JPEG.
if "$BIN" version --json | grep -q '"jpeg":true'; then
  PLAN=(plan --node "$TMP/profile.yaml" --server "$TMP/profile.yaml" --rates 1 --rtt 10ms --image-format jpeg --validate
        --model "$M" --data "imagefolder:$D" --threads 1 --work-dir "$TMP/apart")
  step "plan --validate --prepare writes a server config" "splitinfer serve --config $TMP/apart/server.yaml" \
    "$BIN" "${PLAN[@]}" --prepare
  "$BIN" serve --config "$TMP/apart/server.yaml" --listen 127.0.0.1:0 --port-file "$TMP/port2" > "$TMP/serve2.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$TMP/port2" $SERVER_PID server || { cat "$TMP/serve2.log"; exit 1; }
  step "plan --validate against that server, server-only as JPEG" "| 1 | server-only | server-only jpeg q90 |" \
    "$BIN" "${PLAN[@]}" --validate-server "127.0.0.1:$(cat "$TMP/port2")" --images 10
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
