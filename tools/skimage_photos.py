#!/usr/bin/env python3
"""Write the natural photographs Debian's python3-skimage ships as a 224x224 image folder.

The server-only path's bytes depend on what the camera sees: smooth random images compress far
better than photographs, so a measured comparison of splitting against sending the image needs
real photos. skimage/data/ holds 22 usable ones (portraits, animals, street, objects, textures,
microscopy, astronomy); each is centre-cropped to a square and resized to 224x224 RGB (Lanczos),
as an ImageNet model's node would. Test images and the calibration ("train") images are the same
photos: there are few, and the measurement is of time and bytes, not accuracy.

  python3 tools/skimage_photos.py --out DIR [--classes 1000]

Layout: DIR/{train,test}/0/NAME.png (one class, named "0" as the zoo's random-weights classes
are), so `--data imagefolder:DIR` works for a zoo ImageNet model.
"""

import argparse
import os
import sys

PHOTOS = ["astronaut", "brick", "camera", "cell", "chelsea", "clock_motion", "coffee", "coins", "grass", "gravel",
          "hubble_deep_field", "ihc", "microaneurysms", "moon", "motorcycle_left", "motorcycle_right", "page",
          "retina", "rocket", "text", "color", "logo"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    try:
        import skimage.data
        from PIL import Image
    except ImportError as e:
        sys.exit(f"skimage_photos: {e}; apt-get install python3-skimage python3-pil")
    root = os.path.dirname(skimage.data.__file__)
    written = 0
    for name in PHOTOS:
        path = next((os.path.join(root, name + ext) for ext in (".png", ".jpg") if os.path.exists(os.path.join(root, name + ext))), None)
        if path is None:
            sys.exit(f"skimage_photos: {name} not found in {root}")
        img = Image.open(path).convert("RGB")
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        img = img.resize((a.size, a.size), Image.LANCZOS)
        # Some of skimage's photos carry an ICC profile that libpng calls incorrect: written
        # again, every reader warns about it once per image. The pixels are sRGB either way.
        img.info.pop("icc_profile", None)
        for split in ("train", "test"):
            d = os.path.join(a.out, split, "0")
            os.makedirs(d, exist_ok=True)
            img.save(os.path.join(d, name + ".png"))
        written += 1
    print(f"{written} photos, {a.size}x{a.size} RGB -> {a.out}/{{train,test}}/0/")


if __name__ == "__main__":
    main()
