import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cpAls, frobeniusNorm, gaussianMatrix, hooi, hosvd, matmul, matmulNT, matmulTN, qr, randomizedSvd, reconstruct,
  reconstructTucker, singularValues, subtract, symmetricEigen, tensor, transpose, truncatedSvd, unfold, fold, modeProduct, type Matrix,
} from '../src/linalg/index.js';

function orthonormalityError(q: Matrix): number {
  const g = matmulTN(q, q);
  let e = 0;
  for (let i = 0; i < g.rows; i++) for (let j = 0; j < g.cols; j++) e = Math.max(e, Math.abs(g.data[i * g.cols + j]! - (i === j ? 1 : 0)));
  return e;
}

/** A = U diag(s) Vᵀ with known orthonormal U, V and the given spectrum. */
function withSpectrum(m: number, n: number, s: number[], seed: number): Matrix {
  const u = qr(gaussianMatrix(m, s.length, seed)).q;
  const v = qr(gaussianMatrix(n, s.length, seed + 1)).q;
  return reconstruct({ u, s: Float64Array.from(s), v });
}

describe('linalg: products, QR, eigen', () => {
  it('matmul variants agree with the definition', () => {
    const a = gaussianMatrix(7, 5, 1);
    const b = gaussianMatrix(5, 6, 2);
    const c = matmul(a, b);
    for (let i = 0; i < 7; i++) for (let j = 0; j < 6; j++) {
      let s = 0;
      for (let p = 0; p < 5; p++) s += a.data[i * 5 + p]! * b.data[p * 6 + j]!;
      assert.ok(Math.abs(c.data[i * 6 + j]! - s) < 1e-12);
    }
    assert.ok(frobeniusNorm(subtract(matmulTN(transpose(a), b), c)) < 1e-12);
    assert.ok(frobeniusNorm(subtract(matmulNT(a, transpose(b)), c)) < 1e-12);
  });

  it('Householder QR: Q orthonormal, R upper, QR = A', () => {
    const a = gaussianMatrix(60, 20, 3);
    const { q, r } = qr(a);
    assert.ok(orthonormalityError(q) < 1e-12);
    for (let i = 0; i < 20; i++) for (let j = 0; j < i; j++) assert.equal(r.data[i * 20 + j], 0);
    assert.ok(frobeniusNorm(subtract(matmul(q, r), a)) / frobeniusNorm(a) < 1e-13);
  });

  it('symmetric eigen: A V = V Λ, V orthonormal, known eigenvalues', () => {
    const n = 50;
    const q = qr(gaussianMatrix(n, n, 4)).q;
    const lambda = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -1 : 1) * (i + 1));
    const a = reconstruct({ u: q, s: Float64Array.from(lambda), v: q });
    const { values, vectors } = symmetricEigen(a);
    const sorted = [...lambda].sort((x, y) => y - x);
    sorted.forEach((l, i) => assert.ok(Math.abs(values[i]! - l) < 1e-10, `λ${i}: ${values[i]} vs ${l}`));
    assert.ok(orthonormalityError(vectors) < 1e-12);
    const av = matmul(a, vectors);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.ok(Math.abs(av.data[i * n + j]! - values[j]! * vectors.data[i * n + j]!) < 1e-9);
  });
});

describe('linalg: SVD', () => {
  it('truncated SVD recovers a constructed spectrum and hits the Eckart–Young error', () => {
    const s = [50, 20, 10, 5, 2, 1, 0.5, 0.1];
    for (const [m, n] of [[40, 90], [90, 40]] as const) {
      const a = withSpectrum(m, n, s, 10);
      const t = truncatedSvd(a, 4);
      s.slice(0, 4).forEach((x, i) => assert.ok(Math.abs(t.s[i]! - x) < 1e-9, `σ${i}`));
      assert.ok(orthonormalityError(t.u) < 1e-9 && orthonormalityError(t.v) < 1e-9);
      const err = frobeniusNorm(subtract(a, reconstruct(t)));
      const optimum = Math.hypot(...s.slice(4));
      assert.ok(Math.abs(err - optimum) < 1e-8 * optimum + 1e-9, `error ${err} vs optimum ${optimum}`);
      assert.ok(Math.abs(singularValues(a)[0]! - 50) < 1e-9);
    }
  });

  it('exact low-rank matrix: rank-r SVD reconstructs it', () => {
    const a = matmul(gaussianMatrix(70, 6, 5), gaussianMatrix(6, 50, 6));
    const t = truncatedSvd(a, 6);
    assert.ok(frobeniusNorm(subtract(a, reconstruct(t))) / frobeniusNorm(a) < 1e-10);
  });

  it('randomized SVD: close to the Eckart–Young optimum on a decaying spectrum', () => {
    const s = Array.from({ length: 60 }, (_, i) => 100 * 0.85 ** i);
    const a = withSpectrum(300, 200, s, 11);
    const r = randomizedSvd(a, 20, { oversample: 10, powerIterations: 2 });
    assert.ok(orthonormalityError(r.u) < 1e-9 && orthonormalityError(r.v) < 1e-9);
    const err = frobeniusNorm(subtract(a, reconstruct(r)));
    const optimum = Math.hypot(...s.slice(20));
    assert.ok(err < 1.01 * optimum, `error ${err} vs optimum ${optimum}`);
    s.slice(0, 20).forEach((x, i) => assert.ok(Math.abs(r.s[i]! - x) / x < 1e-6, `σ${i} ${r.s[i]} vs ${x}`));
  });
});

describe('linalg: tensors', () => {
  it('unfold/fold round trip and mode product matches the unfolded product', () => {
    const t = tensor([3, 4, 5], gaussianMatrix(1, 60, 12).data);
    for (let mode = 0; mode < 3; mode++) assert.deepEqual(fold(unfold(t, mode), mode, t.dims).data, t.data);
    const m = gaussianMatrix(2, 4, 13);
    const p = modeProduct(t, 1, m);
    assert.deepEqual(p.dims, [3, 2, 5]);
    const direct = matmul(m, unfold(t, 1));
    assert.ok(frobeniusNorm(subtract(unfold(p, 1), direct)) < 1e-12);
  });

  it('HOSVD/HOOI recover an exact multilinear-rank tensor; HOOI never worse than HOSVD', () => {
    const core = tensor([3, 2, 3, 3], gaussianMatrix(1, 54, 14).data);
    const factors = new Map([[0, qr(gaussianMatrix(12, 3, 15)).q], [1, qr(gaussianMatrix(10, 2, 16)).q]]);
    const t = reconstructTucker(core, factors);
    const exact = hosvd(t, new Map([[0, 3], [1, 2]]));
    assert.ok(exact.relativeError < 1e-7);
    const rec = reconstructTucker(exact.core, exact.factors);
    assert.ok(frobeniusNorm(subtract({ rows: 1, cols: t.data.length, data: rec.data }, { rows: 1, cols: t.data.length, data: t.data })) / frobeniusNorm(t.data) < 1e-10);
    const noisy = tensor([12, 10, 3, 3], t.data.map((x, i) => x + 0.3 * gaussianMatrix(1, t.data.length, 17).data[i]!));
    const h1 = hosvd(noisy, new Map([[0, 2], [1, 2]]));
    const h2 = hooi(noisy, new Map([[0, 2], [1, 2]]));
    assert.ok(h2.relativeError <= h1.relativeError + 1e-12);
    // reported error matches the actual reconstruction error
    const rec2 = reconstructTucker(h2.core, h2.factors);
    let e = 0;
    for (let i = 0; i < rec2.data.length; i++) e += (rec2.data[i]! - noisy.data[i]!) ** 2;
    assert.ok(Math.abs(Math.sqrt(e) / frobeniusNorm(noisy.data) - h2.relativeError) < 1e-9);
  });

  it('CP-ALS recovers an exact rank-3 tensor', () => {
    const R = 3;
    const fs = [gaussianMatrix(8, R, 20), gaussianMatrix(7, R, 21), gaussianMatrix(3, R, 22), gaussianMatrix(3, R, 23)];
    const t = tensor([8, 7, 3, 3]);
    for (let a = 0; a < 8; a++) for (let b = 0; b < 7; b++) for (let c = 0; c < 3; c++) for (let d = 0; d < 3; d++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += fs[0]!.data[a * R + r]! * fs[1]!.data[b * R + r]! * fs[2]!.data[c * R + r]! * fs[3]!.data[d * R + r]!;
      t.data[((a * 7 + b) * 3 + c) * 3 + d] = s;
    }
    const cp = cpAls(t, R, { maxIterations: 500, tolerance: 1e-12 });
    assert.ok(cp.relativeError < 1e-4, `CP error ${cp.relativeError}`);
  });
});
