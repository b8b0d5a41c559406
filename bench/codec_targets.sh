#!/usr/bin/env bash
# The coder targets of issue 17, item 3 (bench/README.md, "cabac against zstd"): cabac's whole
# encode and decode paths (quantize and frame included, as the codec bench times them) each
# within 2x zstd's at 1 and 2 bits, and at 1 bit at least 40 % smaller than zstd, on
#   1. the codec bench's synthetic maps of the zoo's split shapes (bench/codec_bench.cpp), and
#   2. real stem features of the shipped Fashion-MNIST model (500 calibration + 500 measured maps).
# Both with frame version 2 (cabac layout 2, quiet groups) and version 1 (layout 1) beside it.
#
# Usage: bench/codec_targets.sh [BIN] [CODEC_BENCH] [OUT_DIR]
#   defaults: build/tools/cli/splitinfer build/bench/codec_bench runs/codec_targets
# Environment: REPETITIONS (default 5: Google Benchmark repetitions in random order across the
# benchmarks, so that a slow spell of a shared VM hits all coders alike; the tables show medians).
# Output: OUT_DIR/synthetic.json (Google Benchmark), real_stem.jsonl (one `codec bench --json`
# line per coder and bit width), table.md (the tables of bench/README.md). Run it on an
# otherwise idle machine: one thread, and both coders' times are compared.
set -euo pipefail
BIN=${1:-build/tools/cli/splitinfer}
CODEC_BENCH=${2:-build/bench/codec_bench}
OUT=${3:-runs/codec_targets}
REPETITIONS=${REPETITIONS:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
[ -x "$BIN" ] && [ -x "$CODEC_BENCH" ] || { echo "codec_targets: build first (make build)" >&2; exit 1; }

"$CODEC_BENCH" --benchmark_filter='(Encode|Decode)/.*/(1|2)bit/(zstd|cabac)' --benchmark_min_time=0.2 \
  --benchmark_repetitions="$REPETITIONS" --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true \
  --benchmark_format=json --benchmark_out="$OUT/synthetic.json" --benchmark_out_format=json > /dev/null

features="$OUT/stem.f32"  # 1000 x 64x14x14 floats (50 MB): not kept
"$BIN" eval --checkpoint models/resnet_fmnist.pt --split stem --limit 1000 --dump-features "$features" > /dev/null
: > "$OUT/real_stem.jsonl"
for b in 1 2; do
  for c in zstd cabac:1 cabac cabac-trained; do
    coder=${c%%:*}; version=2
    [ "$c" != "$coder" ] && version=${c#*:}
    "$BIN" codec bench --input "$features" --bits "$b" --clip mse --coder "$coder" --frame-version "$version" \
      --limit 1000 --repeats 20 --json >> "$OUT/real_stem.jsonl"
  done
done
rm -f "$features" "$features.json"

{
  echo "Synthetic maps (\`$CODEC_BENCH\`, median of $REPETITIONS repetitions):"
  echo
  python3 "$HERE/bench_table.py" "$OUT/synthetic.json" | sed -n '/order-0 bytes/,$p'
  echo
  echo "Real Fashion-MNIST stem features (\`$BIN codec bench --input stem.f32 --clip mse --limit 1000 --repeats 20\`):"
  echo
  python3 - "$OUT/real_stem.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def name(r):
    return r["coder"] + ("-v1" if r.get("frame_version") == 1 else "")
print("| bits | coder | frame bytes | vs zstd | encode ms | decode ms | encode / zstd | decode / zstd |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for bits in (1, 2):
    z = next(r for r in rows if r["bits"] == bits and r["coder"] == "zstd")
    for r in (r for r in rows if r["bits"] == bits):
        print(f"| {bits} | {name(r)} | {r['frame_bytes']:.1f} | {100 * (r['frame_bytes'] / z['frame_bytes'] - 1):+.1f} % | "
              f"{r['encode_ms']:.3f} | {r['decode_ms']:.3f} | {r['encode_ms'] / z['encode_ms']:.2f}x | {r['decode_ms'] / z['decode_ms']:.2f}x |")
PY
} > "$OUT/table.md"
cat "$OUT/table.md"
