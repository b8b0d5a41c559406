#!/usr/bin/env python3
"""Export one node head to ONNX, float and 8-bit QDQ, for the peer benchmark (bench/peer_bench.sh).

The peer a user would deploy instead of splitinfer's head is ONNX Runtime. This writes the same
head that `splitinfer bench head` runs (the same weights: read from the same file) as two ONNX
graphs:

  HEAD_float.onnx  Conv (BatchNorm folded into it), Relu, Add, MaxPool in float32.
  HEAD_qdq.onnx    the same in the QDQ format of ONNX Runtime's own quantization tool: every
                   tensor between two operators passes QuantizeLinear -> DequantizeLinear (uint8,
                   per tensor), weights are int8 per output channel behind a DequantizeLinear,
                   biases int32 (scale = input scale x weight scale) behind one. That is the
                   pattern ORT's QDQ transformer fuses into QLinearConv / QLinearAdd / uint8
                   MaxPool (its int8 kernels, VNNI where the CPU has it); peer_ort.js saves the
                   optimized graph and this script's --census counts what was fused, so the
                   table says whether ORT really ran int8.

The graphs are written node by node with python3-onnx's helper rather than torch.onnx.export,
because the exporter in Debian's PyTorch 1.13 cannot emit an int32 bias behind a
DequantizeLinear, and without one ORT leaves the convolution in float.

Alongside: HEAD_input.bin (the timing input, float32, already normalised), HEAD_ref_float.bin
(LibTorch's float output for it) and HEAD_ref_qdq.bin (the QDQ graph emulated in LibTorch with the
same scales and rounding), so peer_ort.js's outputs are checked against them.

Heads:
  fmnist      the shipped Fashion-MNIST model (models/resnet_fmnist.pt) from its stem to stage3;
              calibrated on its first training images (Debian's dataset-fashion-mnist).
  resnet_stem a torchvision ResNet's conv1, bn1, relu, maxpool (FILE from tools/export_torchscript.py)
  resnet_to_layer2  the same up to layer2 (BasicBlock ResNets: resnet18, resnet34)
The torchvision heads have random (seeded) weights and are calibrated on smooth random images, as
`splitinfer quantize-head` does for them: speed does not depend on the values.

  /usr/bin/python3 bench/peer_export.py --head fmnist --model models/resnet_fmnist.pt --out DIR
  /usr/bin/python3 bench/peer_export.py --census OPTIMIZED.onnx
"""

import argparse
import collections
import gzip
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

OPSET = 13  # per-axis DequantizeLinear (int8 weights per output channel) needs 13


def smooth_random_images(n, c, h, w, seed=7):
    """A blurred noise field per image (fixed seed), scaled to 0..255 like a photo."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h // 8 + 1, w // 8 + 1, generator=g)
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (x * 255.0).round()


def fmnist_train_images(n, directory="/usr/share/datasets/fashion-mnist"):
    path = os.path.join(directory, "train-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        sys.exit(f"peer_export: {path} not found; install it with `apt-get install dataset-fashion-mnist`")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16, count=n * rows * cols)
    return torch.from_numpy(pixels.reshape(n, 1, rows, cols).astype(np.float32))


class Value:
    """A tensor of the head: its ONNX name in each graph and its values on the calibration batch,
    in float (f, for the scales) and as the QDQ graph computes them (q, for the reference)."""

    def __init__(self, fname, qname, f, q, scale=None, zero=None):
        self.fname, self.qname, self.f, self.q, self.scale, self.zero = fname, qname, f, q, scale, zero


class Emitter:
    """Builds the float and the QDQ graph of one head side by side, op by op."""

    def __init__(self):
        self.fnodes, self.qnodes, self.finit, self.qinit = [], [], [], []
        self.counter = collections.Counter()
        self.ops = collections.Counter()

    def _name(self, kind):
        self.counter[kind] += 1
        return f"{kind}{self.counter[kind]}"

    def _const(self, graph_init, name, array):
        graph_init.append(numpy_helper.from_array(array, name))
        return name

    @staticmethod
    def act_qparams(t, unsigned_from_zero):
        """uint8 per-tensor scale and zero point covering t's range (zero exactly representable)."""
        lo = 0.0 if unsigned_from_zero else min(float(t.min()), 0.0)
        hi = max(float(t.max()), 0.0)
        scale = max(hi - lo, 1e-8) / 255.0
        zero = int(np.clip(round(-lo / scale), 0, 255))
        return np.float32(scale), np.uint8(zero)

    @staticmethod
    def fake_quant(t, scale, zero):
        return (torch.clamp(torch.round(t / float(scale)) + int(zero), 0, 255) - int(zero)) * float(scale)

    def _qdq(self, src, scale, zero, tag):
        """src -> QuantizeLinear -> DequantizeLinear in the QDQ graph; returns the DQ output."""
        s = self._const(self.qinit, f"{tag}_scale", np.array(scale, dtype=np.float32))
        z = self._const(self.qinit, f"{tag}_zero", np.array(zero, dtype=np.uint8))
        self.qnodes.append(helper.make_node("QuantizeLinear", [src, s, z], [f"{tag}_q"]))
        self.qnodes.append(helper.make_node("DequantizeLinear", [f"{tag}_q", s, z], [f"{tag}_dq"]))
        return f"{tag}_dq"

    def _quantized(self, fname, qsrc, f, q, relu, tag):
        scale, zero = self.act_qparams(f, unsigned_from_zero=relu)
        qname = self._qdq(qsrc, scale, zero, tag)
        return Value(fname, qname, f, self.fake_quant(q, scale, zero), scale, zero)

    def input(self, x):
        """The normalised image; the QDQ graph quantizes it first (uint8, asymmetric)."""
        return self._quantized("input", "input", x, x, relu=False, tag="input")

    def conv(self, v, conv, bn, relu):
        """Conv with BatchNorm folded in, optionally followed by Relu."""
        w = conv.weight.detach().double()
        b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if bn is not None:
            inv = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = w * inv.view(-1, 1, 1, 1)
            b = (b - bn.running_mean.double()) * inv + bn.bias.detach().double()
        w, b = w.float(), b.float()
        stride, padding = tuple(conv.stride), tuple(conv.padding)
        tag = self._name("conv")
        self.ops["conv"] += 1
        attrs = dict(kernel_shape=list(w.shape[2:]), strides=list(stride),
                     pads=[padding[0], padding[1], padding[0], padding[1]])
        # Float graph.
        wn = self._const(self.finit, f"{tag}_w", w.numpy())
        bn_ = self._const(self.finit, f"{tag}_b", b.numpy())
        out = f"{tag}_out"
        self.fnodes.append(helper.make_node("Conv", [v.fname, wn, bn_], [out], **attrs))
        f = F.conv2d(v.f, w, b, stride, padding)
        if relu:
            self.fnodes.append(helper.make_node("Relu", [out], [f"{tag}_relu"]))
            out, f = f"{tag}_relu", torch.relu(f)
        # QDQ graph: int8 weights per output channel (symmetric), int32 bias at input x weight scale.
        w_scale = (w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127.0).double()
        w_q = torch.clamp(torch.round(w.double() / w_scale.view(-1, 1, 1, 1)), -127, 127)
        b_scale = float(v.scale) * w_scale
        b_q = torch.round(b.double() / b_scale)
        wq = self._const(self.qinit, f"{tag}_wq", w_q.numpy().astype(np.int8))
        ws = self._const(self.qinit, f"{tag}_ws", w_scale.numpy().astype(np.float32))
        wz = self._const(self.qinit, f"{tag}_wz", np.zeros(w.shape[0], dtype=np.int8))
        bq = self._const(self.qinit, f"{tag}_bq", b_q.numpy().astype(np.int32))
        bs = self._const(self.qinit, f"{tag}_bs", (np.float32(v.scale) * w_scale.numpy().astype(np.float32)))
        self.qnodes.append(helper.make_node("DequantizeLinear", [wq, ws, wz], [f"{tag}_wdq"], axis=0))
        self.qnodes.append(helper.make_node("DequantizeLinear", [bq, bs], [f"{tag}_bdq"], axis=0))
        qout = f"{tag}_qout"
        self.qnodes.append(helper.make_node("Conv", [v.qname, f"{tag}_wdq", f"{tag}_bdq"], [qout], **attrs))
        q = F.conv2d(v.q.double(), (w_q * w_scale.view(-1, 1, 1, 1)), b_q * b_scale, stride, padding).float()
        if relu:
            self.qnodes.append(helper.make_node("Relu", [qout], [f"{tag}_qrelu"]))
            qout, q = f"{tag}_qrelu", torch.relu(q)
        return self._quantized(out, qout, f, q, relu, tag)

    def add_relu(self, a, b):
        tag = self._name("add")
        self.ops["add"] += 1
        self.fnodes.append(helper.make_node("Add", [a.fname, b.fname], [f"{tag}_sum"]))
        self.fnodes.append(helper.make_node("Relu", [f"{tag}_sum"], [f"{tag}_out"]))
        self.qnodes.append(helper.make_node("Add", [a.qname, b.qname], [f"{tag}_qsum"]))
        self.qnodes.append(helper.make_node("Relu", [f"{tag}_qsum"], [f"{tag}_qrelu"]))
        return self._quantized(f"{tag}_out", f"{tag}_qrelu", torch.relu(a.f + b.f), torch.relu(a.q + b.q), True, tag)

    def maxpool(self, v, kernel, stride, padding):
        """Max-pooling keeps the input's scale and zero point (ORT then runs it on uint8)."""
        tag = self._name("maxpool")
        self.ops["maxpool"] += 1
        attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[padding] * 4)
        self.fnodes.append(helper.make_node("MaxPool", [v.fname], [f"{tag}_out"], **attrs))
        self.qnodes.append(helper.make_node("MaxPool", [v.qname], [f"{tag}_qpool"], **attrs))
        qname = self._qdq(f"{tag}_qpool", v.scale, v.zero, tag)
        f = F.max_pool2d(v.f, kernel, stride, padding)
        q = F.max_pool2d(v.q, kernel, stride, padding)
        return Value(f"{tag}_out", qname, f, q, v.scale, v.zero)

    def model(self, name, x_shape, out, quantized):
        nodes, init = (self.qnodes, self.qinit) if quantized else (self.fnodes, self.finit)
        out_name = out.qname if quantized else out.fname
        graph = helper.make_graph(
            nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1] + list(x_shape))],
            [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1] + list(out.f.shape[1:]))], init)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="splitinfer-peer")
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def basic_block(e, v, block, shortcut_name):
    y = e.conv(v, block.conv1, block.bn1, relu=True)
    y = e.conv(y, block.conv2, block.bn2, relu=False)
    sc = getattr(block, shortcut_name, None)
    identity = e.conv(v, sc[0], sc[1], relu=False) if sc is not None and len(sc) > 0 else v
    return e.add_relu(y, identity)


class Namespace:
    pass


def fmnist_modules(path):
    """The shipped model's modules rebuilt from its parameters (src/models/zoo/resnet_fmnist.cpp)."""
    saved = torch.jit.load(path, map_location="cpu")
    tensors = dict(saved.named_parameters())
    tensors.update(dict(saved.named_buffers()))

    def conv_of(prefix, stride):
        w = tensors[prefix + ".weight"]
        c = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=stride, padding=w.shape[2] // 2, bias=False)
        c.weight.data.copy_(w)
        return c

    def bn_of(prefix):
        b = torch.nn.BatchNorm2d(tensors[prefix + ".weight"].shape[0])
        for k in ("weight", "bias", "running_mean", "running_var"):
            getattr(b, k).data.copy_(tensors[f"{prefix}.{k}"])
        return b.eval()

    stages = []
    for s in (1, 2, 3):
        blocks, i = [], 0
        while f"stage{s}.{i}.conv1.weight" in tensors:
            p = f"stage{s}.{i}"
            stride = 2 if (s > 1 and i == 0) else 1
            blk = Namespace()
            blk.conv1, blk.bn1 = conv_of(p + ".conv1", stride), bn_of(p + ".bn1")
            blk.conv2, blk.bn2 = conv_of(p + ".conv2", 1), bn_of(p + ".bn2")
            blk.shortcut = ((conv_of(p + ".shortcut.0", stride), bn_of(p + ".shortcut.1"))
                            if p + ".shortcut.0.weight" in tensors else None)
            blocks.append(blk)
            i += 1
        stages.append(blocks)
    return conv_of("stem.conv", 2), bn_of("stem.bn"), stages


def torchvision_resnet(path):
    """A torchvision ResNet with the weights of FILE (a chain from tools/export_torchscript.py)."""
    import torchvision

    saved = torch.jit.load(path, map_location="cpu")
    state = saved.state_dict()
    blocks = sum(1 for k in state if k.endswith(".conv1.weight") and k.startswith("layer"))
    bottleneck = any(k.endswith(".conv3.weight") for k in state)
    arch = {(8, False): "resnet18", (16, False): "resnet34", (16, True): "resnet50", (33, True): "resnet101",
            (50, True): "resnet152"}.get((blocks, bottleneck))
    if arch is None:
        sys.exit(f"peer_export: {path} is not a torchvision ResNet chain this script knows")
    num_classes = state["fc.weight"].shape[0]
    net = getattr(torchvision.models, arch)(num_classes=num_classes)
    net.load_state_dict(state)
    return net.eval(), arch


def build(e, head, model_path, x):
    v = e.input(x)
    if head == "fmnist":
        stem_conv, stem_bn, stages = fmnist_modules(model_path)
        v = e.conv(v, stem_conv, stem_bn, relu=True)
        for blocks in stages:
            for blk in blocks:
                v = basic_block(e, v, blk, "shortcut")
        return v, "resnet_fmnist stem..stage3"
    net, arch = torchvision_resnet(model_path)
    v = e.conv(v, net.conv1, net.bn1, relu=True)
    v = e.maxpool(v, 3, 2, 1)
    if head == "resnet_stem":
        return v, f"{arch} conv1..maxpool"
    if head == "resnet_to_layer2":
        if arch not in ("resnet18", "resnet34"):
            sys.exit("peer_export: resnet_to_layer2 is written for BasicBlock ResNets (resnet18, resnet34)")
        for layer in (net.layer1, net.layer2):
            for blk in layer:
                blk.shortcut = blk.downsample
                v = basic_block(e, v, blk, "shortcut")
        return v, f"{arch} conv1..layer2"
    sys.exit(f"peer_export: unknown head {head}")


def census(path):
    """Operator counts of an ONNX graph (the one ORT saved after its optimizations)."""
    m = onnx.load(path)
    ops = collections.Counter((n.domain or "ai.onnx") + ":" + n.op_type for n in m.graph.node)
    return {k.split(":", 1)[1] if k.startswith("ai.onnx:") else k: v for k, v in sorted(ops.items())}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--head", choices=["fmnist", "resnet_stem", "resnet_to_layer2"])
    p.add_argument("--model", help="models/resnet_fmnist.pt, or a torchvision chain from tools/export_torchscript.py")
    p.add_argument("--out", help="output directory")
    p.add_argument("--calibration", type=int, default=16, help="calibration images (the first is the timing input)")
    p.add_argument("--census", help="print the operator counts of this ONNX file as JSON and exit")
    a = p.parse_args()
    if a.census:
        print(json.dumps(census(a.census)))
        return
    if not (a.head and a.model and a.out):
        p.error("--head, --model and --out are needed (or --census FILE)")
    torch.manual_seed(0)
    os.makedirs(a.out, exist_ok=True)
    with torch.no_grad():
        if a.head == "fmnist":
            # resnet_fmnist's normalisation (src/data/fashion_mnist.h, FashionMnistNormalization).
            images, mean, std = fmnist_train_images(a.calibration), [0.2860], [0.3530]
        else:
            images, mean, std = smooth_random_images(a.calibration, 3, 224, 224), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        x = (images / 255.0 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
        e = Emitter()
        out, what = build(e, a.head, a.model, x)
        for quantized, suffix in ((False, "float"), (True, "qdq")):
            onnx.save(e.model(f"{a.head}_{suffix}", x.shape[1:], out, quantized), os.path.join(a.out, f"{a.head}_{suffix}.onnx"))
        x[:1].numpy().astype("<f4").tofile(os.path.join(a.out, f"{a.head}_input.bin"))
        out.f[:1].numpy().astype("<f4").tofile(os.path.join(a.out, f"{a.head}_ref_float.bin"))
        out.q[:1].numpy().astype("<f4").tofile(os.path.join(a.out, f"{a.head}_ref_qdq.bin"))
    info = {"head": a.head, "what": what, "input": list(x.shape[1:]), "output": list(out.f.shape[1:]),
            "convs": e.ops["conv"], "adds": e.ops["add"], "maxpools": e.ops["maxpool"],
            "output_scale": float(out.scale), "calibration_images": a.calibration}
    with open(os.path.join(a.out, f"{a.head}.json"), "w") as f:
        json.dump(info, f)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
