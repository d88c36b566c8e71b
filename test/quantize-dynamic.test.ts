import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { quantizeDynamicPass } from '../src/passes/quantize-dynamic.js';
import type { StatsOf } from '../src/pipeline/pass.js';
import { runOnce, tensorToFloat32, type Feeds } from '../src/runtime/ort.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { readArraysFile, batchesFromArrays } from '../src/data/samples.js';
import { join } from 'node:path';
import { FMNIST, MODELS, ROOT, feedsFor, passContext, readModel } from './helpers.js';

async function quantize(bytes: Uint8Array, feeds: Feeds, overrides: Record<string, unknown> = {}) {
  const ctx = passContext<StatsOf<typeof quantizeDynamicPass>>([feeds]);
  const model = await quantizeDynamicPass.run(decodeModel(bytes), TBValue.Default(quantizeDynamicPass.schema, { pass: 'quantize.dynamic', ...overrides }) as never, ctx);
  verifyModel(model);
  return { model, out: encodeModel(model), ctx };
}

describe('quantize.dynamic', () => {
  it('PP-OCRv4 rec: constant-weight MatMuls → DynamicQuantizeMatMul, attention MatMuls skipped with the reason', async () => {
    const bytes = readModel(MODELS.ppocrRec);
    const feeds = feedsFor('ppocrRec', decodeModel(bytes), 3);
    const { model, out, ctx } = await quantize(bytes, feeds);
    assert.ok(model.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul' && n.domain === 'com.microsoft').length >= 9);
    assert.ok(ctx.changes.skipped.some((s) => /both operands dynamic/.test(s.reason)));
    const a = await runOnce(bytes, feeds);
    const b = await runOnce(out, feeds);
    for (const k of Object.keys(a)) assert.ok(fidelity(tensorToFloat32(a[k]!), tensorToFloat32(b[k]!)).sqnrDb > 25, k);
  });

  it('fmnist CNN with Conv opted in: ConvInteger + DynamicQuantizeMatMul, ≤ 0.3× size, top-1 agreement ≥ 97%', async () => {
    const bytes = readModel(MODELS.fmnist);
    const m = decodeModel(bytes);
    const batches = [...batchesFromArrays(m, readArraysFile(FMNIST.inputs, m), { batchSize: 100, maxSamples: 300 })];
    const { model, out } = await quantize(bytes, batches[0]!, { opTypes: ['Gemm', 'Conv'], minElements: 0 });
    assert.equal(model.graph.nodes.filter((n) => n.opType === 'ConvInteger').length, 13);
    assert.equal(model.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul').length, 1);
    assert.ok(out.length / bytes.length <= 0.3, `size ${(out.length / bytes.length).toFixed(3)}`);
    const ev = await evaluateModels(bytes, out, batches);
    assert.ok(ev.fidelity.logits!.top1Agreement! >= 0.97, `agreement ${ev.fidelity.logits!.top1Agreement}`);
  });

  it('by default Conv stays float, and says why', async () => {
    const bytes = readModel(MODELS.fmnist);
    const { ctx } = await quantize(bytes, {} as Feeds);
    assert.ok(ctx.changes.skipped.some((s) => s.opType === 'Conv' && /opt-in/.test(s.reason)));
  });

  it('ViT otherWeights int8: positional embedding, LayerNorm and biases behind DequantizeLinear, smaller, same decisions', async () => {
    const bytes = readModel(join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx'));
    const m = decodeModel(bytes);
    const batches = [...batchesFromArrays(m, readArraysFile(FMNIST.inputs, m), { batchSize: 100, maxSamples: 300 })];
    const plain = await quantize(bytes, batches[0]!, { minElements: 0 });
    const { model, out, ctx } = await quantize(bytes, batches[0]!, { minElements: 0, otherWeights: 'int8' });
    const dq = model.graph.nodes.filter((n) => n.opType === 'DequantizeLinear');
    // pos, cls, 5 LayerNorms × 2, biases of embed + 2 × (qkv, proj, fc1, fc2); the 10-value head bias stays float
    assert.equal(dq.length, 21);
    assert.equal(ctx.changes.stats.otherWeightsInt8, 21);
    const big = new Set(m.graph.initializers.filter((v) => v.initializer!.dataType === 1 && v.initializer!.dims.reduce((a, b) => a * Number(b), 1) >= 64).map((v) => v.name));
    assert.deepEqual(model.graph.initializers.filter((v) => big.has(v.name) && v.consumers.length > 0).map((v) => v.name), [], 'no float constant of the model with ≥ 64 values is read any more');
    assert.ok(model.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul').every((n) => n.inputs[2]!.initializer!.dataType === 1), 'the weight scales stay float');
    assert.ok(plain.model.graph.nodes.some((n) => n.opType === 'DynamicQuantizeMatMul' && n.inputs.length === 5 && n.inputs[3] === null), 'symmetric weights: no zero-point input');
    assert.ok(out.length < plain.out.length - 5000, `${out.length} vs ${plain.out.length}`);
    const ev = await evaluateModels(bytes, out, batches);
    assert.ok(ev.fidelity.logits!.sqnrDb > 30, `SQNR ${ev.fidelity.logits!.sqnrDb}`);
    assert.ok(ev.fidelity.logits!.top1Agreement! >= 0.98, `agreement ${ev.fidelity.logits!.top1Agreement}`);
  });
});
