#!/usr/bin/env bash
# `make demo`: the shipped pipeline (models/fmnist_best.yaml) end to end. First its accuracy and
# frame size on all 10,000 Fashion-MNIST test images; then a real server on loopback and the node
# sending real frames over an emulated 1 MB/s link with 10 ms RTT, against sending the PNG image
# (server-only) and running everything on the node (node-only). Writes runs/demo/e2e.{md,json}.
#   DEMO_IMAGES=10000 make demo   the end-to-end runs over the whole test set (default 2000)
set -euo pipefail
BUILD_DIR=${1:-build}
BIN="$BUILD_DIR/tools/cli/splitinfer"
PIPELINE=models/fmnist_best.yaml
IMAGES=${DEMO_IMAGES:-2000}
RATE=${DEMO_RATE:-1MB/s}
RTT=${DEMO_RTT:-10ms}
OUT=runs/demo

for f in models/resnet_fmnist.pt "$PIPELINE"; do
  if [ ! -f "$f" ]; then
    echo "demo: $f is missing; see docs/reproduce.md and docs/results.md" >&2
    exit 1
  fi
done
mkdir -p "$OUT"
echo "== splitinfer demo =="
echo "-- the model zoo and its split points"
"$BIN" models
echo
echo "-- the shipped pipeline (docs/results.md): node head + encoder, quantized latent, cabac frame;"
echo "   server decoder + tail. Every test image crosses as a real frame; bytes include header and CRC."
echo "\$ $BIN eval --pipeline $PIPELINE --json"
"$BIN" eval --pipeline "$PIPELINE" --json | tee "$OUT/eval.json"
echo
echo "-- end to end: server on loopback, node over an emulated $RATE link with $RTT RTT, $IMAGES test images"
rm -f "$OUT/port"
echo "\$ $BIN serve --config $PIPELINE --listen 127.0.0.1:0 --port-file $OUT/port &"
"$BIN" serve --config "$PIPELINE" --listen 127.0.0.1:0 --port-file "$OUT/port" > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  [ -s "$OUT/port" ] && break
  if ! kill -0 $SERVER 2>/dev/null; then cat "$OUT/server.log" >&2; exit 1; fi
  sleep 0.1
done
[ -s "$OUT/port" ] || { echo "demo: the server did not start; see $OUT/server.log" >&2; exit 1; }
PORT=$(cat "$OUT/port")
head -n 1 "$OUT/server.log"
for mode in split server-only node-only; do
  echo "\$ $BIN node --server 127.0.0.1:$PORT --pipeline $PIPELINE --mode $mode --limit $IMAGES --rate $RATE --rtt $RTT --threads 1 --json"
  "$BIN" node --server "127.0.0.1:$PORT" --pipeline "$PIPELINE" --mode "$mode" --limit "$IMAGES" --rate "$RATE" \
    --rtt "$RTT" --threads 1 --json > "$OUT/node_$mode.json"
done
kill -TERM $SERVER
wait $SERVER || true
trap - EXIT
tail -n 2 "$OUT/server.log"
echo
python3 scripts/e2e_table.py "$OUT" "$(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "(also written to $OUT/e2e.md and $OUT/e2e.json)"
