// float16 and bfloat16 models: import of a converter-style (unsorted) graph, and every pass family on
// half-precision versions of the fixtures, run in onnxruntime against the half-precision original.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Value as TBValue } from '@sinclair/typebox/value';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { weightLayerTypes } from '../src/onnx/float-weights.js';
import { weightLayerOf } from '../src/onnx/weight-layers.js';
import { getConstant } from '../src/onnx/constants.js';
import type { Model } from '../src/onnx/ir.js';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { readTensor } from '../src/onnx/tensor-data.js';
import { findGraphIssues, verifyModel } from '../src/onnx/verify.js';
import { parseNpz } from '../src/data/npy.js';
import { batchesFromArrays } from '../src/data/samples.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { PASSES } from '../src/passes/index.js';
import { fixedPassContext } from '../src/pipeline/pass.js';
import { runPipeline } from '../src/pipeline/pipeline.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { renderReportHtml } from '../src/report/html.js';
import type { Feeds } from '../src/runtime/ort.js';
import { converterStyleHalf } from './half-models.js';
import { FMNIST, MODELS, ROOT, readModel } from './helpers.js';

const VIT = join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx');

function batches(model: Model, path: string, count: number, batchSize: number): Feeds[] {
  return [...batchesFromArrays(model, parseNpz(readFileSync(path)), { batchSize })].slice(0, count);
}

describe('import: a graph that is not toposorted', () => {
  it('the converter-style float16 CNN is sorted on import, the report says so, and it compresses', async () => {
    const half = converterStyleHalf(MODELS.fmnist);
    assert.ok(findGraphIssues(half).some((i) => i.message.includes('not toposorted')), 'the fixture really is unsorted');
    const recipe = parseRecipe({ steps: [{ pass: 'prune.magnitude', sparsity: 0.3 }], benchmark: { enabled: false } });
    const samples = batches(decodeModel(readModel(MODELS.fmnist)), FMNIST.inputs, 2, 64);
    const { report, bytes } = await runPipeline(encodeModel(half), { recipe, samples });
    const notes = report.importNotes ?? [];
    assert.equal(notes.length, 1);
    assert.equal(notes[0]!.kind, 'toposorted');
    assert.equal(notes[0]!.graphs, 1);
    assert.ok(notes[0]!.nodesOutOfOrder >= 1);
    assert.match(renderReportHtml(report), /Changed on import[\s\S]*toposorted/);
    verifyModel(decodeModel(bytes));
    const f = Object.values(report.steps[0]!.fidelity)[0]!;
    assert.ok(f.top1Agreement! > 0.9, `top-1 agreement with the float16 original ${f.top1Agreement}`);
  });

  it('a sorted model gets no note', async () => {
    const recipe = parseRecipe({ steps: [{ pass: 'prune.magnitude', sparsity: 0.3 }], benchmark: { enabled: false } });
    const { report } = await runPipeline(readModel(MODELS.fmnist), { recipe });
    assert.equal(report.importNotes, undefined);
  });
});

/** Each pass family with options that make it act on these small models, and cheaply (CI time). */
const STATIC = ['quantize.static', { biasCorrection: false, maxCalibrationBatches: 1 }] as const;
const CNN_FAMILIES: [string, Record<string, unknown>][] = [
  [...STATIC],
  ['quantize.weights', {}],
  ['prune.magnitude', { sparsity: 0.3 }],
  ['prune.structured', { measureRecovery: false, maxCalibrationBatches: 1 }],
  ['factorize.tucker', { requireSpeedup: false, include: 'block2/conv1' }],
  ['factorize.cp', { requireSpeedup: false, include: 'block1/conv1' }],
];
const VIT_FAMILIES: [string, Record<string, unknown>][] = [
  [...STATIC],
  ['quantize.dynamic', {}],
  ['quantize.weights', { bits: 4, minElements: 64 }],
  ['prune.nm', {}],
  ['factorize.svd', { requireSpeedup: false }],
];

/**
 * Layers with a constant weight a pass rewrote (BatchNorm folding and other exact pre-steps not counted;
 * MatMuls of two activations neither: in a float16 model they stay float16, nothing to quantize them from).
 */
const layersRewritten = (model: Model, c: { rewritten: { node: string; opType: string; detail?: string }[] }) => {
  const weighted = new Set(model.graph.nodes.filter((n) => getConstant(weightLayerOf(n)?.weight)).map((n) => n.name));
  return new Set(c.rewritten.filter((r) => (weighted.has(r.node) || ['MatMulNBits', 'DynamicQuantizeMatMul', 'MatMulInteger', 'ConvInteger'].includes(r.opType)) && !/folded|simplif/i.test(r.detail ?? '')).map((r) => r.node)).size;
};

async function runPass(name: string, options: Record<string, unknown>, model: Model, calibration: Feeds[]) {
  const def = PASSES[name]!;
  const config = TBValue.Default(def.schema, { pass: name, ...options }) as never;
  const ctx = fixedPassContext({ samples: calibration, synthetic: false, calibration: true });
  const out = await def.run(model, config, ctx);
  verifyModel(out);
  return { out, changes: ctx.changes };
}

for (const [label, path, families] of [['fmnist CNN', MODELS.fmnist, CNN_FAMILIES], ['fmnist ViT', VIT, VIT_FAMILIES]] as const) {
  describe(`every pass family on the float16 ${label}, against the float32 run of the same pass`, () => {
    const float = decodeModel(readModel(path));
    const half = converterStyleHalf(path);
    half.graph.toposort();
    const halfBytes = encodeModel(half);
    const calibration = batches(float, FMNIST.calibration, 1, 64);
    const evaluation = batches(float, FMNIST.inputs, 2, 64);
    const quality = async (ref: Uint8Array, cand: Model) => Object.values((await evaluateModels(ref, encodeModel(cand), evaluation)).fidelity)[0]!;
    for (const [name, options] of families) {
      it(`${name} ${JSON.stringify(options)}`, async () => {
        const f32 = await runPass(name, options, float, calibration);
        const f16 = await runPass(name, options, half, calibration);
        assert.ok(layersRewritten(float, f32.changes) > 0, 'the pass acts on the float32 model');
        assert.equal(layersRewritten(float, f16.changes), layersRewritten(float, f32.changes), 'as many layers rewritten');
        const q32 = await quality(readModel(path), f32.out);
        const q16 = await quality(halfBytes, f16.out);
        const what = `float16 SQNR ${q16.sqnrDb.toFixed(1)} dB, agreement ${q16.top1Agreement}; float32 ${q32.sqnrDb.toFixed(1)} dB, ${q32.top1Agreement}`;
        // a weight read or written in the wrong type leaves noise (SQNR near 0 dB). The float16 CNN's static
        // int8 model is up to ~8 dB below the float32 one: its BatchNorms stay unfolded (float16, after the island)
        assert.ok(q16.sqnrDb > Math.min(q32.sqnrDb - (name === 'quantize.static' ? 10 : 4), 35), what);
        if (name.startsWith('quantize')) assert.ok(q16.sqnrDb > 20, what);
        assert.ok(q16.top1Agreement! >= Math.min(q32.top1Agreement! - 0.03, 0.99), what);
        if (!name.startsWith('quantize')) {
          assert.deepEqual(Object.keys(weightLayerTypes(f16.out)), ['float16'], 'written back in float16');
        } else {
          assert.ok(encodeModel(f16.out).length < halfBytes.length, 'quantized model is smaller than the float16 one');
        }
        for (const v of [...f16.out.graph.inputs, ...f16.out.graph.outputs]) assert.equal(v.elemType, DT.FLOAT, `${v.name} keeps its type`);
      });
    }
    it('convert.fp16 leaves it as it is, and says why', async () => {
      const { out, changes } = await runPass('convert.fp16', {}, half, calibration);
      assert.deepEqual(encodeModel(out), halfBytes);
      assert.match(changes.warnings.join(' '), /already float16/);
    });
  });
}

describe('bfloat16 (onnxruntime CPU runs no bfloat16 compute: weights read and written exactly, the pipeline refuses with the reason)', () => {
  const bf16 = converterStyleHalf(VIT, DT.BFLOAT16);
  bf16.graph.toposort();
  const feeds = batches(decodeModel(readModel(VIT)), FMNIST.calibration, 1, 16);
  const weightsOf = (m: Model) => new Map(m.graph.nodes.flatMap((n) => {
    const t = getConstant(weightLayerOf(n)?.weight);
    return t && n.name ? [[n.name, t] as const] : [];
  }));

  it('prune.magnitude writes bfloat16 back: kept weights bit-identical, the rest zero', async () => {
    const { out, changes } = await runPass('prune.magnitude', { sparsity: 0.3 }, bf16, feeds);
    assert.ok(changes.rewritten.length > 0);
    const before = weightsOf(bf16);
    let zeros = 0;
    let total = 0;
    for (const [name, t] of weightsOf(out)) {
      const was = before.get(name)!;
      assert.equal(t.dataType, DT.BFLOAT16, name);
      const a = readTensor(was).data as Uint16Array;
      const b = readTensor(t).data as Uint16Array;
      for (let i = 0; i < b.length; i++) {
        if ((b[i]! & 0x7fff) === 0) zeros++;
        else assert.equal(b[i], a[i], `${name}[${i}]`);
        total++;
      }
    }
    assert.ok(zeros / total > 0.2, `sparsity ${zeros / total}`);
  });

  it('factorize.svd (no refit: that runs the model) writes its factors in bfloat16', async () => {
    const { out, changes } = await runPass('factorize.svd', { requireSpeedup: false, refine: false }, bf16, feeds);
    assert.ok(changes.added.length > 0);
    assert.deepEqual(Object.keys(weightLayerTypes(out)), ['bfloat16']);
  });

  it('compress refuses it with unsupported_model, naming bfloat16 and the fix', async () => {
    const recipe = parseRecipe({ steps: [{ pass: 'prune.magnitude' }], benchmark: { enabled: false } });
    await assert.rejects(runPipeline(encodeModel(bf16), { recipe }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'unsupported_model');
      assert.match(e.message, /bfloat16.*float32 or float16 first/);
      return true;
    });
  });
});
