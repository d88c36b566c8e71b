import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Value } from '../src/onnx/ir.js';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { upgradeOpset } from '../src/onnx/opset-upgrade.js';
import { foldBatchNorms } from '../src/quant/fold-bn.js';
import { simplifyForQuantization } from '../src/quant/simplify.js';
import { gptqRound } from '../src/quant/gptq.js';
import { inverseUpperCholesky } from '../src/linalg/index.js';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { ort, runOnce, seededRandom, tensorToFloat32 } from '../src/runtime/ort.js';
import { MODELS, ROOT, readModel, testGraph } from './helpers.js';
import { join } from 'node:path';

const opCount = (m: ReturnType<typeof decodeModel>, op: string) => m.graph.nodes.filter((n) => n.opType === op).length;

describe('simplify before quantization', () => {
  it('PP-OCRv4 rec: affine blocks folded into the Convs, 28 hardswish chains fused into HardSwish, same outputs', async () => {
    const bytes = readModel(MODELS.ppocrRec);
    const m = decodeModel(bytes);
    upgradeOpset(m, 13);
    foldBatchNorms(m);
    const before = { mul: opCount(m, 'Mul'), add: opCount(m, 'Add'), clip: opCount(m, 'Clip') };
    const { applied } = simplifyForQuantization(m);
    verifyModel(m);
    assert.equal(m.opset(''), 14);
    assert.equal(applied.get('hardswish')?.length, 28);
    assert.equal(opCount(m, 'HardSwish'), 28);
    assert.equal(opCount(m, 'Clip'), before.clip - 28);
    assert.ok((applied.get('conv-affine-out')?.length ?? 0) >= 38, `conv-affine-out ${applied.get('conv-affine-out')?.length}`);
    assert.ok((applied.get('affine-into-conv')?.length ?? 0) > 0);
    assert.ok(opCount(m, 'Mul') < before.mul - 60 && opCount(m, 'Add') < before.add - 60, `Mul ${before.mul} → ${opCount(m, 'Mul')}, Add ${before.add} → ${opCount(m, 'Add')}`);
    const lines = [...batchesFromArrays(m, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/fit-test-200.npz'), m), { batchSize: 4, maxSamples: 4 })][0]!;
    const a = await runOnce(bytes, lines);
    const b = await runOnce(encodeModel(m), lines);
    for (const k of Object.keys(a)) {
      const f = fidelity(tensorToFloat32(a[k]!), tensorToFloat32(b[k]!));
      assert.ok(f.sqnrDb > 80 && f.maxAbsError < 1e-4, `${k}: ${f.sqnrDb} dB, max ${f.maxAbsError}`);
    }
  });

  it('folds only where exact: a padded Conv keeps the Add before it, an unpadded depthwise Conv absorbs a per-channel Mul', async () => {
    const { model, g, rand, weight: t, x, node: addNode } = testGraph('fold', 3, { name: 'x', dims: [1, 4, 6, 6] });
    const node = (op: string, inputs: Value[], attrs: Record<string, number | number[]> = {}) => addNode(op, inputs, attrs)[0]!;
    const c1 = node('Conv', [x, t('w1', [8, 4, 3, 3]), t('b1', [8])], { pads: [1, 1, 1, 1] });
    const s1 = node('Mul', [c1, t('s1', [1, 8, 1, 1], () => 0.5 + rand())]); // per-channel scale after a Conv: folds
    const a1 = node('Add', [s1, t('a1', [8, 1, 1])]); // per-channel shift after it: folds too
    const r = node('Relu', [a1]);
    const sh = node('Add', [r, t('a2', [1], () => 0.3)]); // shift before a PADDED Conv: must stay
    const c2 = node('Conv', [sh, t('w2', [8, 1, 3, 3]), t('b2', [8])], { pads: [1, 1, 1, 1], group: 8 });
    const r2 = node('Relu', [c2]);
    const m2 = node('Mul', [r2, t('s2', [1, 8, 1, 1], () => 0.5 + rand())]); // scale before an unpadded depthwise Conv: folds
    const c3 = node('Conv', [m2, t('w3', [8, 1, 1, 1]), t('b3', [8])], { group: 8 });
    const y = node('Conv', [c3, t('w4', [3, 8, 1, 1])]);
    g.outputs = [y];
    const bytes = encodeModel(model);
    const m = decodeModel(bytes);
    const { applied } = simplifyForQuantization(m);
    verifyModel(m);
    assert.equal(applied.get('conv-affine-out')?.length, 2);
    assert.equal(applied.get('affine-into-conv')?.length, 1);
    assert.equal(opCount(m, 'Mul'), 0);
    assert.equal(opCount(m, 'Add'), 1, 'the shift before the padded Conv stays');
    const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: 144 }, () => rand() * 2 - 1), [1, 4, 6, 6]) };
    const a = await runOnce(bytes, feeds);
    const b = await runOnce(encodeModel(m), feeds);
    const f = fidelity(tensorToFloat32(a[y.name]!), tensorToFloat32(b[y.name]!));
    assert.ok(f.maxAbsError < 1e-5, `max abs error ${f.maxAbsError}`);
  });
});

describe('GPTQ weight rounding', () => {
  // correlated inputs: where nearest rounding's errors add up in the output and GPTQ's cancel
  const d = 24;
  const rows = 6;
  const rand = seededRandom(21);
  const N = 400;
  const X = new Float64Array(N * d);
  for (let n = 0; n < N; n++) for (let i = 0; i < d; i++) X[n * d + i] = rand() - 0.5 + (i > 0 ? 0.9 * X[n * d + i - 1]! : 0);
  const H = new Float64Array(d * d);
  for (let n = 0; n < N; n++) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) H[i * d + j]! += X[n * d + i]! * X[n * d + j]!;

  it('the upper Cholesky factor of H⁻¹ satisfies UᵀU·H = I', () => {
    const U = inverseUpperCholesky(H, d)!;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < i; j++) assert.equal(U[i * d + j], 0);
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) {
          let uu = 0;
          for (let l = 0; l < d; l++) uu += U[l * d + i]! * U[l * d + k]!;
          s += uu * H[k * d + j]!;
        }
        assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-8, `(${i},${j}) ${s}`);
      }
    }
  });

  it('halves the output error of nearest rounding at 4 bits, levels within ±qmax', () => {
    const w = Float64Array.from({ length: rows * d }, () => rand() - 0.5);
    const scales = Array.from({ length: rows }, (_, r) => {
      let m = 0;
      for (let j = 0; j < d; j++) m = Math.max(m, Math.abs(w[r * d + j]!));
      return m / 7;
    });
    const res = gptqRound(w, rows, d, H, scales, 7);
    assert.ok(res.q.every((v) => v >= -7 && v <= 7));
    // output error measured directly on the inputs, not on H
    const outErr = (levels: ArrayLike<number>) => {
      let num = 0;
      let den = 0;
      for (let n = 0; n < N; n++) {
        for (let r = 0; r < rows; r++) {
          let y = 0;
          let yq = 0;
          for (let j = 0; j < d; j++) {
            y += X[n * d + j]! * w[r * d + j]!;
            yq += X[n * d + j]! * levels[r * d + j]! * scales[r]!;
          }
          num += (y - yq) ** 2;
          den += y * y;
        }
      }
      return Math.sqrt(num / den);
    };
    const nearest = Array.from(w, (v, i) => Math.max(-7, Math.min(7, Math.round(v / scales[Math.floor(i / d)]!))));
    const eN = outErr(nearest);
    const eG = outErr(res.q);
    assert.ok(eG < 0.5 * eN, `nearest ${eN.toFixed(4)}, gptq ${eG.toFixed(4)}`);
    assert.ok(Math.abs(res.errorNearest - eN) < 1e-6 && Math.abs(res.errorGptq - eG) < 1e-6, 'the reported errors are the output errors');
  });
});
