#!/usr/bin/python3
"""An independent client for `splitinfer serve`: Python's grpcio with stubs generated from
src/runtime/proto/inference.proto, nothing from splitinfer's C++ code.

It does what a stock Open Inference Protocol client does: liveness, readiness, metadata, the
standard grpc.health.v1 check, server reflection, and ModelInfer with plain inputs (a UINT8
image tensor and PNG bytes), then checks an error case. docs/wire_protocol.md walks through it.

    /usr/bin/python3 tools/python/oip_client.py --server 127.0.0.1:8001 --model fmnist_best [--images 32]

Needs Debian's python3-grpcio and python3-protobuf, protoc (protobuf-compiler) and
grpc_python_plugin (protobuf-compiler-grpc). Exits non-zero when a check fails.
"""
import argparse
import gzip
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "src", "runtime", "proto")
FMNIST = "/usr/share/datasets/fashion-mnist"


def load_stubs():
    """Generates inference_pb2{,_grpc}.py into a temporary directory and imports them."""
    out = tempfile.mkdtemp(prefix="oip_stubs_")
    subprocess.run(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_out={out}",
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", "inference.proto"], check=True)
    sys.path.insert(0, out)
    import inference_pb2  # noqa: E402
    import inference_pb2_grpc  # noqa: E402
    return inference_pb2, inference_pb2_grpc


def fmnist_test(n):
    with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
        f.read(16)
        pixels = f.read(n * 28 * 28)
    with gzip.open(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")) as f:
        f.read(8)
        labels = list(f.read(n))
    return [pixels[i * 784:(i + 1) * 784] for i in range(n)], labels


def png_grey(pixels, width, height):
    """A minimal 8-bit greyscale PNG (standard library only)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def pb_fields(data):
    """Decodes one level of a protobuf message: yields (field number, wire type, value)."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            length, i = varint(data, i)
            value, i = data[i:i + length], i + length
        else:
            raise ValueError(f"wire type {wire} not expected here")
        yield field, wire, value


def varint(data, i):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def raw_bytes_tensor(elements):
    """Triton's raw BYTES form: a 4-byte little-endian length before each element."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Adds 'authorization: Bearer <token>' to every call."""

    def __init__(self, token):
        self._metadata = [("authorization", "Bearer " + token)]

    def intercept_unary_unary(self, continuation, details, request):
        details = details._replace(metadata=list(details.metadata or []) + self._metadata)
        return continuation(details, request)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default="127.0.0.1:8001")
    ap.add_argument("--model", default="fmnist_best")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--min-top1", type=float, default=80.0, help="fail below this accuracy (percent)")
    ap.add_argument("--tls-ca", help="PEM root certificate: connect with TLS")
    ap.add_argument("--tls-cert", help="PEM client certificate, for a server that requires one (with --tls-key)")
    ap.add_argument("--tls-key", help="PEM key of --tls-cert")
    ap.add_argument("--token-file", help="bearer token (first line)")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("give --tls-cert and --tls-key together")
    if args.tls_cert and not args.tls_ca:
        ap.error("a client certificate needs TLS: give --tls-ca")
    pb, pb_grpc = load_stubs()
    if args.tls_ca:
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(args.tls_ca),
            private_key=read(args.tls_key) if args.tls_key else None,
            certificate_chain=read(args.tls_cert) if args.tls_cert else None)
        channel = grpc.secure_channel(args.server, creds)
    else:
        channel = grpc.insecure_channel(args.server)
    grpc.channel_ready_future(channel).result(timeout=30)
    if args.token_file:
        with open(args.token_file) as f:
            token = f.readline().strip()
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    check(stub.ServerLive(pb.ServerLiveRequest()).live, "ServerLive")
    check(stub.ServerReady(pb.ServerReadyRequest()).ready, "ServerReady")
    check(stub.ModelReady(pb.ModelReadyRequest(name=args.model)).ready, f"ModelReady {args.model}")
    md = stub.ModelMetadata(pb.ModelMetadataRequest(name=args.model))
    params = {k: v.WhichOneof("parameter_choice") and getattr(v, v.WhichOneof("parameter_choice"))
              for k, v in md.parameters.items()}
    print("     metadata:", md.name, md.platform, [(t.name, t.datatype, list(t.shape)) for t in md.inputs], params)
    check(params.get("protocol") == "splitinfer", "ModelMetadata carries the splitinfer handshake")

    # grpc.health.v1.Health/Check with an empty HealthCheckRequest; status 1 = SERVING.
    health = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                 response_deserializer=lambda b: b)(b"")
    check(dict((f, v) for f, _, v in pb_fields(health)).get(1) == 1, "grpc.health.v1 Check: SERVING")

    # Server reflection: list_services (field 7) -> list_services_response (6) -> service (1) -> name (1).
    reflect = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
    services = []
    for reply in reflect(iter([b"\x3a\x00"])):
        for f, _, v in pb_fields(reply):
            if f == 6:
                services += [dict((g, w) for g, _, w in pb_fields(s))[1].decode()
                             for h, _, s in pb_fields(v) if h == 1]
    print("     reflection:", services)
    check("inference.GRPCInferenceService" in services, "reflection lists inference.GRPCInferenceService")

    images, labels = fmnist_test(args.images)
    # 1) a UINT8 tensor [N, 1, 28, 28] in raw_input_contents, as tritonclient sends it.
    req = pb.ModelInferRequest(model_name=args.model, id="uint8")
    t = req.inputs.add(name="image", datatype="UINT8", shape=[len(images), 1, 28, 28])
    req.raw_input_contents.append(b"".join(images))
    req.outputs.add(name="scores")
    resp = stub.ModelInfer(req)
    n, classes = resp.outputs[0].shape
    scores = struct.unpack(f"<{n * classes}f", resp.raw_output_contents[0])
    pred = [max(range(classes), key=lambda c: scores[i * classes + c]) for i in range(n)]
    top1 = 100.0 * sum(p == y for p, y in zip(pred, labels)) / n
    check(top1 >= args.min_top1, f"UINT8 tensor input: top-1 {top1:.1f}% on {n} test images")

    # 2) PNG bytes, one BYTES element per image, with the top-3 classes as strings.
    req = pb.ModelInferRequest(model_name=args.model, id="png")
    pngs = [png_grey(img, 28, 28) for img in images[:4]]
    req.inputs.add(name="image_png", datatype="BYTES", shape=[len(pngs)])
    req.raw_input_contents.append(raw_bytes_tensor(pngs))
    req.parameters["top_k"].int64_param = 3
    req.outputs.add(name="classes")
    png_request = req
    resp = stub.ModelInfer(req)
    raw, classes_out, i = resp.raw_output_contents[0], [], 0
    while i < len(raw):
        (length,), i = struct.unpack_from("<I", raw, i), i + 4
        classes_out.append(raw[i:i + length].decode())
        i += length
    print("     image_png top-3 of image 0:", classes_out[:3], "label", labels[0])
    check(len(classes_out) == 12 and int(classes_out[0].split(":")[1]) == pred[0],
          "PNG input agrees with the tensor input")
    check(resp.parameters["server_us"].int64_param > 0, "response carries the server's timing")

    # 3) errors are status codes with reasons.
    try:
        stub.ModelInfer(pb.ModelInferRequest(model_name="no_such_model"))
        check(False, "unknown model is refused")
    except grpc.RpcError as e:
        print("     ", e.code(), e.details())
        check(e.code() == grpc.StatusCode.NOT_FOUND, "unknown model: NOT_FOUND")
    try:
        req = pb.ModelInferRequest(model_name=args.model)
        req.inputs.add(name="frame", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"\xf5\x1a\x01")
        stub.ModelInfer(req)
        check(False, "truncated frame is refused")
    except grpc.RpcError as e:
        print("     ", e.code(), e.details())
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "truncated frame: INVALID_ARGUMENT")
    # 4) a session request before any opening frame is that message's error; the stream goes on
    #    and answers a PNG request after it (docs/wire_protocol.md, "Sessions").
    if params.get("sessions") is True:
        early = pb.ModelInferRequest()
        early.raw_input_contents.append(b"\xf6\x00\x00\x00" + b"\x00" * 8)
        answers = list(stub.ModelStreamInfer(iter([early, png_request])))
        check(len(answers) == 2 and "SESSION_NOT_OPEN" in answers[0].error_message
              and not answers[1].error_message and len(answers[1].infer_response.raw_output_contents) >= 1,
              "stream: a session frame before the opening frame is SESSION_NOT_OPEN, the stream goes on")
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
