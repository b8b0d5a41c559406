#!/usr/bin/env bash
# A real shaped link against the in-process link emulation (src/runtime/link.{h,cpp}).
#
# The node's --rate/--rtt emulate a slow link inside the node process (a token bucket and
# sleeps), so that 1-10 MB/s links can be measured without root. This script checks that
# emulation against the kernel: the server and the node run in two network namespaces joined
# by a veth pair, each end shaped with tc's tbf (the same token bucket the emulator imitates)
# and, when the kernel has sch_netem, delayed by RTT/2 with netem. For each rate it runs the
# node once over the shaped veth and once over loopback with --rate/--rtt (against the same
# server process), and prints the median and p95 total latency per image of both.
#
# Without sch_netem (detected, not assumed), the RTT on the veth run is added by the node's
# own --rtt (delay only, no rate): the rate shaping is still the kernel's, the delay is not.
# The table's header says which.
#
# Usage (as root, from the repository root):
#   bench/netns.sh [--rtt MS] [--rates "1 2 5 10"] [--limit N] [--mode split|server-only]
#                  [--build DIR] [--pipeline FILE]
# Defaults: --rtt 10 (milliseconds), --rates "1 2 5 10" (MB/s, 10^6 bytes/s), --limit 200,
# --mode split, --build build, --pipeline models/fmnist_best.yaml.
# Needs root and iproute2 (ip, tc); exits 2, saying what is missing, when it cannot set up
# the namespaces or the shaping. Everything it creates is removed on exit.
set -uo pipefail

RTT_MS=10
RATES="1 2 5 10"
LIMIT=200
MODE=split
BUILD=build
PIPELINE=models/fmnist_best.yaml
while [ $# -gt 0 ]; do
  case $1 in
    --rtt) RTT_MS=${2%ms}; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --pipeline) PIPELINE=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "netns: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
BIN=$BUILD/tools/cli/splitinfer

# Exit 2 with a clear reason: the environment cannot run this benchmark (not a failure of
# the code under test).
unsupported() {
  echo "netns: cannot run: $*" >&2
  exit 2
}
[ -x "$BIN" ] || { echo "netns: $BIN not found; build first (cmake --build $BUILD --target splitinfer)" >&2; exit 1; }
[ -f "$PIPELINE" ] || { echo "netns: pipeline $PIPELINE not found; run from the repository root" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || unsupported "needs root (network namespaces and tc); run it with sudo"
command -v ip >/dev/null || unsupported "'ip' not found; install iproute2 (apt-get install iproute2)"
command -v tc >/dev/null || unsupported "'tc' not found; install iproute2 (apt-get install iproute2)"

# Unique names (the pid) so two runs, or a leftover from a killed run, do not collide.
# Interface names must stay within 15 characters.
NS_SRV=si_srv_$$
NS_NODE=si_node_$$
VETH_SRV=sis$$
VETH_NODE=sin$$
SRV_IP=10.213.0.1
NODE_IP=10.213.0.2
TMP=$(mktemp -d)
SERVER=

cleanup() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; fi
  # Deleting a namespace destroys the veth end inside it, and with it its peer.
  ip netns del "$NS_NODE" 2>/dev/null
  ip netns del "$NS_SRV" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# Runs a setup command; on failure prints the command and its error and exits 2.
setup() {
  local err
  if ! err=$("$@" 2>&1); then
    unsupported "'$*' failed: ${err:-no message}"
  fi
}

# 1. Two namespaces, a veth pair between them, addresses, links up (lo too: the emulated run
#    talks to the server over the server namespace's loopback).
setup ip netns add "$NS_SRV"
setup ip netns add "$NS_NODE"
setup ip link add "$VETH_SRV" type veth peer name "$VETH_NODE"
setup ip link set "$VETH_SRV" netns "$NS_SRV"
setup ip link set "$VETH_NODE" netns "$NS_NODE"
setup ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VETH_SRV"
setup ip -n "$NS_NODE" addr add "$NODE_IP/24" dev "$VETH_NODE"
for ns in "$NS_SRV" "$NS_NODE"; do setup ip -n "$ns" link set lo up; done
setup ip -n "$NS_SRV" link set "$VETH_SRV" up
setup ip -n "$NS_NODE" link set "$VETH_NODE" up

# 2. What the kernel offers: tbf is required (it is the shaping); netem is optional.
setup tc -n "$NS_NODE" qdisc add dev "$VETH_NODE" root tbf rate 8mbit burst 1600 latency 500ms
setup tc -n "$NS_NODE" qdisc del dev "$VETH_NODE" root
if tc -n "$NS_NODE" qdisc add dev "$VETH_NODE" root handle 1: netem delay 1ms 2>"$TMP/netem.err"; then
  tc -n "$NS_NODE" qdisc del dev "$VETH_NODE" root
  NETEM=1
else
  NETEM=0
  NETEM_WHY=$(tr '\n' ' ' < "$TMP/netem.err")
fi
HALF_MS=$(awk -v r="$RTT_MS" 'BEGIN { printf "%g", r / 2 }')

# Shapes one veth end's egress. tbf's burst is one full Ethernet frame and a little (1600
# bytes): the emulator's bucket is 1500 bytes, but tbf drops any non-GSO packet larger than
# its burst, and a full frame is 1514 bytes with its header. tbf's rate is in bits per second
# (MB/s here are 10^6 bytes, as the node's --rate). With netem, netem is the root and tbf its
# child (the layout of the netem documentation): packets wait RTT/2, then for tokens.
shape() {  # NS DEV RATE_MB_S
  local ns=$1 dev=$2 bits
  bits=$(awk -v r="$3" 'BEGIN { printf "%d", r * 8e6 }')
  tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null
  if [ "$NETEM" -eq 1 ]; then
    setup tc -n "$ns" qdisc add dev "$dev" root handle 1: netem delay "${HALF_MS}ms"
    setup tc -n "$ns" qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "${bits}bit" burst 1600 latency 500ms
  else
    setup tc -n "$ns" qdisc add dev "$dev" root tbf rate "${bits}bit" burst 1600 latency 500ms
  fi
}
# "overlimits" of a device's tbf: how many times a packet had to wait for tokens (evidence
# that the shaping acted at all; messages far below the burst never wait).
overlimits() {  # NS DEV
  tc -n "$1" -s qdisc show dev "$2" | awk '/qdisc tbf/ { t = 1 } t && /overlimits/ && n == "" {
    for (i = 1; i <= NF; i++) if ($i == "overlimits") n = $(i + 1) } END { print n == "" ? 0 : n + 0 }'
}

# 3. One server, in the server namespace, on every address there (veth and loopback).
ip netns exec "$NS_SRV" "$BIN" serve --config "$PIPELINE" --listen 0.0.0.0:0 --port-file "$TMP/port" --threads 1 \
  > "$TMP/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 300); do
  [ -s "$TMP/port" ] && break
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 0.1
done
[ -s "$TMP/port" ] || { echo "netns: the server did not start:" >&2; cat "$TMP/server.log" >&2; exit 1; }
PORT=$(cat "$TMP/port")

# A field of the node's JSON (keys are unique enough to grep: "total" holds median_ms/p95_ms).
json_total() {  # FILE median_ms|p95_ms
  sed -n "s/.*\"total\":{[^}]*\"$2\":\([-0-9.e+]*\).*/\1/p" "$1"
}
json_num() {  # FILE KEY (a top-level number)
  sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" "$1"
}
# Runs the node; NAME.json gets its report. Exits 1 (with its error) if the node fails.
node() {  # NAME NS SERVER_ADDR IMAGES extra node arguments...
  local name=$1 ns=$2 addr=$3 images=$4
  shift 4
  if ! ip netns exec "$ns" "$BIN" node --server "$addr" --pipeline "$PIPELINE" --limit "$images" --mode "$MODE" \
      --threads 1 --json "$@" > "$TMP/$name.json" 2> "$TMP/$name.err"; then
    echo "netns: node run '$name' failed:" >&2
    cat "$TMP/$name.err" >&2
    exit 1
  fi
}

if [ "$NETEM" -eq 1 ]; then
  VETH_RTT=()
  rtt_note="veth: tbf + netem delay ${HALF_MS} ms each way (kernel)"
else
  VETH_RTT=(--rtt "${RTT_MS}ms")
  rtt_note="veth: tbf (kernel) + node --rtt ${RTT_MS}ms (no sch_netem: ${NETEM_WHY:-unknown error})"
fi
echo "== netns vs in-process link emulation: $(uname -r), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "   $PIPELINE, mode $MODE, $LIMIT images per run, rtt $RTT_MS ms, node and server --threads 1"
echo "   $rtt_note"
echo "   emulated: node --rate R --rtt ${RTT_MS}ms over loopback, same server"

# A warm-up run, unshaped and not reported: the first calls pay for connection setup and
# LibTorch's first-run allocations, which would otherwise land in the first rate's numbers.
node warmup "$NS_NODE" "$SRV_IP:$PORT" 20

printf '\n| rate MB/s | bytes/msg | veth median ms | veth p95 ms | emulated median ms | emulated p95 ms | median diff | tbf waits |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
for rate in $RATES; do
  shape "$NS_NODE" "$VETH_NODE" "$rate"  # requests: node -> server
  shape "$NS_SRV" "$VETH_SRV" "$rate"    # replies: server -> node (the emulator shapes both)
  node "veth_$rate" "$NS_NODE" "$SRV_IP:$PORT" "$LIMIT" "${VETH_RTT[@]}"
  waits=$(( $(overlimits "$NS_NODE" "$VETH_NODE") + $(overlimits "$NS_SRV" "$VETH_SRV") ))
  node "emul_$rate" "$NS_SRV" "127.0.0.1:$PORT" "$LIMIT" --rate "${rate}MB/s" --rtt "${RTT_MS}ms"
  vm=$(json_total "$TMP/veth_$rate.json" median_ms)
  vp=$(json_total "$TMP/veth_$rate.json" p95_ms)
  em=$(json_total "$TMP/emul_$rate.json" median_ms)
  ep=$(json_total "$TMP/emul_$rate.json" p95_ms)
  bytes=$(json_num "$TMP/veth_$rate.json" message_bytes_per_image)
  awk -v r="$rate" -v b="$bytes" -v vm="$vm" -v vp="$vp" -v em="$em" -v ep="$ep" -v w="$waits" 'BEGIN {
    printf "| %s | %.1f | %.2f | %.2f | %.2f | %.2f | %+.1f %% | %d |\n", r, b, vm, vp, em, ep, 100 * (em - vm) / vm, w }'
done
echo
echo "median diff: (emulated - veth) / veth. tbf waits: packets that waited for tokens on either end."
