#!/usr/bin/env bash
# The accuracy table of issue 7 (docs/results.md, "Low-bit node head"): the shipped model's head
# up to stage3 quantized at each weight/activation width (local regions of GROUP input
# channels), top-1 on the full Fashion-MNIST test set, alone (float tail) and inside the shipped
# pipeline (autoencoder + 2-bit CABAC frame + decoder + tail). Activation ranges per local
# region (ACT=region, the default) or per tensor (ACT=tensor). Usage:
#   scripts/lowbit_table.sh [BIN] [OUT_DIR]        (defaults: build/tools/cli/splitinfer, runs/lowbit)
# Prints a markdown table; the head files and JSON lines stay in OUT_DIR.
set -euo pipefail
BIN=${1:-build/tools/cli/splitinfer}
OUT=${2:-runs/lowbit}
GROUP=${GROUP:-16}
WIDTHS=${WIDTHS:-"8:8 4:8 4:4 2:8 2:4 2:2 1:4"}
LIMIT=${LIMIT:-0}
ACT=${ACT:-region}
mkdir -p "$OUT"
echo "| weights | activations | head alone: float % | low-bit % | change pp | in fmnist_best: float % | low-bit % | change pp | bytes/image |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for wa in $WIDTHS; do
  w=${wa%%:*}; a=${wa##*:}
  for ckpt in models/resnet_fmnist.pt models/fmnist_best/model.pt; do
    tag=$(basename "$(dirname "$ckpt")")_w${w}a${a}
    "$BIN" quantize-head --checkpoint "$ckpt" --split stage3 --wbits "$w" --abits "$a" --group "$GROUP" \
      --act-ranges "$ACT" --out "$OUT/$tag.sihead" --json > "$OUT/$tag.quant.json"
  done
  "$BIN" eval-head --head "$OUT/models_w${w}a${a}.sihead" --checkpoint models/resnet_fmnist.pt --limit "$LIMIT" --json \
    > "$OUT/models_w${w}a${a}.eval.json"
  "$BIN" eval-head --head "$OUT/fmnist_best_w${w}a${a}.sihead" --checkpoint models/fmnist_best/model.pt \
    --pipeline models/fmnist_best.yaml --limit "$LIMIT" --json > "$OUT/fmnist_best_w${w}a${a}.eval.json"
  python3 - "$OUT/models_w${w}a${a}.eval.json" "$OUT/fmnist_best_w${w}a${a}.eval.json" "$w" "$a" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
print(f"| {sys.argv[3]} | {sys.argv[4]} | {a['top1_float_head']:.2f} | {a['top1_lowbit_head']:.2f} | {-a['loss_pp']:+.2f} "
      f"| {p['top1_float_head']:.2f} | {p['top1_lowbit_head']:.2f} | {-p['loss_pp']:+.2f} | {p['bytes_per_image']:.1f} |")
PY
done
