import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accumulateCross, accumulateGram, choleskyInPlace, choleskySolveInPlace, cpAls, frobeniusNorm, gaussianMatrix, gemmAccumulate, gramCols, gramRows, hooi, hosvd,
  inverseUpperCholesky, matmul, reducedRankRegression, matmulNT, matmulTN, mirrorUpper, qr, randomizedSvd, reconstruct, reconstructTucker, singularValues, solveRidge,
  sliceCols, subtract, symmetricEigen, tensor, transpose, truncatedSvd, unfold, fold, modeProduct, type Matrix, type Tensor,
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

  it('gemmAccumulate: blocks inside larger arrays, across panel edges and remainders, sums in the plain i-k-j order', () => {
    // 9 rows (4 + 4 + 1), k = 135 (> one 128-row panel, k % 4 = 3), n = 261 (> one 256-column panel)
    const [m, k, n] = [9, 135, 261];
    const a = gaussianMatrix(m, k, 40);
    const b = gaussianMatrix(k, n, 41);
    /** C + A·B as the unblocked loop sums it: groups of four products, then the rest. */
    const reference = (c: Float64Array): Float64Array => {
      const out = Float64Array.from(c);
      const k4 = k - (k % 4);
      for (let i = 0; i < m; i++) {
        const ai = (q: number) => a.data[i * k + q]!;
        const bj = (q: number, j: number) => b.data[q * n + j]!;
        for (let p = 0; p < k4; p += 4) for (let j = 0; j < n; j++) out[i * n + j] += ai(p) * bj(p, j) + ai(p + 1) * bj(p + 1, j) + ai(p + 2) * bj(p + 2, j) + ai(p + 3) * bj(p + 3, j);
        for (let p = k4; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j] += ai(p) * bj(p, j);
      }
      return out;
    };
    assert.deepEqual(matmul(a, b).data, reference(new Float64Array(m * n)));
    // accumulating into a block of a larger array, reading blocks of larger arrays
    const c0 = gaussianMatrix(m, n, 42).data;
    const [ao, bo, co] = [3, 5, 7];
    const A = new Float64Array(ao + m * k + 2);
    A.set(a.data, ao);
    const B = new Float64Array(bo + k * n + 2);
    B.set(b.data, bo);
    const C = new Float64Array(co + m * n + 2).fill(-1);
    C.set(c0, co);
    gemmAccumulate(C, co, A, ao, B, bo, m, k, n);
    assert.deepEqual(C.subarray(co, co + m * n), reference(c0));
    assert.deepEqual([...C.subarray(0, co), ...C.subarray(co + m * n)], new Array(9).fill(-1));
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

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e;
};

/** T ×ₙ M element by element: out[…, j, …] = Σᵢ M[j, i] T[…, i, …]. */
function definitionModeProduct(t: Tensor, mode: number, m: Matrix): Tensor {
  const size = t.dims[mode]!;
  const outer = t.dims.slice(0, mode).reduce((x, y) => x * y, 1);
  const inner = t.dims.slice(mode + 1).reduce((x, y) => x * y, 1);
  const out = tensor(t.dims.map((d, i) => (i === mode ? m.rows : d)));
  for (let o = 0; o < outer; o++) for (let j = 0; j < m.rows; j++) for (let i = 0; i < size; i++) for (let p = 0; p < inner; p++) {
    out.data[(o * m.rows + j) * inner + p] += m.data[j * size + i]! * t.data[(o * size + i) * inner + p]!;
  }
  return out;
}

/** HOOI as the textbook writes it: HOSVD start, then every sweep projects, decomposes each mode's unfolding and forms the full core. */
function textbookHooi(t: Tensor, ranks: Map<number, number>, sweeps: number): { errors: number[]; factors: Map<number, Matrix> } {
  const lead = (y: Tensor, mode: number) => sliceCols(symmetricEigen(gramRows(unfold(y, mode))).vectors, 0, ranks.get(mode)!);
  const factors = new Map([...ranks.keys()].map((mode) => [mode, lead(t, mode)]));
  const error = () => {
    let core = t;
    for (const [mode, u] of factors) core = definitionModeProduct(core, mode, transpose(u));
    return Math.sqrt(Math.max(0, frobeniusNorm(t.data) ** 2 - frobeniusNorm(core.data) ** 2)) / frobeniusNorm(t.data);
  };
  const errors = [error()];
  for (let s = 0; s < sweeps; s++) {
    for (const mode of ranks.keys()) {
      let y = t;
      for (const [m2, u] of factors) if (m2 !== mode) y = definitionModeProduct(y, m2, transpose(u));
      factors.set(mode, lead(y, mode));
    }
    errors.push(error());
  }
  return { errors, factors };
}

describe('linalg: tensors', () => {
  it('unfold/fold round trip and mode product matches the definition in every mode', () => {
    const t = tensor([3, 4, 5, 2], gaussianMatrix(1, 120, 12).data);
    for (let mode = 0; mode < 4; mode++) {
      assert.deepEqual(fold(unfold(t, mode), mode, t.dims).data, t.data);
      const m = gaussianMatrix(3, t.dims[mode]!, 13 + mode);
      const p = modeProduct(t, mode, m);
      assert.deepEqual(p.dims, t.dims.map((d, i) => (i === mode ? 3 : d)));
      assert.ok(maxDiff(p.data, definitionModeProduct(t, mode, m).data) < 1e-12, `mode ${mode}`);
      assert.ok(frobeniusNorm(subtract(unfold(p, mode), matmul(m, unfold(t, mode)))) < 1e-12);
    }
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

  it('HOOI: the same sweeps as the textbook algorithm, its error history from the eigenvalues, the same subspaces', () => {
    const t = tensor([14, 11, 3, 3], gaussianMatrix(1, 14 * 11 * 9, 24).data);
    const ranks = new Map([[0, 5], [1, 4]]);
    const h = hooi(t, ranks, { maxIterations: 6, tolerance: 0 });
    const ref = textbookHooi(t, ranks, h.iterations);
    assert.equal(h.history.length, h.iterations);
    assert.ok(maxDiff(h.history, ref.errors.slice(1)) < 1e-12, `${h.history} vs ${ref.errors}`);
    for (const [mode, u] of h.factors) {
      const v = ref.factors.get(mode)!;
      assert.ok(maxDiff(matmulNT(u, u).data, matmulNT(v, v).data) < 1e-8, `projector of mode ${mode}`);
    }
    // the core is T projected on the factors; its norm gives the reported error
    const core = definitionModeProduct(definitionModeProduct(t, 0, transpose(h.factors.get(0)!)), 1, transpose(h.factors.get(1)!));
    assert.ok(maxDiff(h.core.data, core.data) < 1e-12);
    assert.ok(Math.abs(h.relativeError - h.history[h.iterations - 1]!) < 1e-12);
  });

  it('HOOI stops when a sweep gains less than the tolerance, within 0.1% of the converged error', () => {
    const signal = reconstructTucker(tensor([6, 5, 3, 3], gaussianMatrix(1, 270, 25).data), new Map([[0, qr(gaussianMatrix(24, 6, 26)).q], [1, qr(gaussianMatrix(20, 5, 27)).q]]));
    const noise = gaussianMatrix(1, signal.data.length, 28).data;
    const t = tensor(signal.dims, signal.data.map((x, i) => x + 0.05 * noise[i]!));
    const ranks = new Map([[0, 8], [1, 6]]);
    const fast = hooi(t, ranks);
    const converged = hooi(t, ranks, { maxIterations: 200, tolerance: 0 });
    assert.ok(fast.iterations >= 1 && fast.iterations < converged.iterations, `${fast.iterations} vs ${converged.iterations} sweeps`);
    for (let i = 1; i < converged.history.length; i++) assert.ok(converged.history[i]! <= converged.history[i - 1]! + 1e-12, 'never worse than the sweep before (up to rounding)');
    assert.ok(fast.relativeError <= hosvd(t, ranks).relativeError, 'no worse than HOSVD');
    assert.ok(fast.relativeError < converged.relativeError * 1.001, `${fast.relativeError} vs ${converged.relativeError}`);
    assert.equal(hooi(t, ranks, { maxIterations: 0 }).relativeError, hosvd(t, ranks).relativeError);
    // one decomposed mode: one sweep is HOSVD, exactly
    const single = hooi(t, new Map([[1, 6]]));
    assert.equal(single.iterations, 1);
    assert.ok(Math.abs(single.relativeError - hosvd(t, new Map([[1, 6]])).relativeError) < 1e-12);
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

describe('linalg: Gram matrices, Cholesky, least squares', () => {
  /** A symmetric positive definite n×n matrix XᵀX + n·I. */
  const spd = (n: number, seed: number): Matrix => {
    const g = gramCols(gaussianMatrix(2 * n, n, seed));
    for (let i = 0; i < n; i++) g.data[i * n + i] += n;
    return g;
  };

  it('accumulateGram: XᵀX sample by sample, in blocks, and gramRows/gramCols all agree with the product', () => {
    const x = gaussianMatrix(37, 9, 30); // 37 samples × 9 features
    const want = matmulTN(x, x);
    const perSample = new Float64Array(81);
    for (let s = 0; s < 37; s++) accumulateGram(perSample, x.data.subarray(s * 9, (s + 1) * 9), 9);
    mirrorUpper(perSample, 9);
    const blocks = new Float64Array(81);
    const xt = transpose(x).data; // feature-major: 9 × 37
    for (const [from, to] of [[0, 16], [16, 17], [17, 37]] as const) {
      const n = to - from;
      const block = new Float64Array(9 * n);
      for (let k = 0; k < 9; k++) block.set(xt.subarray(k * 37 + from, k * 37 + to), k * n);
      accumulateGram(blocks, block, 9, n);
    }
    mirrorUpper(blocks, 9);
    assert.ok(maxDiff(perSample, want.data) < 1e-12);
    assert.ok(maxDiff(blocks, want.data) < 1e-12);
    assert.deepEqual(gramCols(x).data, gramRows(transpose(x)).data);
    assert.ok(maxDiff(gramRows(x).data, matmulNT(x, x).data) < 1e-12);
    // the lower triangle is left to mirrorUpper; one sample skips zero features
    const g = new Float64Array(9);
    accumulateGram(g, [0, 2, 3], 3);
    assert.deepEqual([...g], [0, 0, 0, 0, 4, 6, 0, 0, 9]);
  });

  it('accumulateCross: XᵀY sample by sample', () => {
    const x = gaussianMatrix(20, 4, 31);
    const y = gaussianMatrix(20, 3, 32);
    const c = new Float64Array(12);
    for (let s = 0; s < 20; s++) accumulateCross(c, x.data.subarray(s * 4, (s + 1) * 4), y.data.subarray(s * 3, (s + 1) * 3), 4, 3);
    assert.ok(maxDiff(c, matmulTN(x, y).data) < 1e-12);
  });

  it('choleskyInPlace: L Lᵀ = A with a zero upper triangle; fails on indefinite input unless given a pivot floor', () => {
    const n = 12;
    const a = spd(n, 33);
    const l = Float64Array.from(a.data);
    assert.equal(choleskyInPlace(l, n), true);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(l[i * n + j], 0);
    const lm = { rows: n, cols: n, data: l };
    assert.ok(maxDiff(matmulNT(lm, lm).data, a.data) < 1e-10);
    const indefinite = Float64Array.from([1, 2, 2, 1]);
    assert.equal(choleskyInPlace(Float64Array.from(indefinite), 2), false);
    const floored = Float64Array.from(indefinite);
    assert.equal(choleskyInPlace(floored, 2, 1e-6), true);
    assert.ok(floored.every(Number.isFinite));
  });

  it('choleskySolveInPlace and inverseUpperCholesky invert A', () => {
    const n = 10;
    const a = spd(n, 34);
    const l = Float64Array.from(a.data);
    choleskyInPlace(l, n);
    const b = gaussianMatrix(n, 3, 35);
    const x = Float64Array.from(b.data);
    choleskySolveInPlace(l, x, n, 3);
    assert.ok(maxDiff(matmul(a, { rows: n, cols: 3, data: x }).data, b.data) < 1e-10);
    const u = inverseUpperCholesky(a.data, n)!;
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(u[i * n + j], 0);
    const um = { rows: n, cols: n, data: u };
    const identity = matmul(a, matmulTN(um, um)); // A · UᵀU
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.ok(Math.abs(identity.data[i * n + j]! - (i === j ? 1 : 0)) < 1e-10);
    assert.equal(inverseUpperCholesky(Float64Array.from([1, 2, 2, 1]), 2), undefined);
  });

  it('reducedRankRegression: recovers an exact rank-r map and its intercept; at full rank it is least squares; on noisy data it beats truncating the least-squares map', () => {
    const n = 200;
    const d = 7;
    const m = 5;
    const z = gaussianMatrix(n, d, 41);
    const sums = (y: Matrix) => {
      const zSum = new Float64Array(d);
      const ySum = new Float64Array(y.cols);
      for (let r = 0; r < n; r++) {
        for (let k = 0; k < d; k++) zSum[k] += z.data[r * d + k]!;
        for (let j = 0; j < y.cols; j++) ySum[j] += y.data[r * y.cols + j]!;
      }
      return { zSum, ySum };
    };
    const fitOf = (y: Matrix, r: number) => {
      const { zSum, ySum } = sums(y);
      return reducedRankRegression(gramCols(z).data, matmulTN(z, y).data, zSum, ySum, n, d, y.cols, r);
    };
    const predict = (f: { A: Float64Array; B: Float64Array; intercept: Float64Array }, r: number) => {
      const p = matmul(matmul(z, { rows: d, cols: r, data: f.A }), { rows: r, cols: m, data: f.B });
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) p.data[i * m + j] += f.intercept[j]!;
      return p;
    };
    // exact: Y = Z·(rank-2 W) + c
    const w = matmul(gaussianMatrix(d, 2, 42), gaussianMatrix(2, m, 43));
    const c = [0.5, -1, 2, 0, 3];
    const y = matmul(z, w);
    for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) y.data[i * m + j] += c[j]!;
    const exact = fitOf(y, 2);
    assert.ok(maxDiff(matmul({ rows: d, cols: 2, data: exact.A }, { rows: 2, cols: m, data: exact.B }).data, w.data) < 1e-6);
    assert.ok(maxDiff(exact.intercept, Float64Array.from(c)) < 1e-6);
    assert.ok(orthonormalityError(transpose({ rows: 2, cols: m, data: exact.B })) < 1e-9, 'B has orthonormal rows');
    // noisy full-rank data: rank 2 is never worse than the least-squares map truncated by its own SVD (the wrong metric)
    const noisy = matmul(z, gaussianMatrix(d, m, 44));
    const g = gaussianMatrix(n, m, 45);
    for (let i = 0; i < n * m; i++) noisy.data[i] += 0.3 * g.data[i]!;
    const rrr = fitOf(noisy, 2);
    const full = fitOf(noisy, m);
    const ls = solveRidge(gramCols(z).data, matmulTN(z, noisy).data, d, m); // no intercept needed: zero-mean columns up to noise
    const svd = truncatedSvd({ rows: d, cols: m, data: ls }, 2);
    const truncated = reconstruct(svd);
    const residual = (p: Matrix) => frobeniusNorm(subtract(noisy, p));
    const { zSum, ySum } = sums(noisy);
    const truncPred = matmul(z, truncated);
    // give the truncated map its best intercept too
    for (let j = 0; j < m; j++) {
      let zt = 0;
      for (let k = 0; k < d; k++) zt += zSum[k]! * truncated.data[k * m + j]!;
      for (let i = 0; i < n; i++) truncPred.data[i * m + j] += (ySum[j]! - zt) / n;
    }
    assert.ok(residual(predict(rrr, 2)) <= residual(truncPred) + 1e-9, `${residual(predict(rrr, 2))} vs ${residual(truncPred)}`);
    assert.ok(residual(predict(full, m)) <= residual(predict(rrr, 2)));
  });

  it('solveRidge: the least-squares solution, the ridge solution, a free bias, and a finite answer for a singular Gram', () => {
    // exact data: B = A W, so plain least squares recovers W
    const a = gaussianMatrix(50, 6, 36);
    const w = gaussianMatrix(6, 2, 37);
    const b = matmul(a, w);
    const g = gramCols(a);
    const c = matmulTN(a, b);
    assert.ok(maxDiff(solveRidge(g.data, c.data, 6, 2), w.data) < 1e-8);
    assert.deepEqual(g.data, gramCols(a).data, 'G is not changed');
    // ridge: (G + λI) X = C
    const x = solveRidge(g.data, c.data, 6, 2, { ridge: 5 });
    const shifted = Float64Array.from(g.data);
    for (let i = 0; i < 6; i++) shifted[i * 6 + i] += 5;
    assert.ok(maxDiff(matmul({ rows: 6, cols: 6, data: shifted }, { rows: 6, cols: 2, data: x }).data, c.data) < 1e-6);
    // ridgeCount: the last feature (a bias) is not pulled toward 0
    const partial = solveRidge(g.data, c.data, 6, 2, { ridge: 5, ridgeCount: 5 });
    const shiftedPartial = Float64Array.from(g.data);
    for (let i = 0; i < 5; i++) shiftedPartial[i * 6 + i] += 5;
    assert.ok(maxDiff(matmul({ rows: 6, cols: 6, data: shiftedPartial }, { rows: 6, cols: 2, data: partial }).data, c.data) < 1e-6);
    // a feature that never fires: all-zero row and column; the others are still solved
    const dead = Float64Array.from(g.data);
    for (let i = 0; i < 6; i++) dead[i * 6 + 2] = dead[2 * 6 + i] = 0;
    const cd = Float64Array.from(c.data);
    cd[4] = cd[5] = 0;
    const xd = solveRidge(dead, cd, 6, 2);
    assert.ok(xd.every(Number.isFinite));
    assert.equal(xd[4], 0);
  });
});
