#!/usr/bin/env bash
# An independent client (Python grpcio, stubs generated from the .proto) against a real
# `splitinfer serve` on loopback: tools/python/oip_client.py's checks must all pass.
# Usage: python_client_test.sh path/to/splitinfer SOURCE_DIR. Exit 77 (skipped) without grpcio.
set -u
BIN=$1
SRC=$2
PY=/usr/bin/python3
if ! $PY -c "import grpc, google.protobuf" 2>/dev/null || ! command -v grpc_python_plugin >/dev/null; then
  echo "skipped: needs python3-grpcio, python3-protobuf and protobuf-compiler-grpc (scripts/install-deps.sh)"
  exit 77
fi
. "$SRC/tests/runtime/serve_lib.sh"
TMP=$(mktemp -d)
MPORT=$(free_port)
"$BIN" serve --config "$SRC/models/fmnist_best.yaml" --listen 127.0.0.1:0 --port-file "$TMP/port" --threads 1 \
  --metrics "127.0.0.1:$MPORT" > "$TMP/server.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
wait_port "$TMP/port" $SERVER server || { cat "$TMP/server.log"; exit 1; }
$PY "$SRC/tools/python/oip_client.py" --server "127.0.0.1:$(cat "$TMP/port")" --model fmnist_best --images 64
rc=$?
# The Prometheus endpoint counts what the client just did.
if $PY -c "import urllib.request,sys; t=urllib.request.urlopen('http://127.0.0.1:$MPORT/metrics').read().decode(); \
sys.exit(0 if 'splitinfer_requests_total{code=\"NOT_FOUND\"' in t and 'splitinfer_stage_seconds_bucket' in t else 1)"; then
  echo "ok   metrics endpoint"
else
  echo "FAIL metrics endpoint"; rc=1
fi
# The node with a low-bit head (issue 7): same frames, same server. lowbit_node TAG IMPL
# QUANTIZE-ARGS...: quantize fmnist_best's head, run 100 test images through the node with it,
# expect >= 85 % top-1.
lowbit_node() {
  local tag=$1 impl=$2; shift 2
  if "$BIN" quantize-head --checkpoint "$SRC/models/fmnist_best/model.pt" --split stage3 --group 16 "$@" \
       --out "$TMP/$tag.sihead" --json > "$TMP/$tag.qh.json" 2>&1 &&
     "$BIN" node --server "127.0.0.1:$(cat "$TMP/port")" --pipeline "$SRC/models/fmnist_best.yaml" --limit 100 \
       --head lowbit "$TMP/$tag.sihead" --head-impl "$impl" --json --quiet > "$TMP/$tag.node.json" 2>&1 &&
     $PY -c "import json,sys; j=json.load(open('$TMP/$tag.node.json')); sys.exit(0 if j['images']==100 and j['top1']>=85 else 1)"; then
    echo "ok   node --head lowbit ($tag, --head-impl $impl)"
  else
    echo "FAIL node --head lowbit ($tag, --head-impl $impl)"; cat "$TMP/$tag.qh.json" "$TMP/$tag.node.json"; rc=1
  fi
}
# 8 bits keep the answers.
lowbit_node w8a8 lut --wbits 8 --abits 8 --calibration 16
# 4-bit weights and activations (per-region ranges: ~92.5 % on the full test set) on whichever
# of the int8 and LUT kernels `auto` finds faster per conv.
lowbit_node w4a4 auto --wbits 4 --abits 4 --calibration 64
# SIGTERM: the server must drain and exit 0.
kill -TERM $SERVER
wait $SERVER
src=$?
trap 'rm -rf "$TMP"' EXIT
[ $src -eq 0 ] || { echo "server exited with $src"; cat "$TMP/server.log"; exit 1; }
exit $rc
