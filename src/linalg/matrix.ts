// Dense row-major matrices on Float64Array and the products every decomposition here is built from.
// Loops run in i-k-j order (or over rows of both operands) so the inner loop walks contiguous memory.
import { accumulateGram, mirrorUpper } from './gram.js';

export interface Matrix {
  rows: number;
  cols: number;
  /** Row-major: element (i, j) at i * cols + j. */
  data: Float64Array;
}

export function matrix(rows: number, cols: number, data?: ArrayLike<number>): Matrix {
  const d = new Float64Array(rows * cols);
  if (data) {
    if (data.length !== rows * cols) throw new RangeError(`matrix ${rows}×${cols} needs ${rows * cols} values, got ${data.length}`);
    d.set(data);
  }
  return { rows, cols, data: d };
}

export function identity(n: number): Matrix {
  const m = matrix(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

export function transpose(a: Matrix): Matrix {
  const out = matrix(a.cols, a.rows);
  const { rows, cols, data } = a;
  const o = out.data;
  // blocked so both sides stay in cache
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    for (let j0 = 0; j0 < cols; j0 += B) {
      const iMax = Math.min(rows, i0 + B);
      const jMax = Math.min(cols, j0 + B);
      for (let i = i0; i < iMax; i++) for (let j = j0; j < jMax; j++) o[j * rows + i] = data[i * cols + j]!;
    }
  }
  return out;
}

/** A · B. */
export function matmul(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) throw new RangeError(`matmul: ${a.rows}×${a.cols} · ${b.rows}×${b.cols}`);
  const out = matrix(a.rows, b.cols);
  gemmAccumulate(out.data, 0, a.data, 0, b.data, 0, a.rows, a.cols, b.cols);
  return out;
}

// Panel sizes of gemmAccumulate: a KB×NB block of B (128×256 doubles, 256 KiB) stays in L2 while
// every row of A passes over it. KB must be a multiple of 4 (the unrolled groups below).
const KB = 128;
const NB = 256;

/**
 * C += A · B on row-major blocks inside larger arrays: A (m×k) at aOff, B (k×n) at bOff, C (m×n) at
 * cOff, all with rows packed (row length k, n, n). Four rows of C take four rows of B per sweep (16
 * products per 8 loads); every element of C sums its products in the same order as the plain
 * i-k-j loop in groups of four, so the blocking changes no result.
 */
export function gemmAccumulate(C: Float64Array, cOff: number, A: Float64Array, aOff: number, B: Float64Array, bOff: number, m: number, k: number, n: number): void {
  const k4 = k - (k % 4);
  for (let p0 = 0; p0 < k; p0 += KB) {
    const pEnd = Math.min(k, p0 + KB);
    const pEnd4 = Math.min(pEnd, k4);
    for (let j0 = 0; j0 < n; j0 += NB) {
      const jEnd = Math.min(n, j0 + NB);
      let i = 0;
      for (; i + 3 < m; i += 4) {
        const c0 = cOff + i * n;
        const c1 = c0 + n;
        const c2 = c1 + n;
        const c3 = c2 + n;
        const r0 = aOff + i * k;
        const r1 = r0 + k;
        const r2 = r1 + k;
        const r3 = r2 + k;
        for (let p = p0; p < pEnd4; p += 4) {
          const a00 = A[r0 + p]!, a01 = A[r0 + p + 1]!, a02 = A[r0 + p + 2]!, a03 = A[r0 + p + 3]!;
          const a10 = A[r1 + p]!, a11 = A[r1 + p + 1]!, a12 = A[r1 + p + 2]!, a13 = A[r1 + p + 3]!;
          const a20 = A[r2 + p]!, a21 = A[r2 + p + 1]!, a22 = A[r2 + p + 2]!, a23 = A[r2 + p + 3]!;
          const a30 = A[r3 + p]!, a31 = A[r3 + p + 1]!, a32 = A[r3 + p + 2]!, a33 = A[r3 + p + 3]!;
          const b0 = bOff + p * n;
          const b1 = b0 + n;
          const b2 = b1 + n;
          const b3 = b2 + n;
          for (let j = j0; j < jEnd; j++) {
            const x0 = B[b0 + j]!;
            const x1 = B[b1 + j]!;
            const x2 = B[b2 + j]!;
            const x3 = B[b3 + j]!;
            C[c0 + j]! += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3;
            C[c1 + j]! += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3;
            C[c2 + j]! += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3;
            C[c3 + j]! += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3;
          }
        }
        if (pEnd4 < pEnd) for (let r = 0; r < 4; r++) tail(C, cOff + (i + r) * n, A, aOff + (i + r) * k, B, bOff, pEnd4, pEnd, n, j0, jEnd);
      }
      for (; i < m; i++) {
        const ci = cOff + i * n;
        const ai = aOff + i * k;
        for (let p = p0; p < pEnd4; p += 4) {
          const a0 = A[ai + p]!, a1 = A[ai + p + 1]!, a2 = A[ai + p + 2]!, a3 = A[ai + p + 3]!;
          const b0 = bOff + p * n;
          const b1 = b0 + n;
          const b2 = b1 + n;
          const b3 = b2 + n;
          for (let j = j0; j < jEnd; j++) C[ci + j]! += a0 * B[b0 + j]! + a1 * B[b1 + j]! + a2 * B[b2 + j]! + a3 * B[b3 + j]!;
        }
        tail(C, ci, A, ai, B, bOff, pEnd4, pEnd, n, j0, jEnd);
      }
    }
  }
}

/** One row of C over the last k % 4 rows of B, one at a time. */
function tail(C: Float64Array, ci: number, A: Float64Array, ai: number, B: Float64Array, bOff: number, from: number, to: number, n: number, j0: number, jEnd: number): void {
  for (let p = from; p < to; p++) {
    const a = A[ai + p]!;
    const bp = bOff + p * n;
    for (let j = j0; j < jEnd; j++) C[ci + j]! += a * B[bp + j]!;
  }
}

/** Aᵀ · B without forming Aᵀ. */
export function matmulTN(a: Matrix, b: Matrix): Matrix {
  if (a.rows !== b.rows) throw new RangeError(`matmulTN: (${a.rows}×${a.cols})ᵀ · ${b.rows}×${b.cols}`);
  const k = a.rows;
  const m = a.cols;
  const n = b.cols;
  const out = matrix(m, n);
  const A = a.data;
  const Bd = b.data;
  const C = out.data;
  for (let p = 0; p < k; p++) {
    const ap = p * m;
    const bp = p * n;
    for (let i = 0; i < m; i++) {
      const api = A[ap + i]!;
      if (api === 0) continue;
      const ci = i * n;
      for (let j = 0; j < n; j++) C[ci + j] += api * Bd[bp + j]!;
    }
  }
  return out;
}

/** A · Bᵀ: dot products of rows, both contiguous. */
export function matmulNT(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.cols) throw new RangeError(`matmulNT: ${a.rows}×${a.cols} · (${b.rows}×${b.cols})ᵀ`);
  const m = a.rows;
  const n = b.rows;
  const k = a.cols;
  const out = matrix(m, n);
  const A = a.data;
  const Bd = b.data;
  const C = out.data;
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += A[ai + p]! * Bd[bj + p]!;
      C[i * n + j] = s;
    }
  }
  return out;
}

/** A · Aᵀ: the Gram matrix of A's rows (each row one feature over the columns' samples). */
export function gramRows(a: Matrix): Matrix {
  const out = matrix(a.rows, a.rows);
  accumulateGram(out.data, a.data, a.rows, a.cols);
  mirrorUpper(out.data, a.rows);
  return out;
}

/** Aᵀ · A: the Gram matrix of A's columns. */
export function gramCols(a: Matrix): Matrix {
  return gramRows(transpose(a));
}

/** Columns [from, to) of a. */
export function sliceCols(a: Matrix, from: number, to: number): Matrix {
  const w = to - from;
  const out = matrix(a.rows, w);
  for (let i = 0; i < a.rows; i++) out.data.set(a.data.subarray(i * a.cols + from, i * a.cols + to), i * w);
  return out;
}

export function frobeniusNorm(a: Matrix | Float64Array | Float32Array): number {
  const d = 'data' in a ? a.data : a;
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  return Math.sqrt(s);
}

export function subtract(a: Matrix, b: Matrix): Matrix {
  const out = matrix(a.rows, a.cols);
  for (let i = 0; i < out.data.length; i++) out.data[i] = a.data[i]! - b.data[i]!;
  return out;
}

/** Deterministic standard normals (mulberry32 + Box–Muller). */
export function gaussianMatrix(rows: number, cols: number, seed: number): Matrix {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const m = matrix(rows, cols);
  for (let i = 0; i < m.data.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const th = 2 * Math.PI * uniform();
    m.data[i] = r * Math.cos(th);
    if (i + 1 < m.data.length) m.data[i + 1] = r * Math.sin(th);
  }
  return m;
}
