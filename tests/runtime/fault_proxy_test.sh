#!/usr/bin/env bash
# The node survives a flaky link: a real `splitinfer serve` on loopback, and in front of it
# tools/python/fault_proxy.py resetting every open TCP connection (RST, both sides) every
# 0.7 s. The node, talking through the proxy, must classify every image (none lost: each call
# hit by a reset is retried), must have needed at least one retry (else the faults never hit
# a call and the test proved nothing), and must keep its accuracy. The server must come out
# of it alive: it answers a second node run directly, and drains and exits 0 on SIGTERM.
# Usage: fault_proxy_test.sh path/to/splitinfer SOURCE_DIR. Exit 77 (skipped) without python3.
set -u
BIN=$1
SRC=$2
PY=/usr/bin/python3
if [ ! -x $PY ]; then
  echo "skipped: needs $PY (the proxy is Python, standard library only)"
  exit 77
fi
. "$SRC/tests/runtime/serve_lib.sh"
TMP=$(mktemp -d)
SERVER=
PROXY=
# Stop whatever is still running, whichever way the script ends (by pid, never by name).
cleanup() {
  [ -n "$PROXY" ] && kill -TERM "$PROXY" 2>/dev/null && wait "$PROXY" 2>/dev/null
  [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in server.log proxy.log node1.json node1.err node2.json node2.err; do
    [ -s "$TMP/$f" ] && { echo "--- $f (last 40 lines)"; tail -n 40 "$TMP/$f"; }
  done
  exit 1
}
# Prints a field of a node's JSON report (dots for nesting), e.g. `field node1.json images`.
field() {
  $PY -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$TMP/$1" "$2"
}

"$BIN" serve --config "$SRC/models/fmnist_best.yaml" --listen 127.0.0.1:0 --port-file "$TMP/server.port" \
  --threads 1 > "$TMP/server.log" 2>&1 &
SERVER=$!
wait_port "$TMP/server.port" $SERVER server || fail "server not ready"
SPORT=$(cat "$TMP/server.port")

$PY "$SRC/tools/python/fault_proxy.py" --listen 127.0.0.1:0 --port-file "$TMP/proxy.port" \
  --upstream "127.0.0.1:$SPORT" --reset-every 0.7 2> "$TMP/proxy.log" &
PROXY=$!
wait_port "$TMP/proxy.port" $PROXY proxy || fail "proxy not ready"
PPORT=$(cat "$TMP/proxy.port")

# 150 images take a few seconds, so several resets land, some of them mid-call.
"$BIN" node --server "127.0.0.1:$PPORT" --pipeline "$SRC/models/fmnist_best.yaml" --limit 150 --rtt 5ms \
  --threads 1 --json > "$TMP/node1.json" 2> "$TMP/node1.err"
rc=$?
[ $rc -eq 0 ] || fail "node through the proxy exited with $rc: $(tail -n 3 "$TMP/node1.err")"
images=$(field node1.json images) || fail "no JSON report from the node"
retries=$(field node1.json retries)
top1=$(field node1.json top1)
resets=$(grep -c 'reset (--reset-every)' "$TMP/proxy.log")
echo "through the proxy: images $images, retries $retries, top1 $top1; the proxy reset $resets connection(s)"
[ "$images" -eq 150 ] || fail "images $images, expected 150 (images lost)"
[ "$retries" -gt 0 ] || fail "no retries: no reset hit a call, the test did not exercise recovery"
$PY -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 85 else 1)' "$top1" || fail "top1 $top1 < 85"

# The proxy's job is done; stop it so nothing else in flight can reset the next run.
kill -TERM $PROXY
wait $PROXY
PROXY=

# The server survived the resets: still running, and it answers a node directly.
kill -0 $SERVER 2>/dev/null || fail "the server died during the resets"
"$BIN" node --server "127.0.0.1:$SPORT" --pipeline "$SRC/models/fmnist_best.yaml" --limit 20 \
  --threads 1 --json > "$TMP/node2.json" 2> "$TMP/node2.err"
rc=$?
[ $rc -eq 0 ] || fail "second node run (direct) exited with $rc: $(tail -n 3 "$TMP/node2.err")"
images=$(field node2.json images) || fail "no JSON report from the second node run"
[ "$images" -eq 20 ] || fail "second node run: images $images, expected 20"
echo "directly afterwards: images $images, retries $(field node2.json retries), top1 $(field node2.json top1)"

# SIGTERM: the server must drain and exit 0 (no call left wedged by the resets).
kill -TERM $SERVER
wait $SERVER
src=$?
SERVER=
[ $src -eq 0 ] || fail "server exited with $src on SIGTERM"

# A server that stops answering (SIGSTOP) mid-stream: the node's stream has no per-message
# deadline, so its watchdog must end the exchange after --deadline with DEADLINE_EXCEEDED
# instead of waiting for ever.
"$BIN" serve --config "$SRC/models/fmnist_best.yaml" --listen 127.0.0.1:0 --port-file "$TMP/stall.port" \
  --threads 1 > "$TMP/server.log" 2>&1 &
SERVER=$!
wait_port "$TMP/stall.port" $SERVER server || fail "second server not ready"
( sleep 1.5; kill -STOP $SERVER ) &
STOPPER=$!
start=$(date +%s)
"$BIN" node --server "127.0.0.1:$(cat "$TMP/stall.port")" --pipeline "$SRC/models/fmnist_best.yaml" --deadline 2 \
  --threads 1 --quiet > /dev/null 2> "$TMP/node1.err"
rc=$?
took=$(( $(date +%s) - start ))
wait $STOPPER
kill -CONT $SERVER
[ $rc -ne 0 ] || fail "node against a stopped server exited 0"
grep -q "DEADLINE_EXCEEDED: .*no answer within 2 s" "$TMP/node1.err" || fail "no DEADLINE_EXCEEDED from the node"
[ $took -le 30 ] || fail "the node took $took s to give up (deadline 2 s)"
echo "stopped server: the node gave up after $took s with DEADLINE_EXCEEDED"
echo "PASS"
