#!/usr/bin/env python3
"""Turns codec_bench's JSON (--benchmark_format=json) into the Markdown tables of bench/README.md.

    build/bench/codec_bench --benchmark_min_time=0.1 --benchmark_format=json > codec.json
    python3 bench/bench_table.py codec.json
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


if __name__ == "__main__":
    main(sys.argv[1])
