// Activation ranges from calibration data: min/max, percentile and entropy (KL divergence).
// Statistics accumulate batch by batch; the threshold searches are pure functions over histograms.

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export const HISTOGRAM_BINS = 4096; // signed bins over [-A, A]; entropy folds them to 2048 |x| bins

/** Running statistics of one tensor: min/max in a first sweep, a histogram over ±max|x| in a second. */
export class TensorStats {
  min = Infinity;
  max = -Infinity;
  hist: Float64Array | null = null;
  /** Half-width of the histogram, fixed after the first sweep. */
  bound = 0;

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
      this.hist = new Float64Array(HISTOGRAM_BINS);
      this.bound = Math.max(Math.abs(this.min), Math.abs(this.max), 1e-12);
    }
    const h = this.hist;
    const k = HISTOGRAM_BINS / (2 * this.bound);
    for (let i = 0; i < x.length; i++) {
      const b = Math.floor((x[i]! + this.bound) * k);
      h[b < 0 ? 0 : b >= HISTOGRAM_BINS ? HISTOGRAM_BINS - 1 : b]! += 1;
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

/** Folds a signed histogram over [-A, A] into an |x| histogram of half as many bins. */
export function foldAbs(hist: Float64Array): Float64Array {
  const half = hist.length / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = hist[half + i]! + hist[half - 1 - i]!;
  return out;
}

/** The calibrated range of one tensor by the chosen method. */
export function calibratedRange(s: TensorStats, method: CalibrationMethod, percentile: number): [number, number] {
  if (method === 'minmax' || !s.hist) return [s.min, s.max];
  if (method === 'percentile') {
    const [lo, hi] = percentileRange(s.hist, s.bound, percentile);
    return [Math.max(s.min, lo), Math.min(s.max, hi)];
  }
  const abs = foldAbs(s.hist);
  // The spike of exact zeros (ReLU outputs, padding) dominates P and hides the clipping error of
  // the tail; it is represented exactly whatever the threshold, so it is left out of the search.
  abs[0] = 0;
  const t = entropyThreshold(abs, s.bound / abs.length);
  return [Math.max(s.min, -t), Math.min(s.max, t)];
}

// ---- collection on calibration data (the one non-pure part of this module)
import type { Model, Value } from '../onnx/ir.js';
import { forEachCapture } from '../runtime/capture.js';
import { tensorToFloat32, type Feeds } from '../runtime/ort.js';

/** Calibrated [lo, hi] of each value (keyed by value name), over every calibration batch. */
export async function calibrate(model: Model, values: Value[], feeds: Feeds[], method: CalibrationMethod, percentile: number, signal?: AbortSignal): Promise<Map<string, [number, number]>> {
  const stats = new Map(values.map((v) => [v, new TensorStats()]));
  await forEachCapture(model, feeds, values, (captured) => {
    for (const [v, t] of captured) stats.get(v)?.addMinMax(tensorToFloat32(t));
  }, signal ? { signal } : {});
  if (method !== 'minmax') {
    await forEachCapture(model, feeds, values, (captured) => {
      for (const [v, t] of captured) stats.get(v)?.addHistogram(tensorToFloat32(t));
    }, signal ? { signal } : {});
  }
  const out = new Map<string, [number, number]>();
  for (const [v, s] of stats) if (Number.isFinite(s.min)) out.set(v.name, calibratedRange(s, method, percentile));
  return out;
}
