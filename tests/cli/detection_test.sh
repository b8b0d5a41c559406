#!/usr/bin/env bash
# Detection end to end at the command line, on a tiny dataset: make-scenes -> train a width-2
# yolov3_tiny for one epoch -> eval --json (COCO AP) and --detections-out (COCO results), and
# the errors a user meets: a detector given to a classification command, the wrong augmentation
# block, data that is no detection dataset. Skipped (77) without OpenCV (scenes are PNGs).
# Usage: detection_test.sh path/to/splitinfer
set -u
BIN=$1
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check_error() {  # name, expected substring, command... (exactly one stderr line, a clean exit)
  local name=$1 want=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$? lines; lines=$(grep -c . "$TMP/err")
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qF -- "$want" "$TMP/err" && [ "$lines" -eq 1 ]; then ok "$name"
  else bad "$name (rc=$rc, want '$want', $lines stderr line(s)):"; cat "$TMP/err"; fi
}
"$BIN" version --json | grep -q '"image_folders":true' || { echo "skipped: no OpenCV in this build"; exit 77; }

printf 'canvas: 64\nmin_scale: 0.7\nmax_scale: 1.2\ntrain_scenes: 48\ntest_scenes: 24\nseed: 5\n' > "$TMP/scenes.yaml"
if "$BIN" data make-scenes --config "$TMP/scenes.yaml" --out "$TMP/scenes" --quiet >"$TMP/ms.out" 2>&1; then
  ok "make-scenes"
else bad "make-scenes"; cat "$TMP/ms.out"; fi

cat > "$TMP/det.yaml" <<YAML
model: {name: yolov3_tiny, num_classes: 10, in_channels: 1, width: 2}
data: {dataset: coco, dir: $TMP/scenes, image_size: 64}
detect: {min_scale: 0.9, max_scale: 1.1}
optimizer: {name: sgd, lr: 0.01, momentum: 0.9}
epochs: 1
batch_size: 16
threads: 1
YAML
if "$BIN" train --config "$TMP/det.yaml" --out "$TMP/det" >"$TMP/train.out" 2>&1 && [ -f "$TMP/det/checkpoint.pt" ] &&
   grep -q '"task": "detect"' "$TMP/det/checkpoint.json" && grep -q '"anchors"' "$TMP/det/checkpoint.json" &&
   grep -q '"test_ap50"' "$TMP/det/log.jsonl" && grep -q "test AP .*AP50" "$TMP/train.out"; then
  ok "train a detector (task, anchors, AP per epoch)"
else bad "train a detector"; cat "$TMP/train.out"; fi
DET="$TMP/det/checkpoint.pt"

json=$("$BIN" eval --checkpoint "$DET" --data "coco:$TMP/scenes" --json --detections-out "$TMP/dets.json" 2>"$TMP/eval.err")
if echo "$json" | grep -q '"task":"detect"' && echo "$json" | grep -q '"images":24' &&
   echo "$json" | grep -qE '"ap50":[0-9.e-]+' && echo "$json" | grep -q '"AP_small"'; then
  ok "eval --json on a detector (COCO metrics, 24 images)"
else bad "eval --json on a detector: $json"; cat "$TMP/eval.err"; fi
# The results file is COCO's format: every entry has the four keys, boxes inside the 64x64 images.
if python3 - "$TMP/dets.json" "$TMP/scenes/annotations/instances_test.json" <<'PY'
import json, sys
dets = json.load(open(sys.argv[1])); ann = json.load(open(sys.argv[2]))
ids = {im["id"] for im in ann["images"]}; cats = {c["id"] for c in ann["categories"]}
assert isinstance(dets, list) and dets, "no detections"
for d in dets:
    assert set(d) == {"image_id", "category_id", "bbox", "score"}, d
    x, y, w, h = d["bbox"]
    assert d["image_id"] in ids and d["category_id"] in cats, d
    assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 64.001 and y + h <= 64.001, d
    assert 0 <= d["score"] <= 1, d
PY
then ok "--detections-out writes COCO results"; else bad "--detections-out writes COCO results"; fi
json=$("$BIN" eval --checkpoint "$DET" --data "coco:$TMP/scenes" --class-agnostic --json 2>/dev/null)
if echo "$json" | grep -q '"class_agnostic":true' && echo "$json" | grep -qE '"ap50":[0-9.e-]+'; then
  ok "eval --class-agnostic on a detector"
else bad "eval --class-agnostic: $json"; fi
# Without --data the detector reads the dataset its training config names.
json=$("$BIN" eval --checkpoint "$DET" --json --limit 8 2>/dev/null)
if echo "$json" | grep -q '"images":8'; then ok "eval on the detector's own dataset"; else bad "eval default data: $json"; fi

# A split detector by hand: features at stage2 -> a 2-bit quantizer -> a pipeline through real frames.
json=$("$BIN" eval --checkpoint "$DET" --split stage2 --dump-features "$TMP/f.pt" --json --limit 16 2>/dev/null)
if echo "$json" | grep -q '"split":"stage2"' && echo "$json" | grep -q '"feature_shape":\[4,16,16\]' && [ -f "$TMP/f.pt" ]; then
  ok "eval a detector at a split, features dumped"
else bad "eval a detector at a split: $json"; fi
"$BIN" codec calibrate --input "$TMP/f.pt" --bits 2 --out "$TMP/q.json" >/dev/null 2>&1
printf 'name: det_ptq\nmodel: %s\nsplit: stage2\nquantizer: q.json\ncoder: cabac\n' "$DET" > "$TMP/det_ptq.yaml"
json=$("$BIN" eval --pipeline "$TMP/det_ptq.yaml" --data "coco:$TMP/scenes" --json 2>"$TMP/pe.err")
if echo "$json" | grep -q '"task":"detect"' && echo "$json" | grep -qE '"ap50":[0-9.e-]+' &&
   echo "$json" | grep -qE '"float_ap50":[0-9.e-]+' && echo "$json" | grep -qE '"bytes_per_image":[0-9.]+' &&
   echo "$json" | grep -q '"images":24'; then
  ok "eval --pipeline on a detector's pipeline (AP through frames, bytes, float AP)"
else bad "eval --pipeline on a detector: $json"; cat "$TMP/pe.err"; fi
eval_ap50=$(echo "$json" | sed -n 's/.*"ap50":\([0-9.e-]*\).*/\1/p')

# The detector's pipeline served: the node sends frames (a stream and unary calls) or PNGs and
# scores the boxes it gets back with COCO's metric: the same AP as eval --pipeline's, within
# batch-1 vs batched rounding.
if "$BIN" version --json | grep -q '"runtime":true'; then
  . "$SRC/tests/runtime/serve_lib.sh"
  "$BIN" serve --config "$TMP/det_ptq.yaml" --listen 127.0.0.1:0 --port-file "$TMP/port" --threads 1 >"$TMP/serve.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill $SERVER_PID 2>/dev/null; rm -rf "$TMP"' EXIT
  if wait_port "$TMP/port" $SERVER_PID server; then
    ADDR=127.0.0.1:$(cat "$TMP/port")
    for t in stream unary; do
      node=$("$BIN" node --server "$ADDR" --pipeline "$TMP/det_ptq.yaml" --data "coco:$TMP/scenes" --transport $t \
             --rate 1MB/s --json --quiet 2>"$TMP/node.err")
      ap50=$(echo "$node" | sed -n 's/.*"ap50":\([0-9.e-]*\).*/\1/p')
      if echo "$node" | grep -q '"task":"detect"' && echo "$node" | grep -q '"images":24' &&
         echo "$node" | grep -qE '"reply_bytes_per_image":[1-9]' &&
         awk -v a="$ap50" -v b="$eval_ap50" 'BEGIN { d = a - b; exit !(a != "" && d < 0.005 && d > -0.005) }'; then
        ok "node $t: AP50 $ap50 from the server's boxes (eval --pipeline: $eval_ap50)"
      else bad "node $t on a detector: $node (eval AP50 $eval_ap50)"; cat "$TMP/node.err"; fi
    done
    node=$("$BIN" node --server "$ADDR" --pipeline "$TMP/det_ptq.yaml" --data "coco:$TMP/scenes" --mode server-only \
           --score-threshold 0.2 --json --quiet 2>"$TMP/node.err")
    if echo "$node" | grep -q '"mode":"server-only"' && echo "$node" | grep -qE '"ap50":[0-9.e-]+' &&
       echo "$node" | grep -q '"score_threshold":0.2'; then
      ok "node server-only: PNGs of the letterboxed scenes, boxes back"
    else bad "node server-only on a detector: $node"; cat "$TMP/node.err"; fi
    if "$BIN" load --server "$ADDR" --pipeline "$TMP/det_ptq.yaml" --data "coco:$TMP/scenes" --concurrency 2 \
         --duration 0.5 --json 2>/dev/null | grep -q '"errors":{},"ok":[1-9]'; then
      ok "load: 2 clients sending a detector's frames, answered without errors"
    else bad "load on a detector's pipeline"; fi
    check_error "a classifier's node at a detector's server" "is served as a detector (task detect), but this node" \
      "$BIN" node --server "$ADDR" --pipeline "$SRC/models/fmnist_best.yaml" --served-model det_ptq --limit 1 --quiet
  else cat "$TMP/serve.log"; bad "serve a detector's pipeline"; fi
  kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null
fi

# The study on the detector: PTQ rows ranked by AP50, the input-image baselines, the report.
cat > "$TMP/dstudy.yaml" <<YAML
model: $DET
data: {dataset: coco, dir: $TMP/scenes}
coders: [cabac, zstd]
ptq: {splits: [stage1, stage2], bits: [2], granularity: [tensor], calibration_images: 16}
runs:
  - {name: qc, method: qcnet, split: stage2, bits: 2, granularity: tensor, warmup_epochs: 1, epochs: 1, kd_weight: 1.0,
     calibration_images: 16, batch_size: 16, compensator_hidden: 8}
  - {name: ae, method: ae, split: stage3, bits: 2, latent_channels: 2, warmup_epochs: 1, epochs: 1, kd_weight: 1.0,
     batch_size: 16, finetune_tail: true}
YAML
if "$BIN" experiment --config "$TMP/dstudy.yaml" --out "$TMP/dstudy" --threads 1 >"$TMP/dstudy.out" 2>&1 &&
   head -1 "$TMP/dstudy/results.csv" | grep -q '^run,method,split,bits,granularity,coder,ap50,float_ap50,.*,ap$' &&
   [ "$(grep -c '^ptq_' "$TMP/dstudy/results.csv")" -eq 4 ] && grep -q '^input_png,' "$TMP/dstudy/results.csv" &&
   [ "$(grep -c '^qc,qcnet,stage2,2,' "$TMP/dstudy/results.csv")" -eq 2 ] &&
   [ "$(grep -c '^ae,ae,stage3,2,' "$TMP/dstudy/results.csv")" -eq 2 ] &&
   grep -q '^input_jpeg,input_jpeg,,0,,jpeg-q[0-9]*,' "$TMP/dstudy/results.csv" &&
   grep -q '"stage":"finetune"' "$TMP/dstudy/runs/qc/log.jsonl" &&
   grep -q 'AP50 %' "$TMP/dstudy/report.md"; then
  ok "a detector's study: PTQ, QCNet and autoencoder (YOLO loss) rows by AP50, PNG/WebP/JPEG baselines, report"
else bad "a detector's study"; cat "$TMP/dstudy.out"; head -3 "$TMP/dstudy/results.csv"; fi
rm -f "$TMP/dstudy/report.md"
if "$BIN" experiment --config "$TMP/dstudy.yaml" --out "$TMP/dstudy" --report-only >/dev/null 2>&1 &&
   grep -q '| overall | ' "$TMP/dstudy/report.md"; then
  ok "experiment --report-only writes the report of the rows so far"
else bad "experiment --report-only"; fi
check_error "--report-only before any row" "has no rows: run the study first" "$BIN" experiment \
  --config "$TMP/dstudy.yaml" --out "$TMP/empty_study" --report-only
printf 'model: %s\ndata: {dataset: coco, dir: %s}\nruns: [{name: a, method: tcl, split: stage1, bits: 2}]\n' "$DET" \
  "$TMP/scenes" > "$TMP/dstudy_tail.yaml"
check_error "a method not built for detectors" "method tcl on a detector" "$BIN" experiment \
  --config "$TMP/dstudy_tail.yaml" --out "$TMP/dstudy_tail" --threads 1

# profile and plan on the detector (its boxes are part of the node's answer; images from its data).
if "$BIN" profile --model "$DET" --batches 1 --bits 2 --coders none --repeats 1 --maps 2 --idle-gaps none \
     --threads 1 --call-ms 1 --out "$TMP/det_profile.yaml" >"$TMP/prof.out" 2>&1 &&
   grep -q '^model: yolov3_tiny' "$TMP/det_profile.yaml" && grep -q 'stage5' "$TMP/det_profile.yaml" &&
   grep -q '^task: detect' "$TMP/det_profile.yaml" && grep -q '^answer_ms: ' "$TMP/det_profile.yaml" &&
   "$BIN" plan --node "$TMP/det_profile.yaml" --server "$TMP/det_profile.yaml" --results "$TMP/dstudy/results.json" \
     --min-accuracy 0 >"$TMP/plan.out" 2>&1 && grep -q '| best | AP50 % |' "$TMP/plan.out" &&
   grep -qE '^\| 1 \| 10 \| .* \| [0-9]+\.[0-9]+ \| [0-9.]+ \| [0-9.]+ \|' "$TMP/plan.out"; then
  ok "profile and plan a detector (on its study's AP50)"
else bad "profile and plan a detector"; tail -3 "$TMP/prof.out"; cat "$TMP/plan.out"; fi
check_error "results of two tasks in one plan" "is measured in ap50, $SRC/bench/results/fmnist_study/results.jsonl in top1" \
  "$BIN" plan --node "$TMP/det_profile.yaml" --server "$TMP/det_profile.yaml" \
  --results "$SRC/bench/results/fmnist_study/results.jsonl" --results "$TMP/dstudy/results.json"
check_error "quantize-head on a detector" "is a detector (yolov3_tiny): its head (convolutions with LeakyReLU) has no low-bit form" \
  "$BIN" quantize-head --model "$DET" --split stage1 --out "$TMP/det.sihead"
check_error "a classifier's study planned for a detector" "measured in top1, but yolov3_tiny is scored by ap50" \
  "$BIN" plan --node "$TMP/det_profile.yaml" --server "$TMP/det_profile.yaml" \
  --results "$SRC/bench/results/fmnist_study/results.jsonl"

# Errors.
cat > "$TMP/study.yaml" <<YAML
model: $DET
data: {dataset: fmnist, limit_train: 64, limit_test: 64}
coders: [none]
image_baselines: false
ptq: {splits: [stage1], bits: [2], granularity: [tensor], calibration_images: 16}
YAML
check_error "a detector's study on classification images" "'fmnist' is no detection dataset" \
  "$BIN" experiment --config "$TMP/study.yaml" --out "$TMP/study" --threads 1
check_error "detections-out on a classifier" "--detections-out is for detectors" "$BIN" eval \
  --checkpoint "$SRC/models/resnet_fmnist.pt" --detections-out "$TMP/x.json" --limit 10
check_error "a detector on classification images" "is no detection dataset: give coco:DIR" "$BIN" eval \
  --checkpoint "$DET" --data fmnist
sed 's/^detect:.*/augment: {crop_padding: 2}/' "$TMP/det.yaml" > "$TMP/det_aug.yaml"
check_error "augment: on a detector" "\`augment:\` configures a classifier's training" "$BIN" train \
  --config "$TMP/det_aug.yaml" --out "$TMP/x"
printf 'model: {name: resnet_fmnist, num_classes: 10, in_channels: 1, width: 4}\ndetect: {min_scale: 0.9}\n' > "$TMP/cls_det.yaml"
check_error "detect: on a classifier" "\`detect:\` configures a detector's training" "$BIN" train \
  --config "$TMP/cls_det.yaml" --out "$TMP/x"
sed 's/num_classes: 10/num_classes: 80/' "$TMP/det.yaml" > "$TMP/det80.yaml"
check_error "detector classes differ from the categories" "model.num_classes = 80 but" "$BIN" train \
  --config "$TMP/det80.yaml" --out "$TMP/x"
sed 's/image_size: 64/image_size: 100/' "$TMP/det.yaml" > "$TMP/det100.yaml"
check_error "input side not a multiple of 32" "not a multiple of 32" "$BIN" train --config "$TMP/det100.yaml" --out "$TMP/x"

echo "detection: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
