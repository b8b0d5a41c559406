#!/usr/bin/env bash
# The server under load (issue 5): closed-loop clients on loopback sending real frames of the
# shipped pipeline. Three parts, each printed as a table and saved as JSON under $OUT:
#   1. levels: 1, 2, 4, ..., 64 concurrent nodes, $LEVEL_S seconds each: throughput, p50/p95/p99
#   2. soak: 32 nodes for $SOAK_S seconds (default 600): zero failures, server memory growth
#   3. overload: a server limited to $CAPACITY images in flight under twice as many nodes:
#      the excess is refused with RESOURCE_EXHAUSTED, quickly, and memory stays bounded
# Usage: bench/load.sh [BUILD_DIR]   (env: LEVEL_S, SOAK_S, CAPACITY, OUT)
set -euo pipefail
BUILD_DIR=${1:-build}
BIN="$BUILD_DIR/tools/cli/splitinfer"
PIPELINE=models/fmnist_best.yaml
LEVEL_S=${LEVEL_S:-20}
SOAK_S=${SOAK_S:-600}
CAPACITY=${CAPACITY:-16}
OUT=${OUT:-runs/load}
mkdir -p "$OUT"

SERVER=""
stop_server() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  SERVER=""
}
trap stop_server EXIT

start_server() {  # extra serve arguments...
  rm -f "$OUT/port"
  "$BIN" serve --config "$OUT/server.yaml" --listen 127.0.0.1:0 --port-file "$OUT/port" "$@" > "$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 300); do
    [ -s "$OUT/port" ] && return 0
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  echo "load: the server did not start:" >&2
  cat "$OUT/server.log" >&2
  exit 1
}

machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== load test on $machine, $(date -u +%Y-%m-%dT%H:%MZ) =="

# The server config: the shipped pipeline, default batching, a generous in-flight limit.
cat > "$OUT/server.yaml" <<YAML
pipelines: [$(pwd)/$PIPELINE]
max_batch: 32
max_wait_ms: 2
max_in_flight: 1024
YAML
start_server
echo "-- 1. levels, $LEVEL_S s each"
echo "\$ $BIN load --server 127.0.0.1:PORT --pipeline $PIPELINE --concurrency 1,2,4,8,16,32,64 --duration $LEVEL_S --server-pid PID"
"$BIN" load --server "127.0.0.1:$(cat "$OUT/port")" --pipeline "$PIPELINE" --concurrency 1,2,4,8,16,32,64 \
  --duration "$LEVEL_S" --server-pid "$SERVER" --json > "$OUT/levels.json"
echo "-- 2. soak: 32 nodes for $SOAK_S s"
echo "\$ $BIN load --server 127.0.0.1:PORT --pipeline $PIPELINE --concurrency 32 --duration $SOAK_S --server-pid PID"
"$BIN" load --server "127.0.0.1:$(cat "$OUT/port")" --pipeline "$PIPELINE" --concurrency 32 --duration "$SOAK_S" \
  --server-pid "$SERVER" --json > "$OUT/soak.json"
stop_server

echo "-- 3. overload: max_in_flight $CAPACITY, $((2 * CAPACITY)) nodes"
sed -i "s/^max_in_flight: .*/max_in_flight: $CAPACITY/" "$OUT/server.yaml"
start_server
"$BIN" load --server "127.0.0.1:$(cat "$OUT/port")" --pipeline "$PIPELINE" --concurrency "$CAPACITY,$((2 * CAPACITY))" \
  --duration "$LEVEL_S" --server-pid "$SERVER" --json > "$OUT/overload.json"
stop_server

/usr/bin/env python3 - "$OUT" "$machine" <<'PY'
import json, sys
out, machine = sys.argv[1], sys.argv[2]
def table(title, rows):
    print(f"\n{title}\n")
    print("| nodes | seconds | ok | req/s | p50 ms | p95 ms | p99 ms | errors | refused p50 ms | server RSS MiB before -> after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    for r in rows:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"
        print(f"| {r['concurrency']} | {r['seconds']:.0f} | {r['ok']} | {r['throughput']:.1f} | {r['p50_ms']:.2f} | "
              f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {errors} | {r['refused_p50_ms']:.2f} | "
              f"{r['rss_before_mb']:.1f} -> {r['rss_after_mb']:.1f} |")
table("Levels (machine: " + machine + ")", json.load(open(f"{out}/levels.json")))
soak = json.load(open(f"{out}/soak.json"))
table("Soak", soak)
s = soak[0]
growth = 100.0 * (s["rss_after_mb"] - s["rss_before_mb"]) / max(s["rss_before_mb"], 1e-9)
print(f"\nsoak: {s['ok']} requests, {sum(s['errors'].values())} failed; server memory {s['rss_before_mb']:.1f} -> "
      f"{s['rss_after_mb']:.1f} MiB ({growth:+.2f} %)")
table("Overload", json.load(open(f"{out}/overload.json")))
PY
