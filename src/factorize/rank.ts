// Rank selection, one rule for every factorization, one RankSelector each in RANK_SELECTORS: a
// fraction of the layer's parameters (the TensorLy convention, 0.1 keeps 10% of them), explicit
// integers, an energy fraction of the singular values, or "vbmf" (empirical VBMF on the unfolding).
// Ranks are then rounded to a multiple of `roundTo` (onnxruntime's conv kernels like channel counts
// that are multiples of 8).
import { Type, type TSchema } from '@sinclair/typebox';
import type { Strategy } from '../pipeline/pass.js';
import { evbmfRank } from './vbmf.js';

/** A `rank` recipe value: fraction (0, 1), explicit rank(s), { energy } or 'vbmf'. */
export type RankSpec = number | number[] | { energy: number } | 'vbmf';

/** Singular values of the layer's unfoldings, computed only when a selector asks. */
export type Spectrum = () => ArrayLike<number>;

/** One rule for the ranks of a factorization, for each method. */
export interface RankSelector extends Strategy {
  /** The recipe values that pick it (its part of the `rank` option's schema). */
  readonly schemas: readonly TSchema[];
  /** Whether a (valid) recipe value picks it. */
  accepts(spec: RankSpec): boolean;
  /** The spec for the report. */
  describe(spec: RankSpec): string;
  /** Ranks read off a spectrum are a floor below which information is lost, so they round up. */
  readonly rounding: 'nearest' | 'up';
  /** Tucker-2 [output, input] ranks of a [cout, cin, …kernel] weight with `taps` kernel taps; spectra of its output and input unfoldings. */
  tucker(spec: RankSpec, cout: number, cin: number, taps: number, spectra: { out: Spectrum; in: Spectrum }): [number, number];
  /** CP rank of a weight with these dims; spectra of its output and input unfoldings. */
  cp(spec: RankSpec, dims: readonly number[], spectra: { out: Spectrum; in: Spectrum }): number;
  /** SVD rank of a K×N matrix with this spectrum. */
  svd(spec: RankSpec, K: number, N: number, spectrum: Spectrum): number;
}

const fraction: RankSelector = {
  name: 'fraction',
  description: 'a fraction of the layer parameters to keep (0.25 keeps 25%).',
  schemas: [Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'Fraction of the layer parameters to keep (0.25 keeps 25%).' })],
  accepts: (spec) => typeof spec === 'number' && spec < 1,
  describe: (spec) => `parameter fraction ${spec as number}`,
  rounding: 'nearest',
  tucker: (spec, cout, cin, taps) => tuckerFractionRanks(cout, cin, taps, spec as number),
  cp: (spec, dims) => cpFractionRank(dims, spec as number),
  svd: (spec, K, N) => svdFractionRank(K, N, spec as number),
};

/** Explicit ranks: one for every mode, or [output mode, input mode]. */
const explicitRanks = (spec: RankSpec): number[] => (Array.isArray(spec) ? spec : [spec as number]);

const explicit: RankSelector = {
  name: 'explicit',
  description: 'explicit ranks, one for every decomposed mode or [output mode, input mode] for Tucker.',
  schemas: [
    Type.Integer({ minimum: 1, description: 'The same explicit rank for every decomposed mode.' }),
    Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 2, description: 'Explicit ranks: [output mode, input mode] for Tucker.' }),
  ],
  accepts: (spec) => Array.isArray(spec) || (typeof spec === 'number' && spec >= 1),
  describe: (spec) => (Array.isArray(spec) ? `ranks [${spec.join(', ')}]` : `rank ${spec as number}`),
  rounding: 'nearest',
  tucker(spec) {
    const r = explicitRanks(spec);
    return [r[0]!, r[1] ?? r[0]!];
  },
  cp: (spec) => explicitRanks(spec)[0]!,
  svd: (spec) => explicitRanks(spec)[0]!,
};

/** A selector reading each rank off the singular values of a rows × cols unfolding. */
function spectral(def: Strategy & Pick<RankSelector, 'schemas' | 'accepts' | 'describe'>, rankOf: (spec: RankSpec, singularValues: ArrayLike<number>, rows: number, cols: number) => number): RankSelector {
  return {
    ...def,
    rounding: 'up',
    tucker: (spec, cout, cin, taps, spectra) => [rankOf(spec, spectra.out(), cout, cin * taps), rankOf(spec, spectra.in(), cin, cout * taps)],
    // CP has no spectrum of its own: the larger of the two channel-mode ranks
    cp(spec, dims, spectra) {
      const [cout, cin] = dims as [number, number];
      const taps = dims.slice(2).reduce((a, b) => a * b, 1);
      return Math.max(rankOf(spec, spectra.out(), cout, cin * taps), rankOf(spec, spectra.in(), cin, cout * taps));
    },
    svd: (spec, K, N, spectrum) => rankOf(spec, spectrum(), K, N),
  };
}

const energy = spectral(
  {
    name: 'energy',
    description: 'the smallest rank keeping this fraction of Σσ².',
    schemas: [Type.Object({ energy: Type.Number({ exclusiveMinimum: 0, maximum: 1 }) }, { additionalProperties: false, description: 'Smallest rank keeping this fraction of Σσ².' })],
    accepts: (spec) => typeof spec === 'object' && !Array.isArray(spec),
    describe: (spec) => `energy ${(spec as { energy: number }).energy}`,
  },
  (spec, s) => energyRank(s, (spec as { energy: number }).energy),
);

const vbmf = spectral(
  {
    name: 'vbmf',
    description: 'empirical variational Bayes matrix factorization on the mode unfoldings.',
    schemas: [Type.Literal('vbmf', { description: 'Empirical variational Bayes matrix factorization on the mode unfoldings.' })],
    accepts: (spec) => spec === 'vbmf',
    describe: () => 'vbmf',
  },
  (_spec, s, rows, cols) => evbmfRank(s, Math.min(rows, cols), Math.max(rows, cols)).rank,
);

/** Every rank selector, by mode name. */
export const RANK_SELECTORS = { fraction, explicit, energy, vbmf } satisfies Record<string, RankSelector>;

/** The `rank` option: exactly the recipe values of the selectors. */
const rankSchemas: TSchema[] = Object.values(RANK_SELECTORS).flatMap((s) => [...s.schemas]);
export const RankSchema = Type.Union(rankSchemas, {
  default: 'vbmf',
  description: Object.values(RANK_SELECTORS).map((s) => `${s.name}: ${s.description}`).join(' '),
}) as TSchema as TSchema & { static: RankSpec };

/** The selector a recipe value picks. */
export function rankSelector(spec: RankSpec): RankSelector {
  const s = Object.values(RANK_SELECTORS).find((sel) => sel.accepts(spec));
  if (!s) throw new Error(`no rank selector takes ${JSON.stringify(spec)}`);
  return s;
}

export function describeRank(spec: RankSpec): string {
  return rankSelector(spec).describe(spec);
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
