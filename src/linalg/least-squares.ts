// Regularised least squares from its normal equations: the one solve every refit and ALS update uses.
import { choleskyInPlace, choleskySolveInPlace } from './cholesky.js';

export interface RidgeOptions {
  /** Added to the diagonal of the Gram matrix (0: plain least squares). */
  ridge?: number;
  /** Only the first this many diagonal entries get `ridge` (features after them, e.g. a bias, stay free); default all. */
  ridgeCount?: number;
}

/**
 * X (d×m) solving (G + ridge·I) X = C for a symmetric positive semi-definite G = AᵀA (d×d) and
 * C = AᵀB (d×m): the minimiser of ‖A X − B‖² + ridge‖X‖². G and C are not changed. A jitter of
 * 1e-10 × the largest diagonal entry is added on top, and non-positive pivots are raised to it, so
 * a singular G (a feature that never fires, a rank-deficient ALS Gram) still gives a finite answer.
 */
export function solveRidge(G: Float64Array, C: Float64Array, d: number, m: number, opts: RidgeOptions = {}): Float64Array {
  const { ridge = 0, ridgeCount = d } = opts;
  const L = Float64Array.from(G);
  for (let i = 0; i < ridgeCount; i++) L[i * d + i]! += ridge;
  let maxDiag = 0;
  for (let i = 0; i < d; i++) maxDiag = Math.max(maxDiag, L[i * d + i]!);
  const jitter = Math.max(maxDiag, 1e-12) * 1e-10;
  for (let i = 0; i < d; i++) L[i * d + i]! += jitter;
  choleskyInPlace(L, d, jitter);
  const X = Float64Array.from(C);
  choleskySolveInPlace(L, X, d, m);
  return X;
}
