#!/usr/bin/env python3
"""Turns codec_bench's JSON (--benchmark_format=json) into the Markdown tables of bench/README.md.

    build/bench/codec_bench --benchmark_min_time=0.1 --benchmark_format=json > codec.json
    python3 bench/bench_table.py codec.json

With --benchmark_repetitions, the tables use the median of the repetitions. A third table
checks cabac against zstd (issue 17, item 3) when both were run.
"""
import json
import sys
from collections import defaultdict


def main(path):
    runs = json.load(open(path))["benchmarks"]
    coders = []
    codec = defaultdict(dict)  # (shape, bits) -> coder -> {enc, dec, bytes, order0}
    qp = defaultdict(dict)     # (shape, bits) -> kind -> ms
    for r in runs:
        # With --benchmark_repetitions, only the medians (names end in _median).
        if r.get("run_type") == "aggregate":
            if r.get("aggregate_name") != "median":
                continue
            r = dict(r, name=r["name"][: -len("_median")])
        elif any(x.get("run_type") == "aggregate" for x in runs):
            continue
        parts = r["name"].split("/")
        kind, shape, bits = parts[0], parts[1], parts[2]
        ms = r["real_time"] if r["time_unit"] == "ms" else r["real_time"] / 1e3
        if kind in ("QuantizePack", "UnpackDequantize"):
            qp[(shape, bits)][kind] = ms
            continue
        coder = parts[3]
        if coder not in coders:
            coders.append(coder)
        cell = codec[(shape, bits)].setdefault(coder, {})
        cell["enc" if kind == "Encode" else "dec"] = ms
        if "frame_bytes" in r:
            cell["bytes"] = r["frame_bytes"]
            cell["order0"] = r["order0_bytes"]
    # Repetitions in random order (--benchmark_enable_random_interleaving) arrive shuffled: a
    # fixed order for rows and columns.
    known = ["none", "lzma", "zstd", "cabac-v1", "cabac", "cabac-trained"]
    coders.sort(key=lambda c: (known.index(c) if c in known else len(known), c))
    codec = dict(sorted(codec.items(), key=lambda kv: (kv[0][0], int(kv[0][1].rstrip("bit")))))
    qp = dict(sorted(qp.items(), key=lambda kv: (kv[0][0], int(kv[0][1].rstrip("bit")))))
    print("| shape | bits | quantize+pack ms | unpack+dequantize ms |")
    print("| --- | --- | --- | --- |")
    for (shape, bits), v in qp.items():
        print(f"| {shape} | {bits} | {v.get('QuantizePack', float('nan')):.3f} | {v.get('UnpackDequantize', float('nan')):.3f} |")
    print()
    print("| shape | bits | order-0 bytes | " + " | ".join(f"{c} bytes / enc ms / dec ms" for c in coders) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in coders) + " |")
    for (shape, bits), cells in codec.items():
        order0 = next((c["order0"] for c in cells.values() if "order0" in c), float("nan"))
        row = [f"{cells[c].get('bytes', float('nan')):.0f} / {cells[c].get('enc', float('nan')):.3f} / "
               f"{cells[c].get('dec', float('nan')):.3f}" if c in cells else "" for c in coders]
        print(f"| {shape} | {bits} | {order0:.0f} | " + " | ".join(row) + " |")
    # Issue 17, item 3: cabac's whole encode and decode paths each within 2x zstd's at 1 and 2
    # bits, and at 1 bit at least 40 % smaller than zstd.
    mine = [c for c in coders if c.startswith("cabac")]
    if "zstd" not in coders or not mine:
        return
    print()
    print("| shape | bits | " + " | ".join(f"{c} enc / zstd | {c} dec / zstd | {c} bytes vs zstd" for c in mine) + " |")
    print("| --- | --- | " + " | ".join("--- | --- | ---" for _ in mine) + " |")
    for (shape, bits), cells in codec.items():
        if bits not in ("1bit", "2bit") or "zstd" not in cells:
            continue
        z = cells["zstd"]
        row = []
        for c in mine:
            v = cells.get(c, {})
            row.append(f"{v.get('enc', float('nan')) / z['enc']:.2f}x | {v.get('dec', float('nan')) / z['dec']:.2f}x | "
                       f"{100 * (v.get('bytes', float('nan')) / z['bytes'] - 1):+.1f} %")
        print(f"| {shape} | {bits} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
