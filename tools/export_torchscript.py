#!/usr/bin/env python3
"""Export a torchvision classifier as a TorchScript chain that splitinfer can cut.

splitinfer's LoadTorchScriptChain (src/models/torchscript_chain.h) treats a TorchScript module as
a chain of its top-level children, run in order. torchvision's classifiers are close to that but
do some glue in forward() (flatten before the classifier, a functional global pool). This tool
rebuilds the model as an nn.Sequential of its top-level children in forward order with that glue
inserted as modules, checks that the sequential reproduces the original model's output, scripts
it with torch.jit.script and saves it. A model whose forward is not such a chain (GoogLeNet,
Inception, ViT, ...) is refused rather than exported wrong; vit_b_16 is native in the C++ zoo.

Needs PyTorch + torchvision for Python: on Debian `apt-get install python3-torch
python3-torchvision` and run with /usr/bin/python3 (a pyenv/venv python3 may lack torch).
Never downloads anything: weights are random (seeded) unless --state-dict gives trained ones,
and the same arguments give the same weights and code (the zip records carry the time of writing).

What splitinfer needs beside the weights (input shape, normalisation, class names, split points)
goes into the archive as the extra file "splitinfer.json" (format "splitinfer-torchscript", the
schema of src/models/checkpoint.h), so `splitinfer eval --model FILE` and every other command
take the file as it is. --no-meta leaves it out (a file "from elsewhere"; give it FILE.json or
flags then).

  /usr/bin/python3 tools/export_torchscript.py --model resnet50 --out resnet50.pt
  /usr/bin/python3 tools/export_torchscript.py --model resnet18 --input-size 64 --num-classes 10 \
      --classes classes.txt --out r18.pt
  /usr/bin/python3 tools/export_torchscript.py --tiny --no-meta --out tests/data/fixtures/tiny_chain.pt
  /usr/bin/python3 tools/export_torchscript.py --tiny --out tests/data/fixtures/tiny_chain_meta.pt
"""

import argparse
import collections
import json
import os
import sys

import torch
from torch import nn

# Glue that torchvision's forward() does in code, as (insert-before-child, modules) per family.
# Families not listed are exported child by child as they are; the output check decides.
_FLATTEN = lambda: [("flatten", nn.Flatten(1))]  # noqa: E731
_POOL_FLATTEN = lambda: [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1))]  # noqa: E731
GLUE = {
    "ResNet": ("fc", _FLATTEN),  # resnet*, resnext*, wide_resnet*
    "RegNet": ("fc", _FLATTEN),
    "EfficientNet": ("classifier", _FLATTEN),
    "MobileNetV3": ("classifier", _FLATTEN),
    "VGG": ("classifier", _FLATTEN),
    "AlexNet": ("classifier", _FLATTEN),
    "MobileNetV2": ("classifier", _POOL_FLATTEN),
    "MNASNet": ("classifier", _POOL_FLATTEN),  # forward: x.mean([2, 3])
    "ShuffleNetV2": ("fc", _POOL_FLATTEN),  # forward: x.mean([2, 3])
    "DenseNet": (
        "classifier",
        lambda: [("relu", nn.ReLU()), ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1))],
    ),
}
# Appended after the last child.
TRAILING_GLUE = {"SqueezeNet": lambda: [("flatten", nn.Flatten(1))]}

# Top-level nn.Sequential children holding the whole backbone (torchvision's "features" etc.)
# are opened one level, so their stages become blocks ("features_3") and split points.
EXPAND = ("features", "trunk_output", "layers")

# Exact-output check tolerance: the glue replaces x.mean([2, 3]) by adaptive_avg_pool2d for some
# families, which may round differently in the last bit.
ATOL = 1e-5
RTOL = 1e-4


def as_chain(model: nn.Module, expand: bool) -> nn.Sequential:
    family = type(model).__name__
    before, glue = GLUE.get(family, (None, None))
    layers = collections.OrderedDict()
    for name, child in model.named_children():
        if name == before:
            for glue_name, glue_module in glue():
                layers[glue_name] = glue_module
        if expand and name in EXPAND and type(child) is nn.Sequential:
            for sub_name, sub in child.named_children():
                layers[f"{name}_{sub_name}"] = sub
        else:
            layers[name] = child
    if family in TRAILING_GLUE:
        for glue_name, glue_module in TRAILING_GLUE[family]():
            layers[glue_name] = glue_module
    return nn.Sequential(layers)


class TinyChain(nn.Module):
    """Test fixture: 1x28x28 -> 10 classes, three children, forward flattens in code before the
    Linear like torchvision's ResNet, so the C++ importer's flatten rule is exercised."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.block(self.features(x))
        return self.fc(torch.flatten(x, 1))


def build_tiny():
    model = TinyChain()
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode BN is not the identity
        bn = model.features[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    return model, (1, 1, 28, 28)


def build_torchvision(name, num_classes, input_size, expand):
    import torchvision

    classifiers = torchvision.models.list_models(module=torchvision.models)
    if name not in classifiers:
        sys.exit(f"export_torchscript: unknown model '{name}'; torchvision classifiers: {', '.join(classifiers)}")
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    return as_chain(model, expand), model, (1, 3, input_size, input_size)


def metadata(args, input_shape, num_outputs, children):
    channels = input_shape[1]
    tiny_stats = ([0.2860], [0.3530])
    imagenet_stats = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    mean, std = tiny_stats if args.tiny else imagenet_stats

    def numbers(flag, text):
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            sys.exit(f"export_torchscript: {flag} '{text}': expected numbers separated by commas")
        if len(values) != channels:
            sys.exit(f"export_torchscript: {flag} has {len(values)} values for {channels} input channels")
        return values

    if args.mean or args.std:
        if not (args.mean and args.std):
            sys.exit("export_torchscript: give --mean and --std together")
        mean, std = numbers("--mean", args.mean), numbers("--std", args.std)
    if len(mean) != channels:
        sys.exit(f"export_torchscript: {channels} input channels: give --mean and --std")
    if args.classes:
        if os.path.isfile(args.classes):
            with open(args.classes) as f:
                names = [line.strip() for line in f if line.strip()]
        else:
            names = [n.strip() for n in args.classes.split(",")]
        if len(names) != num_outputs or any(not n for n in names):
            sys.exit(f"export_torchscript: --classes names {len(names)} classes; the model has {num_outputs} outputs")
    else:
        names = [str(c) for c in range(num_outputs)]
    policy, _, size = args.resize.partition(":")
    if policy not in ("center_crop", "stretch") or (size and (policy != "center_crop" or not size.isdigit())):
        sys.exit(f"export_torchscript: --resize '{args.resize}': expected center_crop, center_crop:N or stretch")
    return {
        "format": "splitinfer-torchscript",
        "format_version": 1,
        "model": args.model or "tiny_chain",
        "input_shape": list(input_shape[1:]),
        "normalization": {"mean": mean, "std": std},
        "class_names": names,
        "dataset": args.dataset,
        "split_points": children[:-1],
        "preprocess": {"resize": policy, "resize_size": int(size or 0)},
    }


def main():
    # TorchScript writes a module's constants in set order, which follows Python's per-process
    # string hash seed; pin it so the same arguments always give the same bytes (fixtures).
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="torchvision classification model name, e.g. resnet50, convnext_tiny")
    what.add_argument("--tiny", action="store_true", help="export the small 3-child test chain instead")
    parser.add_argument("--weights", default="none", choices=["none"],
                        help="only 'none' (random init): this tool never downloads")
    parser.add_argument("--out", required=True, help="output .pt file")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random init and the check input")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--input-size", type=int, default=224, help="square input side for the output check")
    parser.add_argument("--no-expand", action="store_true",
                        help=f"keep {'/'.join(EXPAND)} as one block instead of one block per stage")
    parser.add_argument("--state-dict", help="trained weights (torch.save of the model's state_dict) to load first")
    parser.add_argument("--classes", help="class names: a file with one per line, or names separated by commas "
                                          "(default: 0..N-1)")
    parser.add_argument("--mean", help="per-channel normalisation mean, e.g. 0.485,0.456,0.406 "
                                       "(default: ImageNet's for torchvision models, Fashion-MNIST's for --tiny)")
    parser.add_argument("--std", help="per-channel normalisation std (default: as --mean)")
    parser.add_argument("--dataset", default="", help="what the model was trained on, e.g. imagefolder (informative)")
    parser.add_argument("--resize", default="center_crop",
                        help="how images reach the input size: center_crop (torchvision's Resize(side/0.875) then "
                             "CenterCrop, the ImageNet recipe), center_crop:N (Resize(N) then CenterCrop) or "
                             "stretch (straight to the input size)")
    parser.add_argument("--no-meta", action="store_true", help="write no splitinfer.json into the archive")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    if args.tiny:
        original, input_shape = build_tiny()
        chain = original  # already a module of children; scripted as written
    else:
        chain, original, input_shape = build_torchvision(args.model, args.num_classes, args.input_size,
                                                         expand=not args.no_expand)
    if args.state_dict:
        state = torch.load(args.state_dict, map_location="cpu")
        try:
            original.load_state_dict(state)
        except RuntimeError as e:
            sys.exit(f"export_torchscript: {args.state_dict} does not fit {args.model or 'tiny'}: {e}")
    original.eval()
    chain.eval()

    label = args.model or "tiny"
    children = [n for n, _ in chain.named_children()]
    try:
        scripted = torch.jit.script(chain)
    except Exception as e:  # TorchScript raises many types; all mean "cannot export"
        sys.exit(f"export_torchscript: torch.jit.script failed for '{label}': {e}")
    x = torch.randn(input_shape)
    with torch.no_grad():
        want = original(x)
        for what, run in (("sequential", chain), ("scripted", scripted)):
            try:
                got = run(x)
            except Exception as e:
                got, why = None, f"it raised: {str(e).strip().splitlines()[-1]}"
            if got is not None and got.shape != want.shape:
                why = f"output shape {list(got.shape)} != {list(want.shape)}"
            elif got is not None and not torch.allclose(got, want, atol=ATOL, rtol=RTOL):
                why = f"max |diff| {(got - want).abs().max().item():g}"
            elif got is not None:
                continue
            sys.exit(f"export_torchscript: the {what} chain of '{label}' does not reproduce its forward() "
                     f"({why}); its forward is not a chain of its children {children}")
        exact = torch.equal(scripted(x), want)

    out_dir = os.path.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    extra = {}
    if not args.no_meta:
        meta = metadata(args, input_shape, want.shape[1], children)
        extra["splitinfer.json"] = json.dumps(meta, indent=2, sort_keys=True)
    scripted.save(args.out, _extra_files=extra)
    params = sum(p.numel() for p in chain.parameters())
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes): {label}, {params} parameters, "
          f"input {list(input_shape)}, output {list(want.shape)} "
          f"({'bit-exact' if exact else f'within atol {ATOL:g}'} vs forward()), "
          f"{len(children)} blocks; split points: {children[:-1]}"
          f"{'' if args.no_meta else '; splitinfer metadata embedded'}")


if __name__ == "__main__":
    main()
