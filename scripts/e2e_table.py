#!/usr/bin/env python3
"""Turns the node's --json reports in DIR (node_<mode>.json) into the demo's table.

Writes DIR/e2e.md and DIR/e2e.json and prints the Markdown. Standard library only.
"""
import json
import os
import sys

MODES = ["split", "server-only", "node-only"]
STAGES = ["node_compute", "encode", "transmit", "server", "total"]


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: e2e_table.py DIR [MACHINE]", file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    machine = sys.argv[2] if len(sys.argv) > 2 else "unknown machine"
    rows = []
    for mode in MODES:
        path = os.path.join(out_dir, f"node_{mode}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            rows.append(json.load(f))
    if not rows:
        print(f"e2e_table: no node_<mode>.json in {out_dir}", file=sys.stderr)
        return 1
    r0 = rows[0]
    lines = [
        f"End to end on {machine}: {r0['images']} Fashion-MNIST test images, one at a time, "
        f"link {r0['rate_bytes_per_s'] / 1e6:g} MB/s with {r0['rtt_ms']:g} ms RTT (emulated on the node), "
        f"node {r0['threads']} thread(s).",
        "",
        "| mode | top-1 % | bytes/image (frame) | bytes/image (request) | bytes/image (reply) | median ms | p95 ms | "
        "node compute | encode | transmit | server |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lat = r["latency"]
        lines.append(
            f"| {r['mode']} | {r['top1']:.2f} | {r['bytes_per_image']:.1f} | {r['message_bytes_per_image']:.1f} | "
            f"{r.get('reply_bytes_per_image', 0.0):.1f} | "
            f"{lat['total']['median_ms']:.2f} | {lat['total']['p95_ms']:.2f} | "
            + " | ".join(f"{lat[s]['median_ms']:.2f}" for s in STAGES[:4])
            + " |"
        )
    lines += [
        "",
        "Stage columns are medians in ms. transmit = the request's round trip minus the time the server "
        "reports for it (emulated link, loopback, gRPC); request (reply) bytes = the serialised "
        "ModelInferRequest (ModelInferResponse) plus gRPC's 5-byte prefix.",
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "e2e.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "e2e.json"), "w") as f:
        json.dump({"machine": machine, "runs": rows}, f, indent=1)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
