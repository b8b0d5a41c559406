#!/usr/bin/env python3
"""Turns the node's --json reports in DIR (node_<mode>.json) into the demo's table.

A classifier's table has top-1; a detector's (task "detect") AP50 and AP over the images sent.

Writes DIR/e2e.md and DIR/e2e.json and prints the Markdown. Standard library only.
"""
import json
import os
import sys

MODES = ["split", "server-only", "node-only"]
STAGES = ["node_compute", "encode", "transmit", "server", "total"]


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: e2e_table.py DIR [MACHINE [IMAGES]]", file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    machine = sys.argv[2] if len(sys.argv) > 2 else "unknown machine"
    what = sys.argv[3] if len(sys.argv) > 3 else "Fashion-MNIST test images"
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
    detect = r0.get("task") == "detect"
    metric = "AP50 | AP" if detect else "top-1 %"
    lines = [
        f"End to end on {machine}: {r0['images']} {what}, one at a time, "
        f"link {r0['rate_bytes_per_s'] / 1e6:g} MB/s with {r0['rtt_ms']:g} ms RTT (emulated on the node), "
        f"node {r0['threads']} thread(s).",
        "",
        f"| mode | {metric} | bytes/image (frame) | bytes/image (request) | bytes/image (reply) | median ms | p95 ms | "
        "node compute | encode | transmit | server |",
        "|---|" + ("---:|" * (11 if detect else 10)),
    ]
    for r in rows:
        lat = r["latency"]
        lines.append(
            f"| {r['mode']} | "
            + (f"{r['ap50']:.4f} | {r['ap']:.4f}" if detect else f"{r['top1']:.2f}")
            + f" | {r['bytes_per_image']:.1f} | {r['message_bytes_per_image']:.1f} | "
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
    if detect:
        lines.append(
            f"AP50 and AP: COCO's, over the boxes the node got back (score >= {r0['score_threshold']:g}, as eval "
            "scores a detector); the node maps them from the letterboxed input back to each image's pixels."
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "e2e.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "e2e.json"), "w") as f:
        json.dump({"machine": machine, "runs": rows}, f, indent=1)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
