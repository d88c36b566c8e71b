// The original's outputs kept for every step's comparison: in memory up to a budget, then in a temp
// file, read back the same; a step measured against them gets the numbers of running the original
// beside it (without its session alive next to the step's).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { ReferenceOutputs } from '../src/eval/reference-outputs.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { runPipeline } from '../src/pipeline/pipeline.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { ort, type Feeds } from '../src/runtime/ort.js';
import { FMNIST, MODELS, readModel } from './helpers.js';

const plain = (feeds: Feeds) => Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, { type: t.type, dims: [...t.dims], data: Array.from(t.data as ArrayLike<unknown>) }]));

describe('reference outputs', () => {
  it('batches past the memory budget go to a temp file and read back bit for bit, whatever their type', () => {
    const small: Feeds = { y: new ort.Tensor('float32', Float32Array.from([1, 2, 3]), [3]) };
    const large: Feeds = {
      y: new ort.Tensor('float32', Float32Array.from({ length: 40 }, (_, i) => i / 3), [4, 10]),
      ids: new ort.Tensor('int64', BigInt64Array.from([5n, -7n]), [2]),
      half: new ort.Tensor('float16', Uint16Array.from([0x3c00, 0xc000, 0x7bff]), [3]),
      mask: new ort.Tensor('bool', Uint8Array.from([1, 0]), [2]),
      names: new ort.Tensor('string', ['a', 'b'], [2]),
    };
    const store = new ReferenceOutputs(100, 1000);
    assert.ok(store.add(small), 'in memory');
    assert.ok(store.add(large), 'in the file');
    assert.ok(store.add({ y: new ort.Tensor('float32', new Float32Array(100), [100]) }), 'still within the file budget');
    assert.equal(store.add({ y: new ort.Tensor('float32', new Float32Array(200), [200]) }), false, 'past both budgets: not kept');
    assert.equal(store.length, 3);
    assert.deepEqual(plain(store.get(0)), plain(small));
    assert.deepEqual(plain(store.get(1)), plain(large));
    assert.ok(store.get(1).half!.data instanceof Uint16Array && store.get(1).ids!.data instanceof BigInt64Array);
    store.dispose();
    assert.throws(() => store.get(1), /kept for 0 batches/);
  });

  it('a step measured against kept outputs, all of them in the file, gets the numbers of running the original beside it', async () => {
    const bytes = readModel(MODELS.fmnist);
    const model = decodeModel(bytes);
    const samples = [...batchesFromArrays(model, readArraysFile(FMNIST.inputs, model), { batchSize: 25, maxSamples: 100 })];
    const candidate = (await runPipeline(bytes, { recipe: parseRecipe({ steps: [{ pass: 'quantize.weights' }], benchmark: { enabled: false } }), samples })).bytes;
    const baseline = await evaluateModels(bytes, bytes, samples, { keepReference: { memoryBytes: 0, diskBytes: 2 ** 30 } });
    const kept = baseline.referenceOutputs!;
    assert.equal(kept.length, samples.length);
    try {
      const cached = await evaluateModels(bytes, candidate, samples, { referenceOutputs: kept });
      const live = await evaluateModels(bytes, candidate, samples);
      assert.deepEqual(cached.fidelity, live.fidelity);
      assert.ok(Object.values(live.fidelity)[0]!.sqnrDb > 20);
    } finally {
      kept.dispose();
    }
  });
});
