#!/usr/bin/env bash
# The seeds' headline as a measured run (issue 19, item 6): ResNet-50 split between a node slowed
# to a Raspberry-Pi-4-class speed and an unthrottled server, on real photographs, at 1, 2, 5 and
# 10 MB/s (and 0.1, 0.2 MB/s, where the crossing is), against server-only (JPEG as a camera sends
# it, and PNG) and node-only, each beside the planner's prediction.
#
#   sudo bench/throttled_split.sh build/tools/cli/splitinfer OUT [IMAGES]
#
# How the node is slowed: a CPU quota (cgroup v1 cpu.cfs_quota_us, or v2 cpu.max; 10 ms period)
# on its own core, calibrated so that the node's ResNet-50 takes what the Pi-4 profile
# (configs/devices/profiles/resnet50_raspberry-pi-4.yaml, the EPYC VM's profile times the Pi-4
# factors) says; a quota slows every kind of work alike, so the node is profiled inside it and
# the planner uses that profile, not the per-operator factors. The server runs on the other core,
# unthrottled. Needs root (cgroups), 2 cores, python3-skimage (the photos). Random weights: the
# frames' bytes and the times are real, accuracy is not measured.
#
# Writes to OUT: server.yaml and node.yaml (profiles), calibration.txt, plan_{jpeg,png}.txt and
# validate_{jpeg,png}.json (plans and measured runs), table.md (the measured table).
set -euo pipefail
BIN=$(readlink -f "$1")
OUT=$(mkdir -p "$2" && cd "$2" && pwd)
IMAGES=${3:-22}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SERVER_CORE=0
NODE_CORE=1
PERIOD_US=10000
PI4="$SRC/configs/devices/profiles/resnet50_raspberry-pi-4.yaml"
PHOTOS=${PHOTOS:-${TMPDIR:-/tmp}/splitinfer_photos}
cd "$OUT"

[ "$(nproc)" -ge 2 ] || { echo "throttled_split: needs 2 cores (node and server on one each)"; exit 1; }
[ -d "$PHOTOS/test" ] || /usr/bin/python3 "$SRC/tools/skimage_photos.py" --out "$PHOTOS"

# The node's cgroup.
if [ -d /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_period_us ]; then
  CG=/sys/fs/cgroup/cpu/splitinfer_node
  mkdir -p "$CG"
  echo $PERIOD_US > "$CG/cpu.cfs_period_us"
  set_quota() { echo "$1" > "$CG/cpu.cfs_quota_us"; }
elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  CG=/sys/fs/cgroup/splitinfer_node
  echo +cpu > /sys/fs/cgroup/cgroup.subtree_control
  mkdir -p "$CG"
  set_quota() { echo "$1 $PERIOD_US" > "$CG/cpu.max"; }
else
  echo "throttled_split: no cgroup cpu controller here (cgroup v1 cpu or v2 cpu.max); run as root"; exit 1
fi
# in_node CMD...: CMD inside the quota, on the node's core.
in_node() { bash -c 'echo $$ > "$0/cgroup.procs" && exec taskset -c '"$NODE_CORE"' "$@"' "$CG" "$@"; }
on_server() { taskset -c $SERVER_CORE "$@"; }

PROFILE=(profile --model resnet50 --data "imagefolder:$PHOTOS" --threads 1 --batches 1 --repeats 5 --bits 1,2
         --coders zstd,cabac --maps "$IMAGES" --idle-gaps 0,10,20,50,100,200)
model_ms() { sed -n 's/.*resnet50: \([0-9.]*\) ms back to back.*/\1/p' "$1" | tail -1; }

# 1. The server, unthrottled.
[ -s server.yaml ] || on_server "$BIN" "${PROFILE[@]}" --out server.yaml 2> server_profile.log
# 2. The quota: the Pi-4 profile's whole batch-1 model over this core's, then corrected once by
# a measurement inside it (a quota is not exactly proportional: the period's granularity).
target=$(awk '/^blocks:/{b=1;next} /^[a-z]/{b=0} b && /ms: *\{1:/{sub(/.*\{1: */,"");sub(/[,}].*/,"");s+=$0} END{printf "%.1f", s}' "$PI4")
fast=$(model_ms server_profile.log)
quota=$(awk -v f="$fast" -v t="$target" -v p=$PERIOD_US 'BEGIN{printf "%d", p*f/t}')
if [ -s quota.txt ]; then
  # The node profile was made inside this quota: keep it (a new calibration would land elsewhere:
  # the same quota gives a few percent either way from run to run).
  quota=$(cat quota.txt)
else
  : > calibration.txt
  for round in 1 2; do
    set_quota "$quota"
    in_node "$BIN" bench head --checkpoint resnet50 --split layer4 --impl torch --runs 5 --threads 1 --json > head.json
    got=$(sed -n 's/.*"median_ms":\([0-9.]*\).*/\1/p' head.json)
    echo "round $round: quota $quota us per $PERIOD_US us: ResNet-50 to layer4 $got ms (target $target ms, Pi-4 profile; unthrottled $fast ms)" | tee -a calibration.txt
    [ $round = 1 ] && quota=$(awk -v q="$quota" -v g="$got" -v t="$target" 'BEGIN{printf "%d", q*g/t}')
  done
  echo "$quota" > quota.txt
fi
set_quota "$quota"
echo "quota $quota us per $PERIOD_US us" | tee -a calibration.txt
# 3. The node, profiled inside its quota.
[ -s node.yaml ] || in_node "$BIN" "${PROFILE[@]}" --out node.yaml 2> node_profile.log
echo "node profile: $(model_ms node_profile.log) ms back to back inside the quota" | tee -a calibration.txt

# 4. Plans, the pipelines they pick, one server serving them all, and the measured runs.
PLAN=(plan --node node.yaml --server server.yaml --rates 0.1,0.2,1,2,5,10 --rtt 10ms --transport unary)
for fmt in jpeg png; do
  "$BIN" "${PLAN[@]}" --image-format $fmt > plan_$fmt.txt
  "$BIN" "${PLAN[@]}" --image-format $fmt --validate --prepare --checkpoint resnet50 --data "imagefolder:$PHOTOS" \
    --work-dir work_$fmt > /dev/null
done
. "$SRC/tests/runtime/serve_lib.sh"
for fmt in jpeg png; do
  rm -f port
  on_server "$BIN" serve --config work_$fmt/server.yaml --listen 127.0.0.1:0 --port-file port --threads 1 \
    > serve_$fmt.log 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null' EXIT
  wait_port port $pid server || { cat serve_$fmt.log; exit 1; }
  in_node "$BIN" "${PLAN[@]}" --image-format $fmt --validate --validate-server "127.0.0.1:$(cat port)" \
    --checkpoint resnet50 --data "imagefolder:$PHOTOS" --work-dir work_$fmt --images "$IMAGES" --json \
    > validate_$fmt.json 2> validate_$fmt.log
  kill $pid; wait $pid 2>/dev/null || true
done
/usr/bin/python3 - <<'PY' > table.md
import json
rows = {}
for fmt in ("jpeg", "png"):
    for v in json.load(open(f"validate_{fmt}.json"))["validation"]:
        if fmt == "png" and v["kind"] != "server-only":
            continue
        name = v["name"] if v["kind"] != "server-only" else f"server-only ({fmt})"
        rows.setdefault(v["rate_bytes_per_s"], []).append((v["kind"], name, v))
print("| MB/s | kind | configuration | predicted ms | measured median ms | p95 ms | error |")
print("|---:|---|---|---:|---:|---:|---:|")
for rate in sorted(rows):
    for kind, name, v in rows[rate]:
        print(f"| {rate/1e6:g} | {kind} | {name} | {v['predicted_ms']:.1f} | {v['measured_median_ms']:.1f} | "
              f"{v['measured_p95_ms']:.1f} | {v['error_pct']:+.1f} % |")
PY
cat calibration.txt table.md
