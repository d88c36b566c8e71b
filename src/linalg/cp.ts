// CP (CANDECOMP/PARAFAC) by alternating least squares: T ≈ Σᵣ λᵣ a⁽⁰⁾ᵣ ∘ a⁽¹⁾ᵣ ∘ … . Initialised from
// the leading singular vectors of each unfolding (random columns where the mode is smaller than the
// rank); stops when the relative change of the fit drops below the tolerance.
import { solveRidge } from './least-squares.js';
import { gaussianMatrix, gramCols, matrix, transpose, type Matrix } from './matrix.js';
import { leadingModeVectors, type Tensor } from './tensor.js';

export interface CpResult {
  /** One factor per mode: dims[n] × rank. The weights are folded into factor 0. */
  factors: Matrix[];
  relativeError: number;
  iterations: number;
}

export interface CpOptions {
  maxIterations?: number;
  /** Stop when |fit change| / fit < tolerance. */
  tolerance?: number;
  seed?: number;
}

export function cpAls(t: Tensor, rank: number, opts: CpOptions = {}): CpResult {
  const N = t.dims.length;
  const maxIt = opts.maxIterations ?? 200;
  const tol = opts.tolerance ?? 1e-7;
  const factors: Matrix[] = t.dims.map((size, mode) => {
    const lead = leadingModeVectors(t, mode, rank).vectors;
    const f = gaussianMatrix(size, rank, (opts.seed ?? 7) + mode);
    for (let i = 0; i < f.data.length; i++) f.data[i]! *= 1 / Math.sqrt(size);
    for (let i = 0; i < size; i++) for (let r = 0; r < lead.cols; r++) f.data[i * rank + r] = lead.data[i * lead.cols + r]!;
    return f;
  });
  let tn2 = 0;
  for (let i = 0; i < t.data.length; i++) tn2 += t.data[i]! ** 2;
  const tn = Math.sqrt(tn2);
  let prevFit = -Infinity;
  let err = 1;
  let it = 0;
  for (; it < maxIt; it++) {
    let mttkrpLast: Matrix | null = null;
    for (let n = 0; n < N; n++) {
      const m = mttkrp(t, factors, n, rank);
      // Hadamard product of the other factors' Gram matrices
      const v = matrix(rank, rank);
      v.data.fill(1);
      for (let k = 0; k < N; k++) {
        if (k === n) continue;
        const g = gramCols(factors[k]!);
        for (let i = 0; i < v.data.length; i++) v.data[i]! *= g.data[i]!;
      }
      // the least-squares update X·V = M; V is symmetric, so V Xᵀ = Mᵀ
      factors[n] = transpose({ rows: rank, cols: m.rows, data: solveRidge(v.data, transpose(m).data, rank, m.rows) });
      if (n === N - 1) mttkrpLast = m;
    }
    // ‖T − T̂‖² = ‖T‖² − 2⟨T, T̂⟩ + ‖T̂‖², with ⟨T, T̂⟩ from the last MTTKRP
    const last = factors[N - 1]!;
    let inner = 0;
    for (let i = 0; i < last.data.length; i++) inner += last.data[i]! * mttkrpLast!.data[i]!;
    const h = matrix(rank, rank);
    h.data.fill(1);
    for (const f of factors) {
      const g = gramCols(f);
      for (let i = 0; i < h.data.length; i++) h.data[i]! *= g.data[i]!;
    }
    let model2 = 0;
    for (let i = 0; i < h.data.length; i++) model2 += h.data[i]!;
    err = tn > 0 ? Math.sqrt(Math.max(0, tn2 - 2 * inner + model2)) / tn : 0;
    const fit = 1 - err;
    if (Math.abs(fit - prevFit) < tol * Math.max(Math.abs(fit), 1e-12)) {
      it++;
      break;
    }
    prevFit = fit;
  }
  // weights into factor 0: normalise the columns of the other factors
  for (let n = 1; n < N; n++) {
    const f = factors[n]!;
    for (let r = 0; r < rank; r++) {
      let s = 0;
      for (let i = 0; i < f.rows; i++) s += f.data[i * rank + r]! ** 2;
      s = Math.sqrt(s);
      if (s === 0) continue;
      for (let i = 0; i < f.rows; i++) f.data[i * rank + r]! /= s;
      const f0 = factors[0]!;
      for (let i = 0; i < f0.rows; i++) f0.data[i * rank + r]! *= s;
    }
  }
  return { factors, relativeError: err, iterations: it };
}

/** Matricized tensor times Khatri–Rao product, straight from the dense tensor: dims[n] × rank. */
function mttkrp(t: Tensor, factors: Matrix[], n: number, rank: number): Matrix {
  const N = t.dims.length;
  const out = matrix(t.dims[n]!, rank);
  const idx = new Array<number>(N).fill(0);
  const prod = new Float64Array(rank);
  const total = t.data.length;
  for (let lin = 0; lin < total; lin++) {
    const x = t.data[lin]!;
    if (x !== 0) {
      prod.fill(x);
      for (let k = 0; k < N; k++) {
        if (k === n) continue;
        const row = idx[k]! * rank;
        const f = factors[k]!.data;
        for (let r = 0; r < rank; r++) prod[r]! *= f[row + r]!;
      }
      const o = idx[n]! * rank;
      for (let r = 0; r < rank; r++) out.data[o + r] += prod[r]!;
    }
    // advance the multi-index (last fastest)
    for (let k = N - 1; k >= 0; k--) {
      if (++idx[k]! < t.dims[k]!) break;
      idx[k] = 0;
    }
  }
  return out;
}
