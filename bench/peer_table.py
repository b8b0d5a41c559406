#!/usr/bin/env python3
"""The peer table (bench/peer_bench.sh) from its JSON lines: one row per head, the median over
rounds of each engine's median (the spread of the round medians beside it), the ratios the
targets of issue 17 are stated in, and whether ORT really ran its int8 kernels.

  python3 bench/peer_table.py OUT/bench.jsonl OUT/census.jsonl
"""
import json
import statistics
import sys

HEADS = [("fmnist", "Fashion-MNIST model, stem to stage3, 1x28x28"),
         ("resnet50_stem", "ResNet-50 stem (conv 7x7/2 + max-pool), 3x224x224"),
         ("resnet18_layer2", "ResNet-18 up to layer2, 3x224x224")]
ENGINES = [("libtorch_float", "LibTorch float"), ("ort_float", "ORT float"), ("ort_qdq", "ORT int8 (QDQ)"),
           ("si_w8a8_int8", "splitinfer 8-bit"), ("si_w2a4_int8", "splitinfer w2a4, int8 kernel"),
           ("si_w2a4_lut", "splitinfer w2a4, look-up kernel"), ("si_w2a4_auto", "splitinfer w2a4, auto")]
# Issue 17, item 2: 8-bit >= 2x ORT float and >= ORT int8 on every head; the 2-bit-weight look-up
# >= 1.5x our own int8 on the ResNet heads.
TARGETS = [("si_w8a8_int8", "ort_float", 2.0, None), ("si_w8a8_int8", "ort_qdq", 1.0, None),
           ("si_w2a4_lut", "si_w8a8_int8", 1.5, ("resnet50_stem", "resnet18_layer2"))]


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    census = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
    times = {}
    for r in rows:
        times.setdefault((r["head"], r["engine"]), []).append(r["median_ms"])
    med = {k: statistics.median(v) for k, v in times.items()}

    def cell(head, engine):
        v = times.get((head, engine))
        if not v:
            return "-"
        lo, hi = min(v), max(v)
        spread = f" ({lo:.2f}-{hi:.2f})" if len(v) > 1 and hi - lo >= 0.005 else ""
        return f"{med[(head, engine)]:.2f}{spread}"

    print("Milliseconds per image at batch 1: the median over rounds of each run's median, the rounds' range in"
          " brackets.\n")
    print("| head | " + " | ".join(name for _, name in ENGINES) + " |")
    print("|---|" + "---:|" * len(ENGINES))
    for head, label in HEADS:
        if any((head, e) in times for e, _ in ENGINES):
            print(f"| {label} | " + " | ".join(cell(head, e) for e, _ in ENGINES) + " |")

    print("\nTargets (issue 17, item 2): speed-up = the other's time / ours.\n")
    print("| head | 8-bit vs ORT float (target >= 2x) | 8-bit vs ORT int8 (>= 1x) | w2a4 look-up vs our 8-bit (>= 1.5x) |")
    print("|---|---:|---:|---:|")
    for head, label in HEADS:
        cells = []
        for ours, theirs, target, only in TARGETS:
            if only and head not in only:
                cells.append("(not a target)")
                continue
            if (head, ours) not in med or (head, theirs) not in med:
                cells.append("-")
                continue
            x = med[(head, theirs)] / med[(head, ours)]
            cells.append(f"{x:.3f}x {'met' if x >= target else 'not met'}")
        if any(c != "-" for c in cells):
            print(f"| {label} | " + " | ".join(cells) + " |")

    print("\nWhat ORT ran (its graph after optimization) and how its outputs compare with LibTorch's "
          "(float) and with the QDQ graph emulated in LibTorch (int8, in units of the output's scale); the binding's "
          "cost is an Identity graph's run time on the same input, included in ORT's times above:\n")
    print("| head | ORT float graph | ORT int8 graph | convolutions in int8 | float max abs diff | int8 max diff (LSB) "
          "| ORT's Node.js binding per run (in the times) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for head, label in HEADS:
        by = {c["graph"]: c for c in census if c["head"] == head}
        if not by:
            continue
        def ops(kind):
            return ", ".join(f"{k.split(':')[-1]} {v}" for k, v in by[kind]["ops"].items()) if kind in by else "-"
        expected = by.get("qdq", by.get("float"))["expected"]
        qops = by["qdq"]["ops"] if "qdq" in by else {}
        qconv = sum(v for k, v in qops.items() if k.endswith("QLinearConv"))
        float_conv = sum(v for k, v in qops.items() if k.endswith(":Conv") or k == "Conv")
        fused = f"{qconv} of {expected['convs']}" + (f" ({float_conv} left in float)" if float_conv else "")
        diffs = {r["engine"]: r for r in rows if r["head"] == head and r["round"] == 1}
        fdiff = f"{diffs['ort_float']['max_abs_diff']:.1e}" if "ort_float" in diffs else "-"
        qdiff = (f"{diffs['ort_qdq']['max_abs_diff'] / expected['output_scale']:.1f}" if "ort_qdq" in diffs else "-")
        binding = f"{diffs['ort_float']['binding_ms']:.3f} ms" if "ort_float" in diffs else "-"
        print(f"| {label} | {ops('float')} | {ops('qdq')} | {fused} | {fdiff} | {qdiff} | {binding} |")
    versions = sorted({r["ort_version"] for r in rows if "ort_version" in r})
    computes = sorted({r["compute"] for r in rows if "compute" in r})
    paths = sorted({r["kernel_path"] for r in rows if r.get("kernel_path")})
    print(f"\nONNX Runtime {', '.join(versions)} (npm onnxruntime-node, CPU provider, graph optimization 'all');"
          f" splitinfer: {'; '.join(computes)}; low-bit kernel path {', '.join(paths)}.")


if __name__ == "__main__":
    main()
