// Dense tensors (row-major, last index fastest), mode-n unfolding and mode-n products, and the
// Tucker decompositions built on them: HOSVD and HOOI over a chosen subset of modes (partial Tucker).
import { symmetricEigen } from './eigen.js';
import { gramRows, matrix, sliceCols, type Matrix } from './matrix.js';

export interface Tensor {
  dims: number[];
  data: Float64Array;
}

export function tensor(dims: readonly number[], data?: ArrayLike<number>): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const d = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new RangeError(`tensor [${dims.join(',')}] needs ${n} values, got ${data.length}`);
    d.set(data);
  }
  return { dims: [...dims], data: d };
}

/** Sizes before, at and after `mode` (the tensor viewed as [outer, dims[mode], inner]). */
function split(dims: readonly number[], mode: number): { outer: number; size: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < mode; i++) outer *= dims[i]!;
  for (let i = mode + 1; i < dims.length; i++) inner *= dims[i]!;
  return { outer, size: dims[mode]!, inner };
}

/** Mode-n unfolding: dims[mode] × (product of the others), other indices in their original order. */
export function unfold(t: Tensor, mode: number): Matrix {
  const { outer, size, inner } = split(t.dims, mode);
  const cols = outer * inner;
  const out = matrix(size, cols);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < size; i++) {
      const src = (o * size + i) * inner;
      out.data.set(t.data.subarray(src, src + inner), i * cols + o * inner);
    }
  }
  return out;
}

/** Inverse of `unfold`. */
export function fold(m: Matrix, mode: number, dims: readonly number[]): Tensor {
  const t = tensor(dims);
  const { outer, size, inner } = split(dims, mode);
  const cols = outer * inner;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < size; i++) {
      const dst = (o * size + i) * inner;
      t.data.set(m.data.subarray(i * cols + o * inner, i * cols + o * inner + inner), dst);
    }
  }
  return t;
}

/** T ×ₙ M: contracts mode n of T with the columns of M (J × dims[n]); the result has dims[n] = J. */
export function modeProduct(t: Tensor, mode: number, m: Matrix): Tensor {
  const { outer, size, inner } = split(t.dims, mode);
  if (m.cols !== size) throw new RangeError(`mode-${mode} product: matrix has ${m.cols} columns, mode has ${size}`);
  const J = m.rows;
  const dims = [...t.dims];
  dims[mode] = J;
  const out = tensor(dims);
  const src = t.data;
  const dst = out.data;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < J; j++) {
      const d0 = (o * J + j) * inner;
      for (let i = 0; i < size; i++) {
        const w = m.data[j * size + i]!;
        if (w === 0) continue;
        const s0 = (o * size + i) * inner;
        for (let p = 0; p < inner; p++) dst[d0 + p] += w * src[s0 + p]!;
      }
    }
  }
  return out;
}

export function transposeOf(m: Matrix): Matrix {
  const out = matrix(m.cols, m.rows);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) out.data[j * m.rows + i] = m.data[i * m.cols + j]!;
  return out;
}

/** Leading `r` left singular vectors of the mode-n unfolding, and all its singular values. */
export function leadingModeVectors(t: Tensor, mode: number, r: number): { vectors: Matrix; singularValues: Float64Array } {
  const eig = symmetricEigen(gramRows(unfold(t, mode)));
  return { vectors: sliceCols(eig.vectors, 0, Math.min(r, eig.vectors.cols)), singularValues: eig.values.map((x) => Math.sqrt(Math.max(0, x))) };
}

export interface PartialTucker {
  /** Core tensor: the input's dims with dims[mode] replaced by the rank for every decomposed mode. */
  core: Tensor;
  /** Factor per decomposed mode (dims[mode] × rank, orthonormal columns), keyed by mode. */
  factors: Map<number, Matrix>;
  /** Relative reconstruction error ‖T − T̂‖/‖T‖. */
  relativeError: number;
  iterations: number;
}

/** Core = T ×ₙ Uₙᵀ over the decomposed modes. */
function projectCore(t: Tensor, factors: Map<number, Matrix>): Tensor {
  let core = t;
  for (const [mode, u] of factors) core = modeProduct(core, mode, transposeOf(u));
  return core;
}

export function reconstructTucker(core: Tensor, factors: Map<number, Matrix>): Tensor {
  let out = core;
  for (const [mode, u] of factors) out = modeProduct(out, mode, u);
  return out;
}

function norm(d: Float64Array): number {
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  return Math.sqrt(s);
}

/** HOSVD truncated to `ranks` on the listed modes. */
export function hosvd(t: Tensor, ranks: Map<number, number>): PartialTucker {
  const factors = new Map<number, Matrix>();
  for (const [mode, r] of ranks) factors.set(mode, leadingModeVectors(t, mode, r).vectors);
  const core = projectCore(t, factors);
  // orthonormal factors: ‖T − T̂‖² = ‖T‖² − ‖core‖²
  const tn = norm(t.data);
  const err = Math.sqrt(Math.max(0, tn * tn - norm(core.data) ** 2));
  return { core, factors, relativeError: tn > 0 ? err / tn : 0, iterations: 0 };
}

/** HOOI (alternating least squares on the orthonormal factors), initialised by HOSVD. */
export function hooi(t: Tensor, ranks: Map<number, number>, opts: { maxIterations?: number; tolerance?: number } = {}): PartialTucker {
  const maxIt = opts.maxIterations ?? 20;
  const tol = opts.tolerance ?? 1e-6;
  let best = hosvd(t, ranks);
  const factors = new Map(best.factors);
  const tn = norm(t.data);
  let prevErr = best.relativeError;
  let it = 0;
  for (; it < maxIt; it++) {
    for (const [mode, r] of ranks) {
      // project every other decomposed mode, then take the leading vectors of this one
      let y = t;
      for (const [m2, u] of factors) if (m2 !== mode) y = modeProduct(y, m2, transposeOf(u));
      factors.set(mode, leadingModeVectors(y, mode, r).vectors);
    }
    const core = projectCore(t, factors);
    const err = tn > 0 ? Math.sqrt(Math.max(0, tn * tn - norm(core.data) ** 2)) / tn : 0;
    if (err < best.relativeError) best = { core, factors: new Map(factors), relativeError: err, iterations: it + 1 };
    if (Math.abs(prevErr - err) <= tol * Math.max(prevErr, 1e-300)) break;
    prevErr = err;
  }
  return { ...best, iterations: it + 1 };
}
