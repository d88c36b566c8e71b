import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeModel, exportModelForValues } from '../src/onnx/model-io.js';
import { captureValues, forEachCapture } from '../src/runtime/capture.js';
import { createSessionForValues, runOnce, syntheticInputs } from '../src/runtime/ort.js';
import { MODELS } from './helpers.js';

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
