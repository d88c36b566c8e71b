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
  const m = a.rows;
  const k = a.cols;
  const n = b.cols;
  const out = matrix(m, n);
  const A = a.data;
  const Bd = b.data;
  const C = out.data;
  const k4 = k - (k % 4);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    const ai = i * k;
    // four rows of B per sweep over C's row: a quarter of the loads and stores of C
    for (let p = 0; p < k4; p += 4) {
      const a0 = A[ai + p]!;
      const a1 = A[ai + p + 1]!;
      const a2 = A[ai + p + 2]!;
      const a3 = A[ai + p + 3]!;
      const b0 = p * n;
      const b1 = b0 + n;
      const b2 = b1 + n;
      const b3 = b2 + n;
      for (let j = 0; j < n; j++) C[ci + j] += a0 * Bd[b0 + j]! + a1 * Bd[b1 + j]! + a2 * Bd[b2 + j]! + a3 * Bd[b3 + j]!;
    }
    for (let p = k4; p < k; p++) {
      const aip = A[ai + p]!;
      const bp = p * n;
      for (let j = 0; j < n; j++) C[ci + j] += aip * Bd[bp + j]!;
    }
  }
  return out;
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
