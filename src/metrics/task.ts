// Task metrics against labels, and agreement between two models' outputs: pure functions plus
// accumulators so they stream over batches.

/** Top-k hits of one [rows, classes] batch against integer labels. */
export function topKHits(scores: ArrayLike<number>, classes: number, labels: ArrayLike<number | bigint>, k: number): number {
  const rows = labels.length;
  let hits = 0;
  for (let r = 0; r < rows; r++) {
    const label = Number(labels[r]!);
    const target = scores[r * classes + label]!;
    // the label is in the top k when fewer than k classes score strictly higher
    let higher = 0;
    for (let c = 0; c < classes && higher < k; c++) if (scores[r * classes + c]! > target) higher++;
    if (higher < k) hits++;
  }
  return hits;
}

/**
 * Greedy CTC decoding of one [T, C] sequence: argmax per step, collapse repeats, drop the blank.
 * Returns the label sequence.
 */
export function ctcGreedyDecode(logits: ArrayLike<number>, offset: number, steps: number, classes: number, blank = 0): number[] {
  const out: number[] = [];
  let prev = -1;
  for (let t = 0; t < steps; t++) {
    let best = 0;
    let bestV = -Infinity;
    const base = offset + t * classes;
    for (let c = 0; c < classes; c++) {
      const v = logits[base + c]!;
      if (v > bestV) {
        bestV = v;
        best = c;
      }
    }
    if (best !== prev && best !== blank) out.push(best);
    prev = best;
  }
  return out;
}

export type MetricName = 'top1' | 'top5' | 'mae' | 'rmse' | 'obo' | 'nmae';
export const METRIC_NAMES: MetricName[] = ['top1', 'top5', 'mae', 'rmse', 'obo', 'nmae'];

/** Metrics where larger is better (the accuracies and the goal's fidelity metrics); the others are errors. */
export const HIGHER_IS_BETTER: ReadonlySet<string> = new Set(['top1', 'top5', 'agreement', 'sqnr']);

/**
 * Streams task metrics over batches. Class metrics take [N, C] scores and integer labels; count
 * metrics take one prediction per sample. OBO (the seed case study's "off by one" error) is the
 * fraction of samples whose rounded prediction misses the label by more than one; NMAE is the mean
 * of |pred − label| / label over samples with label > 0.
 */
export class TaskAccumulator {
  private n = 0;
  private top1 = 0;
  private top5 = 0;
  private absErr = 0;
  private sqErr = 0;
  private offByMore = 0;
  private relErr = 0;
  private relCount = 0;

  constructor(readonly metrics: MetricName[]) {}

  add(output: ArrayLike<number>, dims: readonly number[], labels: ArrayLike<number | bigint>): void {
    const rows = labels.length;
    const perRow = output.length / rows;
    if (this.metrics.includes('top1') || this.metrics.includes('top5')) {
      this.top1 += topKHits(output, perRow, labels, 1);
      this.top5 += topKHits(output, perRow, labels, Math.min(5, perRow));
    }
    for (let r = 0; r < rows; r++) {
      const label = Number(labels[r]!);
      const pred = perRow === 1 ? output[r]! : output[r * perRow]!; // counts: one value per sample
      const e = Math.abs(pred - label);
      this.absErr += e;
      this.sqErr += e * e;
      if (Math.abs(Math.round(pred) - label) > 1) this.offByMore++;
      if (label > 0) {
        this.relErr += e / label;
        this.relCount++;
      }
    }
    this.n += rows;
    void dims;
  }

  result(): Record<string, number> {
    const out: Record<string, number> = {};
    const n = Math.max(1, this.n);
    for (const m of this.metrics) {
      if (m === 'top1') out.top1 = this.top1 / n;
      if (m === 'top5') out.top5 = this.top5 / n;
      if (m === 'mae') out.mae = this.absErr / n;
      if (m === 'rmse') out.rmse = Math.sqrt(this.sqErr / n);
      if (m === 'obo') out.obo = this.offByMore / n;
      if (m === 'nmae') out.nmae = this.relCount ? this.relErr / this.relCount : NaN;
    }
    return out;
  }
}

/** Fraction of rows whose argmax agrees between two [rows, classes] batches, streamed. */
export class AgreementAccumulator {
  private same = 0;
  private n = 0;

  addTop1(a: ArrayLike<number>, b: ArrayLike<number>, rows: number): void {
    const classes = a.length / rows;
    for (let r = 0; r < rows; r++) {
      if (argmaxAt(a, r * classes, classes) === argmaxAt(b, r * classes, classes)) this.same++;
    }
    this.n += rows;
  }

  /** [N, T, C] sequences: a sample agrees when both greedy CTC decodings are identical. */
  addSequences(a: ArrayLike<number>, b: ArrayLike<number>, dims: readonly number[], blank = 0): void {
    const [n, steps, classes] = dims as [number, number, number];
    for (let i = 0; i < n; i++) {
      const off = i * steps * classes;
      const sa = ctcGreedyDecode(a, off, steps, classes, blank);
      const sb = ctcGreedyDecode(b, off, steps, classes, blank);
      if (sa.length === sb.length && sa.every((x, j) => x === sb[j])) this.same++;
    }
    this.n += n;
  }

  result(): number {
    return this.n ? this.same / this.n : NaN;
  }
}

/** argmax over the last axis of a [rows, classes] view. */
export function argmaxRows(data: ArrayLike<number>, classes: number): Int32Array {
  const rows = Math.floor(data.length / classes);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = argmaxAt(data, r * classes, classes);
  return out;
}

function argmaxAt(data: ArrayLike<number>, offset: number, count: number): number {
  let best = 0;
  let bestV = -Infinity;
  for (let c = 0; c < count; c++) {
    const v = data[offset + c]!;
    if (v > bestV) {
      bestV = v;
      best = c;
    }
  }
  return best;
}
