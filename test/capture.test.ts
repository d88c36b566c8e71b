import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeModel, exportModelForValues } from '../src/onnx/model-io.js';
import { CAPTURE_BYTES_ENV, captureValues, forEachCapture, planCapture } from '../src/runtime/capture.js';
import { createSessionForValues, runOnce, sessionRoutes, syntheticInputs } from '../src/runtime/ort.js';
import { calibrate } from '../src/quant/calibration.js';
import { inferElemTypes } from '../src/onnx/elem-types.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import type { Model, Value } from '../src/onnx/ir.js';
import { join } from 'node:path';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { MODELS, ROOT } from './helpers.js';

test('capture: intermediate values and outputs equal what onnxruntime computes, batch by batch', async () => {
  const bytes = readFileSync(MODELS.fmnist);
  const model = decodeModel(bytes);
  const feeds = [1, 2].map((seed) => syntheticInputs(model, { batch: 3, seed }));
  const convOut = model.graph.nodes.find((n) => n.opType === 'Conv')!.outputs[0]!;
  const logits = model.graph.outputs[0]!;
  const captured = await captureValues(model, feeds, [convOut, logits]);
  assert.equal(captured.get(convOut)!.length, 2);
  assert.equal(captured.get(convOut)![0]!.dims[0], 3);
  const direct = await runOnce(bytes, feeds[1]!, { graphOptimizationLevel: 'disabled' });
  assert.deepEqual(Array.from(captured.get(logits)![1]!.data as Float32Array), Array.from(direct[logits.name]!.data as Float32Array));
  // the model itself is unchanged by capturing
  assert.equal(model.graph.outputs.length, 1);
  let batches = 0;
  await forEachCapture(model, feeds, [model.graph.inputs[0]!], (c, i, f) => {
    assert.equal(c.get(model.graph.inputs[0]!), f[model.graph.inputs[0]!.name]);
    batches = i + 1;
  });
  assert.equal(batches, 2);
});

test('createSessionForValues: only the nodes the values need run, and they compute the same values as the whole model', async () => {
  const model = decodeModel(readFileSync(MODELS.fmnist));
  const feeds = syntheticInputs(model, { batch: 2, seed: 3 });
  const convs = model.graph.nodes.filter((n) => n.opType === 'Conv');
  const early = convs[1]!.outputs[0]!;
  const proto = exportModelForValues(model, [early]);
  assert.deepEqual(proto.graph!.output.map((o) => o.name), [early.name]);
  assert.ok(proto.graph!.node.length < model.graph.nodes.length / 2, `${proto.graph!.node.length} of ${model.graph.nodes.length} nodes`);
  assert.ok(proto.graph!.initializer.length < model.graph.initializers.length);
  const cut = await createSessionForValues(model, [early], { graphOptimizationLevel: 'disabled' });
  const whole = await createSessionForValues(model, [early, ...model.graph.outputs], { graphOptimizationLevel: 'disabled' });
  try {
    const a = await cut.run(feeds);
    const b = await whole.run(feeds);
    assert.deepEqual(Object.keys(a), [early.name]);
    assert.deepEqual(Array.from(a[early.name]!.data as Float32Array), Array.from(b[early.name]!.data as Float32Array));
    const direct = await runOnce(model, feeds, { graphOptimizationLevel: 'disabled' });
    assert.deepEqual(Array.from(b[model.graph.outputs[0]!.name]!.data as Float32Array), Array.from(direct[model.graph.outputs[0]!.name]!.data as Float32Array));
  } finally {
    await cut.release();
    await whole.release();
  }
  assert.equal(model.graph.outputs.length, 1, 'the model is unchanged');
});

/** Sessions created while `f` runs with the capture budget at `mb` megabytes. */
async function withBudget<T>(mb: number, f: () => Promise<T>): Promise<{ result: T; sessions: number }> {
  const before = sessionRoutes.bytes;
  process.env[CAPTURE_BYTES_ENV] = String(mb);
  try {
    const result = await f();
    return { result, sessions: sessionRoutes.bytes - before };
  } finally {
    delete process.env[CAPTURE_BYTES_ENV];
  }
}

function floatActivations(model: Model): Value[] {
  const types = inferElemTypes(model);
  return model.graph.nodes.flatMap((n) => n.outputs.filter((v): v is Value => !!v && types.get(v) === DT.FLOAT));
}

test('grouped capture: under a tiny budget the values come in several groups, with exactly the statistics of one whole capture', async () => {
  const model = decodeModel(readFileSync(MODELS.fmnist));
  const feeds = [1, 2, 3].map((seed) => syntheticInputs(model, { batch: 4, seed }));
  const values = floatActivations(model);
  const tiny = 0.02; // 20 kB: an activation or two per group
  // the plan: one group at the default budget, many at the tiny one, every value in exactly one
  const whole = await planCapture(model, feeds, values);
  await whole.session?.release();
  assert.equal(whole.groups.length, 1);
  const split = await withBudget(tiny, () => planCapture(model, feeds, values));
  await split.result.session?.release();
  assert.ok(split.result.groups.length > 3, `${split.result.groups.length} groups`);
  assert.deepEqual(split.result.groups.flat().map((v) => v.name).sort(), values.map((v) => v.name).sort());

  // calibration (both sweeps: min/max, then histograms) gives bit-identical ranges
  for (const method of ['minmax', 'percentile', 'mse'] as const) {
    const a = await calibrate(model, values, feeds, method, 99.9);
    const b = await withBudget(tiny, () => calibrate(model, values, feeds, method, 99.9));
    assert.ok(b.sessions > 3, `${method}: ${b.sessions} sessions`);
    assert.equal(a.size, values.length);
    assert.deepEqual([...b.result].map(([v, r]) => [v.name, r]).sort(), [...a].map(([v, r]) => [v.name, r]).sort(), method);
  }

  // the captured tensors themselves, batch by batch in order
  const all = await captureValues(model, feeds, values);
  const grouped = await withBudget(tiny, () => captureValues(model, feeds, values));
  for (const v of values) {
    assert.equal(grouped.result.get(v)!.length, feeds.length, v.name);
    grouped.result.get(v)!.forEach((t, b) => assert.deepEqual(t.data, all.get(v)![b]!.data, `${v.name} batch ${b}`));
  }

  // a set of values stays together, whatever the budget; each value sees its batches in order
  const [first, , third] = values;
  const last = values[values.length - 1]!;
  const seen = new Map<Value, number[]>();
  await withBudget(tiny, () =>
    forEachCapture(model, feeds, [[first!, last], third!], (captured, b) => {
      assert.equal(captured.has(first!), captured.has(last), 'a set arrives whole');
      for (const v of captured.keys()) seen.set(v, [...(seen.get(v) ?? []), b]);
    }),
  );
  for (const v of [first!, third!, last]) assert.deepEqual(seen.get(v), [0, 1, 2], v.name);
});

test('grouped capture on a model whose shape arithmetic leaves dims open: sizes estimated, same ranges', async () => {
  const dir = join(ROOT, 'test/fixtures/video-attn-dynamic');
  const model = decodeModel(readFileSync(join(dir, 'video-attn-dynamic.onnx')));
  const feeds = [...batchesFromArrays(model, readArraysFile(join(dir, 'calib-32.npz'), model), { batchSize: 8, maxSamples: 24 })];
  const values = floatActivations(model);
  const a = await calibrate(model, values, feeds, 'percentile', 99.9);
  const b = await withBudget(0.01, () => calibrate(model, values, feeds, 'percentile', 99.9));
  assert.ok(b.sessions > 3, `${b.sessions} sessions`);
  assert.deepEqual([...b.result].map(([v, r]) => [v.name, r]).sort(), [...a].map(([v, r]) => [v.name, r]).sort());
});
