#!/usr/bin/env bash
# Two server replicas behind nginx (grpc_pass), one killed with SIGKILL while nodes are sending:
# no request may be lost. nginx retries a failed call on the other replica (grpc_next_upstream,
# including non_idempotent: inference has no side effects); the node retries UNAVAILABLE with
# backoff. Prints each node's report (every image answered, accuracy, retries).
# Needs Debian's nginx (nginx-light is enough: the grpc module is built in):
#   apt-get install nginx-light
# Usage: bench/nginx_failover.sh [BUILD_DIR]   (env: NODES, IMAGES, KILL_AFTER_S)
set -euo pipefail
BUILD_DIR=${1:-build}
BIN="$BUILD_DIR/tools/cli/splitinfer"
PIPELINE=models/fmnist_best.yaml
NODES=${NODES:-4}
IMAGES=${IMAGES:-400}
KILL_AFTER_S=${KILL_AFTER_S:-3}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
  echo "nginx_failover: nginx not found; install it with: apt-get install nginx-light" >&2
  exit 2
fi
TMP=$(mktemp -d)
PIDS=()
NODE_PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -f "$TMP/nginx.pid" ] && kill -QUIT "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

start_replica() {  # name
  "$BIN" serve --config "$PIPELINE" --listen 127.0.0.1:0 --port-file "$TMP/$1.port" --threads 1 > "$TMP/$1.log" 2>&1 &
  PIDS+=($!)
  eval "${1}_PID=$!"
  for _ in $(seq 1 300); do [ -s "$TMP/$1.port" ] && return 0; sleep 0.1; done
  echo "replica $1 did not start" >&2; cat "$TMP/$1.log" >&2; exit 1
}
start_replica a
start_replica b
PORT_A=$(cat "$TMP/a.port")
PORT_B=$(cat "$TMP/b.port")
# A free port for nginx: bind 0, read it back.
NGINX_PORT=$(/usr/bin/env python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$TMP/logs"
cat > "$TMP/nginx.conf" <<CONF
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log $TMP/logs/access.log;
  client_body_temp_path $TMP/body;
  upstream splitinfer {
    server 127.0.0.1:$PORT_A max_fails=1 fail_timeout=10s;
    server 127.0.0.1:$PORT_B max_fails=1 fail_timeout=10s;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT http2;
    location / {
      grpc_pass grpc://splitinfer;
      # A replica that fails, refuses or dies mid-call: try the other one.
      grpc_next_upstream error timeout http_502 http_503 non_idempotent;
      grpc_next_upstream_tries 2;
      grpc_connect_timeout 1s;
    }
  }
}
CONF
"$NGINX" -p "$TMP" -c "$TMP/nginx.conf"
sleep 0.5
echo "replicas on :$PORT_A (a) and :$PORT_B (b), nginx grpc_pass on :$NGINX_PORT; $NODES nodes x $IMAGES images"
for n in $(seq 1 "$NODES"); do
  "$BIN" node --server "127.0.0.1:$NGINX_PORT" --pipeline "$PIPELINE" --limit "$IMAGES" --rtt 5ms --threads 1 \
    --retries 10 --json > "$TMP/node$n.json" 2> "$TMP/node$n.err" &
  NODE_PIDS+=($!)
done
sleep "$KILL_AFTER_S"
echo "kill -9 replica a (pid $a_PID) at ${KILL_AFTER_S} s"
kill -KILL "$a_PID"
failed=0
for n in $(seq 1 "$NODES"); do
  if wait "${NODE_PIDS[$((n - 1))]}"; then
    /usr/bin/env python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"node $n: {r['images']} images answered, top1 {r['top1']:.2f}%, {r['retries']} retries\")" "$TMP/node$n.json"
  else
    failed=$((failed + 1)); echo "node $n FAILED: $(cat "$TMP/node$n.err")"
  fi
done
echo "nginx access log: $(wc -l < "$TMP/logs/access.log") calls; errors logged: $(grep -c error "$TMP/logs/error.log" || true)"
[ "$failed" -eq 0 ] && echo "no request lost" || { echo "$failed node(s) lost requests"; exit 1; }
