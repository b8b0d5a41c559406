#!/usr/bin/env python3
"""Write Fashion-MNIST items as an image folder: DIR/train/<class>/NNNN.png, DIR/test/<class>/NNNN.png.

An image folder is what a user brings (torchvision's ImageFolder layout); this makes one from the
Fashion-MNIST that Debian ships (dataset-fashion-mnist), so that the image-folder path of every
command can be shown and tested without downloads. Class folders get short lower-case names; the
folder order (sorted names) is the class order, as in torchvision.

  python3 tools/fmnist_to_folder.py --out DIR --train-per-class 150 --test-per-class 50
"""

import argparse
import gzip
import os
import sys

import numpy as np
from PIL import Image

NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def load(src, prefix):
    try:
        with gzip.open(f"{src}/{prefix}-images-idx3-ubyte.gz") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(f"{src}/{prefix}-labels-idx1-ubyte.gz") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
    except OSError as e:
        sys.exit(f"fmnist_to_folder: cannot read Fashion-MNIST in {src} ({e}); apt-get install dataset-fashion-mnist")
    return x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write (train/ and test/ inside)")
    parser.add_argument("--src", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST .gz files")
    parser.add_argument("--train-per-class", type=int, default=150)
    parser.add_argument("--test-per-class", type=int, default=50)
    args = parser.parse_args()
    for split, prefix, per_class in (("train", "train", args.train_per_class), ("test", "t10k", args.test_per_class)):
        x, y = load(args.src, prefix)
        for c, name in enumerate(NAMES):
            os.makedirs(f"{args.out}/{split}/{name}", exist_ok=True)
            for k, i in enumerate(np.flatnonzero(y == c)[:per_class]):
                Image.fromarray(x[i]).save(f"{args.out}/{split}/{name}/{k:04d}.png")
    print(f"wrote {args.out}: {len(NAMES)} classes, {args.train_per_class} train and {args.test_per_class} test "
          f"images per class; classes {','.join(sorted(NAMES))}")


if __name__ == "__main__":
    main()
