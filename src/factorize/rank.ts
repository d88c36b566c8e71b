// Rank selection, one rule for every factorization: a fraction of the layer's parameters (the
// TensorLy convention, 0.1 keeps 10% of them), explicit integers, an energy fraction of the
// singular values, or "vbmf" (empirical VBMF on the unfolding). Ranks are then rounded to a
// multiple of `roundTo` (onnxruntime's conv kernels like channel counts that are multiples of 8).
import { Type, type Static } from '@sinclair/typebox';
import { evbmfRank } from './vbmf.js';

export const RankSchema = Type.Union(
  [
    Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'Fraction of the layer parameters to keep (0.25 keeps 25%).' }),
    Type.Integer({ minimum: 1, description: 'The same explicit rank for every decomposed mode.' }),
    Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 2, description: 'Explicit ranks: [output mode, input mode] for Tucker.' }),
    Type.Object({ energy: Type.Number({ exclusiveMinimum: 0, maximum: 1 }) }, { additionalProperties: false, description: 'Smallest rank keeping this fraction of Σσ².' }),
    Type.Literal('vbmf', { description: 'Empirical variational Bayes matrix factorization on the mode unfoldings.' }),
  ],
  { default: 'vbmf' },
);
export type RankSpec = Static<typeof RankSchema>;

export function describeRank(spec: RankSpec): string {
  if (spec === 'vbmf') return 'vbmf';
  if (Array.isArray(spec)) return `ranks [${spec.join(', ')}]`;
  if (typeof spec === 'object') return `energy ${spec.energy}`;
  return spec < 1 ? `parameter fraction ${spec}` : `rank ${spec}`;
}

export type RankMode = 'fraction' | 'explicit' | 'energy' | 'vbmf';
export function rankMode(spec: RankSpec): RankMode {
  if (spec === 'vbmf') return 'vbmf';
  if (Array.isArray(spec)) return 'explicit';
  if (typeof spec === 'object') return 'energy';
  return spec < 1 ? 'fraction' : 'explicit';
}

/** Smallest k with Σ_{i<k} σᵢ² ≥ energy · Σ σᵢ². */
export function energyRank(singularValues: ArrayLike<number>, energy: number): number {
  let total = 0;
  for (let i = 0; i < singularValues.length; i++) total += singularValues[i]! ** 2;
  let acc = 0;
  for (let i = 0; i < singularValues.length; i++) {
    acc += singularValues[i]! ** 2;
    if (acc >= energy * total * (1 - 1e-12)) return i + 1;
  }
  return singularValues.length;
}

/** Rank of one unfolding (rows × cols) under a data-driven spec (energy or vbmf). */
export function spectrumRank(spec: RankSpec, singularValues: ArrayLike<number>, rows: number, cols: number): number {
  if (spec === 'vbmf') return evbmfRank(singularValues, Math.min(rows, cols), Math.max(rows, cols)).rank;
  if (typeof spec === 'object' && !Array.isArray(spec)) return energyRank(singularValues, spec.energy);
  throw new Error('spectrumRank needs an energy or vbmf spec');
}

/**
 * Rounds to a multiple of `roundTo` (at least one multiple), capped at `max`. Ranks from the spectrum
 * (vbmf, energy) round up: they are a floor below which information is lost.
 */
export function roundRank(r: number, roundTo: number, max: number, direction: 'nearest' | 'up' = 'nearest'): number {
  const round = direction === 'up' ? Math.ceil : Math.round;
  if (roundTo <= 1) return Math.max(1, Math.min(max, round(r)));
  const rounded = Math.max(roundTo, round(r / roundTo - 1e-9) * roundTo);
  return Math.max(1, Math.min(max, rounded));
}

/**
 * Tucker-2 ranks keeping `fraction` of the parameters of a [cout, cin, K] kernel, with ranks
 * proportional to the channel counts: a²·cout·cin·K + a·(cin² + cout²) = fraction·cout·cin·K.
 */
export function tuckerFractionRanks(cout: number, cin: number, kernel: number, fraction: number): [number, number] {
  const A = cout * cin * kernel;
  const B = cin * cin + cout * cout;
  const C = -fraction * cout * cin * kernel;
  const a = (-B + Math.sqrt(B * B - 4 * A * C)) / (2 * A);
  return [Math.max(1, a * cout), Math.max(1, a * cin)];
}

/** SVD rank keeping `fraction` of an m×n matrix's parameters: r(m + n) = fraction·m·n. */
export function svdFractionRank(m: number, n: number, fraction: number): number {
  return Math.max(1, Math.floor((fraction * m * n) / (m + n)));
}

/** CP rank keeping `fraction` of the parameters: r · Σ dims = fraction · Π dims. */
export function cpFractionRank(dims: readonly number[], fraction: number): number {
  const total = dims.reduce((a, b) => a * b, 1);
  const perRank = dims.reduce((a, b) => a + b, 0);
  return Math.max(1, Math.floor((fraction * total) / perRank));
}
