// Every pass family on a PyTorch export with dynamic axes and int64 shape arithmetic
// (test/fixtures/video-attn-dynamic): the rewritten model runs at a batch size and a frame count
// other than the export's, matches the original, and its shape subgraph (Shape, Gather, Unsqueeze,
// Concat, int64 Mul/Div/Add and their Constants) is exactly the original's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Value as TBValue } from '@sinclair/typebox/value';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { getConstant } from '../src/onnx/constants.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { inferElemTypes } from '../src/onnx/elem-types.js';
import type { Model, Node } from '../src/onnx/ir.js';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { readNumbers } from '../src/onnx/tensor-data.js';
import { PASSES } from '../src/passes/index.js';
import { ChangeLog, fixedPassContext } from '../src/pipeline/pass.js';
import { ort, runOnce, type Feeds } from '../src/runtime/ort.js';
import { ROOT, readModel } from './helpers.js';

const DIR = join(ROOT, 'test/fixtures/video-attn-dynamic');
const BYTES = readModel(join(DIR, 'video-attn-dynamic.onnx'));
const MODEL = decodeModel(BYTES);
const batches = (file: string, batchSize: number) => [...batchesFromArrays(MODEL, readArraysFile(join(DIR, file), MODEL), { batchSize, maxSamples: 32 })];
const CALIB_6 = batches('calib-32.npz', 8);
const EVALUATION = batches('eval-16.npz', 16);

/** The export ran at batch 2 and 6 frames; these inputs use other sizes of both dynamic axes. */
function clips(from6: Feeds, batch: number, frames: number): Feeds {
  const src = from6.clip!;
  const [, , t, h, w] = src.dims as number[];
  const frame = h! * w!;
  const data = new Float32Array(batch * frames * frame);
  const data6 = src.data as Float32Array;
  // clip i, frame f: the eval clip i's frames played forward then back (smooth motion, any length)
  for (let i = 0; i < batch; i++) {
    for (let f = 0; f < frames; f++) {
      const k = f % (2 * t! - 2);
      const sf = k < t! ? k : 2 * t! - 2 - k;
      data.set(data6.subarray((i * t! + sf) * frame, (i * t! + sf + 1) * frame), (i * frames + f) * frame);
    }
  }
  return { clip: new ort.Tensor('float32', data, [batch, 1, frames, h!, w!]) };
}
/** Calibration covers the frame counts the model will see (ranges and refits depend on the length). */
const CALIBRATION = [...CALIB_6, clips(CALIB_6[0]!, 8, 9), clips(CALIB_6[1]!, 8, 7)];
const CHECKS: Feeds[] = [EVALUATION[0]!, clips(EVALUATION[0]!, 5, 9), clips(EVALUATION[0]!, 1, 7)];

/** Names of the nodes that compute int64 values in the original (type inference on plain ONNX ops). */
const SHAPE_NODE_NAMES = (() => {
  const types = inferElemTypes(MODEL);
  return new Set(MODEL.graph.nodes.filter((n) => n.outputs.length > 0 && n.outputs.every((v) => v && types.get(v) === DT.INT64)).map(nodeName));
})();

function nodeName(n: Node): string {
  return n.name || n.outputs[0]!.name;
}

/**
 * The shape subgraph: for each of the original's int64 nodes, found by name, its op, attributes,
 * the values of its int64 constant inputs (Constant nodes are checked through them) and the names
 * of the shape nodes it reads. A float tensor whose shape is read may be rewritten (a
 * DequantizeLinear in front of it): only its role counts.
 */
function shapeSubgraph(model: Model): string[] {
  const byName = new Map(model.graph.nodes.map((n) => [nodeName(n), n]));
  const sigs: string[] = [];
  for (const name of SHAPE_NODE_NAMES) {
    const n = byName.get(name);
    if (!n) {
      sigs.push(`${name}: missing`);
      continue;
    }
    if (n.opType === 'Constant') continue;
    const attrs = n.attributes.map((a) => `${a.proto.name}=${a.proto.i}/${a.proto.ints.join(',')}/${a.proto.t ? readNumbers(a.proto.t).join(',') : ''}`).join(';');
    const inputs = n.inputs.map((v) => {
      if (!v) return '-';
      const c = getConstant(v);
      if (c) return c.dataType === DT.INT64 ? `[${readNumbers(c).join(',')}]` : `const ${c.dataType}`;
      return v.producer && SHAPE_NODE_NAMES.has(nodeName(v.producer)) ? nodeName(v.producer) : 'tensor';
    });
    sigs.push(`${name}: ${n.opType}(${inputs.join(' ')}){${attrs}}`);
  }
  return sigs.sort();
}

const ORIGINAL_SHAPE_NODES = shapeSubgraph(MODEL);

test('the fixture does its shape arithmetic in int64, with the ops of a real export', () => {
  const ops = new Set(MODEL.graph.nodes.filter((n) => SHAPE_NODE_NAMES.has(nodeName(n))).map((n) => n.opType));
  for (const op of ['Shape', 'Gather', 'Unsqueeze', 'Concat', 'Mul', 'Div', 'Add', 'Constant']) assert.ok(ops.has(op), `no int64 ${op} in the fixture`);
  assert.deepEqual(MODEL.graph.inputs[0]!.shape, ['batch', 1, 'frames', 16, 16]);
});

/**
 * Each family with settings that change the model; minimum SQNR (dB) of the logits against the original,
 * 5–10 dB under what it measures (a broken rewrite lands near 0 dB). Random weights: pruning costs more than on a trained model.
 */
const CASES: { step: Record<string, unknown> & { pass: string }; minSqnrDb: number }[] = [
  { step: { pass: 'quantize.static' }, minSqnrDb: 25 },
  { step: { pass: 'quantize.dynamic', opTypes: ['MatMul', 'Gemm', 'Conv'] }, minSqnrDb: 30 },
  { step: { pass: 'quantize.weights', bits: 8 }, minSqnrDb: 30 },
  { step: { pass: 'convert.fp16' }, minSqnrDb: 55 },
  { step: { pass: 'prune.structured', ratio: 0.25, recover: false }, minSqnrDb: 35 },
  { step: { pass: 'prune.magnitude', sparsity: 0.3 }, minSqnrDb: 10 },
  { step: { pass: 'prune.nm', n: 2, m: 4 }, minSqnrDb: 5 },
  { step: { pass: 'factorize.svd', rank: 0.75, requireSpeedup: false }, minSqnrDb: 25 },
  { step: { pass: 'factorize.tucker', rank: 0.75, requireSpeedup: false }, minSqnrDb: 30 },
  { step: { pass: 'factorize.cp', rank: 0.75, requireSpeedup: false, iterations: 5 }, minSqnrDb: 40 },
];

test('every pass family has a case', () => {
  const families = new Set(Object.keys(PASSES));
  assert.deepEqual([...families].filter((p) => !CASES.some((c) => c.step.pass === p)), []);
});

for (const { step, minSqnrDb } of CASES) {
  test(`${step.pass} on a dynamic-axes export: runs at other batch sizes and frame counts, shape subgraph untouched`, async (t) => {
    const def = PASSES[step.pass]!;
    const changes = new ChangeLog();
    const ctx = fixedPassContext({ samples: CALIBRATION, evaluation: EVALUATION, calibration: true, changes });
    const out = await def.run(MODEL, TBValue.Default(def.schema, structuredClone(step)) as never, ctx);
    assert.ok(changes.rewritten.length + changes.added.length > 0, `${step.pass} changed nothing: ${JSON.stringify(changes.skipped.slice(0, 3))}`);
    assert.deepEqual(shapeSubgraph(out), ORIGINAL_SHAPE_NODES, 'the int64 shape subgraph changed');
    assert.deepEqual(out.graph.inputs[0]!.shape, ['batch', 1, 'frames', 16, 16], 'the input lost its dynamic axes');
    const bytes = encodeModel(out);
    for (const feeds of CHECKS) {
      const [ref, cand] = await Promise.all([runOnce(BYTES, feeds), runOnce(bytes, feeds)]);
      const dims = feeds.clip!.dims;
      assert.deepEqual(cand.logits!.dims, ref.logits!.dims);
      const f = fidelity(ref.logits!.data as Float32Array, Float32Array.from(cand.logits!.data as Float32Array));
      t.diagnostic(`${step.pass} [${dims.join(',')}]: SQNR ${f.sqnrDb.toFixed(1)} dB`);
      assert.ok(f.sqnrDb >= minSqnrDb, `${step.pass} at clip [${dims.join(',')}]: SQNR ${f.sqnrDb.toFixed(1)} dB < ${minSqnrDb} dB`);
    }
  });
}
