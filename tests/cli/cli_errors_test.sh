#!/usr/bin/env bash
# Bad input at the command line: each case must exit non-zero with exactly one error line that
# names the problem, and never crash. Also checks that train -> eval works end to end on a tiny
# run. Usage: cli_errors_test.sh path/to/splitinfer
set -u
BIN=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0

check_error() {  # name, expected substring, command...
  local name=$1 want=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  local lines; lines=$(grep -c . "$TMP/err")
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qF -- "$want" "$TMP/err" && [ "$lines" -eq 1 ]; then
    pass=$((pass + 1)); echo "ok   $name"
  else
    fail=$((fail + 1)); echo "FAIL $name (rc=$rc, want '$want', $lines stderr line(s)):"; cat "$TMP/err"
  fi
}

# What this build has (optional parts, GPUs) decides which of the checks below apply.
VERSION_JSON=$("$BIN" version --json)
if echo "$VERSION_JSON" | grep -q '"torch":"' && echo "$VERSION_JSON" | grep -q '"blas":"'; then
  pass=$((pass + 1)); echo "ok   version --json"
else
  fail=$((fail + 1)); echo "FAIL version --json: $VERSION_JSON"
fi
has() { echo "$VERSION_JSON" | grep -q "\"$1\":true"; }

# A tiny model to evaluate: 1 epoch on 256 images.
cat > "$TMP/tiny.yaml" <<YAML
model: {name: resnet_fmnist, num_classes: 10, in_channels: 1, width: 4}
data: {dataset: fmnist, limit_train: 256, limit_test: 100}
epochs: 1
batch_size: 64
YAML
if "$BIN" train --config "$TMP/tiny.yaml" --out "$TMP/run" >"$TMP/train.out" 2>&1 && [ -f "$TMP/run/checkpoint.pt" ]; then
  pass=$((pass + 1)); echo "ok   train tiny"
else
  fail=$((fail + 1)); echo "FAIL train tiny"; cat "$TMP/train.out"
fi
CKPT="$TMP/run/checkpoint.pt"
json=$("$BIN" eval --checkpoint "$CKPT" --split stem --json --limit 100 2>/dev/null)
if echo "$json" | grep -q '"split":"stem"' && echo "$json" | grep -q '"images":100' && echo "$json" | grep -q '"top1":'; then
  pass=$((pass + 1)); echo "ok   eval --json"
else
  fail=$((fail + 1)); echo "FAIL eval --json: $json"
fi

# The study on the tiny model (one PTQ cell), then the pipeline it wrote through eval --pipeline.
cat > "$TMP/study.yaml" <<YAML
model: $CKPT
data: {dataset: fmnist, limit_train: 256, limit_test: 100}
coders: [cabac]
image_baselines: false
ptq: {splits: [stem], bits: [2], granularity: [tensor], calibration_images: 64}
YAML
if "$BIN" experiment --config "$TMP/study.yaml" --out "$TMP/study" --threads 1 >"$TMP/study.out" 2>&1 &&
   [ -f "$TMP/study/report.md" ] && grep -q ptq_stem_b2_tensor "$TMP/study/results.csv"; then
  pass=$((pass + 1)); echo "ok   experiment"
else
  fail=$((fail + 1)); echo "FAIL experiment"; cat "$TMP/study.out"
fi
PIPE="$TMP/study/runs/ptq_stem_b2_tensor/pipeline.yaml"
json=$("$BIN" eval --pipeline "$PIPE" --json --limit 100 2>/dev/null)
if echo "$json" | grep -q '"pipeline":"ptq_stem_b2_tensor"' && echo "$json" | grep -q '"images":100' &&
   echo "$json" | grep -q '"bytes_per_image":' && echo "$json" | grep -q '"float_top1":'; then
  pass=$((pass + 1)); echo "ok   eval --pipeline --json"
else
  fail=$((fail + 1)); echo "FAIL eval --pipeline --json: $json"
fi
check_error "eval without a model" "eval needs --model" "$BIN" eval
check_error "pipeline with split" "drop --model, --split" "$BIN" eval --pipeline "$PIPE" --split stem
check_error "missing pipeline" "NOT_FOUND: pipeline file" "$BIN" eval --pipeline "$TMP/none.yaml"
sed 's/^quantizer:/quantiser:/' "$PIPE" > "$TMP/study/runs/ptq_stem_b2_tensor/typo.yaml"
check_error "pipeline key typo" "unknown key 'quantiser'" "$BIN" eval --pipeline "$TMP/study/runs/ptq_stem_b2_tensor/typo.yaml"
check_error "missing study config" "NOT_FOUND: study config" "$BIN" experiment --config "$TMP/none.yaml" --out "$TMP/s2"
printf 'model: %s\nruns:\n  - {name: x, method: tcl, tcl_lamda: 2}\n' "$CKPT" > "$TMP/study_typo.yaml"
check_error "study run key typo" "unknown key 'tcl_lamda'" "$BIN" experiment --config "$TMP/study_typo.yaml" --out "$TMP/s2"

printf 'model: {name: resnet_fmnist}\noptimiser: {lr: 0.1}\n' > "$TMP/typo.yaml"
check_error "unknown config key" "unknown key 'optimiser'" "$BIN" train --config "$TMP/typo.yaml" --out "$TMP/x"
check_error "missing config" "NOT_FOUND: config file" "$BIN" train --config "$TMP/none.yaml" --out "$TMP/x"
check_error "unknown split" "unknown split point 'layer9'" "$BIN" eval --checkpoint "$CKPT" --split layer9
check_error "missing dataset" "apt-get install dataset-fashion-mnist" "$BIN" eval --checkpoint "$CKPT" --data "$TMP/nodata"
check_error "missing checkpoint" "is neither a file nor a zoo model" "$BIN" eval --checkpoint "$TMP/none.pt"
echo "not a checkpoint" > "$TMP/junk.pt"
check_error "corrupt checkpoint" "DATA_LOSS" "$BIN" eval --checkpoint "$TMP/junk.pt"
if echo "$VERSION_JSON" | grep -q '"cuda_devices":0'; then
  check_error "cuda on cpu build" "FAILED_PRECONDITION" "$BIN" eval --checkpoint "$CKPT" --device cuda
else
  check_error "cuda device out of range" "FAILED_PRECONDITION" "$BIN" eval --checkpoint "$CKPT" --device cuda:99
fi
check_error "bad device" "unknown device 'gpu'" "$BIN" eval --checkpoint "$CKPT" --device gpu
mkdir -p "$TMP/imgs/train/a" "$TMP/imgs/test/a"
printf 'model: {name: resnet_fmnist, num_classes: 10}\ndata: {dataset: imagefolder, dir: %s}\n' "$TMP/none" > "$TMP/nf.yaml"
if has image_folders; then
  check_error "missing image folder" "NOT_FOUND" "$BIN" train --config "$TMP/nf.yaml" --out "$TMP/y"
else
  check_error "image folder without OpenCV" "image folders need OpenCV" "$BIN" train --config "$TMP/nf.yaml" --out "$TMP/y"
fi

# quantize-head / eval-head / bench head (issue 7): the tiny checkpoint through the low-bit head.
if "$BIN" quantize-head --checkpoint "$CKPT" --split stage1 --wbits 2 --abits 4 --group 2 --calibration 16 \
     --out "$TMP/head.sihead" --json > "$TMP/qh.json" 2>&1 &&
   grep -q '"convs":3' "$TMP/qh.json" &&
   "$BIN" eval-head --head "$TMP/head.sihead" --checkpoint "$CKPT" --impl lut --limit 50 --json > "$TMP/eh.json" 2>&1 &&
   grep -q '"images":50' "$TMP/eh.json" && grep -q '"top1_lowbit_head":' "$TMP/eh.json" &&
   grep -q '"act_ranges":"region"' "$TMP/eh.json" &&
   "$BIN" bench head --checkpoint "$CKPT" --split stage1 --impl int8 --quantized "$TMP/head.sihead" --runs 3 \
     --input 1x28x28 --kernel-path portable --json > "$TMP/bh.json" 2>&1 && grep -q '"impl":"int8"' "$TMP/bh.json" &&
   grep -q '"median_ms":' "$TMP/bh.json" && grep -q '"kernel_path":"portable"' "$TMP/bh.json"; then
  pass=$((pass + 1)); echo "ok   quantize-head, eval-head, bench head"
else
  fail=$((fail + 1)); echo "FAIL quantize-head, eval-head, bench head:"; cat "$TMP/qh.json" "$TMP/eh.json" "$TMP/bh.json" 2>/dev/null
fi
# Fine-tuning through the fake quantization stops when told (writing no head), resumes from its
# state file and then writes the head; other settings are refused.
if "$BIN" quantize-head --checkpoint "$CKPT" --split stage1 --wbits 2 --abits 8 --group 2 --calibration 8 \
     --finetune 2 --stop-after 1 --limit-train 128 --out "$TMP/ft.sihead" > "$TMP/ft.out" 2>&1 &&
   grep -q "stopped after epoch 1 of 2" "$TMP/ft.out" && [ ! -e "$TMP/ft.sihead" ] &&
   [ -s "$TMP/ft.sihead.state.pt" ] &&
   "$BIN" quantize-head --checkpoint "$CKPT" --split stage1 --wbits 2 --abits 8 --group 2 --calibration 8 \
     --finetune 2 --limit-train 128 --out "$TMP/ft.sihead" --json > "$TMP/ft.json" 2> "$TMP/ft2.out" &&
   grep -q "resuming after epoch 1" "$TMP/ft2.out" && grep -q '"convs":3' "$TMP/ft.json" && [ -s "$TMP/ft.sihead" ] &&
   ! "$BIN" quantize-head --checkpoint "$CKPT" --split stage1 --wbits 4 --abits 8 --group 2 --calibration 8 \
     --finetune 2 --limit-train 128 --out "$TMP/ft.sihead" > "$TMP/ft3.out" 2>&1 &&
   grep -q "MISMATCH: .*ft.sihead.state.pt was written with other settings (wbits); delete it to start over" "$TMP/ft3.out"; then
  pass=$((pass + 1)); echo "ok   quantize-head --finetune (and resume)"
else
  fail=$((fail + 1)); echo "FAIL quantize-head --finetune:"; cat "$TMP/ft.out" "$TMP/ft.json" "$TMP/ft2.out" "$TMP/ft3.out" 2>/dev/null
fi
check_error "eval-head missing head" "NOT_FOUND: head file" "$BIN" eval-head --head "$TMP/none.sihead" --checkpoint "$CKPT"
check_error "eval-head not a head" "not a splitinfer head file" "$BIN" eval-head --head "$TMP/tiny.yaml" --checkpoint "$CKPT"
check_error "bench head needs a file" "--impl int8 needs --quantized FILE" "$BIN" bench head --checkpoint "$CKPT" \
  --split stage1 --impl int8
check_error "bench head wrong input" "--input 3x224x224: resnet_fmnist takes 1x28x28" "$BIN" bench head \
  --checkpoint "$CKPT" --split stage1 --impl torch --input 3x224x224
check_error "quantize-head bad bits" "weight bits 3 (use 1, 2, 4 or 8)" "$BIN" quantize-head --checkpoint "$CKPT" \
  --split stage1 --wbits 3 --calibration 4 --out "$TMP/x.sihead"
check_error "quantize-head unsupported model" "has no low-bit form" "$BIN" quantize-head --checkpoint convnext_tiny \
  --split stem --calibration 1 --out "$TMP/x.sihead"

# serve / node (src/runtime): refused before anything starts.
if "$BIN" serve --help >/dev/null 2>&1 && ! "$BIN" serve --config /dev/null 2>&1 | grep -q "no runtime"; then
  printf 'pipelines: [x.yaml]\nmax_batchsize: 4\n' > "$TMP/serve.yaml"
  check_error "serve unknown key" "unknown key 'max_batchsize'" "$BIN" serve --config "$TMP/serve.yaml"
  check_error "serve missing config" "NOT_FOUND: server config" "$BIN" serve --config "$TMP/none.yaml"
  check_error "node bad rate" "unknown unit in link rate '1 MB'" "$BIN" node --pipeline models/x.yaml --rate "1 MB"
  check_error "node missing pipeline" "NOT_FOUND: pipeline file" "$BIN" node --pipeline "$TMP/none.yaml" --mode node-only
  SRC=$(cd "$(dirname "$0")/../.." && pwd)
  check_error "node given a model file under the old --model" "is only the name the server serves it under" \
    "$BIN" node --pipeline "$SRC/models/fmnist_best.yaml" --model "$SRC/tests/data/fixtures/tiny_chain_meta.pt"
  check_error "node no server" "UNAVAILABLE" "$BIN" node --pipeline "$SRC/models/fmnist_best.yaml" --server 127.0.0.1:1 \
    --deadline 2 --retries 0 --quiet
fi

# data make-scenes (src/data/scenes.h): parameters checked, an occupied folder refused.
printf 'canvass: 96\n' > "$TMP/scenes_bad.yaml"
check_error "make-scenes unknown key" "canvass" "$BIN" data make-scenes --config "$TMP/scenes_bad.yaml" --out "$TMP/sc"
check_error "make-scenes missing config" "scenes file $TMP/none.yaml not found" "$BIN" data make-scenes \
  --config "$TMP/none.yaml" --out "$TMP/sc"
if has image_folders; then
  mkdir -p "$TMP/occupied" && touch "$TMP/occupied/x"
  printf 'train_scenes: 2\ntest_scenes: 2\n' > "$TMP/scenes_small.yaml"
  check_error "make-scenes into an occupied folder" "exists and is not empty" "$BIN" data make-scenes \
    --config "$TMP/scenes_small.yaml" --out "$TMP/occupied"
else
  check_error "make-scenes without OpenCV" "UNIMPLEMENTED: make-scenes writes PNG files with OpenCV" "$BIN" data \
    make-scenes --config "$(cd "$(dirname "$0")/../.." && pwd)/configs/data/scenes.yaml" --out "$TMP/sc"
fi

check_error "anchors of a classification dataset" "'fmnist' is no detection dataset: give coco:DIR" "$BIN" data anchors \
  --data fmnist --size 128
check_error "anchors without annotations" "no training annotations (looked for $TMP/nothing/annotations/instances_train.json or" \
  "$BIN" data anchors --data "coco:$TMP/nothing" --size 128
check_error "eval on a detection dataset" "is a detection dataset (boxes per image)" "$BIN" eval \
  --checkpoint "$(cd "$(dirname "$0")/../.." && pwd)/models/resnet_fmnist.pt" --data "coco:$TMP/scenes"

# profile / plan (src/plan, in every build): bad profiles, links and lists are refused with the reason.
if ! has runtime; then
  check_error "profile without runtime needs --call-ms" "give it with --call-ms" "$BIN" profile --model resnet_fmnist \
    --batches 1 --bits 1 --coders none --repeats 1 --maps 2 --idle-gaps none --out "$TMP/p.yaml"
fi
{
  SRC=$(cd "$(dirname "$0")/../.." && pwd)
  check_error "plan missing profile" "NOT_FOUND: profile" "$BIN" plan --node "$TMP/none.yaml" --server "$TMP/none.yaml"
  printf 'machine: x\n' > "$TMP/notprofile.yaml"
  check_error "plan not a profile" "not a profile (no 'model')" "$BIN" plan --node "$TMP/notprofile.yaml" \
    --server "$TMP/notprofile.yaml"
  check_error "profile derive without from" "--derive needs --from" "$BIN" profile --derive \
    "$SRC/configs/devices/raspberry-pi-4.yaml" --out "$TMP/p.yaml"
  check_error "profile bad idle gaps" "--idle-gaps starts at 0" "$BIN" profile --model resnet_fmnist --idle-gaps 5,10 \
    --out "$TMP/p.yaml"
  printf 'links:\n  - {name: x, rate_mb_s: 1}\n' > "$TMP/links.yaml"
  printf 'machine: x\nmodel: m\ninput_shape: [1, 2, 2]\nblocks: [{name: b, op: conv, ms: {1: 1}}]\nsplits: []\ncodecs: []\npng: {encode_ms: 1, decode_ms: 1, bytes: 10}\n' \
    > "$TMP/tiny_profile.yaml"
  check_error "plan link without rtt" "link 'x' needs rate_mb_s and rtt_ms" "$BIN" plan --node "$TMP/tiny_profile.yaml" \
    --server "$TMP/tiny_profile.yaml" --links "$TMP/links.yaml"
  check_error "plan bad bits" "--bits takes values separated by commas" "$BIN" plan --node "$TMP/tiny_profile.yaml" \
    --server "$TMP/tiny_profile.yaml" --bits 2,x
  check_error "plan stream on a profile without it" "has no measurements of stream calls" "$BIN" plan \
    --node "$TMP/tiny_profile.yaml" --server "$TMP/tiny_profile.yaml" --rates 1 --transport stream
  check_error "plan unknown transport" "--transport: carrier not in {unary,stream}" "$BIN" plan \
    --node "$TMP/tiny_profile.yaml" --server "$TMP/tiny_profile.yaml" --rates 1 --transport carrier
  # The committed profiles load and plan.
  if out=$("$BIN" plan --node "$SRC/configs/devices/profiles/resnet50_raspberry-pi-4.yaml" \
      --server "$SRC/configs/devices/profiles/resnet50_epyc-vm.yaml" --links "$SRC/configs/devices/links.yaml" \
      --bits 2 --json 2>&1) && echo "$out" | grep -q '"plans":\[{'; then
    pass=$((pass + 1)); echo "ok   plan committed profiles"
  else
    fail=$((fail + 1)); echo "FAIL plan committed profiles: $out"
  fi
  if out=$("$BIN" plan --node "$TMP/tiny_profile.yaml" --server "$TMP/tiny_profile.yaml" --rates 1 --json 2>&1) &&
     echo "$out" | grep -q '"kind":"node-only"'; then
    pass=$((pass + 1)); echo "ok   plan tiny profile"
  else
    fail=$((fail + 1)); echo "FAIL plan tiny profile: $out"
  fi
  # --plot with hostile text in the profile and the path: gnuplot gets it quoted, no shell runs it.
  if command -v gnuplot >/dev/null; then
    sed "s|^machine: x|machine: \"x'; system 'touch $TMP/pwned_gp'; print '\"|" "$TMP/tiny_profile.yaml" > "$TMP/hostile.yaml"
    PLOT="$TMP/a'\$(touch pwned_sh)'.svg"
    if (cd "$TMP" && "$BIN" plan --node hostile.yaml --server hostile.yaml --rates 1 --plot "$PLOT" > plot.out 2>&1) &&
       [ -s "$PLOT" ] && [ ! -e "$TMP/pwned_gp" ] && [ ! -e "$TMP/pwned_sh" ]; then
      pass=$((pass + 1)); echo "ok   plan --plot quotes what it takes from data"
    else
      fail=$((fail + 1)); echo "FAIL plan --plot with hostile text:"; cat "$TMP/plot.out"; ls "$TMP"
    fi
  fi
}

# Bring your own model (issue 15): a TorchScript chain written by tools/export_torchscript.py
# (tests/data/fixtures/tiny_chain_meta.pt: metadata embedded; tiny_chain.pt: none) goes through
# every command that takes a model, under --model or its old spelling --checkpoint.
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TS="$SRC/tests/data/fixtures/tiny_chain_meta.pt"
BARE="$SRC/tests/data/fixtures/tiny_chain.pt"
DESCRIBE=(--input-shape 1x28x28 --mean 0.286 --std 0.353 --classes 10)
ts_ok() {  # name, expected stdout substring, command...
  local name=$1 want=$2; shift 2
  if "$@" >"$TMP/ts.out" 2>"$TMP/ts.err" && grep -qF -- "$want" "$TMP/ts.out"; then
    pass=$((pass + 1)); echo "ok   $name"
  else
    fail=$((fail + 1)); echo "FAIL $name (want '$want'):"; cat "$TMP/ts.out" "$TMP/ts.err"
  fi
}
ts_ok "eval a TorchScript file" '"kind":"torchscript"' "$BIN" eval --model "$TS" --data fmnist --limit 50 --json
ts_ok "eval a TorchScript file split, old flag name" '"feature_shape":[16,1,1]' "$BIN" eval --checkpoint "$TS" \
  --data fmnist --split block --limit 20 --json
ts_ok "eval a bare TorchScript file described by flags" '"kind":"torchscript"' "$BIN" eval --model "$BARE" \
  "${DESCRIBE[@]}" --data fmnist --limit 20 --json
ts_ok "bench head on a TorchScript file" "torch tiny_chain up to features" "$BIN" bench head --model "$TS" \
  --split features --impl torch --runs 3
ts_ok "profile a TorchScript file" "profiled tiny_chain" "$BIN" profile --model "$TS" --threads 1 --batches 1 \
  --repeats 2 --maps 2 --idle-gaps 0,5 --bits 2 --coders zstd --call-ms 0.5 --out "$TMP/ts_profile.yaml"
printf 'data: {dataset: fmnist, limit_train: 512, limit_test: 100}\noptimizer: {name: adamw, lr: 0.003}\nepochs: 1\nbatch_size: 64\n' \
  > "$TMP/ts_train.yaml"
ts_ok "train (fine-tune) a TorchScript file" "test top1" "$BIN" train --config "$TMP/ts_train.yaml" --model "$TS" \
  --out "$TMP/ts_run"
ts_ok "eval the fine-tuned TorchScript file" '"kind":"torchscript"' "$BIN" eval --model "$TMP/ts_run/checkpoint.pt" \
  --limit 50 --json
check_error "TorchScript without metadata" "export it with tools/export_torchscript.py" "$BIN" eval --model "$BARE" \
  --data fmnist
check_error "TorchScript with too few classes" "names 7 classes" "$BIN" eval --model "$BARE" --input-shape 1x28x28 \
  --mean 0.286 --std 0.353 --classes 7 --data fmnist
check_error "TorchScript with the wrong channel count" "cannot run an input of shape [3,28,28]" "$BIN" eval \
  --model "$BARE" --input-shape 3x28x28 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --classes 10 --data fmnist
check_error "TorchScript metadata flags on a checkpoint" "describe a TorchScript file" "$BIN" eval --model "$CKPT" \
  --classes 10
check_error "TorchScript model names no dataset" "give --data fmnist, --data imagefolder:DIR" "$BIN" eval --model "$TS"
# The scripted head converts like a native one: features is Sequential(Conv2d, BatchNorm2d, ReLU).
ts_ok "quantize-head a TorchScript head" '"convs":1' "$BIN" quantize-head --model "$TS" --split features \
  --data fmnist --calibration 32 --out "$TMP/ts.sihead" --json
ts_ok "eval-head a TorchScript head" '"top1_lowbit_head"' "$BIN" eval-head --model "$TS" --head "$TMP/ts.sihead" \
  --data fmnist --limit 100 --json
ts_ok "bench head --impl lowbit on a TorchScript head" "tiny_chain" "$BIN" bench head --model "$TS" --split features \
  --impl int8 --quantized "$TMP/ts.sihead" --runs 3
check_error "TorchScript block with no low-bit kernel" "block block.2 is a AdaptiveAvgPool2d, which has no low-bit kernel" \
  "$BIN" quantize-head --model "$TS" --split block --data fmnist --out "$TMP/ts_block.sihead"
if has image_folders; then
  mkdir -p "$TMP/noclasses/test"
  check_error "image folder with no classes" "has no class sub-folders" "$BIN" eval --model "$TS" \
    --data "imagefolder:$TMP/noclasses"
fi
check_error "bad --input-shape" "--input-shape '3x224': expected three sizes" "$BIN" eval --model "$BARE" \
  --input-shape 3x224 --data fmnist

# The cabac-trained coder's context model for the shipped pipeline, and the pipeline that uses it.
if "$BIN" codec train-cabac --pipeline "$SRC/models/fmnist_best.yaml" --images 64 --out "$TMP/ctx.sicm" \
     --pipeline-out "$TMP/trained.yaml" > "$TMP/tc.out" 2>&1 &&
   grep -q "cabac model for fmnist_best from 64 training images" "$TMP/tc.out" &&
   "$BIN" eval --pipeline "$TMP/trained.yaml" --limit 100 --json > "$TMP/tc.json" 2>/dev/null &&
   grep -q '"coder":"cabac-trained"' "$TMP/tc.json"; then
  pass=$((pass + 1)); echo "ok   codec train-cabac, then eval --pipeline on cabac-trained"
else
  fail=$((fail + 1)); echo "FAIL codec train-cabac:"; cat "$TMP/tc.out" "$TMP/tc.json" 2>/dev/null
fi
check_error "train-cabac missing pipeline" "NOT_FOUND: pipeline file" "$BIN" codec train-cabac \
  --pipeline "$TMP/none.yaml" --out "$TMP/x.sicm"
sed 's/^coder: cabac-trained$/coder: cabac/' "$TMP/trained.yaml" > "$TMP/mixed.yaml"
check_error "cabac_model with another coder" "cabac_model is only for coder cabac-trained" "$BIN" eval \
  --pipeline "$TMP/mixed.yaml" --limit 10

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
