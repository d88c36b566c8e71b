import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import type { Model, Node } from '../src/onnx/ir.js';
import { getConstant } from '../src/onnx/constants.js';
import { readFloat32, tensorDims } from '../src/onnx/tensor-data.js';
import { pruneMagnitudePass } from '../src/passes/prune-magnitude.js';
import { pruneNMPass } from '../src/passes/prune-nm.js';
import { DEFAULT_PRUNE_OPS } from '../src/prune/weights.js';
import { weightLayerOf } from '../src/onnx/weight-layers.js';
import { axisView, countZeros, nmViolations, pruneByMagnitude, pruneNM } from '../src/prune/sparsity.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { InvalidRecipeError } from '../src/errors.js';
import type { UnstructuredPruneStats } from '../src/prune/weights.js';
import { argmaxRows } from '../src/metrics/task.js';
import { runOnce, tensorToFloat32, type Feeds } from '../src/runtime/ort.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../src/data/samples.js';
import { FMNIST, MODELS, feedsFor, passContext, readModel } from './helpers.js';

type PassLike = typeof pruneMagnitudePass | typeof pruneNMPass;

async function prune(pass: PassLike, path: string, config: Record<string, unknown>) {
  const bytes = readModel(path);
  const full = TBValue.Default(pass.schema, { pass: pass.name, ...config }) as never;
  const ctx = passContext<UnstructuredPruneStats>([]);
  const model = await pass.run(decodeModel(bytes), full, ctx);
  verifyModel(model);
  return { bytes, model, out: encodeModel(model), log: ctx.changes };
}

interface Layer {
  node: Node;
  data: Float32Array;
  dims: number[];
}

/** Conv/Gemm/MatMul layers with a constant float weight, read back from the rewritten model. */
function layers(model: Model, minElements = 0): Layer[] {
  const out: Layer[] = [];
  for (const g of model.allGraphs())
    for (const node of g.nodes) {
      const layer = DEFAULT_PRUNE_OPS.includes(node.opType) ? weightLayerOf(node) : null;
      const t = getConstant(layer?.weight);
      if (!t || t.dataType !== 1) continue;
      const dims = tensorDims(t);
      if (dims.reduce((a, b) => a * b, 1) < minElements) continue;
      out.push({ node, data: readFloat32(t), dims });
    }
  return out;
}

function fmnistData(samples: number) {
  const model = decodeModel(readModel(MODELS.fmnist));
  const batches = [...batchesFromArrays(model, readArraysFile(FMNIST.inputs, model), { batchSize: 100, maxSamples: samples })];
  const labels = Array.from(readLabelsFile(FMNIST.labels), Number).slice(0, samples);
  return { batches, labels };
}

async function predictions(bytes: Uint8Array, batches: Feeds[]): Promise<number[]> {
  const preds: number[] = [];
  for (const feeds of batches) {
    const out = await runOnce(bytes, feeds);
    const y = tensorToFloat32(Object.values(out)[0]!);
    for (const x of y) assert.ok(Number.isFinite(x), 'finite outputs');
    preds.push(...argmaxRows(y, 10));
  }
  return preds;
}

describe('sparsity numerics', () => {
  it('zeroes exactly round(s·n) entries even with ties, across a pool', () => {
    const a = Float32Array.from([1, -1, 1, 2, 0.5, -0.5, 3, 1]);
    const b = Float32Array.from([1, 1, -1, 4]);
    const zeroed = pruneByMagnitude([a, b], 0.5); // 6 of 12: 0.5, -0.5, then 4 of the seven ±1 entries
    assert.equal(zeroed[0]! + zeroed[1]!, 6);
    assert.equal(countZeros(a) + countZeros(b), 6);
    assert.equal(a[4], 0);
    assert.equal(a[5], 0);
    assert.equal(a[6], 3);
    assert.equal(b[3], 4);
  });

  it('N:M keeps the N largest per group along the chosen axis', () => {
    // [2, 4, 2]: groups run along axis 1 for each (outer, inner)
    const w = Float32Array.from({ length: 16 }, (_, i) => (i % 3) - 1.5 + i / 100);
    const view = axisView([2, 4, 2], 1);
    assert.equal(pruneNM(w, view, 2, 4), 8);
    assert.equal(nmViolations(w, view, 2, 4), 0);
    assert.equal(nmViolations(Float32Array.from({ length: 16 }, () => 1), view, 2, 4), 4);
  });
});

describe('prune.magnitude', () => {
  it('fmnist local 50%: every selected layer exactly 50%, excludeNodes and override honoured, model runs', async () => {
    const before = layers(decodeModel(readModel(MODELS.fmnist)), 1024);
    const skipName = before[1]!.node.name;
    const overName = before[2]!.node.name;
    assert.ok(skipName && overName, 'fmnist nodes are named');
    const { model, out, log } = await prune(pruneMagnitudePass, MODELS.fmnist, { sparsity: 0.5, excludeNodes: [skipName], overrides: { [overName]: 0.8 } });
    const after = layers(model, 1024);
    assert.equal(after.length, before.length);
    for (const [i, l] of after.entries()) {
      const want = l.node.name === skipName ? countZeros(before[i]!.data) : Math.round((l.node.name === overName ? 0.8 : 0.5) * l.data.length);
      assert.equal(countZeros(l.data), want, `${l.node.name}: zeros`);
    }
    // small weights (< minElements) are untouched
    const small = layers(model).filter((l) => l.data.length < 1024);
    for (const l of small) assert.ok(countZeros(l.data) < l.data.length / 2);
    assert.equal(log.stats.prunedLayers, before.length - 1);
    assert.ok(log.skipped.some((s) => s.node === skipName && /in excludeNodes/.test(s.reason)));
    assert.ok(typeof log.stats[`sparsity:${overName}`] === 'number' && Math.abs(Number(log.stats[`sparsity:${overName}`]) - 0.8) < 1e-4);
    assert.ok(log.warnings.some((w) => /not .*faster|neither smaller on disk nor faster/.test(w)));
    assert.ok(Number(log.stats.gzipBytesAfter) < Number(log.stats.gzipBytesBefore), 'zeros compress');
    const { batches } = fmnistData(100);
    const preds = await predictions(out, batches);
    assert.equal(preds.length, 100);
  });

  it('fmnist global 60%: exact overall count, layers differ; 10% local keeps top-1 agreement', async () => {
    const { model, log } = await prune(pruneMagnitudePass, MODELS.fmnist, { sparsity: 0.6, scope: 'global' });
    const after = layers(model, 1024);
    const total = after.reduce((s, l) => s + l.data.length, 0);
    const zeros = after.reduce((s, l) => s + countZeros(l.data), 0);
    assert.equal(zeros, Math.round(0.6 * total));
    assert.equal(log.stats.zeroWeights, zeros);
    const perLayer = after.map((l) => countZeros(l.data) / l.data.length);
    assert.ok(Math.max(...perLayer) - Math.min(...perLayer) > 0.05, 'one global threshold gives uneven per-layer sparsity');

    const { bytes, out } = await prune(pruneMagnitudePass, MODELS.fmnist, { sparsity: 0.1 });
    const { batches, labels } = fmnistData(300);
    const ref = await predictions(bytes, batches);
    const got = await predictions(out, batches);
    const agree = ref.filter((p, i) => p === got[i]).length / ref.length;
    assert.ok(agree >= 0.97, `top-1 agreement ${agree}`);
    const acc = got.filter((p, i) => p === labels[i]).length / got.length;
    assert.ok(acc > 0.85, `accuracy ${acc}`);
  });

  it('PP-OCR cls (Constant-node weights): exact per-layer sparsity, verifies and runs with outputs close at 10%', async () => {
    const { bytes, model, out, log } = await prune(pruneMagnitudePass, MODELS.ppocrCls, { sparsity: 0.1 });
    const pruned = layers(model, 1024);
    assert.ok(pruned.length > 5);
    for (const l of pruned) assert.ok(countZeros(l.data) >= Math.round(0.1 * l.data.length), l.node.name);
    assert.equal(log.stats.prunedLayers, pruned.length);
    const feeds = feedsFor('ppocrCls', decodeModel(bytes));
    const ref = tensorToFloat32(Object.values(await runOnce(bytes, feeds))[0]!);
    const got = tensorToFloat32(Object.values(await runOnce(out, feeds))[0]!);
    for (let i = 0; i < ref.length; i++) {
      assert.ok(Number.isFinite(got[i]!));
      assert.ok(Math.abs(got[i]! - ref[i]!) < 0.1, `output ${i}: ${ref[i]} vs ${got[i]}`);
    }
  });
});

describe('prune.nm', () => {
  it('fmnist 2:4: every group of 4 along the input axis keeps ≤ 2, exactly 50%, model runs', async () => {
    const { model, out, log } = await prune(pruneNMPass, MODELS.fmnist, {});
    const pruned = log.rewritten.map((r) => r.node);
    assert.ok(pruned.length > 5);
    for (const l of layers(model, 1024)) {
      const axis = weightLayerOf(l.node)!.inAxis!;
      const view = axisView(l.dims, axis);
      if (view.len % 4 !== 0) {
        assert.ok(log.skipped.some((s) => s.node === l.node.name && /multiple of 4/.test(s.reason)));
        continue;
      }
      assert.ok(pruned.includes(l.node.name), `${l.node.name} pruned`);
      assert.equal(nmViolations(l.data, view, 2, 4), 0, `${l.node.name}: 2:4 pattern`);
      assert.ok(countZeros(l.data) >= l.data.length / 2);
    }
    const { batches } = fmnistData(100);
    assert.equal((await predictions(out, batches)).length, 100);
  });

  it('fmnist 2:4 with minElements 0: Gemm (transB=1) grouped along K = dims[1], 1-channel stem skipped with reason', async () => {
    const { model, log } = await prune(pruneNMPass, MODELS.fmnist, { minElements: 0 });
    const gemm = layers(model).find((l) => l.node.opType === 'Gemm')!;
    assert.equal(gemm.node.getInt('transB', 0), 1);
    assert.deepEqual(gemm.dims, [10, 88]); // [N, K]: each output row's 88 inputs in groups of 4
    assert.equal(nmViolations(gemm.data, axisView([10, 88], 1), 2, 4), 0);
    assert.equal(countZeros(gemm.data), 440);
    assert.ok(log.skipped.some((s) => s.node === '/stem/conv/Conv' && /input dimension 1 .*not a multiple of 4/.test(s.reason)));
  });

  it('PP-OCR rec (Constant nodes, Conv + MatMul): 2:4 per group, excludeNodes honoured, runs finite', async () => {
    const m0 = decodeModel(readModel(MODELS.ppocrRec));
    const skipName = layers(m0, 1024).find((l) => l.node.opType === 'Conv' && l.node.name)!.node.name;
    const { bytes, model, out, log } = await prune(pruneNMPass, MODELS.ppocrRec, { excludeNodes: [skipName] });
    let checked = 0;
    const ops = new Set<string>();
    for (const l of layers(model, 1024)) {
      if (!log.rewritten.some((r) => r.node === l.node.name)) continue;
      const axis = weightLayerOf(l.node)!.inAxis!;
      assert.equal(nmViolations(l.data, axisView(l.dims, axis), 2, 4), 0, l.node.name);
      checked++;
      ops.add(l.node.opType);
    }
    assert.ok(checked > 10 && ops.has('MatMul') && ops.has('Conv'), [...ops].join());
    assert.ok(!log.rewritten.some((r) => r.node === skipName));
    const feeds = feedsFor('ppocrRec', decodeModel(bytes));
    for (const t of Object.values(await runOnce(out, feeds))) for (const x of tensorToFloat32(t)) assert.ok(Number.isFinite(x));
  });
});

describe('prune configs in recipes', () => {
  it('rejects bad configs with a JSON path', () => {
    const paths = (step: object) => {
      try {
        parseRecipe({ steps: [{ pass: 'convert.fp16' }, step] });
      } catch (err) {
        assert.ok(err instanceof InvalidRecipeError);
        return err.problems.map((p) => p.path);
      }
      assert.fail('accepted');
    };
    assert.ok(paths({ pass: 'prune.magnitude', sparsity: 1.5 }).includes('/steps/1/sparsity'));
    assert.ok(paths({ pass: 'prune.magnitude', scope: 'layer' }).includes('/steps/1/scope'));
    assert.ok(paths({ pass: 'prune.magnitude', overrides: { conv1: -0.1 } }).some((p) => p.startsWith('/steps/1/overrides')));
    assert.ok(paths({ pass: 'prune.magnitude', opTypes: ['Relu'] }).some((p) => p.startsWith('/steps/1/opTypes')));
    assert.ok(paths({ pass: 'prune.nm', m: 1 }).includes('/steps/1/m'));
    assert.ok(paths({ pass: 'prune.nm', N: 2 }).includes('/steps/1/N'));
    const ok = parseRecipe({ steps: [{ pass: 'prune.nm' }, { pass: 'prune.magnitude' }] });
    assert.equal(ok.steps[0]!.n, 2);
    assert.equal(ok.steps[1]!.sparsity, 0.5);
  });
});
