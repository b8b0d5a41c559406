#!/usr/bin/env python3
"""Copies a running study's logs to a folder that can be committed, keeping only what a later
session can build on: the rows of finished runs (finished_runs.jsonl), the rows without a
trained pipeline (the float model, the input-image baselines) and finished runs' small
measurement files (runs/<run>/level_distance.json). A run cut off mid-way is left out
and is trained again in full where the study goes on (src/study/experiment.h).

  python3 scripts/study_snapshot.py RUN_DIR OUT_DIR
"""
import json
import os
import shutil
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run_dir, out_dir = sys.argv[1], sys.argv[2]
    finished = {}
    with open(os.path.join(run_dir, "finished_runs.jsonl")) as f:
        for line in f:
            try:
                j = json.loads(line)
            except json.JSONDecodeError:
                continue  # cut off by a kill: that run is not finished
            finished[j["run"]] = j["machine"]
    kept, dropped = [], 0
    with open(os.path.join(run_dir, "results.jsonl")) as f:
        for line in f:
            if not line.endswith("\n"):
                continue  # cut off by a kill
            row = json.loads(line)
            path = row.get("pipeline", "")
            # "runs/<study run>/<file>.yaml" names the run that made the row.
            parts = path.split("/")
            if not path or (len(parts) >= 2 and parts[0] == "runs" and parts[1] in finished):
                kept.append(line)
            else:
                dropped += 1
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.jsonl"), "w") as f:
        f.writelines(kept)
    shutil.copyfile(os.path.join(run_dir, "finished_runs.jsonl"), os.path.join(out_dir, "finished_runs.jsonl"))
    # The small per-run measurements a finished run writes beside its pipelines (TCL's
    # level_distance.json), which the docs quote; the trained weights stay behind.
    for run in finished:
        src = os.path.join(run_dir, "runs", run, "level_distance.json")
        if os.path.exists(src):
            os.makedirs(os.path.join(out_dir, "runs", run), exist_ok=True)
            shutil.copyfile(src, os.path.join(out_dir, "runs", run, "level_distance.json"))
    # report.md is written once, when every run has finished: then the tables go too.
    if os.path.exists(os.path.join(run_dir, "report.md")) and dropped == 0:
        for name in ("results.csv", "results.json", "report.md"):
            shutil.copyfile(os.path.join(run_dir, name), os.path.join(out_dir, name))
    print(f"{len(finished)} finished runs, {len(kept)} rows kept, {dropped} rows of unfinished runs left out")


if __name__ == "__main__":
    main()
