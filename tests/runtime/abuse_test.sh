#!/usr/bin/env bash
# The server under abuse (issue 16): `serve` with small caps on loopback, then
# abuse_client (tests/runtime/abuse_client.cpp) for a fixed time: made-up model names, more
# streams than max_streams, slow readers, clients leaving mid-stream, oversized and malformed
# requests, a flood of connections beyond max_connections, all at once. It must keep answering,
# grow by at most 10 % in resident memory, stay within its thread caps, refuse what is beyond
# them by name, and label metrics only by the model it serves.
# Usage: abuse_test.sh path/to/splitinfer path/to/abuse_client SOURCE_DIR
set -u
BIN=$1
CLIENT=$2
SRC=$3
. "$SRC/tests/runtime/serve_lib.sh"
TMP=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill -TERM $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
MPORT=$(free_port)
cat > "$TMP/server.yaml" <<YAML
pipelines: [$SRC/models/fmnist_best.yaml]
listen: 127.0.0.1:0
threads: 1
max_streams: 8
max_connections: 16
max_threads: 32
max_message_bytes: 4194304
metrics: 127.0.0.1:$MPORT
YAML
"$BIN" serve --config "$TMP/server.yaml" --port-file "$TMP/port" > "$TMP/server.log" 2>&1 &
SERVER=$!
wait_port "$TMP/port" $SERVER server || { cat "$TMP/server.log"; exit 1; }
# 16 connections of abuse plus a flood of 24: 40 against max_connections 16.
"$CLIENT" "127.0.0.1:$(cat "$TMP/port")" "$SERVER" "127.0.0.1:$MPORT" 8 8 32 24
rc=$?
if ! kill -0 $SERVER 2>/dev/null; then
  echo "FAIL the server died:"; cat "$TMP/server.log"; exit 1
fi
exit $rc
