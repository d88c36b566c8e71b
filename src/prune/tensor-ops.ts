// Pure numerics over typed arrays for the pruning family.
import type { TypedArray } from '../onnx/dtypes.js';

/** Keeps the given indices (ascending) along `axis` of a row-major tensor. */
export function sliceAxis<T extends TypedArray>(data: T, dims: readonly number[], axis: number, keep: readonly number[]): { data: T; dims: number[] } {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = dims[axis]!;
  const Ctor = data.constructor as new (len: number) => T;
  const out = new Ctor(outer * keep.length * inner);
  let p = 0;
  for (let o = 0; o < outer; o++) {
    for (const k of keep) {
      const src = (o * n + k) * inner;
      (out as unknown as { set(a: ArrayLike<number | bigint>, o: number): void }).set(data.subarray(src, src + inner) as unknown as ArrayLike<number>, p);
      p += inner;
    }
  }
  const outDims = dims.slice();
  outDims[axis] = keep.length;
  return { data: out, dims: outDims };
}

/** Per-index norm of every slice along `axis` (p = 1: sum |x|, p = 2: sqrt of sum x²). */
export function sliceNorms(data: Float32Array, dims: readonly number[], axis: number, p: 1 | 2): Float64Array {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = dims[axis]!;
  const acc = new Float64Array(n);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < n; k++) {
      const base = (o * n + k) * inner;
      let s = 0;
      for (let i = 0; i < inner; i++) {
        const x = data[base + i]!;
        s += p === 1 ? Math.abs(x) : x * x;
      }
      acc[k]! += s;
    }
  }
  if (p === 2) for (let k = 0; k < n; k++) acc[k] = Math.sqrt(acc[k]!);
  return acc;
}

/** Mean |x| per channel (axis 1) of an [N, C, …] activation, accumulated into `sum` (and the count per channel returned). */
export function accumulateChannelAbs(x: Float32Array, dims: readonly number[], sum: Float64Array): number {
  const n = dims[0]!;
  const c = dims[1]!;
  const inner = dims.slice(2).reduce((a, b) => a * b, 1);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const base = (b * c + ch) * inner;
      let s = 0;
      for (let i = 0; i < inner; i++) s += Math.abs(x[base + i]!);
      sum[ch]! += s;
    }
  }
  return n * inner;
}

/**
 * Solves (A + λI) X = B for symmetric positive semi-definite A (d×d) and B (d×m) by Cholesky, in
 * place on copies. λ is added to the first `regularized` diagonal entries only (bias rows stay free).
 */
export function solveRidge(A: Float64Array, B: Float64Array, d: number, m: number, lambda: number, regularized = d): Float64Array {
  const L = Float64Array.from(A);
  for (let i = 0; i < regularized; i++) L[i * d + i]! += lambda;
  // tiny jitter so an all-zero row (a dead channel) still factors
  let maxDiag = 0;
  for (let i = 0; i < d; i++) maxDiag = Math.max(maxDiag, L[i * d + i]!);
  const jitter = Math.max(maxDiag, 1e-12) * 1e-10;
  for (let i = 0; i < d; i++) L[i * d + i]! += jitter;
  for (let j = 0; j < d; j++) {
    let s = L[j * d + j]!;
    for (let k = 0; k < j; k++) s -= L[j * d + k]! * L[j * d + k]!;
    if (s <= 0) s = jitter;
    const ljj = Math.sqrt(s);
    L[j * d + j] = ljj;
    for (let i = j + 1; i < d; i++) {
      let t = L[i * d + j]!;
      for (let k = 0; k < j; k++) t -= L[i * d + k]! * L[j * d + k]!;
      L[i * d + j] = t / ljj;
    }
  }
  const X = Float64Array.from(B);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < d; i++) {
      let t = X[i * m + c]!;
      for (let k = 0; k < i; k++) t -= L[i * d + k]! * X[k * m + c]!;
      X[i * m + c] = t / L[i * d + i]!;
    }
    for (let i = d - 1; i >= 0; i--) {
      let t = X[i * m + c]!;
      for (let k = i + 1; k < d; k++) t -= L[k * d + i]! * X[k * m + c]!;
      X[i * m + c] = t / L[i * d + i]!;
    }
  }
  return X;
}

/** Adds rows (r×d, row-major) into the upper triangle of the Gram matrix G (d×d); call `symmetrize` at the end. */
export function accumulateGram(G: Float64Array, rows: Float64Array, r: number, d: number): void {
  for (let t = 0; t < r; t++) {
    const base = t * d;
    for (let i = 0; i < d; i++) {
      const xi = rows[base + i]!;
      if (xi === 0) continue;
      const gi = i * d;
      for (let j = i; j < d; j++) G[gi + j]! += xi * rows[base + j]!;
    }
  }
}

export function symmetrize(G: Float64Array, d: number): void {
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) G[j * d + i] = G[i * d + j]!;
}

/** Adds rowsᵀ·targets (r×d)ᵀ(r×m) into C (d×m). */
export function accumulateCross(C: Float64Array, rows: Float64Array, targets: Float64Array, r: number, d: number, m: number): void {
  for (let t = 0; t < r; t++) {
    for (let i = 0; i < d; i++) {
      const xi = rows[t * d + i]!;
      if (xi === 0) continue;
      const ci = i * m;
      const tb = t * m;
      for (let j = 0; j < m; j++) C[ci + j]! += xi * targets[tb + j]!;
    }
  }
}
