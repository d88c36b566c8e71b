import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeModel } from '../src/onnx/model-io.js';
import { captureValues, forEachCapture } from '../src/runtime/capture.js';
import { runOnce, syntheticInputs } from '../src/runtime/ort.js';
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
