// Fidelity of a candidate output against a reference output: pure functions over typed arrays.

export interface Fidelity {
  /** Signal-to-quantization-noise ratio in dB: 10·log10(Σref² / Σ(ref−cand)²). Infinity when identical. */
  sqnrDb: number;
  maxAbsError: number;
  meanAbsError: number;
  cosine: number;
  count: number;
}

export function fidelity(ref: ArrayLike<number>, cand: ArrayLike<number>): Fidelity {
  const acc = new FidelityAccumulator();
  acc.add(ref, cand);
  return acc.result();
}

export function sqnrFromPowers(signal: number, noise: number): number {
  if (noise === 0) return Infinity;
  if (signal === 0) return -Infinity;
  return 10 * Math.log10(signal / noise);
}

/** Accumulates fidelity over many batches without holding them (powers add, max takes max). */
export class FidelityAccumulator {
  private signal = 0;
  private noise = 0;
  private maxAbs = 0;
  private sumAbs = 0;
  private dot = 0;
  private candSq = 0;
  private n = 0;

  add(ref: ArrayLike<number>, cand: ArrayLike<number>): void {
    if (ref.length !== cand.length) throw new Error(`fidelity: lengths differ (${ref.length} vs ${cand.length})`);
    for (let i = 0; i < ref.length; i++) {
      const r = ref[i]!;
      const c = cand[i]!;
      const d = r - c;
      this.signal += r * r;
      this.noise += d * d;
      this.candSq += c * c;
      this.dot += r * c;
      const a = Math.abs(d);
      this.sumAbs += a;
      if (a > this.maxAbs || Number.isNaN(a)) this.maxAbs = a;
    }
    this.n += ref.length;
  }

  result(): Fidelity {
    const { signal, noise, candSq, dot } = this;
    return {
      sqnrDb: sqnrFromPowers(signal, noise),
      maxAbsError: this.maxAbs,
      meanAbsError: this.n ? this.sumAbs / this.n : 0,
      cosine: signal === 0 || candSq === 0 ? (signal === candSq ? 1 : 0) : dot / Math.sqrt(signal * candSq),
      count: this.n,
    };
  }
}
