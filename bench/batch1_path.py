#!/usr/bin/python3
"""Is a lone image still faster as a batch of two? (models::RunAsBatchOfTwo)

Debian's LibTorch 1.13 sends a convolution whose input has at most 20,480 elements to its native
kernel, which calls BLAS; a batch of two goes to oneDNN. The workaround was tuned when that BLAS
was Netlib's reference implementation. This times torchvision's ResNet-18 and ResNet-50 (random
weights, eval mode, one thread) at batch 1 and at batch 2 under each BLAS this machine has, using
Debian's python3-torch, which is the same libtorch as the C++ build. "b2/b1" below 1 means the
batch of two (what RunAsBatchOfTwo does) is faster than the lone image.

    /usr/bin/python3 bench/batch1_path.py [--runs 30]   (Debian's Python, which has python3-torch)
"""
import argparse
import os
import subprocess
import sys

ARCH = "x86_64-linux-gnu"
# LD_LIBRARY_PATH that makes libblas.so.3 (and liblapack.so.3) resolve to each implementation.
BLAS_DIRS = {
    "reference (Netlib)": [f"/usr/lib/{ARCH}/blas", f"/usr/lib/{ARCH}/lapack"],
    "BLIS": [f"/usr/lib/{ARCH}/blis-pthread", f"/usr/lib/{ARCH}/lapack"],
    "OpenBLAS": [f"/usr/lib/{ARCH}/openblas-pthread"],
}
CASES = [("resnet18", 28), ("resnet18", 64), ("resnet18", 112), ("resnet18", 224), ("resnet50", 224)]


def measure(runs):
    import time
    import torch
    import torchvision

    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = []
    with torch.no_grad():
        for name, size in CASES:
            model = getattr(torchvision.models, name)().eval()
            row = [name, size]
            for batch in (1, 2):
                x = torch.randn(batch, 3, size, size)
                for _ in range(3):
                    model(x)
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    model(x)
                    times.append((time.perf_counter() - t0) * 1e3)
                times.sort()
                row.append(times[len(times) // 2])
            out.append(row)
    return out


def loaded_blas():
    with open(f"/proc/{os.getpid()}/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line or "blis" in line}
    return ", ".join(sorted(os.path.realpath(l) for l in libs if l.startswith("/")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        rows = measure(a.runs)
        print(loaded_blas())
        for r in rows:
            print(" ".join(str(v) for v in r))
        return
    print("| BLAS | model | input | batch 1 (ms) | batch 2 (ms) | b2/b1 |")
    print("|---|---|---:|---:|---:|---:|")
    for blas, dirs in BLAS_DIRS.items():
        if not all(os.path.isdir(d) for d in dirs):
            print(f"| {blas} | not installed | | | | |")
            continue
        env = dict(os.environ, LD_LIBRARY_PATH=":".join(dirs))
        res = subprocess.run([sys.executable, __file__, "--child", "--runs", str(a.runs)], env=env,
                             capture_output=True, text=True, check=True)
        lines = res.stdout.strip().splitlines()
        print(f"<!-- {blas}: {lines[0]} -->")
        for line in lines[1:]:
            name, size, b1, b2 = line.split()
            b1, b2 = float(b1), float(b2)
            print(f"| {blas} | {name} | {size}x{size} | {b1:.2f} | {b2:.2f} | {b2 / b1:.2f} |")


if __name__ == "__main__":
    main()
