#!/usr/bin/env bash
# Copies a pipeline written by `splitinfer experiment` (OUT/runs/<run>/<pipeline>.yaml) into
# models/ as models/NAME.yaml + models/NAME/ (its artifacts), rewriting the paths so that the
# shipped file is self-contained, with the study's rows of the run as models/NAME/results.jsonl.
# Artifacts that are shipped float models themselves (files directly in models/, e.g.
# resnet_fmnist.pt, yolo_scenes.pt) stay shared.
#   scripts/ship_pipeline.sh runs/fmnist_study/runs/ae16_b2/pipeline.yaml fmnist_best
set -euo pipefail
SRC=$1 NAME=$2
SRC_DIR=$(cd "$(dirname "$SRC")" && pwd)
DEST=models/$NAME
MODELS=$(cd models && pwd)
mkdir -p "$DEST"
{
  echo "# splitinfer pipeline shipped from $SRC (see docs/results.md)"
  while IFS= read -r line; do
    case "$line" in
      '#'*) continue ;;
      model:*|server_model:*|bottleneck:*|compensator:*|quantizer:*|reference_model:*)
        key=${line%%:*}
        val=${line#*: }
        abs=$(cd "$SRC_DIR" && realpath "$val")
        if [ "$(dirname "$abs")" = "$MODELS" ]; then
          echo "$key: $(basename "$abs")"
        else
          cp "$abs" "$DEST/"
          json=${abs%.*}.json
          if [ -f "$json" ] && [ "$json" != "$abs" ]; then cp "$json" "$DEST/"; fi
          echo "$key: $NAME/$(basename "$abs")"
        fi ;;
      name:*) echo "name: $NAME" ;;
      *) echo "$line" ;;
    esac
  done < "$SRC"
} > "models/$NAME.yaml"
# The study's rows of this run, naming the shipped file, so that `plan --results STUDY
# --results models/NAME/results.jsonl` finds the shipped pipeline's measured accuracy.
STUDY=$(dirname "$(dirname "$SRC_DIR")")
RUN=$(basename "$SRC_DIR")
if [ -f "$STUDY/results.jsonl" ]; then
  python3 - "$STUDY/results.jsonl" "$RUN" "models/$NAME.yaml" > "$DEST/results.jsonl" <<'PY'
import json, sys
path, run, shipped = sys.argv[1:]
for line in open(path):
    if not line.strip():
        continue
    row = json.loads(line)
    if row.get("run") == run and row.get("pipeline"):
        row["pipeline"] = shipped
        print(json.dumps(row, sort_keys=True))
PY
  [ -s "$DEST/results.jsonl" ] || rm -f "$DEST/results.jsonl"
fi
echo "wrote models/$NAME.yaml and $DEST/:"
ls -l "$DEST"
