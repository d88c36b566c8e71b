// Householder QR, thin form: A (m×n, m ≥ n) = Q (m×n, orthonormal columns) · R (n×n, upper).
// Works on the transpose so that every column (a reflector's target) is contiguous.
import { matrix, transpose, type Matrix } from './matrix.js';

export function qr(a: Matrix): { q: Matrix; r: Matrix } {
  const m = a.rows;
  const n = a.cols;
  if (m < n) throw new RangeError(`thin QR needs rows ≥ cols (got ${m}×${n})`);
  const cols = transpose(a).data; // column j at j*m
  const reflectors: Float64Array[] = [];
  const r = matrix(n, n);
  for (let j = 0; j < n; j++) {
    const cj = j * m;
    let norm = 0;
    for (let i = j; i < m; i++) norm += cols[cj + i]! ** 2;
    norm = Math.sqrt(norm);
    const v = new Float64Array(m - j);
    const x0 = cols[cj + j]!;
    const alpha = x0 >= 0 ? -norm : norm;
    for (let i = j; i < m; i++) v[i - j] = cols[cj + i]!;
    v[0] = x0 - alpha;
    let vnorm = 0;
    for (let i = 0; i < v.length; i++) vnorm += v[i]! * v[i]!;
    vnorm = Math.sqrt(vnorm);
    if (vnorm > 0) for (let i = 0; i < v.length; i++) v[i]! /= vnorm;
    reflectors.push(v);
    // apply H = I - 2vvᵀ to the remaining columns
    for (let c = j; c < n; c++) {
      const cc = c * m;
      let dot = 0;
      for (let i = 0; i < v.length; i++) dot += v[i]! * cols[cc + j + i]!;
      dot *= 2;
      for (let i = 0; i < v.length; i++) cols[cc + j + i] -= dot * v[i]!;
    }
    for (let i = 0; i <= j; i++) r.data[i * n + j] = cols[cj + i]!;
  }
  // Q = H_0 H_1 … H_{n-1} [I; 0], built column by column (again as rows of Qᵀ)
  const qt = new Float64Array(n * m);
  for (let c = 0; c < n; c++) qt[c * m + c] = 1;
  for (let j = n - 1; j >= 0; j--) {
    const v = reflectors[j]!;
    for (let c = j; c < n; c++) {
      const cc = c * m;
      let dot = 0;
      for (let i = 0; i < v.length; i++) dot += v[i]! * qt[cc + j + i]!;
      if (dot === 0) continue;
      dot *= 2;
      for (let i = 0; i < v.length; i++) qt[cc + j + i] -= dot * v[i]!;
    }
  }
  return { q: transpose({ rows: n, cols: m, data: qt }), r };
}
