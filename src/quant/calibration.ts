// Activation ranges from calibration data: min/max, percentile, entropy (KL divergence) and mse
// (the quantization grid with the least squared error), one Calibrator each in CALIBRATORS.
// Statistics accumulate batch by batch; the threshold searches are pure functions over histograms.
import type { Strategy } from '../pipeline/pass.js';

export const HISTOGRAM_BINS = 4096; // signed bins over [-A, A]; entropy folds them to 2048 |x| bins
/** mse places grid points within a fraction of a step, so it needs finer bins. */
export const MSE_HISTOGRAM_BINS = 16384;

/** Running statistics of one tensor: min/max in a first sweep, a histogram over ±max|x| in a second. */
export class TensorStats {
  min = Infinity;
  max = -Infinity;
  hist: Float64Array | null = null;
  /** Half-width of the histogram, fixed after the first sweep. */
  bound = 0;

  constructor(readonly bins = HISTOGRAM_BINS) {}

  addMinMax(x: ArrayLike<number>): void {
    let lo = this.min;
    let hi = this.max;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.min = lo;
    this.max = hi;
  }

  addHistogram(x: ArrayLike<number>): void {
    if (!this.hist) {
      this.hist = new Float64Array(this.bins);
      this.bound = Math.max(Math.abs(this.min), Math.abs(this.max), 1e-12);
    }
    const h = this.hist;
    const n = this.bins;
    const k = n / (2 * this.bound);
    for (let i = 0; i < x.length; i++) {
      const b = Math.floor((x[i]! + this.bound) * k);
      h[b < 0 ? 0 : b >= n ? n - 1 : b]! += 1;
    }
  }
}

/** Range [lo, hi] holding all but (100-p)/2 % of the mass on each side. */
export function percentileRange(hist: Float64Array, bound: number, percentile: number): [number, number] {
  const total = hist.reduce((a, b) => a + b, 0);
  const tail = (total * (100 - percentile)) / 100 / 2;
  const width = (2 * bound) / hist.length;
  let acc = 0;
  let lo = 0;
  for (; lo < hist.length; lo++) {
    acc += hist[lo]!;
    if (acc > tail) break;
  }
  acc = 0;
  let hi = hist.length - 1;
  for (; hi >= 0; hi--) {
    acc += hist[hi]!;
    if (acc > tail) break;
  }
  return [-bound + lo * width, -bound + (hi + 1) * width];
}

/**
 * The |x| threshold minimising KL(P‖Q) between the clipped distribution P and its quantization Q
 * to `levels` levels (the TensorRT calibration method). `absHist[i]` counts |x| in bin i of width `width`.
 */
export function entropyThreshold(absHist: Float64Array, width: number, levels = 128): number {
  const n = absHist.length;
  if (n <= levels) return n * width;
  let best = n;
  let bestKl = Infinity;
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  let tailMass = 0;
  for (let i = levels; i < n; i++) tailMass += absHist[i]!;
  for (let i = levels; i <= n; i++) {
    // P: the first i bins, with everything beyond folded into the last one
    for (let j = 0; j < i; j++) p[j] = absHist[j]!;
    p[i - 1]! += tailMass;
    if (i < n) tailMass -= absHist[i]!;
    // Q: the first i bins merged into `levels` groups, each group's mass spread over its nonzero bins
    for (let g = 0; g < levels; g++) {
      const start = Math.floor((g * i) / levels);
      const end = Math.floor(((g + 1) * i) / levels);
      let mass = 0;
      let nonzero = 0;
      for (let j = start; j < end; j++) {
        mass += absHist[j]!;
        if (absHist[j]! > 0) nonzero++;
      }
      for (let j = start; j < end; j++) q[j] = absHist[j]! > 0 ? mass / nonzero : 0;
    }
    let sp = 0;
    let sq = 0;
    for (let j = 0; j < i; j++) {
      sp += p[j]!;
      sq += q[j]!;
    }
    if (sp === 0 || sq === 0) continue;
    let kl = 0;
    for (let j = 0; j < i; j++) {
      const pj = p[j]! / sp;
      if (pj === 0) continue;
      const qj = q[j]! / sq;
      kl += pj * Math.log(pj / (qj > 0 ? qj : 1e-12));
    }
    if (kl < bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return (best + 0.5) * width;
}

/**
 * The quantization grid — scale s and zero point z, levels (q − z)·s for q in [qmin, qmax] — with
 * the least expected squared error over a signed histogram on [-bound, bound]: rounding inside the
 * window plus clipping outside it. A value many elements share (a uniform background, a constant
 * channel) is rounded the same way everywhere, so its error does not average out downstream; this
 * search puts a grid point on it where a range chosen from the tails (min/max, percentile) lands
 * wherever it happens to. Scales go down from the full range's in steps of 0.25% (fine enough to
 * align a level that is ~100 steps from zero) to a third of it; for each scale every zero point is
 * scored in O(1) from prefix sums. Returns the window [(qmin − z)·s, (qmax − z)·s] (±levels·s/2
 * when symmetric), which `activationParams` maps back to exactly this s and z.
 */
export function mseRange(hist: Float64Array, bound: number, min: number, max: number, qmin: number, qmax: number, symmetric: boolean): [number, number] {
  const lo0 = Math.min(min, 0);
  const hi0 = Math.max(max, 0);
  const levels = qmax - qmin;
  if (hi0 - lo0 < 1e-12) return [lo0, hi0];
  const width = (2 * bound) / hist.length;
  // the occupied bins, with prefix sums of n, n·c and n·c² for the clipping error
  const centers: number[] = [];
  const counts: number[] = [];
  for (let b = 0; b < hist.length; b++) {
    if (hist[b]! > 0) {
      centers.push(Math.min(max, Math.max(min, -bound + (b + 0.5) * width)));
      counts.push(hist[b]!);
    }
  }
  const m = centers.length;
  const pn = new Float64Array(m + 1);
  const pc = new Float64Array(m + 1);
  const pcc = new Float64Array(m + 1);
  for (let i = 0; i < m; i++) {
    const c = centers[i]!;
    const n = counts[i]!;
    pn[i + 1] = pn[i]! + n;
    pc[i + 1] = pc[i]! + n * c;
    pcc[i + 1] = pcc[i]! + n * c * c;
  }
  const firstAtLeast = (x: number) => {
    let a = 0;
    let b = m;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (centers[mid]! < x) a = mid + 1;
      else b = mid;
    }
    return a;
  };
  // squared distance of the bins [i, j) to the single point p
  const clipError = (i: number, j: number, p: number) => pcc[j]! - pcc[i]! - 2 * p * (pc[j]! - pc[i]!) + p * p * (pn[j]! - pn[i]!);
  const full = symmetric ? (2 * Math.max(-lo0, hi0)) / levels : (hi0 - lo0) / levels;
  const round = new Float64Array(m + 1); // prefix sums of the rounding error at the current scale
  let best = { err: Infinity, s: full, z: symmetric ? (qmin + qmax + 1) / 2 : Math.round(qmin - lo0 / full) };
  for (let s = full; s >= full / 3; s *= 0.9975) {
    for (let i = 0; i < m; i++) {
      const c = centers[i]!;
      const d = c - s * Math.round(c / s);
      round[i + 1] = round[i]! + counts[i]! * d * d;
    }
    const zs = symmetric ? [(qmin + qmax + 1) / 2] : zeroPointsToTry(lo0, hi0, s, qmin, qmax);
    for (const z of zs) {
      const lo = (qmin - z) * s;
      const hi = (qmax - z) * s;
      // bins more than half a step outside the window clip to its edge; the rest round inside it
      const i = firstAtLeast(lo - s / 2);
      const j = firstAtLeast(hi + s / 2);
      const err = clipError(0, i, lo) + (round[j]! - round[i]!) + clipError(j, m, hi);
      if (err < best.err) best = { err, s, z };
    }
  }
  // activationParams takes a symmetric range as ±a with scale 2a/levels
  if (symmetric) return [(-levels / 2) * best.s, (levels / 2) * best.s];
  return [(qmin - best.z) * best.s, (qmax - best.z) * best.s];
}

/** Zero points whose window keeps 0 and lies inside the data's span (moving it further only adds clipping). */
function zeroPointsToTry(lo: number, hi: number, s: number, qmin: number, qmax: number): number[] {
  const out: number[] = [];
  // z from the window flush with the data's low end up to the one flush with its high end
  const zLow = Math.max(qmin, Math.min(qmax, Math.floor(qmax - hi / s)));
  const zHigh = Math.max(qmin, Math.min(qmax, Math.ceil(qmin - lo / s)));
  for (let z = Math.min(zLow, zHigh); z <= Math.max(zLow, zHigh); z++) out.push(z);
  return out;
}

/** Folds a signed histogram over [-A, A] into an |x| histogram of half as many bins. */
export function foldAbs(hist: Float64Array): Float64Array {
  const half = hist.length / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = hist[half + i]! + hist[half - 1 - i]!;
  return out;
}

/** How the calibrated range will be quantized (mse searches the grid itself). */
export interface ActivationGrid {
  qmin: number;
  qmax: number;
  symmetric: boolean;
}

/** What a calibrator may use besides the tensor's statistics. */
export interface CalibrationSettings {
  /** Percentile of |x| kept (the percentile calibrator). */
  percentile: number;
  grid: ActivationGrid;
}

/** One way of choosing an activation's range from its statistics. */
export interface Calibrator extends Strategy {
  /** Bins of the histogram over ±max|x| it reads (0: min and max are enough, no second sweep). */
  readonly histogramBins: number;
  /** [lo, hi] from statistics that hold a histogram when `histogramBins` > 0. */
  range(s: TensorStats, settings: CalibrationSettings): [number, number];
}

const minmax: Calibrator = {
  name: 'minmax',
  description: 'the smallest and largest value seen.',
  histogramBins: 0,
  range: (s) => [s.min, s.max],
};

const percentile: Calibrator = {
  name: 'percentile',
  description: 'the range holding `percentile` % of the values, the rest clipped evenly on both sides.',
  histogramBins: HISTOGRAM_BINS,
  range(s, { percentile: p }) {
    const [lo, hi] = percentileRange(s.hist!, s.bound, p);
    return [Math.max(s.min, lo), Math.min(s.max, hi)];
  },
};

const entropy: Calibrator = {
  name: 'entropy',
  description: 'the |x| threshold whose 128-level quantization loses the least information (KL divergence, as TensorRT).',
  histogramBins: HISTOGRAM_BINS,
  range(s) {
    const abs = foldAbs(s.hist!);
    // The spike of exact zeros (ReLU outputs, padding) dominates P and hides the clipping error of
    // the tail; it is represented exactly whatever the threshold, so it is left out of the search.
    abs[0] = 0;
    const t = entropyThreshold(abs, s.bound / abs.length);
    return [Math.max(s.min, -t), Math.min(s.max, t)];
  },
};

const mse: Calibrator = {
  name: 'mse',
  description: 'per activation, the scale and zero point with the least squared error (rounding plus clipping) over its calibration histogram.',
  histogramBins: MSE_HISTOGRAM_BINS,
  range: (s, { grid }) => mseRange(s.hist!, s.bound, s.min, s.max, grid.qmin, grid.qmax, grid.symmetric),
};

/** Every calibrator, by the name recipes use (`calibrationMethod`). */
export const CALIBRATORS = { minmax, percentile, entropy, mse } satisfies Record<string, Calibrator>;
export type CalibrationMethod = keyof typeof CALIBRATORS;

// ---- collection on calibration data (the one non-pure part of this module)
import type { Model, Value } from '../onnx/ir.js';
import { forEachCapture } from '../runtime/capture.js';
import { tensorToFloat32, type Feeds } from '../runtime/ort.js';

/** Calibrated [lo, hi] of each value (keyed by value name), over every calibration batch. */
export async function calibrate(
  model: Model,
  values: Value[],
  feeds: Feeds[],
  method: CalibrationMethod,
  percentile: number,
  signal?: AbortSignal,
  grid: ActivationGrid = { qmin: 0, qmax: 255, symmetric: false },
): Promise<Map<Value, [number, number]>> {
  const calibrator = CALIBRATORS[method];
  const bins = calibrator.histogramBins;
  const stats = new Map(values.map((v) => [v, new TensorStats(bins)]));
  // a value's histogram spans its own min/max: the second sweep of its group, on the same session
  await forEachCapture(model, feeds, values, (captured, _b, _feeds, sweep) => {
    for (const [v, t] of captured) {
      const s = stats.get(v);
      if (sweep === 0) s?.addMinMax(tensorToFloat32(t));
      else s?.addHistogram(tensorToFloat32(t));
    }
  }, { sweeps: bins > 0 ? 2 : 1, ...(signal ? { signal } : {}) });
  const out = new Map<Value, [number, number]>();
  for (const [v, s] of stats) {
    // no histogram (minmax, or a value the second sweep never saw): min/max
    if (Number.isFinite(s.min)) out.set(v, s.hist ? calibrator.range(s, { percentile, grid }) : [s.min, s.max]);
  }
  return out;
}
