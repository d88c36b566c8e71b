// Unstructured and N:M sparsity numerics: pure functions over Float32Array, no graph knowledge.

/** Number of exact zeros in a weight array. */
export function countZeros(w: Float32Array): number {
  let z = 0;
  for (let i = 0; i < w.length; i++) if (w[i] === 0) z++;
  return z;
}

/**
 * The |w| threshold that selects exactly `k` entries of `weights` (taken as one pool): every entry with
 * |w| < threshold goes, plus `tiesToZero` of the entries with |w| === threshold (the first ones met, in
 * pool order), so that exactly k entries are zeroed whatever the ties.
 */
export function magnitudeCut(weights: readonly Float32Array[], k: number): { threshold: number; tiesToZero: number } {
  const total = weights.reduce((s, w) => s + w.length, 0);
  if (k <= 0) return { threshold: 0, tiesToZero: 0 };
  if (k > total) throw new RangeError(`cannot zero ${k} of ${total} weights`);
  const abs = new Float32Array(total);
  let o = 0;
  for (const w of weights) for (let i = 0; i < w.length; i++) abs[o++] = Math.abs(w[i]!);
  abs.sort(); // typed-array sort is numeric
  const threshold = abs[k - 1]!;
  let below = 0;
  for (let i = 0; i < k; i++) if (abs[i]! < threshold) below++;
  return { threshold, tiesToZero: k - below };
}

/**
 * Zeroes, in place, the entries the cut selects; returns how many of the tied entries it used so the
 * caller can carry the remaining tie budget into the next array of the same pool.
 */
export function applyMagnitudeCut(w: Float32Array, threshold: number, tiesLeft: number): { zeroed: number; tiesUsed: number } {
  let zeroed = 0;
  let tiesUsed = 0;
  for (let i = 0; i < w.length; i++) {
    const a = Math.abs(w[i]!);
    if (a < threshold) {
      w[i] = 0;
      zeroed++;
    } else if (a === threshold && tiesUsed < tiesLeft) {
      w[i] = 0;
      zeroed++;
      tiesUsed++;
    }
  }
  return { zeroed, tiesUsed };
}

/** Zeroes exactly round(sparsity × n) smallest-|w| entries of each array together (one pool); returns zeroed per array. */
export function pruneByMagnitude(weights: readonly Float32Array[], sparsity: number): number[] {
  const total = weights.reduce((s, w) => s + w.length, 0);
  const k = Math.round(sparsity * total);
  const { threshold, tiesToZero } = magnitudeCut(weights, k);
  if (k === 0) return weights.map(() => 0);
  let ties = tiesToZero;
  return weights.map((w) => {
    const r = applyMagnitudeCut(w, threshold, ties);
    ties -= r.tiesUsed;
    return r.zeroed;
  });
}

/** A tensor seen as [outer, len, inner] around the axis groups run along. */
export interface AxisView {
  outer: number;
  len: number;
  inner: number;
}

export function axisView(dims: readonly number[], axis: number): AxisView {
  const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);
  return { outer: prod(dims.slice(0, axis)), len: dims[axis]!, inner: prod(dims.slice(axis + 1)) };
}

/**
 * N:M along `axis`: in every run of M consecutive entries along the axis (for each position of the other
 * axes) keep the N largest |w| (ties: the lower index stays), zero the others, in place. len % m must be 0.
 * Returns the number of entries zeroed (= (m − n)/m of the array).
 */
export function pruneNM(w: Float32Array, view: AxisView, n: number, m: number): number {
  const { outer, len, inner } = view;
  if (len % m !== 0) throw new RangeError(`axis length ${len} is not a multiple of ${m}`);
  const idx = new Int32Array(m);
  const order = Array.from({ length: m }, (_, i) => i);
  let zeroed = 0;
  for (let o = 0; o < outer; o++) {
    for (let c0 = 0; c0 < len; c0 += m) {
      for (let i = 0; i < inner; i++) {
        for (let j = 0; j < m; j++) idx[j] = (o * len + c0 + j) * inner + i;
        order.sort((a, b) => Math.abs(w[idx[b]!]!) - Math.abs(w[idx[a]!]!) || a - b);
        for (let r = n; r < m; r++) {
          w[idx[order[r]!]!] = 0;
          zeroed++;
        }
        for (let j = 0; j < m; j++) order[j] = j;
      }
    }
  }
  return zeroed;
}

/** Checks the N:M pattern: every group along the axis has at most n non-zeros. Returns the number of violating groups. */
export function nmViolations(w: Float32Array, view: AxisView, n: number, m: number): number {
  const { outer, len, inner } = view;
  let bad = 0;
  for (let o = 0; o < outer; o++)
    for (let c0 = 0; c0 + m <= len; c0 += m)
      for (let i = 0; i < inner; i++) {
        let nz = 0;
        for (let j = 0; j < m; j++) if (w[(o * len + c0 + j) * inner + i] !== 0) nz++;
        if (nz > n) bad++;
      }
  return bad;
}
