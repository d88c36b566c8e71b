import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { quantizeStaticPass } from '../src/passes/quantize-static.js';
import { ChangeLog, type PassContext, type StatsOf } from '../src/pipeline/pass.js';
import { readArraysFile, batchesFromArrays, readLabelsFile } from '../src/data/samples.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { profileModel } from '../src/measure/profile.js';
import { runOnce, tensorToFloat32, type Feeds } from '../src/runtime/ort.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { foldBatchNorms } from '../src/quant/fold-bn.js';
import { upgradeOpset } from '../src/onnx/opset-upgrade.js';
import { activationParams, quantizeWeightsSymmetric } from '../src/quant/quant-math.js';
import { entropyThreshold, mseRange, MSE_HISTOGRAM_BINS, percentileRange } from '../src/quant/calibration.js';
import { FMNIST, MODELS, ROOT, feedsFor, passContext, readModel, testGraph } from './helpers.js';
import type { Model, Value } from '../src/onnx/ir.js';
import { nodeKey, quantizedWeightLayers, quantizeQdq } from '../src/quant/qdq.js';
import { ort } from '../src/runtime/ort.js';
import { join } from 'node:path';
import { getConstant } from '../src/onnx/constants.js';
import { DataType as DT } from '../src/onnx/dtypes.js';

const fmnistBytes = readModel(MODELS.fmnist);
const fmnistModel = decodeModel(fmnistBytes);
const fmnistBatches = [...batchesFromArrays(fmnistModel, readArraysFile(FMNIST.inputs, fmnistModel), { batchSize: 50, maxSamples: 1000 })];
const fmnistLabels = readLabelsFile(FMNIST.labels);

type Ctx = PassContext<StatsOf<typeof quantizeStaticPass>>;

function fmnistCtx(): Ctx {
  return {
    changes: new ChangeLog(),
    progress: () => {},
    sampleInputs: async () => fmnistBatches.slice(0, 6), // calibration: first 300 images
    evaluationInputs: async () => fmnistBatches,
    samplesAreSynthetic: false,
    samplesAreCalibration: true,
    labels: fmnistLabels,
  };
}

async function quantize(bytes: Uint8Array, ctx: Ctx, overrides: Record<string, unknown> = {}) {
  const model = decodeModel(bytes);
  const config = TBValue.Default(quantizeStaticPass.schema, { pass: 'quantize.static', ...overrides }) as never;
  const q = await quantizeStaticPass.run(model, config, ctx);
  verifyModel(q);
  return { model: q, bytes: encodeModel(q) };
}

/** Four batches of input `x`, uniform in [-2, 2), for the hand-made graphs. */
function uniformBatches(rand: () => number, dims: number[]): Feeds[] {
  const n = dims.reduce((a, b) => a * b, 1);
  return [1, 2, 3, 4].map(() => ({ x: new ort.Tensor('float32', Float32Array.from({ length: n }, () => rand() * 4 - 2), dims) }));
}

/** Whether the quantized model has a QuantizeLinear on the value named like `v`. */
function quantizesValue(model: Model, v: Value): boolean {
  return model.graph.nodes.some((n) => n.opType === 'QuantizeLinear' && n.inputs[0]!.name === v.name);
}

describe('quantize.static on the Fashion-MNIST CNN', () => {
  it('int8 QDQ: ≤ 0.3× size, accuracy drop ≤ 0.5 pt, onnxruntime runs integer kernels only', async () => {
    const ctx = fmnistCtx();
    const { model, bytes } = await quantize(fmnistBytes, ctx);
    assert.ok(bytes.length / fmnistBytes.length <= 0.3, `size ratio ${(bytes.length / fmnistBytes.length).toFixed(3)}`);
    assert.equal(ctx.changes.stats.batchNormsFolded, 13);
    assert.ok(!model.graph.nodes.some((n) => n.opType === 'BatchNormalization'));
    const ev = await evaluateModels(fmnistBytes, bytes, fmnistBatches, { labels: fmnistLabels, metrics: ['top1'] });
    const drop = 100 * (ev.task!.reference.top1! - ev.task!.candidate.top1!);
    assert.ok(drop <= 0.5, `accuracy drop ${drop.toFixed(2)} pt`);
    assert.ok(ev.fidelity.logits!.top1Agreement! >= 0.98, `top-1 agreement ${ev.fidelity.logits!.top1Agreement}`);
    // per-layer SQNR: every quantized node has one, worst first
    assert.match(String(ctx.changes.rewritten.find((r) => r.detail?.includes('SQNR'))?.detail), /SQNR \d+\.\d dB/);
    assert.ok(Number(ctx.changes.stats.sqnrMinDb) > 20, `worst layer SQNR ${ctx.changes.stats.sqnrMinDb}`);
    // what onnxruntime actually runs after fusing DQ→op→Q
    const prof = await profileModel(model, { input: fmnistBatches[0]!.input! } as Feeds, { runs: 2, warmup: 1 });
    const kernels = new Set(prof.byOpType.map((e) => e.opType ?? e.name));
    for (const k of ['QLinearConv', 'QLinearAdd', 'QGemm']) assert.ok(kernels.has(k), `${k} missing from ${[...kernels].join(', ')}`);
    // a Conv's weight and bias DequantizeLinear carry no zero point (0 is implied; QLinearConv is still formed above),
    // the Gemm's keep theirs (QGemm is not formed without)
    const dqInputs = (op: string) => model.graph.nodes.filter((n) => n.opType === op).map((n) => n.inputs[1]!.producer!.inputs.length);
    assert.deepEqual(new Set(dqInputs('Conv')), new Set([2]));
    assert.deepEqual(new Set(dqInputs('Gemm')), new Set([3]));
    for (const k of ['Conv', 'FusedConv', 'Add', 'Relu', 'DequantizeLinear']) assert.ok(!kernels.has(k), `float kernel ${k} still runs`);
  });

  it('fails clearly without calibration data unless allowSynthetic', async () => {
    const ctx = passContext(fmnistBatches.slice(0, 1), { synthetic: true });
    await assert.rejects(quantize(fmnistBytes, ctx), (e: Error & { code?: string }) => e.code === 'invalid_input' && /calibration/.test(e.message));
    const ok = passContext(fmnistBatches.slice(0, 1), { synthetic: true });
    await quantize(fmnistBytes, ok, { allowSynthetic: true, calibrationMethod: 'minmax' });
    assert.ok(ok.changes.warnings.some((w) => /SYNTHETIC/.test(w)));
  });

  it('sensitivity: entropy calibration misses 0.5 pt; keeping the worst layers float restores it', async () => {
    const plainCtx = fmnistCtx();
    const plain = await quantize(fmnistBytes, plainCtx, { calibrationMethod: 'entropy' });
    const evPlain = await evaluateModels(fmnistBytes, plain.bytes, fmnistBatches, { labels: fmnistLabels, metrics: ['top1'] });
    const plainDrop = 100 * (evPlain.task!.reference.top1! - evPlain.task!.candidate.top1!);
    assert.ok(plainDrop > 0.5, `plain entropy int8 drop ${plainDrop.toFixed(2)} pt (the demo needs a miss)`);
    const ctx = fmnistCtx();
    const fixed = await quantize(fmnistBytes, ctx, { calibrationMethod: 'entropy', sensitivity: { maxAccuracyDrop: 0.5, excludedWeights: 'int8' } });
    assert.equal(ctx.changes.stats.sensitivityTargetMet, true, String(ctx.changes.stats.sensitivityResult));
    assert.notEqual(ctx.changes.stats.excludedBySensitivity, 'none');
    const ev = await evaluateModels(fmnistBytes, fixed.bytes, fmnistBatches, { labels: fmnistLabels, metrics: ['top1'] });
    assert.ok(100 * (ev.task!.reference.top1! - ev.task!.candidate.top1!) <= 0.5);
    // with excludedWeights int8, layers kept float compute in float32 but still store their weights as int8: every Conv weight is int8
    assert.ok(Number(ctx.changes.stats.excludedWithInt8Weights) > 0);
    for (const c of fixed.model.graph.nodes.filter((n) => n.opType === 'Conv')) {
      const dq = c.inputs[1]?.producer;
      assert.equal(dq?.opType, 'DequantizeLinear', `${c.name}: weight behind DequantizeLinear`);
      assert.equal(getConstant(dq!.inputs[0])?.dataType, DT.INT8);
    }
    // and they run as float Convs in onnxruntime (fewer QLinearConv than the plain int8 model)
    const kernels = async (b: Uint8Array) => (await profileModel(decodeModel(b), fmnistBatches[0]!, { runs: 1, warmup: 0 })).byOpType.find((e) => e.opType === 'QLinearConv' || e.name === 'QLinearConv')?.count ?? 0;
    assert.ok((await kernels(fixed.bytes)) < (await kernels(plain.bytes)));
    assert.ok(fixed.bytes.length / fmnistBytes.length <= 0.3, `size ${(fixed.bytes.length / fmnistBytes.length).toFixed(3)}`);
  });
});

describe('quantize.static on PP-OCR (old opsets)', () => {
  it('cls (opset 9): upgraded to 13 (14 once its hardswish chains become HardSwish), quantized, outputs close on the calibration-like input', async () => {
    const bytes = readModel(MODELS.ppocrCls);
    const m = decodeModel(bytes);
    const feeds = [1, 2, 3].map((s) => feedsFor('ppocrCls', m, s));
    const ctx = passContext<StatsOf<typeof quantizeStaticPass>>(feeds);
    const q = await quantize(bytes, ctx, { allowSynthetic: true });
    assert.equal(ctx.changes.stats.opsetUpgradedFrom, 9);
    assert.equal(q.model.opset(''), 14);
    assert.ok(Number(ctx.changes.stats['simplified.hardswish']) > 0);
    assert.ok(TBValue.Check(quantizeStaticPass.stats, ctx.changes.stats), 'the upgrade and rewrite statistics are declared ones');
    assert.ok(q.model.graph.nodes.some((n) => n.opType === 'HardSwish'));
    assert.ok(q.model.graph.nodes.some((n) => n.opType === 'QuantizeLinear'));
    // a 0.58 MB model of 53 small convs: node and name overhead dominates the file
    assert.ok(q.bytes.length / bytes.length < 0.6, `size ${(q.bytes.length / bytes.length).toFixed(3)}`);
    const ref = await runOnce(bytes, feeds[0]!);
    const got = await runOnce(q.bytes, feeds[0]!);
    for (const k of Object.keys(ref)) {
      const f = fidelity(tensorToFloat32(ref[k]!), tensorToFloat32(got[k]!));
      assert.ok(f.maxAbsError < 0.2, `${k}: max abs error ${f.maxAbsError}`);
    }
  });
});

describe('sensitivity loop on PP-OCRv4 rec', () => {
  it('plain int8 misses 30 dB output SQNR; keeping the layers that add the most noise float restores it, in 1 + log2(n) probes', async () => {
    const bytes = readModel(MODELS.ppocrRec);
    const m = decodeModel(bytes);
    // 10 calibration lines and 10 other lines to check on, at PaddleOCR's geometry
    const calib = [...batchesFromArrays(m, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/fit-calib-100.npz'), m), { batchSize: 10, maxSamples: 10 })];
    const held = [...batchesFromArrays(m, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/fit-test-200.npz'), m), { batchSize: 10, maxSamples: 10 })];
    const ctxFor = () => passContext<StatsOf<typeof quantizeStaticPass>>(calib, { synthetic: false });
    // nearest rounding keeps this test about the loop (GPTQ costs ~30 s on this model)
    const base = { maxCalibrationBatches: 1, weightRounding: 'nearest' };
    const plain = await quantize(bytes, ctxFor(), base);
    const ctx = ctxFor();
    const fixed = await quantize(bytes, ctx, { ...base, sensitivity: { minSqnrDb: 30, maxExcluded: 400, probeFraction: 1 } });
    const st = ctx.changes.stats;
    assert.match(String(st.sensitivityStart), /output SQNR/);
    const startDb = Number(/output SQNR (-?[\d.]+)/.exec(String(st.sensitivityStart))![1]);
    assert.ok(startDb < 30, `plain int8 already at ${startDb} dB (the test needs a miss)`);
    assert.equal(st.sensitivityTargetMet, true, String(st.sensitivityResult));
    const count = Number(st.excludedBySensitivityCount);
    assert.ok(count > 0 && Number(st.quantizedNodes) > 0, `kept ${count} float, ${st.quantizedNodes} still int8`);
    assert.ok(Number(st.sensitivityProbes) <= 12, `${st.sensitivityProbes} probes`);
    assert.ok(fixed.model.graph.nodes.some((n) => n.opType === 'QuantizeLinear'), 'still int8');
    // on lines the loop never saw, the output is also closer to float than plain int8's
    const ref = await runOnce(bytes, held[0]!);
    const k = Object.keys(ref)[0]!;
    const db = async (q: Uint8Array) => fidelity(tensorToFloat32(ref[k]!), tensorToFloat32((await runOnce(q, held[0]!))[k]!)).sqnrDb;
    const [dbPlain, dbFixed] = [await db(plain.bytes), await db(fixed.bytes)];
    assert.ok(dbFixed > dbPlain + 2, `held-out output SQNR ${dbPlain.toFixed(1)} → ${dbFixed.toFixed(1)} dB`);
  });
});

describe('bias correction on PP-OCRv4 rec', () => {
  it('folding each layer\'s mean shift in the quantized model into its bias brings held-out lines closer to float', async (t) => {
    const bytes = readModel(MODELS.ppocrRec);
    const m = decodeModel(bytes);
    const lines = (file: string) => [...batchesFromArrays(m, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec', file), m), { batchSize: 10, maxSamples: 20 })];
    const calib = lines('fit-calib-100.npz');
    const held = lines('fit-test-200.npz');
    const base = { weightRounding: 'nearest' };
    const plain = await quantize(bytes, passContext(calib, { synthetic: false }), base);
    const ctx = passContext<StatsOf<typeof quantizeStaticPass>>(calib, { synthetic: false });
    const corrected = await quantize(bytes, ctx, { ...base, biasCorrection: true });
    const st = ctx.changes.stats;
    // every Conv and every MatMul with a constant weight (38 + 9)
    assert.equal(st.biasCorrectedLayers, 47);
    assert.match(String(st.biasCorrectionLargest), /rms/);
    assert.ok(corrected.model.graph.nodes.some((n) => n.opType === 'QuantizeLinear'), 'still int8');
    const score = async (q: Uint8Array) => Object.values((await evaluateModels(bytes, q, held, { ctcBlank: 0 })).fidelity)[0]!;
    const [p, c] = [await score(plain.bytes), await score(corrected.bytes)];
    t.diagnostic(`held-out: ${p.sqnrDb.toFixed(1)} → ${c.sqnrDb.toFixed(1)} dB, identical ${p.sequenceAgreement} → ${c.sequenceAgreement}`);
    assert.ok(c.sqnrDb > p.sqnrDb + 1, `held-out output SQNR ${p.sqnrDb.toFixed(1)} → ${c.sqnrDb.toFixed(1)} dB`);
    assert.ok(c.sequenceAgreement! >= p.sequenceAgreement!, `identical sequences ${p.sequenceAgreement} → ${c.sequenceAgreement}`);
  });
});

describe('float chains stay float', () => {
  it('a Mul/Add by a constant after a float-only op is not requantized; a decomposed LayerNorm keeps ε, γ and β float', async () => {
    const { model, g, rand, weight: t, ints, x, node: addNode } = testGraph('chains', 5, { name: 'x', dims: [2, 4, 6, 16] });
    const node = (op: string, inputs: Value[], attrs: Record<string, number | number[]> = {}) => addNode(op, inputs, attrs)[0]!;
    const c1 = node('Conv', [x, t('w1', [8, 4, 3, 3]), t('b1', [8])], { pads: [1, 1, 1, 1] });
    const hs = node('HardSigmoid', [c1]); // no int8 kernel: computes in float
    const sc = node('Mul', [hs, t('scale', [1], () => 1.7)]); // the affine after it: kept float with it
    const sh = node('Add', [sc, t('shift', [1], () => -0.4)]);
    const c2 = node('Conv', [sh, t('w2', [8, 1, 3, 3]), t('b2', [8])], { pads: [1, 1, 1, 1], group: 8 }); // quantized: reads sh through Q→DQ
    const tokens = node('Reshape', [c2, ints('tok', [2, 48, 16])]);
    // LayerNorm over the last axis, spelled out as Paddle2ONNX and torch exports do
    const mean = node('ReduceMean', [tokens], { axes: [-1] });
    const d = node('Sub', [tokens, mean]);
    const sq = node('Pow', [d, t('two', [], () => 2)]);
    const variance = node('ReduceMean', [sq], { axes: [-1] });
    const ve = node('Add', [variance, t('eps', [], () => 1e-5)]);
    const norm = node('Div', [d, node('Sqrt', [ve])]);
    const gamma = node('Mul', [norm, t('gamma', [16], () => 0.5 + rand())]);
    const beta = node('Add', [gamma, t('beta', [16])]);
    const y = node('MatMul', [beta, t('w3', [16, 10])]);
    g.outputs = [y];
    const bytes = encodeModel(model);
    const feeds = uniformBatches(rand, [2, 4, 6, 16]);
    const ctx = passContext(feeds, { synthetic: false });
    const q = await quantize(bytes, ctx, { calibrationMethod: 'minmax', weightRounding: 'nearest' });
    // the affine after HardSigmoid (Mul, Add) and LayerNorm's ε, γ and β steps (Add, Mul, Add)
    const floatKept = ctx.changes.skipped.filter((s) => /kept float with/.test(s.reason)).map((s) => s.opType).sort();
    assert.deepEqual(floatKept, ['Add', 'Add', 'Add', 'Mul', 'Mul']);
    const qOf = (v: Value) => quantizesValue(q.model, v);
    assert.ok(!qOf(hs) && !qOf(sc), 'no Q→DQ inside the float chain');
    assert.ok(qOf(sh), 'the chain is quantized where the int8 Conv reads it');
    assert.ok(!qOf(ve) && !qOf(gamma) && qOf(beta), 'LayerNorm: no Q→DQ on the variance or after γ; its output is quantized for the MatMul');
    const prof = await profileModel(q.model, feeds[0]!, { runs: 1, warmup: 0 });
    const kernels = new Set(prof.byOpType.map((e) => e.opType ?? e.name));
    // the Convs and the MatMul run int8; no integer Mul/Add is left to requantize inside the chains
    assert.ok(kernels.has('QLinearConv') && kernels.has('MatMulIntegerToFloat'), [...kernels].join(', '));
    assert.ok(!kernels.has('QLinearMul') && !kernels.has('QLinearAdd'), [...kernels].join(', '));
    const f = fidelity(tensorToFloat32((await runOnce(bytes, feeds[0]!))[y.name]!), tensorToFloat32((await runOnce(q.bytes, feeds[0]!))[y.name]!));
    assert.ok(f.sqnrDb > 25, `output SQNR ${f.sqnrDb.toFixed(1)} dB`);
  });
});

describe('the output head stays float', () => {
  it('the logits MatMul keeps int8 weights and a float output; bias Add, Softmax and the Reshape after it get no Q→DQ; data movement after a float op stays float', async () => {
    const { model, g, rand, weight: t, ints, x, node: addNode } = testGraph('head', 7, { name: 'x', dims: [2, 4, 6, 16] });
    const node = (op: string, inputs: Value[], attrs: Record<string, number | number[]> = {}) => addNode(op, inputs, attrs)[0]!;
    const c1 = node('Conv', [x, t('w1', [8, 4, 3, 3]), t('b1', [8])], { pads: [1, 1, 1, 1] });
    const hs = node('HardSigmoid', [c1]); // float only
    const tokens = node('Reshape', [hs, ints('tok', [2, 48, 16])]); // data movement on a float tensor
    const logits = node('MatMul', [tokens, t('w2', [16, 40])]);
    const biased = node('Add', [logits, t('b2', [40], () => rand() - 0.5)]);
    const probs = node('Softmax', [biased], { axis: -1 });
    const y = node('Reshape', [probs, ints('flat', [2, 1920])]);
    g.outputs = [y];
    const bytes = encodeModel(model);
    const feeds = uniformBatches(rand, [2, 4, 6, 16]);
    const ctx = passContext(feeds, { synthetic: false });
    const q = await quantize(bytes, ctx, { calibrationMethod: 'minmax', weightRounding: 'nearest' });
    const qOf = (v: Value) => quantizesValue(q.model, v);
    assert.ok(qOf(c1), 'the Conv output is quantized');
    assert.ok(!qOf(hs) && qOf(tokens), 'the Reshape of a float tensor runs float; the MatMul quantizes what it reads');
    assert.ok(!qOf(logits) && !qOf(biased) && !qOf(probs), 'no Q→DQ on logits or probabilities');
    const head = ctx.changes.skipped.filter((s) => /output head/.test(s.reason)).map((s) => s.opType).sort();
    assert.deepEqual(head, ['Add', 'Reshape']);
    const prof = await profileModel(q.model, feeds[0]!, { runs: 1, warmup: 0 });
    const kernels = new Set(prof.byOpType.map((e) => e.opType ?? e.name));
    // the logits MatMul: MatMulIntegerToFloat, or (static shapes: onnxruntime first fuses MatMul + Add
    // into a Gemm) a float Gemm on the dequantized int8 weight; never a requantized output
    assert.ok(kernels.has('QLinearConv') && (kernels.has('MatMulIntegerToFloat') || kernels.has('Gemm')), [...kernels].join(', '));
    assert.ok(!kernels.has('QLinearSoftmax') && !kernels.has('QLinearAdd') && !kernels.has('QLinearMatMul'), [...kernels].join(', '));
    const w2 = q.model.graph.nodes.find((n) => n.opType === 'DequantizeLinear' && n.outputs[0]!.name.startsWith('w2'));
    assert.equal(getConstant(w2?.inputs[0])?.dataType, DT.INT8, 'the logits weight is stored int8');
    const [ref, got] = [tensorToFloat32((await runOnce(bytes, feeds[0]!))[y.name]!), tensorToFloat32((await runOnce(q.bytes, feeds[0]!))[y.name]!)];
    assert.ok(fidelity(ref, got).sqnrDb > 25, `output SQNR ${fidelity(ref, got).sqnrDb.toFixed(1)} dB`);
    // probabilities are not on an 8-bit grid: more distinct values than 256
    assert.ok(new Set(got).size > 1000, `${new Set(got).size} distinct probabilities`);
  });
});

describe('quantizedWeightLayers', () => {
  it('lists exactly the layers quantizeQdq gives int8 weights (not excluded or unsupported ones), with the axis it uses', () => {
    const { model, g, weight: t, x, node: addNode } = testGraph('layers', 3, { name: 'x', dims: [2, 4, 6, 6] });
    const node = (op: string, inputs: Value[], attrs: Record<string, number | number[]> = {}) => addNode(op, inputs, attrs)[0]!;
    const c1 = node('Conv', [x, t('w1', [8, 4, 3, 3])]);
    const c2 = node('Conv', [c1, t('w2', [8, 8, 1, 1])]); // excluded below
    const flat = node('Flatten', [c2]);
    const fc = node('Gemm', [flat, t('w3', [10, 128])], { transB: 1 });
    const odd = node('Gemm', [node('Transpose', [fc]), t('w4', [10, 5])], { transA: 1 }); // transA=1: no int8 kernel
    g.outputs = [odd];
    const opts = { activationType: 'uint8' as const, activationSymmetric: false, perChannel: true, reduceRange: true, opTypes: ['Conv', 'Gemm', 'Transpose', 'Flatten'] };
    const c2Node = c2.producer!;
    const layers = quantizedWeightLayers(model, opts, new Set([nodeKey(c2Node)]));
    assert.deepEqual(layers.map((l) => [l.node.inputs[1]!.name, l.axis, l.node]), [['w1', 0, c1.producer!], ['w3', 0, fc.producer!]]);
    // per tensor when asked, and the excluded node comes back when not excluded
    const all = quantizedWeightLayers(model, { ...opts, perChannel: false }, new Set());
    assert.deepEqual(all.map((l) => [l.node.inputs[1]!.name, l.axis]), [['w1', null], ['w2', null], ['w3', null]]);
    // and quantizeQdq agrees: those weights, and no others, are stored int8
    quantizeQdq(model, new Map([x, c1, c2, flat, fc, odd].map((v) => [v, [-1, 1] as [number, number]])), opts, new Set([nodeKey(c2Node)]));
    const int8 = g.nodes.filter((n) => n.opType === 'DequantizeLinear' && getConstant(n.inputs[0])?.dataType === DT.INT8).map((n) => n.outputs[0]!.name.replace(/_dequantized$/, '')).sort();
    assert.deepEqual(int8, ['w1', 'w3']);
  });
});

describe('opset upgrade and BN folding are exact', () => {
  for (const name of ['ppocrRec', 'ppocrCls', 'ppocrDet'] as const) {
    it(`${name}: upgraded to opset 13 computes the same outputs`, async () => {
      const bytes = readModel(MODELS[name]);
      const m = decodeModel(bytes);
      const r = upgradeOpset(m, 13);
      assert.equal(r.upgraded, true, r.reason);
      verifyModel(m);
      assert.equal(m.opset(''), 13);
      const feeds = feedsFor(name, m);
      const a = await runOnce(bytes, feeds);
      const b = await runOnce(encodeModel(m), feeds);
      for (const k of Object.keys(a)) assert.ok(fidelity(tensorToFloat32(a[k]!), tensorToFloat32(b[k]!)).maxAbsError < 1e-5, k);
    });
  }
  it('folding BatchNormalization into Conv keeps the outputs', async () => {
    const m = decodeModel(fmnistBytes);
    const { folded } = foldBatchNorms(m);
    assert.equal(folded.length, 13);
    verifyModel(m);
    const a = await runOnce(fmnistBytes, fmnistBatches[0]!);
    const b = await runOnce(encodeModel(m), fmnistBatches[0]!);
    assert.ok(fidelity(tensorToFloat32(a.logits!), tensorToFloat32(b.logits!)).sqnrDb > 80);
  });
});

describe('quantization numerics', () => {
  it('activation params represent zero exactly and cover the range', () => {
    const p = activationParams(-1.3, 4.1, 'uint8', false);
    assert.ok(Number.isInteger(p.zeroPoint) && p.zeroPoint > 0 && p.zeroPoint < 255);
    assert.ok(Math.abs(p.scale * 255 - 5.4) < 1e-9);
    assert.deepEqual(activationParams(0, 6, 'uint8', false).zeroPoint, 0);
    assert.deepEqual(activationParams(-2, 1, 'int8', true), { scale: 4 / 255, zeroPoint: 0 });
  });
  it('per-channel symmetric weights: each channel reaches ±qmax, round trip within half a step', () => {
    const w = Float32Array.from([0.5, -1, 0.25, 10, -3, 2]);
    const { q, scales } = quantizeWeightsSymmetric(w, [2, 3], 0, 63);
    assert.deepEqual([...q.slice(0, 3)].map(Math.abs).sort((a, b) => b - a)[0], 63);
    assert.equal(q[3], 63);
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(q[i]! * scales[Math.floor(i / 3)]! - w[i]!) <= scales[Math.floor(i / 3)]! / 2 + 1e-7);
  });
  it('mse puts a grid point on a value most elements share, which the min/max grid misses', () => {
    // 70% of the elements are a uniform background at 0.3176 (40.5 min/max steps), the rest spread over [0, 2]
    const bound = 2;
    const hist = new Float64Array(MSE_HISTOGRAM_BINS);
    const width = (2 * bound) / hist.length;
    const bin = (x: number) => Math.floor((x + bound) / width);
    const background = 0.3176;
    for (let b = bin(0); b < bin(2); b++) hist[b] = 1;
    const spread = hist.reduce((a, c) => a + c, 0);
    hist[bin(background)]! += (spread * 0.7) / 0.3;
    const center = -bound + (bin(background) + 0.5) * width;
    const [lo, hi] = mseRange(hist, bound, 0, 2, 0, 255, false);
    const p = activationParams(lo, hi, 'uint8', false);
    assert.equal(p.zeroPoint, 0, 'non-negative data keeps the window at 0');
    const offGrid = (s: number) => Math.abs(center / s - Math.round(center / s));
    const minmax = activationParams(0, 2, 'uint8', false);
    assert.ok(offGrid(minmax.scale) > 0.4, `min/max grid: ${offGrid(minmax.scale)} steps off`);
    assert.ok(offGrid(p.scale) < 0.1, `mse grid: ${offGrid(p.scale)} steps off (scale ${p.scale})`);
    assert.ok(p.scale >= minmax.scale / 3 && p.scale <= minmax.scale * 1.0001, `scale ${p.scale}`);
    // symmetric int8: the window stays centred on zero
    const [slo, shi] = mseRange(hist, bound, 0, 2, -128, 127, true);
    assert.ok(Math.abs(slo + shi) < 1e-12 && shi > 0);
  });
  it('percentile clips the tails; entropy clips a long sparse tail', () => {
    const hist = new Float64Array(1000);
    hist.fill(100, 400, 600); // mass in the middle
    hist[0] = 1; // one outlier at each end
    hist[999] = 1;
    const [lo, hi] = percentileRange(hist, 10, 99.9);
    assert.ok(lo > -2.1 && lo < -1.9 && hi > 1.9 && hi < 2.1, `${lo}, ${hi}`);
    const abs = new Float64Array(2048);
    for (let i = 0; i < 2048; i++) abs[i] = Math.round(1e6 * Math.exp(-((i / 200) ** 2) / 2));
    abs[2047] = 1;
    const t = entropyThreshold(abs, 1 / 200);
    assert.ok(t > 2 && t < 8, `threshold ${t} (σ = 1)`);
  });
});
