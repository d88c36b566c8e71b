// Truncated SVD. Small side ≤ a few thousand: eigendecomposition of the Gram matrix of the smaller
// side (AAᵀ or AᵀA). Large matrices with a small rank: randomized range finder (Halko, Martinsson,
// Tropp) with oversampling and power iterations, re-orthonormalised by QR after every product.
import { symmetricEigen } from './eigen.js';
import { gaussianMatrix, gramCols, gramRows, matmul, matmulTN, matrix, sliceCols, transpose, type Matrix } from './matrix.js';
import { qr } from './qr.js';

export interface Svd {
  /** m×k, orthonormal columns. */
  u: Matrix;
  /** Singular values, largest first (length k). */
  s: Float64Array;
  /** n×k, orthonormal columns (A ≈ U diag(s) Vᵀ). */
  v: Matrix;
}

/** Every singular value of A (from the Gram matrix of the smaller side), largest first. */
export function singularValues(a: Matrix): Float64Array {
  const g = a.rows <= a.cols ? gramRows(a) : gramCols(a);
  return symmetricEigen(g).values.map((x) => Math.sqrt(Math.max(0, x)));
}

/**
 * Rank-k truncated SVD via the Gram matrix of the smaller side. Accurate for singular values well
 * above √ε·σ₁ (squaring halves the digits); directions below that carry no weight worth keeping.
 * Also returns all singular values (`all`) for rank selection.
 */
export function truncatedSvd(a: Matrix, k: number): Svd & { all: Float64Array } {
  const { rows: m, cols: n } = a;
  const p = Math.min(m, n);
  k = Math.max(0, Math.min(k, p));
  const wide = m <= n;
  const eig = symmetricEigen(wide ? gramRows(a) : gramCols(a));
  const all = eig.values.map((x) => Math.sqrt(Math.max(0, x)));
  const s = all.slice(0, k);
  const basis = sliceCols(eig.vectors, 0, k); // U (wide) or V (tall)
  // the other side: Aᵀ U / s or A V / s
  const other = wide ? matmulTN(a, basis) : matmul(a, basis);
  completeOtherSide(other, s, wide ? n : m);
  return wide ? { u: basis, s, v: other, all } : { u: other, s, v: basis, all };
}

/** Divides column j by s[j]; columns for (numerically) zero singular values get an orthonormal filler. */
function completeOtherSide(other: Matrix, s: Float64Array, len: number): void {
  const k = s.length;
  const tiny = (s[0] ?? 0) * 1e-12;
  for (let j = 0; j < k; j++) {
    const sj = s[j]!;
    if (sj > tiny && sj > 0) {
      for (let i = 0; i < len; i++) other.data[i * k + j]! /= sj;
    } else {
      for (let i = 0; i < len; i++) other.data[i * k + j] = 0;
    }
  }
  // fill zero columns with unit vectors orthogonal to the rest (Gram–Schmidt against them)
  for (let j = 0; j < k; j++) {
    if (s[j]! > tiny && s[j]! > 0) continue;
    for (let cand = 0; cand < len; cand++) {
      const col = new Float64Array(len);
      col[cand] = 1;
      for (let c = 0; c < k; c++) {
        if (c === j) continue;
        let dot = 0;
        for (let i = 0; i < len; i++) dot += other.data[i * k + c]! * col[i]!;
        for (let i = 0; i < len; i++) col[i] -= dot * other.data[i * k + c]!;
      }
      let norm = 0;
      for (let i = 0; i < len; i++) norm += col[i]! * col[i]!;
      norm = Math.sqrt(norm);
      if (norm > 1e-6) {
        for (let i = 0; i < len; i++) other.data[i * k + j] = col[i]! / norm;
        break;
      }
    }
  }
}

export interface RandomizedSvdOptions {
  oversample?: number;
  powerIterations?: number;
  seed?: number;
}

/** Rank-k randomized SVD: cost ≈ (2q+2) products of A with an n×(k+p) block. */
export function randomizedSvd(a: Matrix, k: number, opts: RandomizedSvdOptions = {}): Svd {
  const { rows: m, cols: n } = a;
  const p = Math.min(m, n);
  k = Math.max(1, Math.min(k, p));
  const l = Math.min(p, k + (opts.oversample ?? 10));
  const q = opts.powerIterations ?? 2;
  if (l >= p) {
    const t = truncatedSvd(a, k);
    return { u: t.u, s: t.s, v: t.v };
  }
  const at = transpose(a); // products with Aᵀ become row-contiguous products
  let Q = qr(matmul(a, gaussianMatrix(n, l, opts.seed ?? 0x5eed))).q; // m×l
  for (let i = 0; i < q; i++) {
    const Z = qr(matmul(at, Q)).q; // n×l
    Q = qr(matmul(a, Z)).q;
  }
  // B = Qᵀ A (l×n); its SVD through the l×l Gram matrix B Bᵀ
  const B = matmul(transpose(Q), a);
  const small = truncatedSvd(B, k);
  return { u: matmul(Q, small.u), s: small.s, v: small.v };
}

/** U diag(s) Vᵀ. */
export function reconstruct(svd: Svd): Matrix {
  const { u, s, v } = svd;
  const k = s.length;
  const us = matrix(u.rows, k);
  for (let i = 0; i < u.rows; i++) for (let j = 0; j < k; j++) us.data[i * k + j] = u.data[i * k + j]! * s[j]!;
  return matmul(us, transpose(v));
}
