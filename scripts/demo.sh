#!/usr/bin/env bash
# `make demo`: the shipped pipeline (models/fmnist_best.yaml) end to end. First its accuracy and
# frame size on all 10,000 Fashion-MNIST test images; then a real server on loopback and the node
# sending real frames over an emulated 1 MB/s link with 10 ms RTT, against sending the PNG image
# (server-only) and running everything on the node (node-only). Writes runs/demo/e2e.{md,json}.
# Then the same for detection: the shipped detection pipeline (models/scenes_best.yaml) on the
# 2,000 test scenes, boxes back over the wire and COCO AP at the node (runs/demo/detect/).
#   DEMO_IMAGES=10000 make demo   the end-to-end runs over the whole test set (default 2000)
set -euo pipefail
BUILD_DIR=${1:-build}
BIN="$BUILD_DIR/tools/cli/splitinfer"
PIPELINE=models/fmnist_best.yaml
DETECT_PIPELINE=models/scenes_best.yaml
IMAGES=${DEMO_IMAGES:-2000}
RATE=${DEMO_RATE:-1MB/s}
RTT=${DEMO_RTT:-10ms}
OUT=runs/demo

for f in models/resnet_fmnist.pt "$PIPELINE" models/yolo_scenes.pt "$DETECT_PIPELINE"; do
  if [ ! -f "$f" ]; then
    echo "demo: $f is missing; see docs/reproduce.md and docs/results.md" >&2
    exit 1
  fi
done
mkdir -p "$OUT"
# Waits for the server ($SERVER) to write its port file ($1); its log ($2) on failure.
wait_for_port() {
  for _ in $(seq 1 600); do
    [ -s "$1" ] && return 0
    if ! kill -0 $SERVER 2>/dev/null; then cat "$2" >&2; exit 1; fi
    sleep 0.1
  done
  echo "demo: the server did not start; see $2" >&2
  exit 1
}
echo "== splitinfer demo =="
echo "-- the model zoo and its split points"
"$BIN" models
echo
echo "-- the shipped pipeline (docs/results.md): node head + encoder, quantized latent, cabac frame;"
echo "   server decoder + tail. Every test image crosses as a real frame; bytes include header and CRC."
echo "\$ $BIN eval --pipeline $PIPELINE --json"
"$BIN" eval --pipeline "$PIPELINE" --json | tee "$OUT/eval.json"
echo
# end_to_end PIPELINE DIR WHAT [node args]: serves PIPELINE on loopback, runs the node in the three
# modes over the emulated link (DIR/node_<mode>.json) and prints the table (DIR/e2e.{md,json}).
MACHINE="$(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
end_to_end() {
  local pipeline=$1 dir=$2 what=$3
  shift 3
  mkdir -p "$dir"
  rm -f "$dir/port"
  echo "\$ $BIN serve --config $pipeline --listen 127.0.0.1:0 --port-file $dir/port &"
  "$BIN" serve --config "$pipeline" --listen 127.0.0.1:0 --port-file "$dir/port" > "$dir/server.log" 2>&1 &
  SERVER=$!
  trap 'kill -TERM $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
  wait_for_port "$dir/port" "$dir/server.log"
  local port
  port=$(cat "$dir/port")
  head -n 1 "$dir/server.log"
  for mode in split server-only node-only; do
    echo "\$ $BIN node --server 127.0.0.1:$port --pipeline $pipeline --mode $mode $* --rate $RATE --rtt $RTT --threads 1 --json"
    "$BIN" node --server "127.0.0.1:$port" --pipeline "$pipeline" --mode "$mode" "$@" --rate "$RATE" \
      --rtt "$RTT" --threads 1 --json > "$dir/node_$mode.json"
  done
  kill -TERM $SERVER
  wait $SERVER || true
  trap - EXIT
  tail -n 2 "$dir/server.log"
  echo
  python3 scripts/e2e_table.py "$dir" "$MACHINE" "$what"
  echo
  echo "(also written to $dir/e2e.md and $dir/e2e.json)"
}

echo "-- end to end: server on loopback, node over an emulated $RATE link with $RTT RTT, $IMAGES test images"
end_to_end "$PIPELINE" "$OUT" "Fashion-MNIST test images" --limit "$IMAGES"
echo

# Detection: the same path with boxes as the answer.
echo "-- detection: the shipped detector (models/yolo_scenes.pt, YOLOv3-tiny at width 8) split after stage3,"
echo "   an encoder to a 2-bit latent in a cabac frame; the server decodes it, runs its fine-tuned rest,"
echo "   decodes boxes and answers them (docs/results.md, the detection study)."
echo "   The 2,000 test scenes are made once from configs/data/scenes.yaml into the cache (about a minute)."
mkdir -p "$OUT/detect"
echo "\$ $BIN eval --pipeline $DETECT_PIPELINE --json"
"$BIN" eval --pipeline "$DETECT_PIPELINE" --json | tee "$OUT/detect/eval.json"
echo "-- end to end, all 2,000 test scenes, the node scoring the boxes it gets back (COCO AP)"
end_to_end "$DETECT_PIPELINE" "$OUT/detect" "test scenes (128x128, Fashion-MNIST items)"

