import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { quantizeStaticPass } from '../src/passes/quantize-static.js';
import { ChangeLog, type PassContext } from '../src/pipeline/pass.js';
import { readArraysFile, batchesFromArrays, readLabelsFile } from '../src/data/samples.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { profileModel } from '../src/measure/profile.js';
import { runOnce, tensorToFloat32, type Feeds } from '../src/runtime/ort.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { foldBatchNorms } from '../src/quant/fold-bn.js';
import { upgradeOpset } from '../src/onnx/opset-upgrade.js';
import { activationParams, quantizeWeightsSymmetric } from '../src/quant/quant-math.js';
import { entropyThreshold, percentileRange } from '../src/quant/calibration.js';
import { FMNIST, MODELS, ROOT, feedsFor, passContext, readModel } from './helpers.js';
import { join } from 'node:path';
import { getConstant } from '../src/onnx/constants.js';
import { DataType as DT } from '../src/onnx/dtypes.js';

const fmnistBytes = readModel(MODELS.fmnist);
const fmnistModel = decodeModel(fmnistBytes);
const fmnistBatches = [...batchesFromArrays(fmnistModel, readArraysFile(FMNIST.inputs, fmnistModel), { batchSize: 50, maxSamples: 1000 })];
const fmnistLabels = readLabelsFile(FMNIST.labels);

function fmnistCtx(): PassContext {
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

async function quantize(bytes: Uint8Array, ctx: PassContext, overrides: Record<string, unknown> = {}) {
  const model = decodeModel(bytes);
  const config = TBValue.Default(quantizeStaticPass.schema, { pass: 'quantize.static', ...overrides }) as never;
  const q = await quantizeStaticPass.run(model, config, ctx);
  verifyModel(q);
  return { model: q, bytes: encodeModel(q) };
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
    const ctx = passContext(feeds);
    const q = await quantize(bytes, ctx, { allowSynthetic: true });
    assert.equal(ctx.changes.stats.opsetUpgradedFrom, 9);
    assert.equal(q.model.opset(''), 14);
    assert.ok(Number(ctx.changes.stats['simplified.hardswish']) > 0);
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
  it('plain int8 misses 20 dB output SQNR; keeping the layers that add the most noise float restores it, in 1 + log2(n) probes', async () => {
    const bytes = readModel(MODELS.ppocrRec);
    const m = decodeModel(bytes);
    // 2 calibration lines (min/max: one capture sweep) and 2 other lines to check on
    const calib = [...batchesFromArrays(m, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/calib-100.npz'), m), { batchSize: 2, maxSamples: 2 })];
    const held = [...batchesFromArrays(m, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/test-200.npz'), m), { batchSize: 2, maxSamples: 2 })];
    const ctxFor = () => passContext(calib, { synthetic: false });
    // nearest rounding keeps this test about the loop (GPTQ costs ~30 s on this model)
    const base = { calibrationMethod: 'minmax', maxCalibrationBatches: 1, weightRounding: 'nearest' };
    const plain = await quantize(bytes, ctxFor(), base);
    const ctx = ctxFor();
    const fixed = await quantize(bytes, ctx, { ...base, sensitivity: { minSqnrDb: 20, maxExcluded: 400, probeFraction: 1 } });
    const st = ctx.changes.stats;
    assert.match(String(st.sensitivityStart), /output SQNR/);
    const startDb = Number(/output SQNR (-?[\d.]+)/.exec(String(st.sensitivityStart))![1]);
    assert.ok(startDb < 20, `plain int8 already at ${startDb} dB (the test needs a miss)`);
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
    const ctx = passContext(calib, { synthetic: false });
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
