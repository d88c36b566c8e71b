// Gram matrices XᵀX and the right-hand sides XᵀY of least-squares normal equations, accumulated
// sample by sample or block by block (calibration data arrives in batches).

/**
 * G (d×d) += XᵀX on the upper triangle, for `n` samples of `d` features stored feature-major:
 * x[k·n + s] is feature k of sample s (one sample is just its feature vector). A call sums its
 * samples first and adds that sum to G, so one call per sample and one call per block round
 * differently; callers keep whichever order they always had. Complete G with `mirrorUpper`.
 */
export function accumulateGram(G: Float64Array, x: ArrayLike<number>, d: number, n = 1): void {
  if (n === 1) {
    // one sample: the same sums as below, skipping the zero products (ReLU features, padding taps)
    for (let i = 0; i < d; i++) {
      const xi = x[i]!;
      if (xi === 0) continue;
      const gi = i * d;
      for (let j = i; j < d; j++) G[gi + j]! += xi * x[j]!;
    }
    return;
  }
  // contiguous dot products of feature rows, four at a time
  for (let i = 0; i < d; i++) {
    const ci = i * n;
    let j = i;
    for (; j + 3 < d; j += 4) {
      const c0 = j * n;
      const c1 = c0 + n;
      const c2 = c1 + n;
      const c3 = c2 + n;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let r = 0; r < n; r++) {
        const v = x[ci + r]!;
        s0 += v * x[c0 + r]!;
        s1 += v * x[c1 + r]!;
        s2 += v * x[c2 + r]!;
        s3 += v * x[c3 + r]!;
      }
      const g = i * d + j;
      G[g]! += s0;
      G[g + 1]! += s1;
      G[g + 2]! += s2;
      G[g + 3]! += s3;
    }
    for (; j < d; j++) {
      const cj = j * n;
      let s = 0;
      for (let r = 0; r < n; r++) s += x[ci + r]! * x[cj + r]!;
      G[i * d + j]! += s;
    }
  }
}

/** C (d×m) += x yᵀ for one sample with features x (d) and targets y (m): XᵀY built row by row. */
export function accumulateCross(C: Float64Array, x: ArrayLike<number>, y: ArrayLike<number>, d: number, m: number): void {
  for (let i = 0; i < d; i++) {
    const xi = x[i]!;
    if (xi === 0) continue;
    const ci = i * m;
    for (let j = 0; j < m; j++) C[ci + j]! += xi * y[j]!;
  }
}

/** Copies the upper triangle of a d×d matrix onto its lower triangle. */
export function mirrorUpper(G: Float64Array, d: number): void {
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) G[j * d + i] = G[i * d + j]!;
}
