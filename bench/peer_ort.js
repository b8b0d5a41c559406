// Times one ONNX graph in ONNX Runtime (the npm package onnxruntime-node, its CPU provider) at
// batch 1 on one thread (or THREADS intra-op threads), for the peer benchmark
// (bench/peer_bench.sh). Prints one JSON line.
//
//   node bench/peer_ort.js ORT_DIR MODEL.onnx INPUT.bin SHAPE RUNS WARMUP REF.bin OPTIMIZED.onnx [THREADS]
//
// ORT_DIR: the folder holding node_modules/onnxruntime-node (installed by peer_bench.sh, never a
// dependency of splitinfer). INPUT.bin: float32 input, SHAPE like 1x3x224x224. REF.bin: the output
// the graph should give (from peer_export.py); the JSON reports the largest difference. The graph
// ORT runs after its optimizations is saved to OPTIMIZED.onnx so that its operators can be counted
// (did QDQ become QLinearConv?).
//
// Each timed run is one session.run() on a fresh input tensor wrapper, as a caller would do it;
// the binding's own cost per run is measured on an Identity graph of the same input and reported
// beside the median (`binding_ms`), not subtracted.
'use strict';
const fs = require('fs');
const path = require('path');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}
function readFloats(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

// Warm-up: at least `warmup` runs and at least WARMUP_S seconds. On the 2-core EPYC VM the first
// hundred or so runs of the ResNet-50 stem were more than twice as slow as every later one (the
// process's memory settling, it seems); a node that serves for hours sees the latter.
const WARMUP_S = 2;

async function timeSession(ort, session, input, dims, runs, warmup) {
  const name = session.inputNames[0];
  const run = async () => {
    const t0 = process.hrtime.bigint();
    const out = await session.run({[name]: new ort.Tensor('float32', input, dims)});
    return {ms: Number(process.hrtime.bigint() - t0) / 1e6, out: out[session.outputNames[0]]};
  };
  const start = process.hrtime.bigint();
  let warmupRuns = 0;
  while (warmupRuns < warmup || Number(process.hrtime.bigint() - start) / 1e9 < WARMUP_S) {
    await run();
    ++warmupRuns;
  }
  let last = null;
  const ms = [];
  for (let i = 0; i < runs; ++i) {
    const r = await run();
    ms.push(r.ms);
    last = r.out;
  }
  return {ms, last, warmupRuns};
}

// An Identity graph with one float input of these dims, as ONNX protobuf bytes (hand-encoded:
// the npm package has no model builder, and the graph is four fields).
function identityModel(dims) {
  const varint = (n) => { const b = []; do { let x = n & 0x7f; n = Math.floor(n / 128); if (n) x |= 0x80; b.push(x); } while (n); return b; };
  const field = (num, bytes) => [...varint((num << 3) | 2), ...varint(bytes.length), ...bytes];
  const str = (num, s) => field(num, [...Buffer.from(s)]);
  const vint = (num, n) => [...varint(num << 3), ...varint(n)];
  const shape = dims.flatMap((d) => field(1, vint(1, d)));                     // TensorShapeProto.dim
  const tensorType = [...vint(1, 1), ...field(2, shape)];                        // elem_type FLOAT, shape
  const valueInfo = (n) => [...str(1, n), ...field(2, field(1, tensorType))];   // name, type.tensor_type
  const node = [...str(1, 'x'), ...str(2, 'y'), ...str(4, 'Identity')];        // input, output, op_type
  const graph = [...field(1, node), ...str(2, 'identity'), ...field(11, valueInfo('x')), ...field(12, valueInfo('y'))];
  const opset = [...str(1, ''), ...vint(2, 13)];
  return Uint8Array.from([...vint(1, 8), ...field(7, graph), ...field(8, opset)]);  // ir_version 8
}

async function main() {
  const [ortDir, model, inputFile, shape, runsText, warmupText, refFile, optimizedFile, threadsText] = process.argv.slice(2);
  const threads = Number(threadsText || 1);
  if (!optimizedFile) {
    console.error('usage: node bench/peer_ort.js ORT_DIR MODEL.onnx INPUT.bin SHAPE RUNS WARMUP REF.bin OPTIMIZED.onnx [THREADS]');
    process.exit(2);
  }
  const ort = require(path.resolve(ortDir, 'node_modules', 'onnxruntime-node'));
  const version = require(path.resolve(ortDir, 'node_modules', 'onnxruntime-node', 'package.json')).version;
  const dims = shape.split('x').map(Number);
  const input = readFloats(inputFile);
  if (input.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`${inputFile}: ${input.length} floats, not ${shape}`);
  const options = {
    executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', optimizedModelFilePath: optimizedFile,
  };
  const session = await ort.InferenceSession.create(model, options);
  const runs = Number(runsText), warmup = Number(warmupText);
  const {ms, last, warmupRuns} = await timeSession(ort, session, input, dims, runs, warmup);
  const identity = await ort.InferenceSession.create(identityModel(dims), {intraOpNumThreads: 1, interOpNumThreads: 1});
  const binding = await timeSession(ort, identity, input, dims, runs, warmup);
  const ref = readFloats(refFile);
  if (ref.length !== last.data.length) throw new Error(`${refFile}: ${ref.length} floats, output has ${last.data.length}`);
  let maxDiff = 0, maxRef = 0, sumDiff = 0;
  for (let i = 0; i < ref.length; ++i) {
    const d = Math.abs(ref[i] - last.data[i]);
    maxDiff = Math.max(maxDiff, d);
    sumDiff += d;
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  console.log(JSON.stringify({
    ort_version: version, model: path.basename(model), threads, runs, warmup_runs: warmupRuns,
    median_ms: median(ms), p95_ms: percentile(ms, 0.95), binding_ms: median(binding.ms),
    output_dims: last.dims, max_abs_diff: maxDiff, mean_abs_diff: sumDiff / ref.length, max_abs_ref: maxRef,
  }));
}

main().catch((e) => { console.error(`peer_ort: ${e.message}`); process.exit(1); });
