#!/usr/bin/env bash
# Bytes on the wire per image, everything included (TCP/IP headers, ACKs, HTTP/2 frames and
# HPACK headers, gRPC's prefixes), for the node's two transports (issue 17, item 4).
#
# The node counts the serialised messages (docs/wire_protocol.md, "Bytes on the link"); this
# script counts what the kernel sends: the server and the node run in two network namespaces
# joined by a veth pair (as bench/netns.sh, unshaped: the byte count does not depend on the
# rate), and the node-side veth's tx/rx counters are read around two node runs per transport,
# of SMALL and LARGE images. (LARGE - SMALL) / (LARGE - SMALL images) is the per-image cost
# without the connection set-up and the metadata handshake, which both runs share.
#
# Usage (as root, from the repository root):
#   bench/wire_bytes.sh [BUILD_DIR] [OUT_DIR]      (defaults: build, bench/results/wire_bytes)
# Environment: SMALL=200 LARGE=2200 PIPELINE=models/fmnist_best.yaml
# Writes OUT_DIR/wire_bytes.json (one object per transport), OUT_DIR/frames_<transport>.txt
# (the packets of a 20-image run with their HTTP/2 frames, bench/http2_frames.py),
# OUT_DIR/lscpu.txt, and prints a table. Needs root and iproute2; exits 2 saying what is missing. Removes what it creates.
set -u
BUILD=${1:-build}
OUT=${2:-bench/results/wire_bytes}
SMALL=${SMALL:-200}
LARGE=${LARGE:-2200}
PIPELINE=${PIPELINE:-models/fmnist_best.yaml}
BIN=$(realpath "$BUILD/tools/cli/splitinfer")
[ "$(id -u)" -eq 0 ] || { echo "wire_bytes: needs root (network namespaces)" >&2; exit 2; }
command -v ip > /dev/null || { echo "wire_bytes: needs iproute2 (ip)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "wire_bytes: no $BIN; build first" >&2; exit 2; }

NS_S=si_wb_srv; NS_N=si_wb_node
TMP=$(mktemp -d)
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill -TERM "$SERVER" 2> /dev/null && wait "$SERVER" 2> /dev/null
  ip netns del $NS_S 2> /dev/null
  ip netns del $NS_N 2> /dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add $NS_S && ip netns add $NS_N || { echo "wire_bytes: cannot create network namespaces" >&2; exit 2; }
ip link add si_wb_n type veth peer name si_wb_s || { echo "wire_bytes: cannot create a veth pair" >&2; exit 2; }
ip link set si_wb_n netns $NS_N
ip link set si_wb_s netns $NS_S
ip -n $NS_N addr add 10.77.0.1/24 dev si_wb_n
ip -n $NS_S addr add 10.77.0.2/24 dev si_wb_s
for ns in $NS_N $NS_S; do ip -n $ns link set lo up; done
ip -n $NS_N link set si_wb_n up
ip -n $NS_S link set si_wb_s up

ip netns exec $NS_S "$BIN" serve --config "$PIPELINE" --listen 10.77.0.2:0 --port-file "$TMP/port" --threads 1 \
  > "$TMP/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 200); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || { echo "wire_bytes: the server did not start:" >&2; cat "$TMP/server.log" >&2; exit 1; }
ADDR=10.77.0.2:$(cat "$TMP/port")

counter() { ip netns exec $NS_N cat "/sys/class/net/si_wb_n/statistics/$1"; }
# One node run; prints "images tx_bytes rx_bytes tx_packets rx_packets message_bytes reply_bytes".
run() {
  local transport=$1 n=$2
  local tb rb tp rp
  tb=$(counter tx_bytes); rb=$(counter rx_bytes); tp=$(counter tx_packets); rp=$(counter rx_packets)
  ip netns exec $NS_N "$BIN" node --server "$ADDR" --pipeline "$PIPELINE" --transport "$transport" --limit "$n" \
    --threads 1 --quiet --json > "$TMP/node.json" || { echo "wire_bytes: node failed" >&2; exit 1; }
  sleep 0.5  # the last ACKs
  echo "$n $(( $(counter tx_bytes) - tb )) $(( $(counter rx_bytes) - rb )) $(( $(counter tx_packets) - tp ))" \
       "$(( $(counter rx_packets) - rp ))" \
       "$(/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["message_bytes_per_image"], r["reply_bytes_per_image"], r["top1"])' "$TMP/node.json")"
}

mkdir -p "$OUT"
lscpu > "$OUT/lscpu.txt"
: > "$TMP/rows"
for transport in stream unary; do
  read -r n1 tx1 rx1 tp1 rp1 _ _ _ <<< "$(run $transport "$SMALL")"
  read -r n2 tx2 rx2 tp2 rp2 msg reply top1 <<< "$(run $transport "$LARGE")"
  echo "$transport $n1 $tx1 $rx1 $tp1 $rp1 $n2 $tx2 $rx2 $tp2 $rp2 $msg $reply $top1" >> "$TMP/rows"
done
# Where the bytes go: the packets of a 20-image run per transport, with their HTTP/2 frames.
for transport in stream unary; do
  ip netns exec $NS_N /usr/bin/python3 bench/http2_frames.py si_wb_n 10.77.0.1 8 > "$OUT/frames_$transport.txt" &
  CAP=$!
  sleep 0.5
  ip netns exec $NS_N "$BIN" node --server "$ADDR" --pipeline "$PIPELINE" --transport "$transport" --limit 20 \
    --threads 1 --quiet --json > /dev/null || { echo "wire_bytes: node failed" >&2; exit 1; }
  wait $CAP
done
/usr/bin/python3 - "$TMP/rows" "$OUT/wire_bytes.json" "$PIPELINE" "$SMALL" "$LARGE" << 'EOF'
import json, sys
rows, out = [], []
for line in open(sys.argv[1]):
    t, n1, tx1, rx1, tp1, rp1, n2, tx2, rx2, tp2, rp2, msg, reply, top1 = line.split()
    n1, n2 = int(n1), int(n2)
    d = n2 - n1
    out.append({
        "transport": t, "pipeline": sys.argv[3], "images": [n1, n2], "top1_large_run": float(top1),
        "node_counted_request_bytes": float(msg), "node_counted_reply_bytes": float(reply),
        "wire_tx_bytes_per_image": (int(tx2) - int(tx1)) / d, "wire_rx_bytes_per_image": (int(rx2) - int(rx1)) / d,
        "wire_tx_packets_per_image": (int(tp2) - int(tp1)) / d, "wire_rx_packets_per_image": (int(rp2) - int(rp1)) / d,
        "setup_tx_bytes": int(tx1) - (int(tx2) - int(tx1)) / d * n1,
        "setup_rx_bytes": int(rx1) - (int(rx2) - int(rx1)) / d * n1,
    })
json.dump(out, open(sys.argv[2], "w"), indent=1)
print("| transport | node-counted request + reply B | wire node->server B | wire server->node B | wire total B | packets each way |")
print("|---|---:|---:|---:|---:|---:|")
for r in out:
    print(f"| {r['transport']} | {r['node_counted_request_bytes'] + r['node_counted_reply_bytes']:.1f} | "
          f"{r['wire_tx_bytes_per_image']:.1f} | {r['wire_rx_bytes_per_image']:.1f} | "
          f"{r['wire_tx_bytes_per_image'] + r['wire_rx_bytes_per_image']:.1f} | "
          f"{r['wire_tx_packets_per_image']:.2f} / {r['wire_rx_packets_per_image']:.2f} |")
EOF
