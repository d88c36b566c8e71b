// Every pass takes a model and returns a new one, and never changes its input: each runs here on a
// deep-frozen model (a write anywhere in it throws in strict mode), then the input must still encode
// to its bytes, its typed arrays (which cannot be frozen) must hash the same, and the result must
// share no graph, node, value or initializer with it (a later step would otherwise edit the input).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Value as TBValue } from '@sinclair/typebox/value';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../src/data/samples.js';
import type { Model } from '../src/onnx/ir.js';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { PASSES } from '../src/passes/index.js';
import { fixedPassContext } from '../src/pipeline/pass.js';
import type { Feeds } from '../src/runtime/ort.js';
import { FMNIST, MODELS, ROOT, readModel } from './helpers.js';

const FIXTURES = {
  cnn: readModel(MODELS.fmnist),
  vit: readModel(join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx')),
};

/** Realistic configs: every pass at least once, the data-driven branches (bias correction, GPTQ, sensitivity, recovery, refit) on. */
const CASES: { fixture: keyof typeof FIXTURES; step: Record<string, unknown> & { pass: string } }[] = [
  { fixture: 'cnn', step: { pass: 'convert.fp16' } },
  { fixture: 'vit', step: { pass: 'convert.fp16' } },
  { fixture: 'vit', step: { pass: 'quantize.dynamic', otherWeights: 'int8' } },
  { fixture: 'cnn', step: { pass: 'quantize.dynamic', opTypes: ['MatMul', 'Gemm', 'Conv'] } },
  { fixture: 'cnn', step: { pass: 'quantize.static', biasCorrection: true, sensitivity: { minSqnrDb: 60, maxExcluded: 2 } } },
  { fixture: 'vit', step: { pass: 'quantize.static', weightRounding: 'nearest' } },
  { fixture: 'cnn', step: { pass: 'quantize.weights', bits: 8, biasCorrection: true } },
  { fixture: 'vit', step: { pass: 'quantize.weights', bits: 4, biasCorrection: true } },
  { fixture: 'vit', step: { pass: 'factorize.svd', rank: 0.5, requireSpeedup: true, speedRounds: 2 } },
  { fixture: 'cnn', step: { pass: 'factorize.tucker', rank: 0.5, requireSpeedup: false, refine: true } },
  { fixture: 'cnn', step: { pass: 'factorize.cp', rank: 0.25, iterations: 3, requireSpeedup: false, refine: true } },
  { fixture: 'cnn', step: { pass: 'prune.magnitude', sparsity: 0.5, scope: 'global' } },
  { fixture: 'vit', step: { pass: 'prune.nm', n: 2, m: 4 } },
  { fixture: 'cnn', step: { pass: 'prune.structured', ratio: 0.3, importance: 'activation', steps: 2 } },
];

/** Freezes everything reachable from `root` through own properties, Map and Set entries; returns the typed arrays met (they cannot be frozen). */
function deepFreeze(root: unknown): ArrayBufferView[] {
  const seen = new Set<object>();
  const views: ArrayBufferView[] = [];
  const refuse = (kind: string) => () => {
    throw new TypeError(`a pass mutated a ${kind} of its input model`);
  };
  const visit = (x: unknown): void => {
    if ((typeof x !== 'object' && typeof x !== 'function') || x === null || seen.has(x)) return;
    seen.add(x);
    if (ArrayBuffer.isView(x)) {
      views.push(x);
      return;
    }
    if (typeof x === 'function') return; // methods live on prototypes; no own functions hold model state
    // freezing a Map or Set leaves its entries writable: shadow its mutators with ones that throw
    if (x instanceof Map) {
      for (const [k, v] of x) (visit(k), visit(v));
      for (const m of ['set', 'delete', 'clear']) Object.defineProperty(x, m, { value: refuse('Map') });
    } else if (x instanceof Set) {
      for (const v of x) visit(v);
      for (const m of ['add', 'delete', 'clear']) Object.defineProperty(x, m, { value: refuse('Set') });
    }
    for (const key of Reflect.ownKeys(x)) visit((x as Record<PropertyKey, unknown>)[key]);
    Object.freeze(x);
  };
  visit(root);
  return views;
}

const hashOf = (v: ArrayBufferView) => createHash('sha256').update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)).digest('hex');

/** Graphs, nodes, values and initializer tensors of a model. */
function irObjects(model: Model): Set<object> {
  const out = new Set<object>();
  for (const g of model.allGraphs()) {
    out.add(g);
    for (const n of g.nodes) {
      out.add(n);
      for (const v of [...n.inputs, ...n.outputs]) if (v) out.add(v);
    }
    for (const v of [...g.inputs, ...g.outputs, ...g.initializers, ...g.valueInfo]) {
      out.add(v);
      if (v.initializer) out.add(v.initializer);
    }
  }
  return out;
}

const feeds = new Map<string, { samples: Feeds[]; evaluation: Feeds[] }>();
/** Calibration on training images, evaluation (for sensitivity and recovery checks) on test images, with labels. */
function contextFor(fixture: keyof typeof FIXTURES) {
  if (!feeds.has(fixture)) {
    const model = decodeModel(FIXTURES[fixture]);
    const batches = (path: string) => [...batchesFromArrays(model, readArraysFile(path, model), { batchSize: 50, maxSamples: 200 })];
    feeds.set(fixture, { samples: batches(FMNIST.calibration), evaluation: batches(FMNIST.inputs) });
  }
  return fixedPassContext({ ...feeds.get(fixture)!, labels: Array.from(readLabelsFile(FMNIST.labels)).slice(0, 200), calibration: true });
}

test('every pass in PASSES has a purity case', () => {
  assert.deepEqual(Object.keys(PASSES).filter((p) => !CASES.some((c) => c.step.pass === p)), []);
});

for (const { fixture, step } of CASES) {
  test(`${step.pass} ${JSON.stringify(step).slice(step.pass.length + 11, -1) || '(defaults)'} on ${fixture}: returns a new model, the input is untouched`, async () => {
    const bytes = FIXTURES[fixture];
    const input = decodeModel(bytes);
    const before = irObjects(input);
    const views = deepFreeze(input);
    const hashes = views.map(hashOf);
    const def = PASSES[step.pass]!;
    const out = await def.run(input, TBValue.Default(def.schema, structuredClone(step)) as never, contextFor(fixture));
    assert.notEqual(out, input, 'the pass returned its input');
    assert.deepEqual(encodeModel(input), new Uint8Array(bytes), 'the input encodes to its original bytes');
    assert.deepEqual(views.map(hashOf), hashes, 'no typed array of the input changed');
    const shared = [...irObjects(out)].filter((o) => before.has(o));
    assert.equal(shared.length, 0, `the result shares ${shared.length} graphs/nodes/values/initializers with the input`);
  });
}
