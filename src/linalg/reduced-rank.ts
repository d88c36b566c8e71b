// Reduced-rank regression: the best rank-r linear map from features to targets on data, from the
// normal equations alone. Fitting a product of two factors at once (Tucker's core and output
// projection) this way beats fitting one with the other held fixed.
import { solveRidge, type RidgeOptions } from './least-squares.js';
import { symmetricEigen } from './eigen.js';
import { matmul, matmulNT, matmulTN, sliceCols, transpose, type Matrix } from './matrix.js';

export interface ReducedRankFit {
  /** d×r, row-major: features → the r latent values. */
  A: Float64Array;
  /** r×m, row-major, orthonormal rows: latent values → targets. */
  B: Float64Array;
  /** m: the intercept, ȳ − z̄·A·B. */
  intercept: Float64Array;
}

/**
 * min over rank-r W (and an intercept c) of ‖Y − Z W − 1cᵀ‖² (+ ridge‖W‖²), W = A·B, from the sums
 * of n rows: G = ZᵀZ (d×d), C = ZᵀY (d×m), zSum = Σ rows of Z, ySum = Σ rows of Y. The full
 * least-squares map M is projected onto the r leading principal directions of its fitted values
 * (eigenvectors of Mᵀ·Gc·M), which is optimal for the rank constraint (Izenman 1975).
 */
export function reducedRankRegression(G: Float64Array, C: Float64Array, zSum: ArrayLike<number>, ySum: ArrayLike<number>, n: number, d: number, m: number, r: number, opts: RidgeOptions = {}): ReducedRankFit {
  if (n <= 0) throw new RangeError('reduced-rank regression on no rows');
  // centre: Gc = G − n z̄z̄ᵀ, Cc = C − n z̄ȳᵀ (the intercept absorbs the means)
  const Gc = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) Gc[i * d + j] = G[i * d + j]! - (zSum[i]! * zSum[j]!) / n;
  const Cc = new Float64Array(d * m);
  for (let i = 0; i < d; i++) for (let j = 0; j < m; j++) Cc[i * m + j] = C[i * m + j]! - (zSum[i]! * ySum[j]!) / n;
  const M: Matrix = { rows: d, cols: m, data: solveRidge(Gc, Cc, d, m, opts) };
  // S = Mᵀ Gc M (m×m): the covariance of the fitted values
  const S = matmulTN(M, matmul({ rows: d, cols: d, data: Gc }, M));
  const rank = Math.min(r, m);
  const V = symmetricEigen(S).vectors; // m×m, columns largest first
  const B = transpose(sliceCols(V, 0, rank)); // rank×m
  const A = matmulNT(M, B); // d×rank
  // the intercept: (Σy − Σz·A·B) / n
  const fitted = matmul(matmul({ rows: 1, cols: d, data: Float64Array.from(zSum) }, A), B).data;
  const intercept = Float64Array.from({ length: m }, (_, j) => (ySum[j]! - fitted[j]!) / n);
  return { A: A.data, B: B.data, intercept };
}
