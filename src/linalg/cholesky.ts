// Cholesky factorisation of symmetric d×d matrices stored row-major in a Float64Array, and what is
// built on it: triangular solves and the factor of an inverse.

/**
 * Lower Cholesky factor L (A = L Lᵀ) in place; the upper triangle is zeroed. A pivot that is not
 * positive fails the factorisation (false), unless `pivotFloor` is given: the pivot is then raised
 * to it, so a semi-definite matrix (a dead feature's all-zero row) still factors.
 */
export function choleskyInPlace(A: Float64Array, d: number, pivotFloor?: number): boolean {
  for (let j = 0; j < d; j++) {
    const rj = j * d;
    let s = A[rj + j]!;
    for (let k = 0; k < j; k++) s -= A[rj + k]! * A[rj + k]!;
    if (!(s > 0)) {
      if (pivotFloor === undefined) return false;
      s = pivotFloor;
    }
    const ljj = Math.sqrt(s);
    A[rj + j] = ljj;
    for (let i = j + 1; i < d; i++) {
      const ri = i * d;
      let t = A[ri + j]!;
      for (let k = 0; k < j; k++) t -= A[ri + k]! * A[rj + k]!;
      A[ri + j] = t / ljj;
    }
    for (let k = j + 1; k < d; k++) A[rj + k] = 0;
  }
  return true;
}

/**
 * Solves L Lᵀ X = B in place on B (d×m, row-major) given the lower Cholesky factor L. All columns
 * advance together, a row of B at a time, so the inner loops run along rows (contiguous); each
 * entry sums its terms in the same order as a column-by-column solve.
 */
export function choleskySolveInPlace(L: Float64Array, B: Float64Array, d: number, m: number): void {
  for (let i = 0; i < d; i++) {
    const bi = i * m;
    for (let k = 0; k < i; k++) {
      const lik = L[i * d + k]!;
      if (lik === 0) continue;
      const bk = k * m;
      for (let c = 0; c < m; c++) B[bi + c]! -= lik * B[bk + c]!;
    }
    const lii = L[i * d + i]!;
    for (let c = 0; c < m; c++) B[bi + c] = B[bi + c]! / lii;
  }
  for (let i = d - 1; i >= 0; i--) {
    const bi = i * m;
    for (let k = i + 1; k < d; k++) {
      const lki = L[k * d + i]!;
      if (lki === 0) continue;
      const bk = k * m;
      for (let c = 0; c < m; c++) B[bi + c]! -= lki * B[bk + c]!;
    }
    const lii = L[i * d + i]!;
    for (let c = 0; c < m; c++) B[bi + c] = B[bi + c]! / lii;
  }
}

/**
 * The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), computed without forming H⁻¹: with the
 * reversal permutation P, P H P = L Lᵀ gives H⁻¹ = (P L⁻ᵀ P)(P L⁻¹ P), and P L⁻¹ P is upper
 * triangular. Undefined when H is not positive definite.
 */
export function inverseUpperCholesky(H: Float64Array, d: number): Float64Array | undefined {
  const R = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) R[i * d + j] = H[(d - 1 - i) * d + (d - 1 - j)]!;
  if (!choleskyInPlace(R, d)) return undefined;
  // columns of L⁻¹ by forward substitution (x = L⁻¹ e_j), each stored contiguously, then placed as
  // U = P L⁻¹ P: U[i][j] = L⁻¹[d-1-i][d-1-j]
  const U = new Float64Array(d * d);
  const x = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    x[j] = 1 / R[j * d + j]!;
    for (let i = j + 1; i < d; i++) {
      let s = 0;
      const ri = i * d;
      for (let k = j; k < i; k++) s += R[ri + k]! * x[k]!;
      x[i] = -s / R[ri + i]!;
    }
    for (let i = j; i < d; i++) U[(d - 1 - i) * d + (d - 1 - j)] = x[i]!;
  }
  return U;
}
