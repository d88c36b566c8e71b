import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { quantizeWeightsPass } from '../src/passes/quantize-weights.js';
import type { StatsOf } from '../src/pipeline/pass.js';
import { packMatMulNBits } from '../src/quant/int4.js';
import { runOnce, tensorToFloat32 } from '../src/runtime/ort.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { readArraysFile, batchesFromArrays } from '../src/data/samples.js';
import { FMNIST, MODELS, feedsFor, passContext, readModel } from './helpers.js';

async function run(path: string, feeds: import('../src/runtime/ort.js').Feeds, overrides: Record<string, unknown>) {
  const bytes = readModel(path);
  const ctx = passContext<StatsOf<typeof quantizeWeightsPass>>([feeds]);
  const model = await quantizeWeightsPass.run(decodeModel(bytes), TBValue.Default(quantizeWeightsPass.schema, { pass: 'quantize.weights', ...overrides }) as never, ctx);
  verifyModel(model);
  const out = encodeModel(model);
  const ref = await runOnce(bytes, feeds);
  const got = await runOnce(out, feeds);
  const fid = Object.keys(ref).map((k) => fidelity(tensorToFloat32(ref[k]!), tensorToFloat32(got[k]!)));
  return { bytes, out, model, ctx, fid };
}

describe('quantize.weights', () => {
  it('int8 per-channel on the fmnist CNN: ≈0.27× size, outputs close', async () => {
    const m = decodeModel(readModel(MODELS.fmnist));
    const feeds = [...batchesFromArrays(m, readArraysFile(FMNIST.inputs, m), { batchSize: 64, maxSamples: 64 })][0]!;
    const r = await run(MODELS.fmnist, feeds, { bits: 8, minElements: 0 });
    assert.ok(r.out.length / r.bytes.length < 0.3, `size ${(r.out.length / r.bytes.length).toFixed(3)}`);
    assert.ok(r.model.graph.nodes.filter((n) => n.opType === 'DequantizeLinear').length >= 13);
    assert.ok(r.fid[0]!.sqnrDb > 30, `SQNR ${r.fid[0]!.sqnrDb}`);
  });

  it('int8 on PP-OCR det (Constant-node weights, opset 11 → 13)', async () => {
    const m = decodeModel(readModel(MODELS.ppocrDet));
    const r = await run(MODELS.ppocrDet, feedsFor('ppocrDet', m), { bits: 8 });
    assert.equal(r.model.opset(''), 13);
    assert.ok(r.out.length / r.bytes.length < 0.35, `size ${(r.out.length / r.bytes.length).toFixed(3)}`);
    assert.ok(r.fid[0]!.maxAbsError < 0.05, `max abs error ${r.fid[0]!.maxAbsError}`);
  });

  for (const symmetric of [true, false]) {
    it(`int4 MatMulNBits (block 32, ${symmetric ? 'symmetric' : 'zero points'}) on PP-OCRv4 rec: runs in onnxruntime, MatMul weight bytes ≈ 0.16×`, async () => {
      const m = decodeModel(readModel(MODELS.ppocrRec));
      const r = await run(MODELS.ppocrRec, feedsFor('ppocrRec', m), { bits: 4, blockSize: 32, symmetric, minElements: 0 });
      const nbits = r.model.graph.nodes.filter((n) => n.opType === 'MatMulNBits');
      assert.ok(nbits.length >= 9, `${nbits.length} MatMulNBits`);
      assert.ok(r.fid[0]!.sqnrDb > 10, `SQNR ${r.fid[0]!.sqnrDb}`);
      // 4 bits + a float32 scale per 32 = 0.156×; rec's K (e.g. 120, 240) isn't a multiple of 32, and
      // the padded blocks cost ~1 pt more, so rec measures 0.167× (symmetric) / 0.171× (zero points)
      assert.ok(Number(r.ctx.changes.stats.weightBytesRatio) <= 0.175, `weight bytes ratio ${r.ctx.changes.stats.weightBytesRatio}`);
    });
  }

  it('packs 4-bit values the way MatMulNBits reads them', () => {
    // K = 4, N = 1, block 4: values -7..7 symmetric → q = round(w / s) + 8 with s = 7/7
    const w = Float32Array.from([-7, 0, 3, 7]);
    const p = packMatMulNBits(w, 4, 1, 4, true);
    assert.equal(p.scales[0], 1);
    assert.deepEqual([...p.packed], [1 | (8 << 4), 11 | (15 << 4)]);
    const a = packMatMulNBits(Float32Array.from([0, 1, 2, 15]), 4, 1, 4, false);
    assert.equal(a.zeroPoints![0], 0);
    assert.deepEqual([...a.packed], [0 | (1 << 4), 2 | (15 << 4)]);
  });
});
